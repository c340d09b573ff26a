"""A few trainer steps of the tiny speaker and CTC presets on a built corpus: the loss falls,
the batches have the documented shapes, and packing keeps whole utterances with their texts."""

import json

import jax
import numpy as np
import pytest

from emotive import configs
from emotive.codecs import chars
from emotive.train.tasks import make_task
from emotive.train.tasks.asr import pack_rows
from emotive.train.trainer import train

# Eval and checkpoints off (tests/infer/test_transcribe.py loads checkpoints); losses logged
# every step. Compiling the train step is most of each test's time.
QUICK = ["train.steps=12", "train.log_every=1", "train.eval_every=0", "train.ckpt_every=0",
         "train.peak_tflops=1.0"]


@pytest.fixture(scope="module")
def data_dir(tiny_speech_data):
    """A 24-clip corpus (14 train clips of 8 speakers) built as emotive_speech."""
    return tiny_speech_data


def losses(workdir):
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if r.get("split") == "train"]


def assert_loss_falls(values):
    assert len(values) == 12 and np.all(np.isfinite(values))
    assert np.mean(values[-3:]) < 0.85 * np.mean(values[:3]), values


def test_speaker_tiny_trains(data_dir, tmp_path):
    # Speed perturbation on, as in the base preset: 8 speakers x 3 speeds, class stride 8.
    cfg = configs.load("speaker", "tiny", QUICK + [f"data.data_dir={data_dir}", "optim.lr=5e-3",
                                                   "data.speed_factors=0.9,1.1",
                                                   "model.num_speakers=24"])
    batch = next(make_task(cfg).data.train(0, 1))
    assert set(batch) == {"audio", "length", "speaker"}
    assert batch["audio"].shape == (8, 16000) and batch["speaker"].max() < 8
    train(cfg, tmp_path, progress=False, devices=jax.devices()[:2])
    assert_loss_falls(losses(tmp_path))


def test_asr_tiny_trains(data_dir, tmp_path):
    cfg = configs.load("asr", "tiny", QUICK + [f"data.data_dir={data_dir}", "optim.lr=5e-3",
                                               "model.encoder.transformer.num_layers=1"])
    batch = next(make_task(cfg).data.train(0, 1))
    assert batch["audio"].shape == batch["segment_ids"].shape == (8, 64000)
    assert batch["labels"].shape == (8, 120) and batch["utterances"].sum() >= 8
    train(cfg, tmp_path, progress=False, devices=jax.devices()[:2])
    assert_loss_falls(losses(tmp_path))


def test_pack_rows_keeps_whole_utterances_and_texts():
    records = [{"audio": np.full(n, 1000 * (k + 1), np.int16), "text": text}
               for k, (n, text) in enumerate([(5, "Hi!"), (3, "a b"), (4, b"Ok."), (9, "no"),
                                              (2, "x" * 11)])]
    out = pack_rows(records, rows=2, row_samples=8, max_labels=8)
    # Longest first: 9 samples fit no row; 5 -> row 0, 4 -> row 1, 3 -> row 0, 2 (11 chars) never.
    assert out["utterances"].tolist() == [2, 1] and out["valid_samples"].tolist() == [8, 4]
    assert out["segment_ids"].tolist() == [[1] * 5 + [2] * 3, [1] * 4 + [0] * 4]
    assert chars.decode(out["labels"][0, :out["label_length"][0]]) == "hi a b"
    assert chars.decode(out["labels"][1, :out["label_length"][1]]) == "ok"
    # Each utterance is standardised on its own; padding stays silent.
    assert np.allclose(out["audio"][1, 4:], 0) and np.isfinite(out["audio"]).all()
