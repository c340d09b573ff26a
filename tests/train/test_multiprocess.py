"""Two processes x 2 CPU devices (gloo) train exactly like one process with 4 devices."""

import json
import os
import socket
import subprocess
import sys

import numpy as np

ARGS = ["train", "toy_lm", "--preset", "tiny", "--no-progress", "--set", "train.steps=4",
        "train.log_every=1", "train.eval_every=0", "train.ckpt_every=4", "train.batch_size=16",
        "optim.warmup_steps=1", "optim.lr=1e-2", "mesh.data=2", "mesh.fsdp=2",
        "train.async_ckpt=false"]


def _env(devices):
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
    return env


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _losses(workdir):
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if r["split"] == "train"]


def test_two_processes_match_one_process(tmp_path):
    single = subprocess.run([sys.executable, "-m", "emotive", *ARGS, "--workdir",
                             str(tmp_path / "one")], env=_env(4), capture_output=True,
                            text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]

    port = _free_port()
    procs = [subprocess.Popen([sys.executable, "-m", "emotive", *ARGS, "--workdir",
                               str(tmp_path / "two"), "--coordinator", f"localhost:{port}",
                               "--num-processes", "2", "--process-id", str(i)],
                              env=_env(2), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
             for i in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
    assert "over 4 device(s)" in outputs[0][0]

    one, two = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert len(one) == len(two) == 4
    np.testing.assert_allclose(two, one, atol=1e-5, rtol=0)
    # one process owns the shared files; every process saved its input-iterator position
    data_dir = tmp_path / "two" / "checkpoints" / "4" / "data"
    data_files = sorted(p.name for p in data_dir.glob("process_*.json"))
    assert data_files == ["process_0-of-2.json", "process_1-of-2.json"]
