"""The command line: help everywhere, and bad input as one line with exit status 2."""

import os
import subprocess
import sys

import pytest


def emotive(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "emotive", *args], capture_output=True,
                          text=True, env=dict(os.environ), timeout=300, cwd=cwd)


def test_help_everywhere():
    top = emotive("--help")
    assert top.returncode == 0 and "train" in top.stdout
    sub = emotive("train", "--help")
    assert sub.returncode == 0 and "--preset" in sub.stdout and "--workdir" in sub.stdout


@pytest.mark.parametrize("args, message", [
    (["train", "nope"], "unknown config 'nope'; available: "),
    (["train", "toy_lm", "--preset", "huge"], "unknown preset 'huge' for config 'toy_lm'"),
    (["train", "toy_lm", "--set", "model.layers=2"], "unknown config key 'model.layers'"),
    (["train", "toy_lm", "--set", "optim.lr=fast"], "bad value 'fast' for config key 'optim.lr'"),
    (["train", "toy_lm", "--set", "mesh.data=3"], "needs 3 devices but 8 are available"),
    (["train", "toy_lm", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_input_is_one_line_exit_2(args, message, tmp_path):
    result = emotive(*args, cwd=tmp_path)  # the default workdir lands in tmp_path
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_workdir_that_is_a_file(tmp_path):
    path = tmp_path / "afile"
    path.write_text("x")
    result = emotive("train", "toy_lm", "--workdir", str(path))
    assert result.returncode == 2
    assert f"workdir {path} is a file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
