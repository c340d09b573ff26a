"""SER training and Wav2Small distillation end to end on a tiny built corpus.

A few steps of `ser` tiny lower its loss and write a checkpoint; that checkpoint then serves
as the frozen teacher of a few `student` steps, which lower the distillation loss without
reading any label and checkpoint the student's BatchNorm statistics."""

import json

import jax
import numpy as np
import pytest

from emotive import configs
from emotive.data.builders import build
from emotive.data.speech.synth import build_corpus
from emotive.errors import UserError
from emotive.evals.common import eval_dir
from emotive.infer.loading import load_trained
from emotive.train.tasks import make_task, report_after_training
from emotive.train.trainer import train

STEPS = 16
SHORT = [f"train.steps={STEPS}", "train.batch_size=8", "train.log_every=1",
         f"train.eval_every={STEPS}", "train.eval_batches=1", f"train.ckpt_every={STEPS}",
         "train.async_ckpt=false", "train.peak_tflops=1.0", "optim.warmup_steps=2",
         "data.crop_seconds=0.5"]


def _rows(workdir):
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r.get("split") != "eval"], [r for r in rows
                                                          if r.get("split") == "eval"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A 32-clip corpus (18 train, 6 validation, 8 test clips) built as emotive_speech."""
    root = tmp_path_factory.mktemp("ser_data")
    build_corpus(root / "corpus", preset="tiny", limit=32, workers=1, progress=False)
    build("emotive_speech", root / "corpus", root / "data", progress=False, verbose=False)
    return root / "data"


@pytest.fixture(scope="module")
def teacher(data_dir, tmp_path_factory):
    """A `ser` tiny run of STEPS steps on one device."""
    cfg = configs.load("ser", "tiny", SHORT + ["optim.lr=3e-3", f"data.data_dir={data_dir}"])
    workdir = tmp_path_factory.mktemp("ser_run") / "run"
    summary = train(cfg, workdir, progress=False, devices=jax.devices()[:1])
    return cfg, workdir, summary


def test_ser_training_lowers_the_joint_loss(teacher):
    cfg, workdir, summary = teacher
    train_rows, eval_rows = _rows(workdir)
    loss = [r["loss"] for r in train_rows]
    assert len(loss) == STEPS
    assert np.mean(loss[-4:]) < np.mean(loss[:4]) - 0.1, loss
    for key in ("ce", "accuracy", "ccc_arousal", "ccc_dominance", "ccc_valence"):
        assert key in train_rows[-1] and key in eval_rows[-1]
    message = report_after_training(cfg, summary)
    assert f"emotive eval ser --ckpt {workdir}" in message


def test_student_distils_from_the_saved_teacher_without_labels(teacher, data_dir, tmp_path):
    _, teacher_dir, _ = teacher
    cfg = configs.load("student", "tiny", SHORT + ["optim.lr=1e-2", f"data.data_dir={data_dir}",
                                                   f"teacher.ckpt={teacher_dir}"])
    first = next(make_task(cfg).data.train(0, 1))
    assert set(first) == {"audio", "length", "example_mask", "teacher_adv", "teacher_logits"}
    assert first["teacher_adv"].shape == (8, 3) and first["teacher_logits"].shape == (8, 8)

    # Two devices: batch-norm statistics come from a batch sharded for real.
    train(cfg, tmp_path / "student", progress=False, devices=jax.devices()[:2])
    train_rows, eval_rows = _rows(tmp_path / "student")
    loss = [r["loss"] for r in train_rows]
    assert np.mean(loss[-4:]) < np.mean(loss[:4]), loss
    assert {"ccc_teacher_arousal", "agreement", "ccc_label_valence"} <= set(eval_rows[-1])

    # BatchNorm running statistics moved away from their init (0 mean, 1 variance) and
    # were saved: they come back with the trained parameters.
    student = load_trained(tmp_path / "student", task="student").model
    means = np.stack([np.asarray(n.mean[...]) for n in student.norms])
    variances = np.stack([np.asarray(n.var[...]) for n in student.norms])
    assert np.abs(means).max() > 1e-3 and np.abs(variances - 1).max() > 1e-3


def test_student_without_a_teacher_says_how_to_set_one(data_dir):
    cfg = configs.load("student", "tiny", [f"data.data_dir={data_dir}"])
    with pytest.raises(UserError, match="pass --set teacher.ckpt=DIR"):
        make_task(cfg).data.train(0, 1)


@pytest.mark.parametrize("ckpt", ["runs/x", "runs/x/checkpoints", "runs/x/checkpoints/40"])
def test_eval_dir_sits_beside_checkpoints_whichever_folder_is_named(ckpt):
    assert str(eval_dir(ckpt, "ser", "test", 40)) == "runs/x/eval-ser-test-40"
