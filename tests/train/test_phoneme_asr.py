"""The recogniser's phoneme variant (model.targets=phonemes): the target mapping, a few
training steps of the tiny preset, `emotive transcribe` printing phonemes and PER from
`emotive eval asr`."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile as sf
from flax import nnx

from emotive.errors import UserError
from emotive import cli, configs
from emotive.codecs import phonemes
from emotive.configs import base
from emotive.data.speech.espeak import Synthesizer
from emotive.data.speech.phoneme_targets import (BLANK, VOCAB_SIZE, PhonemeTargets,
                                                 ctc_greedy_phonemes, decode, phones,
                                                 speaker_voice, target_ids)
from emotive.evals import asr as asr_eval
from emotive.infer.asr import load_recognizer
from emotive.models.asr import CtcRecognizer
from emotive.train.checkpoint import Checkpointer
from emotive.train.tasks import make_task
from emotive.train.tasks.asr import char_labels, pack_rows, phoneme_labels
from emotive.train.trainer import train

PHONEMES = ["model.targets=phonemes"]
QUICK = ["train.steps=12", "train.log_every=1", "train.eval_every=0", "train.ckpt_every=0",
         "train.peak_tflops=1.0"]


@pytest.fixture(scope="module")
def targets():
    return PhonemeTargets()


def test_targets_round_trip_between_ids_and_symbols(targets):
    ids = targets.encode_many(["The cat sat."])[0]
    symbols = [phonemes.INVENTORY[i] for i in ids]
    assert symbols == ["ð", "ə", " ", "k", "æ", "t", " ", "s", "æ", "t"]  # no stress marks
    assert [phonemes.INVENTORY.index(s) for s in symbols] == ids.tolist()
    assert decode(ids) == "ð_ə k_æ_t s_æ_t" and phones(decode(ids)) == [
        s for s in symbols if s != " "]
    # Pauses become one word boundary, none at the ends; bytes work like str.
    pause = targets.encode_many([b"Yes, no!"])[0]
    assert pause[0] != phonemes.WORD and pause[-1] != phonemes.WORD
    assert pause.tolist().count(phonemes.WORD) == 1 and BLANK not in pause.tolist()
    assert target_ids([phonemes.PAUSES["."], 20, 7, phonemes.PAUSES[","], phonemes.WORD, 30,
                       phonemes.PAUSES["?"]]).tolist() == [20, phonemes.WORD, 30]
    assert targets.encode_many(["!!"])[0].size == 0  # nothing to voice: no target
    # A corpus speaker is phonemised in its own accent, anyone else in en-us.
    assert speaker_voice(b"spk04") == "en-gb-scotland" and speaker_voice("actor_01") == "en-us"
    scottish, american = targets.encode_many(["The car is far."] * 2,
                                             ["en-gb-scotland", "en-us"])
    assert decode(scottish) != decode(american)
    best = np.array([[0, 20, 20, 0, 20, phonemes.WORD, 0, 30, 30], [30] * 9])
    assert ctc_greedy_phonemes(best, [9, 0]) == [decode([20, 20, phonemes.WORD, 30]), ""]


def test_pack_rows_joins_phoneme_targets_with_word_boundaries(targets):
    records = [{"audio": np.ones(5, np.int16), "text": "Hi.", "speaker": b"actor_01"},
               {"audio": np.ones(3, np.int16), "text": b"Go!", "speaker": b"actor_01"}]
    out = pack_rows(records, rows=1, row_samples=8, max_labels=16,
                    labels_of=phoneme_labels(targets), separator=phonemes.WORD)
    hi, go = targets.encode_many(["Hi.", "Go!"])
    assert out["labels"][0, :out["label_length"][0]].tolist() == (
        hi.tolist() + [phonemes.WORD] + go.tolist())
    chars_out = pack_rows(records, rows=1, row_samples=8, max_labels=16)
    assert [x.tolist() for x in char_labels(records)] == [
        chars_out["labels"][0, :2].tolist(), chars_out["labels"][0, 3:5].tolist()]


def test_phoneme_asr_tiny_trains(tiny_speech_data, tmp_path):
    cfg = configs.load("asr", "tiny", QUICK + PHONEMES + [
        f"data.data_dir={tiny_speech_data}", "optim.lr=5e-3",
        "model.encoder.transformer.num_layers=1"])
    batch = next(make_task(cfg).data.train(0, 1))
    assert batch["labels"].shape == (8, 120) and batch["labels"].max() < VOCAB_SIZE
    assert phonemes.WORD in batch["labels"] and batch["utterances"].sum() >= 8
    train(cfg, tmp_path, progress=False, devices=jax.devices()[:2])
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if r.get("split") == "train"]
    assert len(losses) == 12 and np.all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < 0.85 * np.mean(losses[:3]), losses


@pytest.fixture(scope="module")
def phoneme_run(tmp_path_factory):
    """A phoneme recogniser with random weights, written the way the trainer writes it."""
    root = tmp_path_factory.mktemp("phoneme_asr")
    cfg = configs.load("asr", "tiny", PHONEMES)
    state = nnx.state(nnx.eval_shape(lambda: CtcRecognizer(cfg.model, rngs=nnx.Rngs(0))),
                      nnx.Param).to_pure_dict()
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda x: (rng.standard_normal(x.shape) / np.sqrt(
        np.prod(x.shape[:-1]) if len(x.shape) > 1 else 10.0)).astype(np.float32), state)
    ckpt = Checkpointer(root / "checkpoints", async_save=False)
    ckpt.save(5, {"step": jnp.int32(5), "params": {"model": params}, "rest": {}}, None,
              base.to_dict(cfg))
    ckpt.close()
    return root


def test_transcribe_prints_phonemes(phoneme_run, tmp_path, capsys):
    speech = Synthesizer().synth("Twelve small boxes.", "en-us+m2")
    sf.write(tmp_path / "in.wav", speech, 16000)
    assert cli.main(["transcribe", str(tmp_path / "in.wav"), "--ckpt", str(phoneme_run)]) == 0
    out = capsys.readouterr().out.strip()
    assert out and set(phones(out)) <= set(phonemes.INVENTORY) - {"<pad>", " "}
    assert not set(out) & set(",.?!ˈˌ")  # phonemes and word boundaries only


def test_eval_reports_per(phoneme_run, tiny_speech_data, tmp_path, capsys):
    rec = load_recognizer(phoneme_run)
    assert rec.phonemes
    report = asr_eval.evaluate(rec, tiny_speech_data, "test", batch_size=8, out_dir=tmp_path)
    assert report["utterances"] == 6 and "cer" not in report["overall"]
    assert report["overall"]["phones"] > 0 and report["overall"]["per"] > 0
    assert set(report["per_condition"]) == {"clean", "distance", "shout"}
    ref = report["examples"][0]["ref"]
    assert phones(ref) and set(phones(ref)) <= set(phonemes.INVENTORY)
    assert "PER" in asr_eval.format_report(report)
    args = ["eval", "asr", "--ckpt", str(phoneme_run), "--data-dir", str(tiny_speech_data),
            "--split", "test", "--out", str(tmp_path / "cli")]
    assert cli.main(args) == 0 and "PER" in capsys.readouterr().out
    assert cli.main(args + ["--beam", "4"]) == 2
    assert "greedily" in capsys.readouterr().err


def test_a_phoneme_recogniser_never_judges_or_verifies_text(phoneme_run):
    from emotive.commands.eval import text_recognizer
    from emotive.search.verifiers import load_verifier

    with pytest.raises(UserError, match="phoneme recogniser"):
        text_recognizer(phoneme_run)
    with pytest.raises(UserError, match="phoneme recogniser"):
        load_verifier("intelligibility", phoneme_run)
