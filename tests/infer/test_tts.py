"""`emotive tts` end to end on checkpoints of random weights: a tiny TTS LM with its vocabulary
and a tiny codec, written the way their trainers write them; wav lengths, voice prompts,
reproducibility, and one-line messages for bad input."""

import numpy as np
import pytest
import soundfile as sf

from emotive import cli
from emotive.codecs.sentences import split_sentences
from emotive.errors import UserError
from emotive.infer.codec import load_codec
from emotive.infer.tts import PAUSE_SECONDS, synthesize, synthesize_batch
from emotive.infer.tts_model import load_tts


RATE, HOP = 16000, 320
# Split into chunks of at most 100 characters, one row per chunk and sample.
TEXT = ("The quiet bird sang over the green river in the early morning light today. "
        "An oak table stood by the stone wall near the old mill house all day long. "
        "Light rain fell on the quiet stone bridge.")
MAX_SECONDS = 0.3  # 15 tokens per sentence at most: random weights rarely stop on their own
SEQ_LEN = 160  # the TTS fixture's data.seq_len (tests/conftest.py)


@pytest.fixture(scope="module")
def runs(tiny_tts_runs):
    """(TTS run dir, codec run dir) with random weights; the codec has 4*4*3 = 48 codes."""
    return tiny_tts_runs


def _noise_wav(path, seconds, amplitude=0.1):
    rng = np.random.default_rng(0)
    sf.write(path, amplitude * rng.standard_normal(int(seconds * RATE)), RATE)
    return path


def test_cli_writes_one_wav_per_sample(runs, tmp_path, capsys):
    out = tmp_path / "out.wav"
    args = ["tts", TEXT, "--ckpt", str(runs[0]), "--codec", str(runs[1]), "--emotion",
            "happy", "--intensity", "2", "--num-samples", "2", "--seed", "3", "--max-seconds",
            str(MAX_SECONDS), "--top-k", "20", "--out", str(out)]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "out.wav" in printed and "out-1.wav" in printed
    chunks = len(split_sentences(TEXT))
    assert chunks == 3
    pauses = (chunks - 1) * int(PAUSE_SECONDS * RATE)
    longest = chunks * int(np.ceil(MAX_SECONDS * RATE / HOP)) * HOP + pauses
    takes = []
    for path in (out, tmp_path / "out-1.wav"):
        audio, rate = sf.read(path)
        assert rate == RATE and pauses <= audio.size <= longest
        assert (audio.size - pauses) % HOP == 0  # whole codec frames between the pauses
        takes.append(audio)
    assert not np.array_equal(takes[0], takes[1])  # two seeds, two takes
    assert cli.main(args[:-1] + [str(tmp_path / "again.wav")]) == 0
    np.testing.assert_array_equal(sf.read(tmp_path / "again.wav")[0], takes[0])


def test_voice_prompt_and_its_limits(runs, tmp_path):
    lm, codec = load_tts(runs[0]), load_codec(runs[1])
    ref = _noise_wav(tmp_path / "ref.wav", 1.0)
    kw = dict(num_samples=1, seed=0, max_seconds=MAX_SECONDS)
    plain = synthesize(lm, codec, "Green river.", **kw)[0]
    cloned = synthesize(lm, codec, "Green river.", ref_wav=ref, ref_text="oak table", **kw)[0]
    assert plain.size <= 15 * HOP and cloned.size <= 15 * HOP
    assert plain.size != cloned.size or not np.array_equal(plain, cloned)
    # 3 s of reference is 150 codes: with the text it leaves under a second of SEQ_LEN.
    with pytest.raises(UserError, match="leaving under a second of speech"):
        synthesize(lm, codec, "Green river.", ref_wav=_noise_wav(tmp_path / "3s.wav", 3.0),
                   ref_text="oak table", **kw)


def test_a_batch_of_texts_equals_each_text_spoken_alone(runs):
    lm, codec = load_tts(runs[0]), load_codec(runs[1])
    texts, emotions = ["Green river.", "Oak table. Blue sky."], ["happy", None]
    kw = dict(num_samples=2, max_seconds=MAX_SECONDS)
    batch = synthesize_batch(lm, codec, texts, emotions=emotions, intensities=[1, 2], seed=4,
                             **kw)
    for k, (text, emotion) in enumerate(zip(texts, emotions)):
        alone = synthesize(lm, codec, text, emotion=emotion, intensity=1 + k, seed=4 + k, **kw)
        assert len(batch[k]) == len(alone) == 2
        for together, single in zip(batch[k], alone):
            np.testing.assert_allclose(together, single, atol=1e-5)
    with pytest.raises(UserError, match="as many emotions"):
        synthesize_batch(lm, codec, texts, emotions=["happy"], **kw)


def _bad_args(runs, tmp_path):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(RATE), RATE)
    long = _noise_wav(tmp_path / "long.wav", 16.0)
    common = ["--ckpt", str(runs[0]), "--codec", str(runs[1]), "--out", str(tmp_path / "o.wav")]
    return {
        "empty text": (["  "] + common, "text is empty"),
        "unknown emotion": (["Oak table."] + common + ["--emotion", "ecstatic"],
                            "no tag for emotion 'ecstatic'"),
        "silent reference": (["Oak table."] + common + ["--ref", str(silent), "--ref-text",
                                                        "oak"], "silent"),
        "long reference": (["Oak table."] + common + ["--ref", str(long), "--ref-text", "oak"],
                           "reference audio is 16.0 s; a voice prompt may be at most 15 s"),
        "reference without text": (["Oak table."] + common + ["--ref", str(long)],
                                   "needs both the reference audio (--ref) and its transcript"),
        "bad top-p": (["Oak table."] + common + ["--top-p", "0"], "top_p must lie in (0, 1]"),
    }


@pytest.mark.parametrize("case", ["empty text", "unknown emotion", "silent reference",
                                  "long reference", "reference without text", "bad top-p"])
def test_bad_input_is_one_line(runs, tmp_path, capsys, case):
    args, message = _bad_args(runs, tmp_path)[case]
    assert cli.main(["tts"] + args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err, err


def test_eval_clips_are_clean_and_spread_over_the_emotions():
    from emotive.data.speech.emotions import EMOTIONS
    from emotive.evals.tts import select_clips

    happy, sad, angry = (EMOTIONS.index(e) for e in ("happy", "sad", "angry"))
    clips = ([{"id": f"h{i}", "emotion": happy, "condition": "clean"} for i in range(5)]
             + [{"id": "s-far", "emotion": sad, "condition": "distance"}]
             + [{"id": f"s{i}", "emotion": sad, "condition": "clean"} for i in range(5)]
             + [{"id": "a0", "emotion": angry, "condition": ""}])
    read = []

    def stream():
        for c in clips:
            read.append(c["id"])
            yield c

    picked = select_clips(stream(), ["happy", "sad"], 4)
    assert [c["id"] for c in picked] == ["h0", "s0", "h1", "s1"]
    assert read[-1] == "s1"  # stopped reading once both emotions had their share
    few = select_clips(iter(clips), ["happy", "sad", "angry"], 9)
    assert [c["id"] for c in few] == ["h0", "s0", "a0", "h1", "s1", "h2", "s2"]


def test_quickstart_speaks_every_sentence_in_every_emotion_in_one_batch(runs, tmp_path):
    import json

    from emotive.commands import quickstart

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rows = [{"split": "test", "text_kind": "sentence", "text": t}
            for t in ("Green river.", "Oak table.")]
    (corpus / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    work = runs[0].parent  # the fixture's root holds tts/ and codec/, as quickstart's does
    samples = quickstart.speak(work, corpus, ["happy", "sad"], 2, seed=0)
    assert [(s["text"], s["emotion"]) for s in samples] == [
        ("Green river.", "happy"), ("Green river.", "sad"), ("Oak table.", "happy"),
        ("Oak table.", "sad")]
    for s in samples:
        audio, rate = sf.read(s["file"])
        assert rate == RATE and audio.size == s["audio"].size > 0
        assert isinstance(s["notes"], list)


def test_eval_tts_reports_every_version_per_emotion_and_plots(runs, tmp_path, monkeypatch):
    from emotive.data.speech.emotions import EMOTIONS
    from emotive.infer import codec as codec_module
    from emotive.evals import tts as tts_eval

    lm, codec = load_tts(runs[0]), load_codec(runs[1])
    rng = np.random.default_rng(0)
    clips = [{"id": f"c{i}", "text": text, "condition": "clean", "intensity": 1,
              "emotion": EMOTIONS.index(emotion), "audio": 0.1 * rng.standard_normal(RATE),
              "decoded": 0.1 * rng.standard_normal(RATE)}
             for i, (text, emotion) in enumerate([("Green river.", "happy"),
                                                  ("Oak table.", "sad"),
                                                  ("Blue sky.", "happy")])]
    monkeypatch.setattr(codec_module, "iterate_split", lambda *a, **k: iter(clips))

    class Recognizer:  # hears the first clip's text in everything
        def transcribe(self, batch, lengths):
            return ["green river"] * len(batch)

    class EmotionModel:  # always "happy"
        def predict(self, batch, lengths):
            probs = np.zeros((len(batch), len(EMOTIONS)))
            probs[:, EMOTIONS.index("happy")] = 1.0
            return {"probs": probs}

    report = tts_eval.evaluate(lm, codec, Recognizer(), EmotionModel(), "unused", limit=16,
                               out_dir=tmp_path / "eval", batch_size=2)
    # 16 clips over the 8 emotions is 2 a piece: both happy clips, the one sad clip.
    assert report["clips"] == 3 and set(report["intelligibility"]) == {
        "original", "resynthesis", "tts"}
    assert report["per_emotion"]["happy"]["accuracy_tts"] == 1.0
    assert report["per_emotion"]["sad"]["accuracy_original"] == 0.0
    assert report["emotion_accuracy"]["tts"] == 2 / 3
    assert 0.0 < report["intelligibility"]["original"]["cer"] < 1.0
    # A judge that hears the same words in every clip scores the wrong texts exactly as well.
    original = report["intelligibility"]["original"]
    assert original["wrong_text_cer"] == pytest.approx(original["cer"])
    assert original["content_margin"] == pytest.approx(0.0)
    assert sum(original[f"{k}_rate"] for k in ("substitutions", "deletions", "insertions")) \
        == pytest.approx(original["cer"])
    assert report["timing"]["no_stop_rate"] >= 0.0 and "forced_eop_rate" not in report["timing"]
    assert len(list((tmp_path / "eval" / "wavs").glob("*-tts.wav"))) == 3
    assert (tmp_path / "eval" / "spectrograms.png").stat().st_size > 0
    assert "happy" in tts_eval.format_report(report)


def test_guidance_scales_change_the_speech_deterministically(runs, tmp_path, capsys):
    lm, codec = load_tts(runs[0]), load_codec(runs[1])
    kw = dict(emotion="happy", num_samples=1, seed=4, max_seconds=MAX_SECONDS)
    plain = synthesize(lm, codec, "Green river.", **kw)[0]
    np.testing.assert_array_equal(
        synthesize(lm, codec, "Green river.", text_scale=1.0, emotion_scale=1.0, **kw)[0], plain)
    guided = synthesize(lm, codec, "Green river.", text_scale=2.0, emotion_scale=3.0, **kw)[0]
    again = synthesize(lm, codec, "Green river.", text_scale=2.0, emotion_scale=3.0, **kw)[0]
    np.testing.assert_array_equal(guided, again)
    assert guided.size != plain.size or not np.array_equal(guided, plain)
    base_args = ["tts", "Green river.", "--ckpt", str(runs[0]), "--codec", str(runs[1]),
                 "--out", str(tmp_path / "g.wav")]
    for extra, message in ((["--text-scale", "-1"], "text_scale must be"),
                           (["--emotion-scale", "2"], "--emotion-scale needs --emotion")):
        assert cli.main(base_args + extra) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err, err
