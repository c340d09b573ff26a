"""ESD and LibriTTS-R builders on fixtures in the corpora's own layouts: ESD's per-emotion
split, transcripts in mixed encodings, languages, LibriTTS-R's subsets and 24 kHz audio, and
the report's rejections and the one-line error for a wrong --src."""

import unicodedata

import numpy as np
import pytest
import soundfile as sf

from emotive import cli
from emotive.data import builders
from emotive.data.builders import tts as builders_tts
from emotive.data.speech.emotions import EMOTIONS
from emotive.data.builders.tfds_io import open_split
from emotive.errors import UserError
from tests.data.builders.test_builders import reasons, tone

ESD_SR, LIBRITTS_SR, SR = 16000, 24000, 16000
ESD_BLOCKS = ("Neutral", "Angry", "Happy", "Sad", "Surprise")  # utterances 1-350, 351-700, ...
PLACES = (1, 20, 21, 50, 51, 350)  # both ends of validation (1-20), test (21-50), train
ZH_TEXT = "打远一看，它们的确很是美丽，"


def esd_wav(folder, speaker: str, emotion: str, place: int, nested: bool = False) -> str:
    """Writes speaker's utterance `place` (1-350) of `emotion`; returns its id."""
    number = ESD_BLOCKS.index(emotion) * 350 + place if emotion in ESD_BLOCKS else place
    key = f"{speaker}_{number:06d}"
    where = folder / speaker / emotion
    if nested:  # the original download: EMOTION/{train,evaluation,test}/
        where = where / {"validation": "evaluation"}.get(builders_tts.esd_split(number),
                                                          builders_tts.esd_split(number))
    where.mkdir(parents=True, exist_ok=True)
    sf.write(where / f"{key}.wav", tone(0.3 + 0.001 * place, ESD_SR, hz=180 + place),
             ESD_SR, subtype="PCM_16")
    return key


@pytest.fixture(scope="module")
def esd_src(tmp_path_factory):
    """0011: flat layout, UTF-8 transcript, 5 emotions x PLACES. 0015: the download's nested
    layout, a UTF-16 (BOM, CRLF) transcript with one space-separated line, a wav without a
    line, a corrupt wav and a `Fear` folder. 0016: no transcript. 0001: Mandarin, GB2312."""
    src = tmp_path_factory.mktemp("esd") / "ESD"
    lines = [f"{esd_wav(src, '0011', e, p)}\tSentence {p} in {e}.\t{e}"
             for e in ESD_BLOCKS for p in PLACES]
    (src / "0011" / "0011.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    lines = [f"{esd_wav(src, '0015', e, p, nested=True)}\tShe says {p}, {e}!\t{e}"
             for e in ("Angry", "Sad") for p in (1, 51)]
    lines.append(f"{esd_wav(src, '0015', 'Angry', 21, nested=True)} The space line. Angry")
    esd_wav(src, "0015", "Sad", 52, nested=True)  # no transcript line
    (src / "0015" / "Sad" / "train" / "0015_001104.wav").write_bytes(b"RIFF\x00\x01junk" * 40)
    lines.append("0015_001104\tA corrupt file.\tSad")
    lines.append(f"{esd_wav(src, '0015', 'Fear', 10)}\tAn unknown emotion.\tFear")
    (src / "0015" / "0015.txt").write_bytes("\r\n".join(lines).encode("utf-16"))
    esd_wav(src, "0016", "Happy", 30)
    zh = [f"{esd_wav(src, '0001', 'Neutral', 1)}\t{ZH_TEXT}\t中立",
          f"{esd_wav(src, '0001', 'Happy', 51)}\t她很高兴。\t快乐"]
    (src / "0001" / "0001.txt").write_bytes("\n".join(zh).encode("gb2312"))
    (src / "ReadMe.txt").write_text("ESD\n")
    return src


@pytest.fixture(scope="module")
def esd(esd_src, tmp_path_factory):
    out = tmp_path_factory.mktemp("esd_out")
    return out, builders.build("esd", esd_src, out, progress=False, verbose=False)


def read_all(out, name, splits=("train", "validation", "test")):
    """id -> (split, record) over the built splits."""
    seen = {}
    for split in splits:
        source = open_split(out, name, split).source
        for i in range(len(source)):
            seen[source[i]["id"].decode()] = (split, source[i])
    return seen


def test_esd_split_rule():
    places = {p: builders_tts.esd_split(350 + p) for p in (1, 20, 21, 50, 51, 350)}
    assert places == {1: "validation", 20: "validation", 21: "test", 50: "test",
                      51: "train", 350: "train"}
    counts = [builders_tts.esd_split(n) for n in range(1, 1751)]
    assert [counts.count(s) for s in ("train", "validation", "test")] == [1500, 100, 150]


def test_esd_report_counts_every_file(esd):
    _, report = esd
    assert report["kept_per_split"] == {"train": 12, "validation": 12, "test": 11}
    assert reasons(report) == {"missing_transcript": 2, "corrupt": 1, "unknown_emotion": 1}
    missing = {i["file"] for i in report["rejected_by_reason"]["missing_transcript"]}
    assert missing == {"0015/Sad/train/0015_001102.wav", "0016/Happy/0016_000730.wav"}
    assert report["skipped_by_reason"] == {"other_language": ["0001"]}
    assert report["converted"] == {"transcript utf-16 -> utf-8": 1}
    assert report["converted_files"]["transcript utf-16 -> utf-8"] == ["0015/0015.txt"]


def test_esd_labels_texts_and_splits(esd, esd_src):
    out, _ = esd
    seen = read_all(out, "esd")
    assert len(seen) == 35 and {r["language"] for _, r in seen.values()} == {b"en"}
    split, r = seen["0011_000370"]  # Angry, place 20
    assert split == "validation" and EMOTIONS[r["emotion"]] == "angry"
    assert (r["label"], r["speaker"], r["sex"]) == (b"Angry", b"0011", b"male")
    assert r["text"] == b"Sentence 20 in Angry." and r["intensity"] == 1
    assert r["condition"] == b"clean" and r["sample_rate"] == SR
    assert seen["0011_001421"][0] == "test" and seen["0011_001750"][0] == "train"
    assert EMOTIONS[seen["0011_001750"][1]["emotion"]] == "surprised"
    assert seen["0015_000371"][1]["text"] == b"The space line."  # space-separated line
    assert seen["0015_001101"][1]["text"].decode() == "She says 51, Sad!"  # UTF-16 file
    assert seen["0015_001101"][1]["sex"] == b"female"
    wav, rate = sf.read(esd_src / "0011" / "Happy" / "0011_000701.wav", dtype="int16")
    assert rate == SR  # 16 kHz in, 16-bit samples round-trip exactly
    np.testing.assert_array_equal(seen["0011_000701"][1]["audio"], wav)
    for split in ("train", "validation", "test"):
        assert open_split(out, "esd", split).speakers == ("0011", "0015")


def test_esd_all_languages_reads_the_mandarin_transcript(esd_src, tmp_path):
    report = builders.build("esd", esd_src, tmp_path, progress=False, verbose=False,
                            languages="all")
    assert report["kept"] == 37 and "other_language" not in report["skipped_by_reason"]
    assert report["converted_files"]["transcript gb18030 -> utf-8"] == ["0001/0001.txt"]
    seen = read_all(tmp_path, "esd")
    split, r = seen["0001_000001"]
    assert split == "validation" and r["language"] == b"zh" and r["sex"] == b"female"
    assert r["text"].decode() == unicodedata.normalize("NFKC", ZH_TEXT)
    assert seen["0001_000751"][1]["text"].decode() == "她很高兴。"
    with pytest.raises(UserError, match="--languages must be one of en, zh, all"):
        builders.build("esd", esd_src, tmp_path / "x", progress=False, verbose=False,
                       languages="fr")


@pytest.mark.parametrize("text, encoded, language", [
    ("0011_000001\tIt’s ten o’clock.\tNeutral", "utf-16-le", "en"),  # no BOM
    ("0016_000001\tRésumés are naïve.\tNeutral", "latin-1", "en"),  # GB18030 misreads
    ("0017_000001\tWell，fine！\tHappy", "gb2312", "en"),  # an English file in a Chinese code
    ("0011_000001\tPlain.\tNeutral", "utf-8-sig", "en"),
])
def test_transcript_encodings(text, encoded, language):
    decoded, _ = builders_tts.decode_transcript(text.encode(encoded), language)
    assert decoded == text
    key, line = builders_tts.parse_esd_line(decoded, language)
    assert key == text[:11] and line == unicodedata.normalize("NFKC", text.split("\t")[1])


def one_line_error(args, capsys) -> str:
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_esd_wrong_root_is_one_line(esd_src, tmp_path, capsys):
    err = one_line_error(["data", "build", "esd", "--src", str(esd_src / "0011"), "--out",
                          str(tmp_path), "--no-progress"], capsys)
    assert "holds no ESD speaker folders" in err
    err = one_line_error(["data", "build", "esd", "--src", str(esd_src.parent), "--out",
                          str(tmp_path), "--no-progress"], capsys)
    assert f"found one in {esd_src}" in err
    mandarin = tmp_path / "zh"
    esd_wav(mandarin, "0002", "Sad", 60)
    with pytest.raises(UserError, match=r"has no usable clip \(other_language 1\)"):
        builders.build("esd", mandarin, tmp_path / "out", progress=False, verbose=False)


def write_utterance(chapter_dir, key: str, seconds: float, texts: bool = True) -> None:
    chapter_dir.mkdir(parents=True, exist_ok=True)
    sf.write(chapter_dir / f"{key}.wav", tone(seconds, LIBRITTS_SR, hz=200), LIBRITTS_SR,
             subtype="PCM_16")
    if texts:
        (chapter_dir / f"{key}.normalized.txt").write_text(f"Normalized text of {key}.")
        (chapter_dir / f"{key}.original.txt").write_text(f"Original “text” of {key}.")


@pytest.fixture(scope="module")
def libritts(tmp_path_factory):
    """train-clean-100 (two speakers), dev-clean, test-clean at 24 kHz, speakers.tsv, plus a
    wav without transcripts, a corrupt wav, a stray wav and a folder that is no subset."""
    src = tmp_path_factory.mktemp("libritts") / "LibriTTS_R"
    layout = {("train-clean-100", "19", "198"): 3, ("train-clean-100", "26", "495"): 2,
              ("dev-clean", "84", "121123"): 2, ("test-clean", "121", "121726"): 2}
    for (subset, speaker, chapter), n in layout.items():
        for i in range(n):
            write_utterance(src / subset / speaker / chapter,
                            f"{speaker}_{chapter}_{i:06d}_000000", 0.4 + 0.1 * i)
    train = src / "train-clean-100" / "19" / "198"
    write_utterance(train, "19_198_000009_000000", 0.5, texts=False)
    write_utterance(train, "19_198_000010_000000", 0.5)
    (train / "19_198_000010_000000.wav").write_bytes(b"RIFF\x00\x01junk" * 40)
    sf.write(train / "notes.wav", tone(0.5), SR)
    (src / "extras").mkdir()
    (src / "speakers.tsv").write_text("READER\tGENDER\tSUBSET\tNAME\n19\tF\ttrain-clean-100\t"
                                      "Kara\n26\tM\ttrain-clean-100\tDenny\n84\tF\tdev-clean\n")
    out = tmp_path_factory.mktemp("libritts_out")
    return src, out, builders.build("libritts_r", src, out, progress=False, verbose=False)


def test_libritts_report_counts_every_file(libritts):
    _, _, report = libritts
    assert report["kept_per_split"] == {"train": 5, "validation": 2, "test": 2}
    assert reasons(report) == {"missing_transcript": 1, "corrupt": 1}
    [missing] = report["rejected_by_reason"]["missing_transcript"]
    assert missing["file"] == "train-clean-100/19/198/19_198_000009_000000.wav"
    assert "19_198_000009_000000.normalized.txt" in missing["message"]
    assert {k: len(v) for k, v in report["skipped_by_reason"].items()} == \
        {"not_a_subset": 1, "unrecognised_name": 1}
    assert report["converted"] == {"24000 Hz -> 16000 Hz": 9}


def test_libritts_records_resampled_with_texts_and_no_emotion(libritts):
    _, out, _ = libritts
    seen = read_all(out, "libritts_r")
    assert {k: s for k, (s, _) in seen.items() if s != "train"} == {
        "84_121123_000000_000000": "validation", "84_121123_000001_000000": "validation",
        "121_121726_000000_000000": "test", "121_121726_000001_000000": "test"}
    r = seen["19_198_000002_000000"][1]
    assert r["text"] == b"Normalized text of 19_198_000002_000000."
    assert r["original_text"].decode() == "Original “text” of 19_198_000002_000000."
    assert (r["speaker"], r["sex"], r["chapter"], r["subset"]) == \
        (b"19", b"female", b"198", b"train-clean-100")
    assert r["emotion"] == -1 and r["intensity"] == 0 and r["sample_rate"] == SR
    assert r["audio"].dtype == np.int16 and abs(r["audio"].size - int(0.6 * SR)) <= 1
    assert seen["121_121726_000000_000000"][1]["sex"] == b"unknown"  # not in speakers.tsv
    assert open_split(out, "libritts_r", "train").speakers == ("19", "26")


def test_libritts_one_subset_folder(libritts, tmp_path):
    src, _, _ = libritts
    report = builders.build("libritts_r", src / "dev-clean", tmp_path, progress=False,
                            verbose=False)
    assert report["kept_per_split"] == {"validation": 2} and report["rejected"] == 0
    [(_, r)] = [v for k, v in read_all(tmp_path, "libritts_r", ("validation",)).items()
                if k == "84_121123_000001_000000"]
    assert r["subset"] == b"dev-clean" and r["sex"] == b"female"  # speakers.tsv one level up


def test_libritts_wrong_root_is_one_line(libritts, tmp_path, capsys):
    src, _, _ = libritts
    err = one_line_error(["data", "build", "libritts_r", "--src", str(src / "dev-clean" / "84"),
                          "--out", str(tmp_path), "--no-progress"], capsys)
    assert "holds no LibriTTS-R subset folders" in err
    err = one_line_error(["data", "build", "libritts_r", "--src", str(src.parent), "--out",
                          str(tmp_path), "--no-progress"], capsys)
    assert f"found one in {src}" in err
    with pytest.raises(UserError, match="--languages does not apply to libritts_r"):
        builders.build("libritts_r", src, tmp_path, progress=False, verbose=False,
                       languages="en")
