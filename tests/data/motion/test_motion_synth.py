"""The embedded motion corpus: files in the BEAT2 layout, in sync with their audio, the speech
corpus's splits, determinism per seed, stochastic takes, planted emotion and speaker style,
the jaw following the envelope, the CLI, bad input; and the motion-emotion probe on held-out
speakers (a reduced set generated from synthetic syllable audio, no eSpeak)."""

import json

import jax
import numpy as np
import pytest
import soundfile as sf

from emotive import cli
from emotive.codecs.motion import kinematics, rotations
from emotive.codecs.motion.clip import check_sync
from emotive.codecs.motion.face import ARKIT_INDEX
from emotive.codecs.motion.skeleton import SMPLX
from emotive.codecs.motion.smplx_npz import read_smplx_npz
from emotive.data.motion import synth as ms
from emotive.data.motion.corpus_files import emotion_clip_set, read_face_npz, read_motion_corpus
from emotive.data.motion.cues import analyse_audio
from emotive.data.motion.styles import emotion_motion, speaker_style
from emotive.data.speech import synth
from emotive.data.speech.emotions import EMOTIONS
from emotive.errors import UserError
from emotive.metrics.lip_sync import jaw_envelope_correlation
from emotive.metrics.motion_fgd import MotionFeatureExtractor
from emotive.metrics.motion_probe import EmotionProbe, motion_features


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    out = tmp_path_factory.mktemp("speech")
    synth.build_corpus(out, "tiny", seed=0, workers=1, progress=False, limit=16)
    return out


@pytest.fixture(scope="module")
def corpus(speech, tmp_path_factory):
    out = tmp_path_factory.mktemp("motion")
    summary = ms.build_motion_corpus(speech, out, "full", seed=0, progress=False, fgd=False)
    return out, summary, [json.loads(line) for line in (out / "metadata.jsonl").open()]


def test_files_layout_sync_and_splits(speech, corpus):
    out, summary, records = corpus
    speech_rows = {json.loads(line)["id"]: json.loads(line)
                   for line in (speech / "metadata.jsonl").open()}
    assert summary["clips"] == len(speech_rows) and summary["takes"] == 2 * len(speech_rows)
    assert {r["clip"] for r in records} == set(speech_rows)
    for r in records:
        row = speech_rows[r["clip"]]
        assert (r["split"], r["speaker"], r["emotion"], r["text"]) == (
            row["split"], row["speaker"], row["emotion"], row["text"])
        clip = read_smplx_npz(out / r["body"], expect_fps=30)
        assert clip.poses.shape == (r["frames"], 55, 3) and clip.betas.shape == (300,)
        audio = sf.info(str(speech / r["audio"]))
        check_sync(clip.num_frames, clip.fps, audio.frames, audio.samplerate, tolerance_s=0.02,
                   name=r["body"])
        weights, jaw, fps = read_face_npz(out / r["face"])
        assert weights.shape == (r["frames"], 52) and fps == 30.0
        assert weights.min() >= 0.0 and weights.max() <= 1.0
        np.testing.assert_allclose(clip.poses[:, SMPLX.index("jaw")], jaw, atol=1e-6)
    assert summary["max_sync_offset_s"] <= 0.5 / 30 + 1e-9


def test_deterministic_per_seed_and_stochastic_takes(speech, corpus, tmp_path):
    out, _, records = corpus
    again = tmp_path / "again"
    ms.build_motion_corpus(speech, again, "full", seed=0, workers=2, progress=False, fgd=False,
                           limit=4)
    other = tmp_path / "other"
    ms.build_motion_corpus(speech, other, "full", seed=1, progress=False, fgd=False, limit=4)
    for r in [json.loads(line) for line in (again / "metadata.jsonl").open()]:
        assert (again / r["body"]).read_bytes() == (out / r["body"]).read_bytes()
        assert (again / r["face"]).read_bytes() == (out / r["face"]).read_bytes()
        assert (other / r["body"]).read_bytes() != (out / r["body"]).read_bytes()
    first = read_smplx_npz(out / records[0]["body"]).poses
    second = read_smplx_npz(out / records[1]["body"]).poses
    assert records[0]["clip"] == records[1]["clip"] and records[1]["take"] == 1
    assert np.abs(first - second).max() > 0.01        # two valid motions for one audio


def test_jaw_follows_the_envelope(speech, corpus):
    out, _, records = corpus
    values = []
    for r in records:
        x, sr = sf.read(speech / r["audio"])
        weights, _, _ = read_face_npz(out / r["face"])
        values.append(jaw_envelope_correlation(weights[:, ARKIT_INDEX["jawOpen"]], x, sr,
                                               30.0)["value"])
    assert np.mean(values) > 0.6, values


def test_speaker_style_is_deterministic_and_personal():
    a, b = speaker_style("spk01"), speaker_style("spk01")
    assert a == b
    styles = [speaker_style(f"spk{i:02d}") for i in range(1, 13)]
    assert len({s.repertoire for s in styles}) == 12
    assert {s.handedness for s in styles} == {"left", "right"}
    assert all(3 <= len(s.repertoire) <= 5 for s in styles)


def syllable_audio(rng, seconds=2.0, sr=16000) -> np.ndarray:
    """Speech-like audio: voiced syllables (a gliding harmonic tone under a raised cosine) every
    150-400 ms, with a pause or two."""
    t = np.arange(int(seconds * sr)) / sr
    x = np.zeros_like(t)
    start = 0.1
    while start < seconds - 0.3:
        length = rng.uniform(0.12, 0.25)
        f0 = rng.uniform(110, 220)
        seg = (t >= start) & (t < start + length)
        u = (t[seg] - start) / length
        phase = 2 * np.pi * np.cumsum(np.full(seg.sum(), f0 * (1 + 0.1 * rng.normal()))) / sr
        x[seg] = rng.uniform(0.2, 0.6) * np.sin(np.pi * u) ** 2 * (
            np.sin(phase) + 0.5 * np.sin(2 * phase))
        start += length + rng.uniform(0.03, 0.2) + (0.3 if rng.random() < 0.15 else 0.0)
    return x + 1e-4 * rng.normal(size=x.size)


def test_emotion_probe_on_held_out_speakers():
    rng = np.random.default_rng(0)
    cues = [analyse_audio(syllable_audio(rng), 16000) for _ in range(2)]
    assert all(c.onsets.size >= 3 for c in cues)
    speakers = [f"spk{i:02d}" for i in range(1, 11)]
    poses, trans, labels, who = [], [], [], []
    for speaker in speakers:
        style = speaker_style(speaker)
        for emotion in EMOTIONS:
            for intensity in ((1,) if emotion == "neutral" else (1, 2)):
                for k, cue in enumerate(cues):
                    take = ms.synth_take(cue, style, emotion_motion(emotion, intensity),
                                         np.random.default_rng([k, intensity, len(poses)]))
                    poses.append(take.poses)
                    trans.append(take.trans)
                    labels.append(emotion)
                    who.append(speaker)
    fk = jax.jit(lambda p, t: kinematics.forward_kinematics(
        rotations.axis_angle_to_matrix(p), t, SMPLX)[0])
    positions = np.asarray(fk(np.asarray(poses, np.float32), np.asarray(trans, np.float32)))
    features = np.stack([motion_features(p, 30.0) for p in positions])
    labels, who = np.asarray(labels), np.asarray(who)
    test = np.isin(who, speakers[-2:])
    probe = EmotionProbe.fit(features[~test], labels[~test], classes=EMOTIONS)
    result = probe.accuracy(features[test], labels[test])
    assert result["value"] >= 0.8, result["per_class_recall"]


def test_emotion_sets_posture():
    rng = np.random.default_rng(0)
    cue = analyse_audio(syllable_audio(rng), 16000)
    style = speaker_style("spk03")
    head = {}
    for emotion in ("sad", "happy", "angry", "calm"):
        take = ms.synth_take(cue, style, emotion_motion(emotion, 2), np.random.default_rng(0))
        pos = np.asarray(kinematics.forward_kinematics(
            rotations.axis_angle_to_matrix(take.poses), take.trans, SMPLX)[0])
        head[emotion] = pos[:, SMPLX.index("head"), 1].mean()
        speed = np.linalg.norm(np.diff(pos[:, SMPLX.index("right_wrist")], axis=0), axis=-1)
        head[emotion + "_speed"] = speed.mean()
    assert head["sad"] < head["calm"] < head["happy"]          # slumped vs upright
    assert head["angry_speed"] > head["happy_speed"] > head["sad_speed"]


def test_cli_and_emotion_clip_set(speech, tmp_path, capsys):
    out = tmp_path / "m"
    code = cli.main(["data", "motion", "--speech", str(speech), "--out", str(out),
                     "--fgd-steps", "2", "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "motion corpus: preset=tiny" in printed and "fgd" in printed
    summary, records = read_motion_corpus(out)
    assert summary["fgd_autoencoder"]["trained_steps"] == 2
    MotionFeatureExtractor.load(out / "fgd_autoencoder.npz")
    chosen = emotion_clip_set(records)
    if chosen:
        assert list(chosen) == list(EMOTIONS)
        assert len({(r["speaker"], r["text"]) for r in chosen.values()}) == 1


def test_bad_input(speech, tmp_path):
    with pytest.raises(UserError, match="metadata.jsonl"):
        ms.build_motion_corpus(tmp_path, tmp_path / "o", progress=False)
    with pytest.raises(UserError, match="huge"):
        ms.build_motion_corpus(speech, tmp_path / "o", "huge", progress=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        ms.build_motion_corpus(speech, tmp_path / "file", progress=False, fgd=False)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not a motion corpus"):
        ms.build_motion_corpus(speech, busy, progress=False, fgd=False)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "metadata.jsonl").write_text('{"id": "a"}\n')
    with pytest.raises(UserError, match=r"metadata.jsonl: line 1"):
        ms.build_motion_corpus(broken, tmp_path / "o2", progress=False)
    (tmp_path / "face.npz").write_bytes(b"junk")
    with pytest.raises(UserError, match="face.npz"):
        read_face_npz(tmp_path / "face.npz")
    assert cli.main(["data", "motion", "--speech", str(speech), "--out", str(tmp_path / "o3"),
                     "--fgd-steps", "-1"]) == 2
