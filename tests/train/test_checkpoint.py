"""Save, then restore in a new process: training continues with identical state."""

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp

ARGS = ["toy_lm", "--preset", "tiny", "--no-progress", "--set", "train.steps=6",
        "train.ckpt_every=3", "train.log_every=1", "train.eval_every=0", "train.batch_size=16",
        "train.keep_ckpts=5", "optim.warmup_steps=2"]


def emotive(*args, check=True):
    env = dict(os.environ)
    result = subprocess.run([sys.executable, "-m", "emotive", *args], capture_output=True,
                            text=True, env=env, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"emotive {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def _losses(workdir):
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if r["split"] == "train"}


def _read_state(step_dir):
    return ocp.StandardCheckpointer().restore((step_dir / "state").absolute())


def test_resume_in_a_new_process_continues_identically(tmp_path):
    straight = tmp_path / "straight"
    emotive("train", *ARGS, "--workdir", str(straight))
    assert sorted(p.name for p in (straight / "checkpoints").iterdir() if p.name.isdigit()) == \
        ["3", "6"]
    config = json.loads((straight / "checkpoints" / "6" / "config" / "metadata").read_text())
    assert config["train"]["steps"] == 6 and config["model"]["num_layers"] == 2

    # A copy that "stopped" after step 3: resume it in a new process.
    resumed = tmp_path / "resumed"
    shutil.copytree(straight, resumed)
    shutil.rmtree(resumed / "checkpoints" / "6")
    (resumed / "metrics.jsonl").unlink()
    result = emotive("train", *ARGS, "--workdir", str(resumed), "--resume")
    assert "resumed from step 3" in result.stdout

    a, b = _losses(straight), _losses(resumed)
    assert sorted(b) == [4, 5, 6]
    for step in (4, 5, 6):
        assert a[step] == b[step], (step, a[step], b[step])
    state_a = _read_state(straight / "checkpoints" / "6")
    state_b = _read_state(resumed / "checkpoints" / "6")
    leaves_a, tree_a = jax.tree.flatten(state_a)
    leaves_b, tree_b = jax.tree.flatten(state_b)
    assert tree_a == tree_b
    assert len(leaves_a) > 10  # parameters and both Adam moments
    for x, y in zip(leaves_a, leaves_b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert int(state_b["step"]) == 6


def test_existing_checkpoints_need_resume(tmp_path):
    work = tmp_path / "w"
    emotive("train", *ARGS[:-1], "optim.warmup_steps=2", "train.steps=3", "--workdir", str(work))
    result = emotive("train", *ARGS, "--workdir", str(work), check=False)
    assert result.returncode == 2
    assert "already holds checkpoints; pass --resume" in result.stderr
