"""Emotion tools on checkpoints of random weights: `emotive classify` (JSON keys, resampling,
bad input as one line) and `emotive eval ser|student` (report JSON and confusion PNGs, per
condition; the student against its teacher).

Checkpoints are written the way the trainer writes them (params and rest), so these tests
do not wait for a training run (tests/train/test_ser_task.py trains for real)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile as sf
from flax import nnx

from emotive import cli, configs
from emotive.configs import base
from emotive.data.speech.emotions import EMOTIONS
from emotive.train.checkpoint import Checkpointer
from emotive.train.tasks import make_task


def save_random(cfg, path, seed=0):
    """A checkpoint of `cfg`'s task model with numpy random weights (no per-shape RNG
    compiles), laid out as the trainer writes it: params and rest (batch-norm statistics)."""
    abstract = nnx.eval_shape(lambda: make_task(cfg).make_model(nnx.Rngs(seed)))
    _, params, rest = nnx.split(abstract, nnx.Param, ...)
    rng = np.random.default_rng(seed)

    def fill(path, x):
        name = path[-1].key
        if name in ("scale", "var"):
            return np.ones(x.shape, np.float32)
        if name in ("bias", "mean"):
            return np.zeros(x.shape, np.float32)
        return (rng.standard_normal(x.shape) / np.sqrt(np.prod(x.shape[:-1]))).astype(np.float32)

    state = {"step": jnp.int32(5), "params": {"model": params.to_pure_dict()},
             "rest": rest.to_pure_dict()}
    state = {**state, **jax.tree_util.tree_map_with_path(
        fill, {"params": state["params"], "rest": state["rest"]})}
    ckpt = Checkpointer(path / "checkpoints", async_save=False)
    ckpt.save(5, state, None, base.to_dict(cfg))
    ckpt.close()
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_speech_data):
    """(data dir, ser run, student run whose teacher is the ser run)."""
    root = tmp_path_factory.mktemp("emotion_tools")
    data = f"data.data_dir={tiny_speech_data}"
    ser = save_random(configs.load("ser", "tiny", [data]), root / "ser")
    student = save_random(configs.load("student", "tiny", [data, f"teacher.ckpt={ser}"]),
                          root / "student")
    return tiny_speech_data, ser, student


def _tone(path, rate, seconds=0.6, channels=1):
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    sf.write(path, np.tile(x[:, None], (1, channels)), rate)
    return path


def test_classify_prints_sorted_categories_and_adv(runs, tmp_path, capsys):
    _, ser, student = runs
    wav = _tone(tmp_path / "in.wav", 22050, channels=2)
    assert cli.main(["classify", str(wav), "--ckpt", str(ser)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"emotion", "categories", "arousal", "dominance", "valence"} <= set(out)
    assert out["resampled_from_hz"] == 22050 and out["task"] == "ser"
    probs = [c["probability"] for c in out["categories"]]
    assert sorted(c["emotion"] for c in out["categories"]) == sorted(EMOTIONS)
    assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1, abs=1e-3)
    assert out["emotion"] == out["categories"][0]["emotion"]

    assert cli.main(["classify", str(wav), str(wav), "--ckpt", str(student)]) == 0
    both = json.loads(capsys.readouterr().out)
    assert len(both) == 2 and both[0]["task"] == "student" and len(both[0]["categories"]) == 8


@pytest.mark.parametrize("name, write, message", [
    ("missing.wav", None, "no such file"),
    ("silent.wav", lambda p: sf.write(p, np.zeros(16000), 16000), "silent"),
    ("short.wav", lambda p: sf.write(p, 0.3 * np.ones(1600), 16000), "too short"),
    ("nan.wav", lambda p: sf.write(p, np.full(16000, np.nan, np.float32), 16000,
                                   subtype="FLOAT"), "NaN or Inf"),
])
def test_classify_bad_input_is_one_line(runs, tmp_path, capsys, name, write, message):
    path = tmp_path / name
    if write is not None:
        write(path)
    assert cli.main(["classify", str(path), "--ckpt", str(runs[1])]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and str(path) in err and len(err.splitlines()) == 1, err


def test_eval_ser_writes_report_and_confusion_pngs(runs, tmp_path, capsys):
    data_dir, ser, _ = runs
    out = tmp_path / "ev"
    assert cli.main(["eval", "ser", "--ckpt", str(ser), "--data-dir", str(data_dir),
                     "--split", "test", "--out", str(out)]) == 0
    assert "UAR" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    overall = report["overall"]
    assert report["clips"] == overall["clips"] > 0 and report["parameters"] > 0
    assert set(overall["recall"]) == set(EMOTIONS) and 0 <= overall["uar"] <= 1
    assert set(overall["ccc"]) == {"arousal", "dominance", "valence"}
    assert set(report["per_condition"]) <= {"clean", "distance", "shout"}
    assert sum(m["clips"] for m in report["per_condition"].values()) == overall["clips"]
    assert (out / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    for condition in report["per_condition"]:
        assert (out / f"confusion_{condition}.png").is_file()


def test_eval_student_compares_with_its_teacher(runs, capsys):
    data_dir, ser, student = runs
    assert cli.main(["eval", "student", "--ckpt", str(student), "--split", "validation",
                     "--limit", "4"]) == 0  # data dir and teacher from the student's config
    assert "vs teacher" in capsys.readouterr().out
    report_file = next((student / "eval-student-validation-5").glob("report.json"))
    report = json.loads(report_file.read_text())
    assert report["clips"] == 4 and report["teacher"]["parameters"] > report["parameters"]
    assert set(report["overall"]["ccc_vs_teacher"]) == {"arousal", "dominance", "valence"}
    assert 0 <= report["overall"]["agreement_with_teacher"] <= 1
    assert report["parameters"] == 10_624 + 338 * 8 + 8  # Wav2Small + an 8-way category head
