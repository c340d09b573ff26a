"""Tests for emotive.codecs.motion.face and face_io: ARKit names, FLAME, CSV and JSON files."""

import json

import numpy as np
import pytest

from emotive.codecs.motion.face import (ARKIT_INDEX, ARKIT_NAMES, FaceWeights, FlameFace,
                                        arkit_to_flame_jaw, flame_jaw_to_arkit)
from emotive.codecs.motion.face_io import (LIVE_LINK_EXTRAS, read_arkit_csv, read_beat_face_json,
                                           write_arkit_csv, write_beat_face_json)
from emotive.errors import UserError


def _weights(frames=6, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, size=(frames, 52))


def _raises_naming(path, match, fn, **kwargs):
    with pytest.raises(UserError, match=match) as e:
        fn(path, **kwargs)
    message = str(e.value)
    assert message.startswith(str(path)) and "\n" not in message
    return message


def test_arkit_names_in_apple_order():
    assert len(ARKIT_NAMES) == len(set(ARKIT_NAMES)) == 52
    assert ARKIT_NAMES[:8] == ("eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft",
                               "eyeLookOutLeft", "eyeLookUpLeft", "eyeSquintLeft", "eyeWideLeft",
                               "eyeBlinkRight")
    assert ARKIT_NAMES[14:19] == ("jawForward", "jawLeft", "jawRight", "jawOpen", "mouthClose")
    assert ARKIT_NAMES[41:] == ("browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
                                "browOuterUpRight", "cheekPuff", "cheekSquintLeft",
                                "cheekSquintRight", "noseSneerLeft", "noseSneerRight",
                                "tongueOut")
    assert ARKIT_INDEX["jawOpen"] == 17


def test_flame_face_and_jaw_map():
    rng = np.random.default_rng(1)
    flame = FlameFace(rng.normal(size=(4, 100)), rng.normal(size=(4, 3)) * 0.1, fps=25.0)
    params = flame.to_array()
    assert params.shape == (4, 103)
    np.testing.assert_array_equal(FlameFace.from_array(params, 25.0).jaw, flame.jaw)
    weights = np.zeros((3, 52))
    weights[:, ARKIT_INDEX["jawOpen"]] = [0.0, 0.5, 1.0]
    weights[1, ARKIT_INDEX["jawLeft"]] = 0.4
    weights[2, ARKIT_INDEX["jawRight"]] = 0.2
    jaw = arkit_to_flame_jaw(weights)
    assert jaw.shape == (3, 3) and jaw[2, 0] > jaw[1, 0] > 0 and jaw[1, 1] > 0 > jaw[2, 1]
    back = flame_jaw_to_arkit(jaw)
    want = weights[:, [ARKIT_INDEX["jawOpen"], ARKIT_INDEX["jawLeft"], ARKIT_INDEX["jawRight"]]]
    np.testing.assert_allclose(back, want, atol=1e-12)


def test_plain_csv_round_trip(tmp_path):
    face = FaceWeights(_weights(), fps=60.0)
    path = tmp_path / "plain.csv"
    write_arkit_csv(path, face)
    header = path.read_text().splitlines()[0].split(",")
    assert header[0] == "time" and header[1:] == list(ARKIT_NAMES)
    back = read_arkit_csv(path)
    np.testing.assert_allclose(back.weights, face.weights, atol=1e-5)
    np.testing.assert_allclose(back.times, np.arange(6) / 60.0, atol=1e-9)
    assert back.fps == 60.0 and back.timecodes is None and back.extras == {}


def test_live_link_csv_round_trip_keeps_extras_aside(tmp_path):
    frames = 5
    rng = np.random.default_rng(2)
    extras = {name: rng.normal(size=frames) for name in LIVE_LINK_EXTRAS}
    codes = tuple(f"17:33:36:{k:02d}.{k * 111:03d}" for k in range(frames))
    face = FaceWeights(_weights(frames), fps=60.0, timecodes=codes, extras=extras)
    path = tmp_path / "livelink.csv"
    write_arkit_csv(path, face, live_link=True)
    header = path.read_text().splitlines()[0].split(",")
    assert header[:4] == ["Timecode", "BlendShapeCount", "EyeBlinkLeft", "EyeLookDownLeft"]
    assert header[-1] == "RightEyeRoll"
    back = read_arkit_csv(path, fps=60)
    np.testing.assert_allclose(back.weights, face.weights, atol=1e-5)
    assert back.timecodes == codes and back.fps == 60.0 and back.times is None
    assert set(back.extras) == set(LIVE_LINK_EXTRAS)
    for name in LIVE_LINK_EXTRAS:
        np.testing.assert_allclose(back.extras[name], extras[name], atol=1e-5)


def test_csv_columns_in_any_order_and_case(tmp_path):
    weights = _weights(3, seed=3)
    order = list(range(52))[::-1]
    path = tmp_path / "shuffled.csv"
    lines = [",".join(ARKIT_NAMES[i].upper() for i in order)]
    lines += [",".join(str(weights[t, i]) for i in order) for t in range(3)]
    path.write_text("\n".join(lines) + "\n")
    back = read_arkit_csv(path)
    np.testing.assert_allclose(back.weights, weights, atol=1e-12)
    assert back.fps is None and back.times is None


def test_beat_json_round_trip(tmp_path):
    face = FaceWeights(_weights(7, seed=4), fps=60.0)
    path = tmp_path / "face.json"
    write_beat_face_json(path, face)
    doc = json.loads(path.read_text())
    assert doc["names"] == list(ARKIT_NAMES) and len(doc["frames"]) == 7
    assert doc["frames"][1]["time"] == pytest.approx(1 / 60)
    back = read_beat_face_json(path)
    np.testing.assert_allclose(back.weights, face.weights, atol=1e-5)
    assert back.fps == 60.0
    np.testing.assert_allclose(back.times, np.arange(7) / 60.0, atol=1e-12)


def test_beat_json_with_51_names_reads_tongue_as_zero(tmp_path):
    names = [n for n in ARKIT_NAMES if n != "tongueOut"]
    weights = _weights(2, seed=5)[:, :51]
    path = tmp_path / "beat51.json"
    path.write_text(json.dumps({"names": names, "frames": [
        {"time": t / 60, "weights": list(weights[t]), "rotation": []} for t in range(2)]}))
    back = read_beat_face_json(path)
    np.testing.assert_allclose(back.weights[:, :51], weights)
    np.testing.assert_array_equal(back.weights[:, ARKIT_INDEX["tongueOut"]], 0.0)


def _write_csv(path, header, rows):
    path.write_text("\n".join([",".join(header)] + [",".join(r) for r in rows]) + "\n")


def test_csv_errors(tmp_path):
    _raises_naming(tmp_path / "none.csv", "no such file", read_arkit_csv)
    names = list(ARKIT_NAMES)
    row = ["0.5"] * 52
    unknown = tmp_path / "unknown.csv"
    _write_csv(unknown, names + ["mouthWobble"], [row + ["0"]])
    _raises_naming(unknown, r"unknown columns \['mouthWobble'\]", read_arkit_csv)
    missing = tmp_path / "missing.csv"
    _write_csv(missing, names[1:], [row[1:]])
    _raises_naming(missing, r"missing blendshape columns \['eyeBlinkLeft'\]", read_arkit_csv)
    short = tmp_path / "short.csv"
    _write_csv(short, names, [row, row[:-1]])
    _raises_naming(short, "line 3: 51 cells, expected 52", read_arkit_csv)
    word = tmp_path / "word.csv"
    _write_csv(word, names, [row, ["x"] + row[1:]])
    _raises_naming(word, "line 3: a value is not a number", read_arkit_csv)
    nan = tmp_path / "nan.csv"
    _write_csv(nan, names, [row, row, ["nan"] + row[1:]])
    _raises_naming(nan, "NaN or Inf at frame 2", read_arkit_csv)
    rate = tmp_path / "rate.csv"
    _write_csv(rate, ["time"] + names, [["0.0"] + row, ["0.04"] + row])
    _raises_naming(rate, "frame rate is 25 fps, expected 60", read_arkit_csv, fps=60)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    _raises_naming(empty, "empty", read_arkit_csv)


def test_json_errors(tmp_path):
    _raises_naming(tmp_path / "none.json", "no such file", read_beat_face_json)
    broken = tmp_path / "broken.json"
    broken.write_text('{"names": [\n"jawOpen",\n}')
    _raises_naming(broken, "line 3: invalid JSON", read_beat_face_json)
    shape = tmp_path / "shape.json"
    shape.write_text(json.dumps({"weights": []}))
    _raises_naming(shape, "expected an object with 'names'", read_beat_face_json)
    frame = tmp_path / "frame.json"
    frames = [{"time": 0.0, "weights": [0.1] * 52}, {"time": 1 / 60, "weights": [0.1] * 50}]
    frame.write_text(json.dumps({"names": list(ARKIT_NAMES), "frames": frames}))
    _raises_naming(frame, "frame 1 has 50 weights, expected 52", read_beat_face_json)
    names = tmp_path / "names.json"
    names.write_text(json.dumps({"names": ["jawOpen", "smile"], "frames": []}))
    _raises_naming(names, r"unknown names \['smile'\]", read_beat_face_json)
    slow = tmp_path / "slow.json"
    frames = [{"time": t / 30, "weights": [0.1] * 52} for t in range(3)]
    slow.write_text(json.dumps({"names": list(ARKIT_NAMES), "frames": frames}))
    _raises_naming(slow, "frame rate is 30 fps, expected 60", read_beat_face_json)
    assert read_beat_face_json(slow, expect_fps=None).fps == 30.0
