"""Checkpoints across processes: crash-exact resume after SIGKILL (parameters, optimiser state
and losses bit for bit), SIGTERM preemption, corrupt checkpoints, NaN stops."""

import json
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

STEPS = 40
ARGS = ["train", "toy_lm", "--preset", "tiny", "--no-progress", "--set", f"train.steps={STEPS}",
        "train.ckpt_every=20", "train.keep_ckpts=5", "train.log_every=1", "train.eval_every=0",
        "train.batch_size=32", "optim.warmup_steps=5"]


def _cmd(workdir, *extra):
    return [sys.executable, "-m", "emotive", *ARGS, *extra, "--workdir", str(workdir)]


def _run(workdir, *extra):
    return subprocess.run(_cmd(workdir, *extra), capture_output=True, text=True, timeout=300)


def _losses(workdir):
    """Step -> loss; a step logged twice (before a crash and after resume) keeps the last."""
    out = {}
    for line in (workdir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["split"] == "train":
            out[row["step"]] = row["loss"]
    return out


def _read_state(step_dir):
    return ocp.StandardCheckpointer().restore((step_dir / "state").absolute())


def _wait_for(path, proc, timeout=240):
    start = time.time()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() - start < timeout, f"{path} never appeared"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    work = tmp_path_factory.mktemp("straight") / "run"
    result = _run(work)
    assert result.returncode == 0, result.stderr[-3000:]
    return work


def test_sigkill_then_resume_reproduces_the_uninterrupted_run(straight, tmp_path):
    work = tmp_path / "crash"
    proc = subprocess.Popen(_cmd(work), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(work / "checkpoints" / "20", proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    before = _losses(work)
    assert max(before) < STEPS  # it really died mid-run

    result = _run(work, "--resume")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resumed from step 20" in result.stdout
    assert _losses(work) == _losses(straight)  # bit for bit, all 40 steps
    # and the final parameters and both Adam moments are identical too
    final_a = _read_state(straight / "checkpoints" / "40")
    final_b = _read_state(work / "checkpoints" / "40")
    leaves_a, tree_a = jax.tree.flatten(final_a)
    leaves_b, tree_b = jax.tree.flatten(final_b)
    assert tree_a == tree_b and len(leaves_a) > 10
    for x, y in zip(leaves_a, leaves_b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    config = json.loads((work / "checkpoints" / "40" / "config" / "metadata").read_text())
    assert config["train"]["steps"] == STEPS and config["model"]["num_layers"] == 2


def test_existing_checkpoints_need_resume(straight, tmp_path):
    work = tmp_path / "again"
    shutil.copytree(straight, work)
    result = _run(work)
    assert result.returncode == 2
    assert "already holds checkpoints; pass --resume" in result.stderr


def test_sigterm_saves_a_complete_checkpoint_and_exits_75(tmp_path):
    work = tmp_path / "preempt"
    proc = subprocess.Popen(_cmd(work), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = work / "metrics.jsonl"
    _wait_for(metrics, proc)
    while not metrics.read_text().count("\n") >= 3:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 75, err[-3000:]
    assert "SIGTERM at step" in out and "--resume" in out
    steps = sorted(int(p.name) for p in (work / "checkpoints").iterdir() if p.name.isdigit())
    assert steps and steps[-1] < STEPS
    state = _read_state(work / "checkpoints" / str(steps[-1]))
    assert int(state["step"]) == steps[-1]


def test_truncated_latest_checkpoint_falls_back_to_the_previous(straight, tmp_path):
    work = tmp_path / "corrupt"
    shutil.copytree(straight, work)
    (work / "metrics.jsonl").unlink()
    state_dir = work / "checkpoints" / "40" / "state"
    for path in state_dir.rglob("*"):
        if path.is_file() and path.stat().st_size > 100:
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    result = _run(work, "--resume")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [l for l in result.stdout.splitlines() if "checkpoint step 40" in l]
    assert len(lines) == 1 and "unreadable" in lines[0] and "trying the previous one" in lines[0]
    assert (work / "checkpoints" / "40.unreadable").is_dir()  # kept for inspection, not deleted
    assert "resumed from step 20" in result.stdout
    redone = _losses(work)
    reference = _losses(straight)
    assert redone == {s: reference[s] for s in range(21, STEPS + 1)}


def test_nonfinite_loss_stops_naming_the_step(tmp_path):
    work = tmp_path / "nan"
    result = _run(work, "--set", "optim.lr=1e30", "optim.warmup_steps=0", "train.ckpt_every=1",
                  "optim.clip_norm=0")
    assert result.returncode == 3, result.stderr[-3000:]
    message = [l for l in result.stdout.splitlines() if "non-finite loss" in l]
    assert len(message) == 1 and "at step 2" in message[0]
    assert "last good checkpoint is step 1" in message[0]
    steps = sorted(int(p.name) for p in (work / "checkpoints").iterdir() if p.name.isdigit())
    assert steps == [1]
