"""The quickstart's own logic: arguments, held-out sentence choice, the report it writes.

Its stages are the project's commands, each tested where it lives; running the whole
pipeline takes minutes, so CI runs it through the README's main command, not here.
"""

import json

import numpy as np
import pytest

from emotive import cli
from emotive.commands import quickstart


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    assert cli.main(["quickstart", "--workdir", str(tmp_path), "--emotions", "bored"]) == 2
    assert "--emotions must name some of" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert cli.main(["quickstart", "--workdir", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_held_out_sentences_come_from_test_speakers_only(tmp_path):
    rows = [{"split": "train", "text_kind": "sentence", "text": "Seen in training."},
            {"split": "test", "text_kind": "nonsense", "text": "Blorp."},
            {"split": "test", "text_kind": "sentence", "text": "First held out."},
            {"split": "test", "text_kind": "sentence", "text": "First held out."},
            {"split": "test", "text_kind": "sentence", "text": "Second held out."}]
    (tmp_path / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert quickstart.held_out_sentences(tmp_path, 5) == ["First held out.", "Second held out."]
    assert quickstart.held_out_sentences(tmp_path, 1) == ["First held out."]


def test_report_lists_every_sample_and_plots_them(tmp_path):
    (tmp_path / "samples").mkdir()
    rng = np.random.default_rng(0)
    samples = [{"file": str(tmp_path / "samples" / f"s0-{e}.wav"), "text": "Hello there.",
                "emotion": e, "seconds": 0.5, "notes": [],
                "audio": 0.1 * rng.standard_normal(8000).astype(np.float32)}
               for e in ("happy", "sad")]
    quickstart.write_report(tmp_path, samples, {"1/6 synthesise": 1.0, "6/6 speak": 2.0})
    report = json.loads((tmp_path / "report.json").read_text())
    assert [s["emotion"] for s in report["samples"]] == ["happy", "sad"]
    assert report["total_seconds"] == pytest.approx(3.0)
    assert (tmp_path / "samples" / "spectrograms.png").stat().st_size > 1000
    assert "s0-sad.wav" in (tmp_path / "report.md").read_text()


def test_samples_are_judged_against_their_own_and_other_texts(tmp_path, monkeypatch, capsys):
    """A judge that hears each sample's own text: CER 0 and a content margin equal to the
    chance level; the report says both."""
    from emotive.commands import eval as eval_command

    class Hears:
        def transcribe(self, batch, lengths):
            return [t.lower().strip(".") for t in texts[:len(batch)]]

    texts = ["The cat sat.", "A dog ran far.", "The cat sat.", "A dog ran far."]
    monkeypatch.setattr(eval_command, "text_recognizer", lambda ckpt: Hears())
    samples = [{"file": str(tmp_path / f"s{i}.wav"), "text": t, "emotion": "happy",
                "seconds": 0.5, "notes": [], "audio": np.zeros(8000, np.float32)}
               for i, t in enumerate(texts)]
    judged = quickstart.judge_samples(samples, tmp_path)
    assert judged["cer"] == 0.0 and judged["content_margin"] == judged["wrong_text_cer"] > 0.5
    (tmp_path / "samples").mkdir()
    quickstart.write_report(tmp_path, samples, {"6/6 speak": 1.0}, judged)
    assert "content margin" in (tmp_path / "report.md").read_text()
    assert json.loads((tmp_path / "report.json").read_text())["judged"]["cer"] == 0.0
    assert quickstart.judge_path("none") is None
    assert cli.main(["quickstart", "--workdir", str(tmp_path / "w"), "--judge",
                     str(tmp_path / "missing")]) == 2
    assert "--judge" in capsys.readouterr().err
