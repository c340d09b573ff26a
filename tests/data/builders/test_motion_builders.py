"""BEAT2 and AMASS builders on fixtures in exactly their layouts: BEAT2's split file (val,
additional), audio/motion offset checks (a mismatching take is reported, never cut), bad
motion files rejected by reason; AMASS's dataset split, resampling, skipped shape files."""

import numpy as np
import pytest
import soundfile as sf

from emotive import cli
from emotive.data import builders
from emotive.data.builders import motion as builders_motion
from emotive.data.builders.tfds_io import open_split
from emotive.errors import UserError
from tests.data.builders.test_builders import reasons, tone

SR = 16000


def npz(path, frames, fps=30.0, *, width=165, nan=False, expressions=True, amass=False,
        fps_key="mocap_frame_rate"):
    rng = np.random.default_rng(frames)
    poses = 0.1 * rng.normal(size=(frames, width))
    if nan:
        poses[3, 5] = np.nan
    arrays = {"trans": np.zeros((frames, 3)), "betas": np.zeros(300 if not amass else 16),
              fps_key: np.asarray(fps)}
    if amass:
        arrays.update(root_orient=poses[:, :3], pose_body=poses[:, 3:66], pose_jaw=poses[:, 66:69],
                      pose_eye=poses[:, 69:75], pose_hand=poses[:, 75:165])
    else:
        arrays["poses"] = poses
    if expressions and not amass:
        arrays["expressions"] = np.zeros((frames, 100))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return poses


@pytest.fixture(scope="module")
def beat2(tmp_path_factory):
    root = tmp_path_factory.mktemp("beat2") / "beat_english_v2.0.0"
    rows = {"2_scott_0_1_1": "train", "2_scott_0_2_2": "val", "3_solomon_0_1_1": "test",
            "2_scott_0_3_3": "additional", "2_scott_0_4_4": "train",    # out of sync
            "2_scott_0_5_5": "train", "2_scott_0_6_6": "train",          # NaN, 60 fps
            "2_scott_0_7_7": "train", "2_scott_0_8_8": "train"}          # no wav, no npz
    for k, key in enumerate(rows):
        seconds = 1.0 + 0.1 * k
        frames = round(seconds * 30)
        if key == "2_scott_0_4_4":
            frames += 15                                  # half a second too long
        if key != "2_scott_0_8_8":
            fps = 60.0 if key.endswith("6_6") else 30.0
            npz(root / "smplxflame_30" / f"{key}.npz", frames, fps, nan=key.endswith("5_5"),
                expressions=key != "3_solomon_0_1_1")
        if key != "2_scott_0_7_7":
            (root / "wave16k").mkdir(parents=True, exist_ok=True)
            sf.write(root / "wave16k" / f"{key}.wav", tone(seconds), SR, subtype="PCM_16")
    npz(root / "smplxflame_30" / "9_extra_0_1_1.npz", 30)       # not in the split file
    (root / "train_test_split.csv").write_text(
        "id,type\n" + "".join(f"{k},{v}\n" for k, v in rows.items()) + "x_y,holdout\n")
    return root


def test_beat2_build(beat2, tmp_path):
    report = builders.build("beat2", beat2, tmp_path, progress=False, verbose=False)
    assert report["kept_per_split"] == {"test": 1, "train": 2, "validation": 1}
    assert reasons(report) == {"out_of_sync": 1, "nan_or_inf": 1, "wrong_frame_rate": 1,
                               "missing_audio": 1, "missing_motion": 1, "bad_split_row": 1}
    sync = report["rejected_by_reason"]["out_of_sync"][0]
    assert sync["file"] == "smplxflame_30/2_scott_0_4_4.npz"
    assert "motion lasts" in sync["message"] and "2_scott_0_4_4.npz" in sync["message"]
    assert report["skipped_by_reason"] == {"not_in_split_file": ["smplxflame_30/9_extra_0_1_1.npz"]}
    assert len(report["warnings_by_kind"]["no_expressions"]) == 1
    train = open_split(tmp_path, "beat2", "train")
    record = train.source[0]
    frames = int(record["num_frames"])
    assert record["poses"].shape == (frames, 165) and record["expressions"].shape == (frames, 100)
    assert record["audio"].dtype == np.int16 and abs(float(record["sync_offset_s"])) < 0.1
    # The audio is whole (never cut to the motion) and the poses are the file's.
    ids = {train.source[i]["id"].decode(): i for i in range(len(train.source))}
    first = train.source[ids["2_scott_0_1_1"]]
    assert first["audio"].shape[0] == SR * 1.0
    np.testing.assert_allclose(first["poses"], np.load(
        beat2 / "smplxflame_30" / "2_scott_0_1_1.npz")["poses"], atol=1e-6)
    assert train.speakers == ("2_scott",)


def test_beat2_without_additional_and_bad_root(beat2, tmp_path):
    assert builders.BUILDERS["beat2"] is builders_motion.Beat2   # registered with `data build`
    result = builders.tfds_io.build_dataset(builders_motion.Beat2, beat2, tmp_path,
                                            progress=False, verbose=False, additional=False)
    assert result["kept_per_split"]["train"] == 1
    assert "additional" in result["skipped_by_reason"]
    with pytest.raises(UserError, match=r"found one in .*beat_english_v2.0.0"):
        builders.build("beat2", beat2.parent, tmp_path / "x", progress=False, verbose=False)


@pytest.fixture(scope="module")
def amass(tmp_path_factory):
    root = tmp_path_factory.mktemp("amass") / "AMASS"
    npz(root / "ACCAD" / "s1" / "walk_stageii.npz", 120, 120.0, amass=True)
    npz(root / "ACCAD" / "s1" / "run_stageii.npz", 60, 30.0, fps_key="mocap_framerate")
    npz(root / "HumanEva" / "s2" / "jog_stageii.npz", 60, 60.0, amass=True)
    npz(root / "SSM_synced" / "s3" / "kick_stageii.npz", 45, 30.0)
    npz(root / "ACCAD" / "s1" / "hand_poses.npz", 30, 30.0, width=156)     # SMPL-H: rejected
    npz(root / "ACCAD" / "s1" / "bad_stageii.npz", 30, 30.0, nan=True)
    np.savez(root / "ACCAD" / "s1" / "neutral_stagei.npz", betas=np.zeros(16))
    np.savez(root / "ACCAD" / "shape.npz", betas=np.zeros(16))
    return root


def test_amass_build(amass, tmp_path):
    report = builders.build("amass", amass, tmp_path, progress=False, verbose=False)
    assert report["kept_per_split"] == {"test": 1, "train": 2, "validation": 1}
    assert reasons(report) == {"wrong_joint_count": 1, "nan_or_inf": 1}
    assert report["converted"] == {"120 fps -> 30 fps": 1, "60 fps -> 30 fps": 1}
    assert set(report["skipped_by_reason"]) == {"shape_file", "not_in_dataset_subject_folder"}
    train = open_split(tmp_path, "amass", "train")
    by_id = {train.source[i]["id"].decode(): train.source[i] for i in range(len(train.source))}
    walk = by_id["ACCAD/s1/walk_stageii"]
    assert float(walk["fps"]) == 30.0 and walk["poses"].shape == (30, 165)
    assert train.speakers == ("ACCAD/s1",)
    # A motion-only split indexes its records by motion frames.
    assert sorted(train.num_samples) == sorted(int(r["num_frames"]) for r in by_id.values())


def test_cli_lists_motion_builders(amass, tmp_path):
    assert cli.main(["data", "build", "amass", "--src", str(amass), "--out", str(tmp_path),
                     "--no-progress"]) == 0
    assert cli.main(["data", "build", "beat2", "--src", str(tmp_path), "--out",
                     str(tmp_path / "o"), "--no-progress"]) == 2
