"""Inference of the speaker encoder and the CTC recogniser from checkpoints: embed/transcribe
shapes, the eval reports on a built split, and `emotive transcribe` with a bad-input message.

Checkpoints hold random weights written the way the trainer writes them, so these tests need
no training (tests/train/test_speaker_asr_tasks.py trains the same presets)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile as sf
from flax import nnx

from emotive import cli, configs
from emotive.codecs import chars
from emotive.configs import base
from emotive.evals import asr as asr_eval
from emotive.evals import speaker as speaker_eval
from emotive.infer.asr import load_recognizer
from emotive.infer.speaker import load_speaker_encoder
from emotive.models.asr import CtcRecognizer
from emotive.models.speaker import SpeakerEncoder
from emotive.train.checkpoint import Checkpointer


def random_params(make, seed=0) -> dict:
    """Parameters of module `make()` drawn with numpy (no per-shape RNG compiles)."""
    state = nnx.state(nnx.eval_shape(make), nnx.Param).to_pure_dict()
    rng = np.random.default_rng(seed)

    def draw(x):
        fan_in = np.prod(x.shape[:-1]) if len(x.shape) > 1 else 10.0
        return (rng.standard_normal(x.shape) / np.sqrt(fan_in)).astype(np.float32)

    return jax.tree.map(draw, state)


def write_run(root, experiment, make_model, overrides=()):
    cfg = configs.load(experiment, "tiny", list(overrides))
    params = random_params(lambda: make_model(cfg))
    ckpt = Checkpointer(root / "checkpoints", async_save=False)
    ckpt.save(5, {"step": jnp.int32(5), "params": {"model": params}, "rest": {}}, None,
              base.to_dict(cfg))
    ckpt.close()
    return root


@pytest.fixture(scope="module")
def data_dir(tiny_speech_data):
    return tiny_speech_data


@pytest.fixture(scope="module")
def recognizer_dir(tmp_path_factory):
    # The base layout: 40 ms encoder frames, two CTC slots per frame.
    return write_run(tmp_path_factory.mktemp("asr_run"), "asr",
                     lambda cfg: CtcRecognizer(cfg.model, rngs=nnx.Rngs(0)),
                     ["model.encoder.strides=2,2", "model.upsample=2"])


@pytest.fixture(scope="module")
def speaker_dir(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("speaker_run"), "speaker",
                     lambda cfg: SpeakerEncoder(cfg.model, rngs=nnx.Rngs(0)))


def test_embed_shapes_and_speaker_report(speaker_dir, data_dir, tmp_path):
    enc = load_speaker_encoder(speaker_dir)
    assert enc.step == 5
    # 8 rows of 3 s: the shape the eval below pads the 6 test clips (1.7-2.6 s) to.
    audio = np.random.default_rng(0).standard_normal((8, 48000)).astype(np.float32) * 0.1
    emb = enc.embed(audio, np.array([48000, 16000, 8000, 20000, 1, 2, 3, 4]))
    assert emb.shape == (8, enc.dim) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-4)
    report = speaker_eval.evaluate(enc, data_dir, "test", batch_size=8, out_dir=tmp_path)
    assert report["utterances"] == 6 and len(report["speakers"]) == 2
    assert 0 <= report["overall"]["eer"] <= 1 and report["overall"]["trials"] == 15
    assert "clean" in report["per_condition"] and (tmp_path / "report.json").is_file()


def test_transcribe_shapes_and_asr_report(recognizer_dir, data_dir, tmp_path):
    rec = load_recognizer(recognizer_dir)
    audio = np.random.default_rng(0).standard_normal((8, 48000)).astype(np.float32) * 0.1
    texts = rec.transcribe(audio, np.array([48000, 16000, 8000, 0, 1, 2, 3, 4]))
    assert len(texts) == 8 and all(isinstance(t, str) for t in texts)
    assert all(t == chars.normalize_text(t) for t in texts)  # already normalised
    report = asr_eval.evaluate(rec, data_dir, "test", batch_size=8, out_dir=tmp_path)
    assert report["utterances"] == 6 and set(report["per_condition"]) == {"clean", "distance",
                                                                         "shout"}
    assert report["overall"]["chars"] > 0 and report["overall"]["cer"] >= 0
    assert (tmp_path / "transcripts.jsonl").read_text().count("\n") == 6


def test_transcribe_command_and_bad_input(recognizer_dir, tmp_path, capsys):
    rng = np.random.default_rng(1)
    # 2.5 s at 22.05 kHz: resampled, then padded to the 8 x 3 s shape compiled above.
    speechy = 0.1 * rng.standard_normal(55125) * np.sin(np.linspace(0, 40, 55125))
    sf.write(tmp_path / "in.wav", speechy.astype(np.float32), 22050)
    assert cli.main(["transcribe", str(tmp_path / "in.wav"), "--ckpt", str(recognizer_dir)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.strip() == chars.normalize_text(out)
    sf.write(tmp_path / "silent.wav", np.zeros(16000, np.float32), 16000)
    code = cli.main(["transcribe", str(tmp_path / "silent.wav"), "--ckpt", str(recognizer_dir)])
    err = capsys.readouterr().err
    assert code == 2 and "silent.wav: silent" in err and err.count("\n") == 1
    assert cli.main(["transcribe", str(tmp_path / "missing.wav"), "--ckpt",
                     str(recognizer_dir)]) == 2
    assert "no such file" in capsys.readouterr().err


def test_asr_eval_with_a_beam_and_a_language_model(recognizer_dir, data_dir, tmp_path, capsys):
    args = ["eval", "asr", "--ckpt", str(recognizer_dir), "--data-dir", str(data_dir),
            "--split", "test", "--out", str(tmp_path)]
    assert cli.main(args + ["--beam", "4", "--lm-order", "3", "--lm-weight", "0.7",
                            "--word-lm-order", "2", "--word-bonus", "0.5"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["decoding"] == {"method": "prefix beam search", "beam": 4, "lm_order": 3,
                                  "lm_weight": 0.7, "char_bonus": 0.0, "word_lm_order": 2,
                                  "word_lm_weight": 0.2, "word_bonus": 0.5,
                                  "unknown_word_penalty": 30.0}
    assert "CER" in capsys.readouterr().out
    for flag in ("--lm-order", "--word-lm-order"):  # a language model without a beam
        assert cli.main(args + [flag, "3"]) == 2
        assert f"{flag} needs a beam search" in capsys.readouterr().err


def test_the_asr_report_states_its_chance_level(recognizer_dir, data_dir, tmp_path):
    """A random recogniser says nothing in particular: it scores about as well against other
    clips' texts as against the right ones (both near 100% CER)."""
    from emotive.metrics.recognition import wrong_text_cer

    report = asr_eval.evaluate(load_recognizer(recognizer_dir), data_dir, "test", batch_size=8,
                               out_dir=tmp_path)
    chance = report["chance"]["wrong_text_cer"]
    assert chance == pytest.approx(report["overall"]["cer"], abs=0.15)
    refs = [e["ref"] for e in report["examples"]]
    assert wrong_text_cer(refs, refs) > 0.5  # the right transcripts, scored on wrong texts
