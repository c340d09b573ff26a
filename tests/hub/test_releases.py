"""The committed pretrained bundles (releases/): every one verifies, loads through the same
path as a run, and runs on speech; together they stay under the 60 MB cap. Every model card
(nested bundles' too) parses with huggingface_hub, each metric its model-index lists read back
with its value (and stated in its results table); the card writer gives each committed card's
front matter again, and a card it writes round-trips its metrics exactly."""

import pathlib

import numpy as np
import pytest
from huggingface_hub import ModelCard

import emotive
from emotive import configs
from emotive.hub.card import card_data, write_card
from emotive.codecs.audio import resample
from emotive.data.speech.emotions import EMOTIONS
from emotive.errors import UserError
from emotive.infer import bundle

RELEASES = pathlib.Path(__file__).resolve().parents[2] / "releases"
BUNDLES = sorted(p for p in RELEASES.iterdir() if bundle.is_bundle(p))
# Every bundle's card, nested bundles (tts-small/codec/) included.
CARDS = sorted(p for p in RELEASES.rglob(bundle.CARD_FILE) if bundle.is_bundle(p.parent))


def test_the_releases_are_there_and_under_the_cap():
    names = {p.name for p in BUNDLES}
    assert {"tts-small", "ser-judge", "ser-verifier", "student", "asr-judge", "speaker"} <= names
    total = sum(f.stat().st_size for f in RELEASES.rglob("*") if f.is_file())
    assert total < 60e6


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.name)
def test_every_release_verifies(path):
    bundle.verify_bundle(path)
    if (path / "codec").is_dir():
        bundle.verify_bundle(path / "codec")


def test_recognisers_load_in_one_line_and_run():
    t = np.arange(16000) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 180 * t) * np.clip(np.sin(2 * np.pi * 3 * t), 0, None)
             ).astype(np.float32)[None]
    out = emotive.load(RELEASES / "ser-judge").predict(audio)
    assert out["probs"].shape == (1, 8) and np.isclose(out["probs"].sum(), 1, atol=1e-4)
    student = emotive.load(RELEASES / "student").predict(audio)
    assert student["adv"].shape == (1, 3) and np.isfinite(student["adv"]).all()
    emb = emotive.load(RELEASES / "speaker").embed(audio)
    assert np.isclose(np.linalg.norm(emb), 1, atol=1e-4)
    assert isinstance(emotive.load(RELEASES / "asr-judge").transcribe(audio)[0], str)


def test_every_bundle_has_a_card():
    assert {p.parent for p in CARDS} >= set(BUNDLES) | {RELEASES / "tts-small" / "codec"}


def _listed(card: ModelCard) -> list[tuple]:
    return [(r.task_type, r.dataset_name, r.dataset_split, r.metric_type, r.metric_name,
             r.metric_value) for r in card.data.eval_results or []]


@pytest.mark.parametrize("path", CARDS, ids=lambda p: str(p.parent.relative_to(RELEASES)))
def test_every_card_parses_with_each_metric(path):
    card = ModelCard.load(path)
    assert card.data.license == "apache-2.0" and card.data.library_name == "emotive"
    assert card.data.model_name == path.parent.name
    # the model-index as emotive's own reader (plain YAML) sees it
    raw = [(m["task"], m["dataset"], m["split"], m["type"], m["name"], m["value"])
           for m in bundle.card_metrics(path.parent)]
    assert raw, "every committed card states the metrics of its eval report"
    assert _listed(card) == raw
    for *_, name, value in raw:
        assert isinstance(value, float)
        assert f"| {name} | {value:.6g} |" in card.text


@pytest.mark.parametrize("path", CARDS, ids=lambda p: str(p.parent.relative_to(RELEASES)))
def test_the_card_writer_gives_each_committed_front_matter(path):
    """card_data, fed the card's own figures (as read_report returns them) and the bundle's
    config, gives the committed front matter key for key."""
    card = ModelCard.load(path)
    cfg = bundle.read_config(path.parent)
    grouped = {}
    for r in card.data.eval_results:
        grouped.setdefault((r.dataset_type, r.dataset_split), []).append(
            (r.metric_type, r.metric_name, r.metric_value))
    reports = [{"dataset": dataset, "split": split, "metrics": metrics}
               for (dataset, split), metrics in grouped.items()]
    written = card_data(path.parent.name, cfg.task, cfg, reports,
                        bundle.bundle_role(path.parent)).to_dict()
    assert written == bundle.card_metadata(path.parent)


def test_a_written_card_round_trips_its_metrics(tmp_path):
    cfg = configs.load("asr", "tiny")
    reports = [{"file": "runs/a/eval-test/report.json", "dataset": "emotive_speech",
                "split": "test", "step": 5,
                "metrics": [("cer", "CER (greedy)", 1 / 3), ("wer", "WER (greedy)", 0.1 + 0.2)]},
               {"file": "runs/a/eval-validation/report.json", "dataset": "unspecified",
                "split": "validation", "step": None, "metrics": [("cer", "CER (greedy)", 2)]}]
    path = tmp_path / "README.md"
    write_card(path, "asr-x", "asr", cfg, step=5, dtype="float32",
               counts={"parameters": 1000, "bytes": 4000}, reports=reports,
               source=tmp_path / "run" / "checkpoints" / "5")
    card = ModelCard.load(path)
    asr = "automatic-speech-recognition"
    assert _listed(card) == [
        (asr, "emotive_speech (test)", "test", "cer", "CER (greedy)", 1 / 3),
        (asr, "emotive_speech (test)", "test", "wer", "WER (greedy)", 0.1 + 0.2),
        (asr, "unspecified (validation)", "validation", "cer", "CER (greedy)", 2)]
    assert [r.dataset_type for r in card.data.eval_results] == \
        ["emotive_speech", "emotive_speech", "unspecified"]
    assert card.data.model_name == "asr-x" and card.data.datasets == ["emotive_speech"]
    assert card.data.pipeline_tag == "automatic-speech-recognition"
    assert card.data.tags == ["emotive", "jax", "flax", "automatic-speech-recognition", "ctc"]
    assert [m["value"] for m in bundle.card_metrics(tmp_path)] == [1 / 3, 0.1 + 0.2, 2]
    text = path.read_text()
    assert text.startswith("---\nlicense: apache-2.0\n") and "\n---\n\n# asr-x: " in text
    assert "| CER (greedy) | 0.333333 | emotive_speech | test | 5 |" in text
    assert "## Training" in text and "## Limitations" in text

    write_card(tmp_path / "none.md", "asr-y", "asr", cfg, step=5, dtype="float32",
               counts={"parameters": 1000, "bytes": 4000}, reports=[],
               source=tmp_path / "run")
    bare = ModelCard.load(tmp_path / "none.md")
    assert bare.data.eval_results is None and "model-index" not in bare.data.to_dict()
    assert "no figures are claimed" in bare.text


def test_an_emotion_model_takes_one_clip_at_any_rate_and_names_its_results():
    ser = emotive.load(RELEASES / "ser-judge")
    t = np.arange(22050) / 22050
    clip = (0.3 * np.sin(2 * np.pi * 180 * t) * np.clip(np.sin(2 * np.pi * 3 * t), 0, None)
            ).astype(np.float32)
    one = ser.predict(clip, sample_rate=22050)
    assert one["label"] == max(one["probabilities"], key=one["probabilities"].get)
    assert set(one["probabilities"]) == set(EMOTIONS)
    assert np.isclose(sum(one["probabilities"].values()), 1, atol=1e-4)
    assert one["adv"].shape == (3,) and one["arousal"] == one["adv"][0]
    # The same clip resampled by hand, as a batch of one, gives the same numbers.
    rows = ser.predict(resample(clip, 22050, 16000)[None])
    assert rows["label"] == [one["label"]]
    np.testing.assert_allclose(rows["probs"][0], one["probs"], atol=1e-6)
    np.testing.assert_allclose(rows["valence"], [one["valence"]], atol=1e-6)
    with pytest.raises(UserError, match=r"\[T\] or \[B, T\]"):
        ser.predict(np.zeros((1, 2, 16000), np.float32))
    with pytest.raises(UserError, match="sample_rate"):
        ser.predict(clip, sample_rate=0)


def test_the_recognisers_state_their_roles():
    roles = {p.name: bundle.bundle_role(p) for p in BUNDLES}
    assert roles["asr-judge"] == roles["ser-judge"] == "judge"
    assert roles["ser-verifier"] == roles["student"] == "verifier"
    assert roles["speaker"] == "product"
    # The judges were trained with another seed than anything they judge or guide.
    seeds = {name: bundle.read_config(RELEASES / name).train.seed for name in roles}
    assert seeds["asr-judge"] == seeds["ser-judge"] == 1
    assert 1 not in {seeds["ser-verifier"], seeds["student"]}
