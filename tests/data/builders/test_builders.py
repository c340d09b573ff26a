"""TFDS builders: array_record without TensorFlow, bad files rejected and reported, labels,
speaker-disjoint splits, random access, and the `emotive data build` command."""

import json
import sys

import numpy as np
import pytest
import soundfile as sf

from emotive import cli
from emotive.data import builders
from emotive.data.speech import synth
from emotive.data.speech.emotions import EMOTIONS
from emotive.data.builders.base import split_speakers
from emotive.data.builders.speech import CREMA_D_EMOTIONS
from emotive.data.builders.tfds_io import REPORT_FILE, open_split
from emotive.errors import UserError

SR = 16000


def tone(seconds: float, sr: int = SR, hz: float = 220.0, level: float = 0.3, seed: int = 0):
    """A sine with a raised-cosine envelope plus a little noise: float32 [T]."""
    t = np.arange(int(seconds * sr)) / sr
    envelope = np.sin(np.pi * t / max(t[-1], 1e-3)) ** 2 if t.size else t
    noise = np.random.default_rng(seed).normal(0, 0.01, t.size)
    return (level * envelope * np.sin(2 * np.pi * hz * t) + noise).astype(np.float32)


def write_bad_files(folder, names: dict[str, str]) -> None:
    """Writes one bad (or awkward) wav per kind into `folder`, named by `names[kind]`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{names['empty']}.wav").write_bytes(b"")
    sf.write(folder / f"{names['silent']}.wav", np.zeros(SR, np.float32), SR, subtype="PCM_16")
    nan = tone(0.5)
    nan[100:200] = np.nan
    sf.write(folder / f"{names['nan']}.wav", nan, SR, subtype="FLOAT")
    sf.write(folder / f"{names['truncated']}.wav", tone(1.0), SR, subtype="PCM_16")
    data = (folder / f"{names['truncated']}.wav").read_bytes()
    (folder / f"{names['truncated']}.wav").write_bytes(data[: len(data) // 2])
    sf.write(folder / f"{names['short']}.wav", tone(0.05), SR, subtype="PCM_16")
    (folder / f"{names['corrupt']}.wav").write_bytes(b"RIFF\x00\x01garbage" * 50)
    stereo = np.stack([tone(0.8, 48000), tone(0.8, 48000, hz=330)], axis=1)
    sf.write(folder / f"{names['stereo']}.wav", stereo, 48000, subtype="PCM_24")
    sf.write(folder / f"{names['u8']}.wav", tone(0.7, hz=300), SR, subtype="PCM_U8")
    square = np.sign(np.sin(2 * np.pi * 150 * np.arange(SR) / SR)).astype(np.float32)
    sf.write(folder / f"{names['clipped']}.wav", square, SR, subtype="PCM_16")


BAD_KINDS = ("empty", "silent", "nan", "truncated", "short", "corrupt")
KEPT_ODD = ("stereo", "u8", "clipped")
EXPECTED_REJECTS = {"empty": 1, "silent": 1, "nan_or_inf": 1, "truncated": 1, "too_short": 1,
                    "corrupt": 1}


def reasons(report):
    return {k: len(v) for k, v in report["rejected_by_reason"].items()}


@pytest.fixture(scope="module")
def ljspeech(tmp_path_factory):
    """An LJSpeech-style folder: 6 good clips, every bad kind, a line without a wav, a bad
    line, and a wav without a line."""
    src = tmp_path_factory.mktemp("lj")
    wavs = src / "wavs"
    wavs.mkdir()
    lines = []
    for i in range(6):
        sf.write(wavs / f"good{i}.wav", tone(0.5 + 0.2 * i, hz=200 + 20 * i, seed=i), SR,
                 subtype="PCM_16")
        lines.append(f"good{i}|Sentence number {i}.|Sentence number {['zero', 'one'][i % 2]}.")
    write_bad_files(wavs, {k: k for k in BAD_KINDS + KEPT_ODD})
    lines += [f"{k}|A {k} file." for k in BAD_KINDS + KEPT_ODD]
    lines += ["ghost|This wav does not exist.", "no separator on this line"]
    sf.write(wavs / "stray.wav", tone(0.5), SR, subtype="PCM_16")
    (src / "metadata.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path_factory.mktemp("lj_out")
    report = builders.build("audio_folder", src, out, progress=False, verbose=False,
                            speaker="lj")
    return src, out, report


def test_audio_folder_report_counts_every_file(ljspeech):
    src, out, report = ljspeech
    assert report["kept"] == 6 + len(KEPT_ODD) and report["kept_per_split"] == {"train": 9}
    assert reasons(report) == {**EXPECTED_REJECTS, "missing": 1, "bad_metadata": 1}
    rejected = {i["file"] for items in report["rejected_by_reason"].values() for i in items}
    assert {f"wavs/{k}.wav" for k in BAD_KINDS} | {"wavs/ghost.wav"} <= rejected
    assert report["skipped_by_reason"] == {"not_in_metadata": ["wavs/stray.wav"]}
    assert [w["file"] for w in report["warnings_by_kind"]["clipped"]] == ["wavs/clipped.wav"]
    assert report["converted"] == {"48000 Hz -> 16000 Hz": 1, "2 channels -> mono": 1,
                                   "PCM_24 -> PCM_16": 1, "PCM_U8 -> PCM_16": 1}
    saved = json.loads((out / "audio_folder" / "1.0.0" / REPORT_FILE).read_text())
    assert saved == report


def test_audio_folder_records_by_random_access(ljspeech):
    import tensorflow_datasets as tfds

    src, out, _ = ljspeech
    assert "tensorflow" not in sys.modules  # the whole build and read ran without TF
    split = open_split(out, "audio_folder", "train")
    assert len(split.source) == 9 and split.speakers == ("lj",)
    records = {r["id"].decode(): r for r in (split.source[i] for i in range(9))}
    assert set(records) == {f"good{i}" for i in range(6)} | set(KEPT_ODD)
    assert records["good3"]["text"] == b"Sentence number 3."
    assert records["good3"]["normalized_text"] == b"Sentence number one."
    assert records["stereo"]["audio"].dtype == np.int16
    assert abs(records["stereo"]["audio"].size - int(0.8 * SR)) <= 1  # resampled to 16 kHz
    lengths = [split.source[i]["audio"].size for i in range(9)]
    assert list(split.num_samples) == lengths
    by_name = tfds.data_source("audio_folder", data_dir=str(out))["train"]
    assert by_name[4]["id"] == split.source[4]["id"]


def test_audio_folder_holdout_and_rebuild_guard(ljspeech, tmp_path):
    src, out, _ = ljspeech
    with pytest.raises(UserError, match="--overwrite"):
        builders.build("audio_folder", src, out, progress=False, verbose=False)
    report = builders.build("audio_folder", src, tmp_path, progress=False, verbose=False,
                            holdout=0.4)
    assert set(report["kept_per_split"]) == {"train", "validation"}
    assert sum(report["kept_per_split"].values()) == 9
    with pytest.raises(UserError, match="does not apply"):
        builders.build("ravdess", src, tmp_path / "x", progress=False, verbose=False,
                       holdout=0.1)


def test_all_rejected_split_is_an_error(tmp_path):
    src = tmp_path / "src"
    write_bad_files(src / "wavs", {k: k for k in BAD_KINDS + KEPT_ODD})
    (src / "metadata.csv").write_text("".join(f"{k}|text\n" for k in BAD_KINDS))
    with pytest.raises(UserError, match="every file of split 'train' was rejected"):
        builders.build("audio_folder", src, tmp_path / "out", progress=False, verbose=False)
    failed = json.loads((tmp_path / "out" / "audio_folder" / REPORT_FILE).read_text())
    assert failed["rejected"] == 6 and failed["kept"] == 0


def test_split_speakers_ravdess_layout():
    split = split_speakers([f"{a:02d}" for a in range(1, 25)], 0.2, 0.1)
    assert [a for a, s in split.items() if s == "test"] == ["21", "22", "23", "24"]
    assert [a for a, s in split.items() if s == "validation"] == ["19", "20"]
    assert split_speakers(["1"], 0.2, 0.1) == {"1": "train"}


@pytest.fixture(scope="module")
def ravdess(tmp_path_factory):
    """Five actors, every emotion once, plus song, video, a bad name and a silent file."""
    src = tmp_path_factory.mktemp("ravdess")
    for actor in range(1, 6):
        folder = src / f"Actor_{actor:02d}"
        folder.mkdir()
        for e in range(1, 9):
            intensity = 1 if e == 1 else 1 + actor % 2
            name = f"03-01-{e:02d}-{intensity:02d}-{1 + e % 2:02d}-01-{actor:02d}.wav"
            rate = 48000 if actor == 1 else SR
            sf.write(folder / name, tone(0.4 + 0.05 * e, rate, hz=150 + 10 * actor), rate,
                     subtype="PCM_16")
    sf.write(src / "Actor_01" / "03-02-03-01-01-01-01.wav", tone(0.5), SR)  # song
    sf.write(src / "Actor_01" / "01-01-03-01-01-01-01.wav", tone(0.5), SR)  # video + audio
    sf.write(src / "Actor_02" / "readme.wav", tone(0.5), SR)
    sf.write(src / "Actor_02" / "03-01-05-02-01-02-02.wav", np.zeros(SR), SR)  # silent
    out = tmp_path_factory.mktemp("ravdess_out")
    return out, builders.build("ravdess", src, out, progress=False, verbose=False)


def test_ravdess_labels_and_speaker_disjoint_splits(ravdess):
    out, report = ravdess
    assert report["kept_per_split"] == {"train": 32, "test": 8}
    assert reasons(report) == {"silent": 1}
    assert {k: len(v) for k, v in report["skipped_by_reason"].items()} == \
        {"not_audio_only_speech": 2, "unrecognised_name": 1}
    assert report["converted"] == {"48000 Hz -> 16000 Hz": 8}
    seen = {}
    for split in ("train", "test"):
        source = open_split(out, "ravdess", split).source
        for i in range(len(source)):
            r = source[i]
            seen[r["id"].decode()] = (split, r)
    assert {r["speaker"] for s, r in seen.values() if s == "test"} == {b"actor_05"}
    split, r = seen["03-01-07-02-02-01-03"]
    assert (EMOTIONS[r["emotion"]], r["label"], r["intensity"]) == ("disgusted", b"disgust", 2)
    assert r["text"] == b"Dogs are sitting by the door" and r["sex"] == b"male"
    assert EMOTIONS[seen["03-01-08-01-01-01-02"][1]["emotion"]] == "surprised"


def test_crema_d_labels_levels_and_splits(tmp_path):
    src = tmp_path / "CREMA-D"
    (src / "AudioWAV").mkdir(parents=True)
    codes = list(CREMA_D_EMOTIONS)
    for actor in range(1001, 1007):
        for k, (sentence, level) in enumerate([("DFA", "HI"), ("IEO", "XX"), ("TSI", "LO")]):
            emotion = codes[(actor + k) % 6]
            sf.write(src / "AudioWAV" / f"{actor}_{sentence}_{emotion}_{level}.wav",
                     tone(0.5 + 0.1 * k), SR, subtype="PCM_16")
    sf.write(src / "AudioWAV" / "1001_XYZ_ANG_HI.wav", tone(0.5), SR)  # unknown sentence
    (src / "AudioWAV" / "1002_WSI_SAD_MD.wav").write_bytes(b"")
    (src / "VideoDemographics.csv").write_text(
        "ActorID,Age,Sex,Race,Ethnicity\n" + "".join(
            f"{a},30,{'Male' if a % 2 else 'Female'},Caucasian,Not Hispanic\n"
            for a in range(1001, 1007)))
    report = builders.build("crema_d", src, tmp_path / "out", progress=False, verbose=False,
                            validation_fraction=0.2)
    assert report["kept_per_split"] == {"train": 12, "validation": 3, "test": 3}
    assert reasons(report) == {"empty": 1} and report["skipped"] == 1
    test = open_split(tmp_path / "out", "crema_d", "test")
    assert test.speakers == ("1006",)
    records = {r["id"].decode(): r for r in (test.source[i] for i in range(3))}
    r = records[f"1006_DFA_{codes[(1006 + 0) % 6]}_HI"]
    assert r["text"] == b"Don't forget a jacket" and r["level"] == b"HI" and r["intensity"] == 3
    assert r["sex"] == b"female" and EMOTIONS[r["emotion"]] == \
        CREMA_D_EMOTIONS[r["label"].decode()]
    assert records[f"1006_IEO_{codes[(1006 + 1) % 6]}_XX"]["intensity"] == 0


def test_emotive_speech_from_synth_corpus(tmp_path):
    import tensorflow_datasets as tfds

    corpus = tmp_path / "corpus"
    synth.build_corpus(corpus, preset="tiny", limit=40, workers=2, progress=False)
    lines = (corpus / "metadata.jsonl").read_text().splitlines()
    rows = {r["id"]: r for r in map(json.loads, lines)}
    older = sorted(rows)[:5]  # rows as older corpora wrote them: no phone timings
    for key in older:
        del rows[key]["phones"]
    (corpus / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows.values()))
    report = builders.build("emotive_speech", corpus, tmp_path / "out", progress=False,
                            verbose=False)
    assert report["kept"] == len(rows) == 40 and report["rejected"] == 0
    sources = tfds.data_source("emotive_speech", data_dir=str(tmp_path / "out"))
    for split, source in sources.items():
        assert len(source) == report["kept_per_split"][split]
        speakers = set()
        for i in range(len(source)):
            r = source[i]
            row = rows[r["id"].decode()]
            assert row["split"] == split and EMOTIONS[r["emotion"]] == row["emotion"]
            assert r["text"].decode() == row["text"] and r["condition"].decode() == row["condition"]
            assert np.isclose(r["valence"], row["valence"]) and r["intensity"] == row["intensity"]
            wav, _ = sf.read(corpus / row["path"], dtype="int16")
            np.testing.assert_array_equal(r["audio"], wav)  # 16-bit audio round-trips exactly
            phones = r["phones"].decode()  # eSpeak's timings as JSON, "" where none
            assert (json.loads(phones) == row["phones"]) if "phones" in row else phones == ""
            speakers.add(row["speaker"])
        opened = open_split(tmp_path / "out", "emotive_speech", split)
        assert opened.speakers == tuple(sorted(speakers))


def test_cli_build(ljspeech, tmp_path, capsys):
    src, _, _ = ljspeech
    args = ["data", "build", "audio_folder", "--src", str(src), "--out", str(tmp_path),
            "--no-progress"]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "kept     9 clips (train 9)" in printed
    assert "truncated (1): wavs/truncated.wav" in printed
    assert cli.main(args) == 2 and "--overwrite" in capsys.readouterr().err
    assert cli.main(args + ["--overwrite"]) == 0
    assert cli.main(["data", "build", "ravdess", "--src", str(tmp_path / "nope"),
                     "--out", str(tmp_path)]) == 2


def test_a_split_over_tfds_memory_buffer_builds_without_tensorflow(ljspeech, tmp_path,
                                                                    monkeypatch):
    # TFDS spills a split over its in-memory shuffle limit (1 GB) to files through
    # tf.io.gfile, which needs TensorFlow. A tiny limit stands in for a big corpus here.
    import importlib.util

    from tensorflow_datasets.core import shuffle

    from emotive.data.builders import tfds_io

    if importlib.util.find_spec("tensorflow") is not None:
        pytest.skip("TensorFlow is installed, so TFDS spills to disk as designed")
    src, _, _ = ljspeech
    monkeypatch.setattr(shuffle, "MAX_MEM_BUFFER_SIZE", 1000)
    report = builders.build("audio_folder", src, tmp_path / "a", progress=False, verbose=False)
    assert report["kept"] == 9 and shuffle.MAX_MEM_BUFFER_SIZE > 2**30
    # A split over even the raised limit: one line saying what to do, not a traceback.
    monkeypatch.setattr(shuffle, "MAX_MEM_BUFFER_SIZE", 1000)
    monkeypatch.setattr(tfds_io, "_shuffle_in_memory", lambda: shuffle.MAX_MEM_BUFFER_SIZE)
    with pytest.raises(UserError, match="install tensorflow-cpu"):
        builders.build("audio_folder", src, tmp_path / "b", progress=False, verbose=False)
