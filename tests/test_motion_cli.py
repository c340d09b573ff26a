"""`emotive motion`: a trained tiny motion LDM writes a SMPL-X npz, a face npz, BVH, an ARKit
CSV and a gif that read back with one frame per 1/30 s of audio; bad input is one line and
exit status 2 (silence, another task's checkpoint, two emotion sources, a non-audio file).

`build_tiny_motion_ldm(root)` is a plain function so other test files can build the same
fixture: a 16-clip speech corpus, its motion corpus, a motion VAE and a motion LDM trained
for 4 steps each (most of the time is compiling the two train steps)."""

import pathlib

import jax
import numpy as np
import pytest
import soundfile as sf
from PIL import Image, ImageSequence

from emotive import cli, configs
from emotive.codecs.motion.bvh import read_bvh
from emotive.codecs.motion.face_io import read_arkit_csv
from emotive.codecs.motion.skeleton import SMPLX_JOINT_NAMES
from emotive.codecs.motion.smplx_npz import read_smplx_npz
from emotive.data.motion.corpus_files import read_face_npz
from emotive.data.motion.synth import build_motion_corpus
from emotive.data.speech.synth import build_corpus

# No periodic eval; one checkpoint at the last step; no FLOP/s measurement.
QUICK = ["train.steps=4", "train.batch_size=4", "train.log_every=100", "train.eval_every=0",
         "train.ckpt_every=100", "train.async_ckpt=false", "train.peak_tflops=1.0"]


def build_tiny_motion_ldm(root) -> dict:
    """Builds under `root` and returns paths: speech and motion corpora, the VAE run
    (`vae`), the LDM run (`ldm`, 2 DDIM steps) and the corpus's longest wav (`wav`)."""
    from emotive.train.trainer import train

    root = pathlib.Path(root)
    build_corpus(root / "speech", "tiny", seed=0, workers=1, progress=False, limit=16)
    build_motion_corpus(root / "speech", root / "motion", "tiny", progress=False, fgd=False)
    data = [f"data.motion_dir={root / 'motion'}"]
    vae = configs.load("motion_vae", "tiny", QUICK + data + ["model.norm_batches=1"])
    train(vae, root / "vae", progress=False, devices=jax.devices()[:1])
    ldm = configs.load("motion_ldm", "tiny", QUICK + data + [f"vae.ckpt={root / 'vae'}",
                                                            "diffusion.sample_steps=2"])
    train(ldm, root / "ldm", progress=False, devices=jax.devices()[:1])
    wav = max((root / "speech" / "wavs").rglob("*.wav"), key=lambda p: sf.info(str(p)).frames)
    return {"root": root, "speech": root / "speech", "motion": root / "motion",
            "vae": root / "vae", "ldm": root / "ldm", "wav": wav}


@pytest.fixture(scope="module")
def tiny_ldm(tmp_path_factory):
    return build_tiny_motion_ldm(tmp_path_factory.mktemp("motion_ldm"))


def motion(*args) -> int:
    return cli.main(["motion", *map(str, args)])


def test_writes_every_file_and_they_read_back(tiny_ldm, tmp_path, capsys):
    wav = tiny_ldm["wav"]
    seconds = sf.info(str(wav)).frames / 16000
    frames = round(seconds * 30)
    assert frames > 64   # longer than one 64-frame window: the windows are stitched
    out = tmp_path / "m.npz"
    assert motion("--audio", wav, "--ckpt", tiny_ldm["ldm"], "--emotion", "happy",
                  "--intensity", 2, "--emotion-scale", 2, "--seed", 3, "--out", out,
                  "--bvh", tmp_path / "m.bvh", "--arkit", tmp_path / "m.csv",
                  "--render", tmp_path / "m.gif") == 0
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in printed[:5]] == [
        str(out), str(tmp_path / "m-face.npz"), str(tmp_path / "m.bvh"),
        str(tmp_path / "m.csv"), str(tmp_path / "m.gif")]
    assert f"{frames} frames" in printed[-1] and "seam" in printed[-1]
    assert "real-time factor" in printed[-1]

    body = read_smplx_npz(out, expect_fps=30)
    assert body.poses.shape == (frames, 55, 3) and body.trans.shape == (frames, 3)
    assert np.isfinite(body.poses).all() and np.isfinite(body.trans).all()
    assert body.betas.shape == (300,) and not body.betas.any() and body.gender == "neutral"
    weights, jaw, fps = read_face_npz(tmp_path / "m-face.npz")
    assert weights.shape == (frames, 52) and jaw.shape == (frames, 3) and fps == 30.0
    assert weights.min() >= 0 and weights.max() <= 1
    bvh = read_bvh(tmp_path / "m.bvh", expect_joints=SMPLX_JOINT_NAMES)
    assert bvh.num_frames == frames and bvh.fps == 30.0
    np.testing.assert_allclose(bvh.rotations, body.to_motion().rotations, atol=1e-5)
    np.testing.assert_allclose(bvh.root_positions, body.trans, atol=1e-5)
    csv = read_arkit_csv(tmp_path / "m.csv")
    assert csv.fps == 30.0
    np.testing.assert_allclose(csv.weights, weights, atol=1e-6)
    # PIL merges identical consecutive GIF frames (adding their durations), so the frame
    # count may be lower; the durations still add up to one GIF tick per motion frame.
    gif = Image.open(tmp_path / "m.gif")
    durations = [frame.info["duration"] for frame in ImageSequence.Iterator(gif)]
    assert len(durations) <= frames and sum(durations) == frames * min(durations)

    # The same flags and seed give the same motion (the sampler is already compiled).
    again = tmp_path / "again.npz"
    assert motion("--audio", wav, "--ckpt", tiny_ldm["ldm"], "--emotion", "happy",
                  "--intensity", 2, "--emotion-scale", 2, "--seed", 3, "--out", again) == 0
    np.testing.assert_array_equal(read_smplx_npz(again).poses, body.poses)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("emotive motion: error:")]
    assert len(errors) == 1, err
    return errors[0]


def test_one_line_errors(tiny_ldm, tmp_path, capsys):
    wav, ldm = tiny_ldm["wav"], tiny_ldm["ldm"]
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(32000, np.float32), 16000)
    out = tmp_path / "x.npz"

    assert motion("--audio", silent, "--ckpt", ldm, "--out", out) == 2
    message = one_line_error(capsys)
    assert "--audio" in message and "silent" in message

    # A checkpoint of another task: the motion VAE's run.
    assert motion("--audio", wav, "--ckpt", tiny_ldm["vae"], "--out", out) == 2
    assert "motion_vae" in one_line_error(capsys)

    assert motion("--audio", wav, "--ckpt", ldm, "--emotion", "happy", "--emotion-ref", wav,
                  "--ser", ldm, "--out", out) == 2
    assert "--emotion and --emotion-ref" in one_line_error(capsys)

    npz = next((tiny_ldm["motion"] / "smplx").rglob("*.npz"))   # a motion file, not audio
    assert motion("--audio", wav, "--ckpt", ldm, "--style-ref", npz, "--out", out) == 2
    message = one_line_error(capsys)
    assert "--style-ref" in message and "pass a speech recording" in message

    assert motion("--audio", wav, "--ckpt", ldm, "--intensity", 2, "--out", out) == 2
    assert "--intensity needs --emotion" in one_line_error(capsys)
    assert motion("--audio", wav, "--ckpt", ldm, "--adv", "0.5,0.5", "--out", out) == 2
    assert "--adv" in one_line_error(capsys)
    assert not out.exists()


def test_eval_motion_table_and_its_known_answers(tiny_ldm, tmp_path, capsys):
    """`emotive eval motion` on the tiny corpus: every row and column, and the baselines'
    known values (ground truth against itself: FGD 0, LVE 0; the mean pose is still)."""
    import json

    from emotive.metrics.motion_fgd import MotionFeatureExtractor
    motion_dir = tiny_ldm["motion"]
    MotionFeatureExtractor.init(0).save(motion_dir / "fgd_autoencoder.npz")
    out = tmp_path / "eval"
    assert cli.main(["eval", "motion", "--ckpt", str(tiny_ldm["ldm"]), "--split", "test",
                     "--limit", "8", "--train-clips", "8", "--resamples", "10",
                     "--long-inputs", "1", "--long-seconds", "4", "--emotion-scales", "1",
                     "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| model |" in printed and "emotion guidance scale" in printed
    report = json.loads((out / "report.json").read_text())
    rows = report["rows"]
    assert list(rows) == ["ground truth", "random clip", "mean pose", "audio retrieval",
                          "VAE reconstruction", "model"]
    assert rows["ground truth"]["fgd"]["value"] < 1e-6
    assert rows["ground truth"]["lip_sync_lve"]["value"] == 0.0
    assert rows["mean pose"]["diversity"]["value"] < 1e-9
    assert rows["mean pose"]["beat_alignment"]["value"] == 0.0
    for row in rows.values():
        assert {"fgd", "beat_alignment", "diversity", "emotion_accuracy",
                "lip_sync_lve"} <= set(row)
        assert row["fgd"]["low"] <= row["fgd"]["high"]
    seam = rows["model"]["seam_jerk_ratio"]
    assert seam["protocol"]["seconds"] == 4 and np.isfinite(seam["value"])
    assert set(report["emotion_guidance"]) == {"1.0"}
    assert (out / "frames.png").is_file() and (out / "emotion_guidance.png").is_file()


def test_motion_vae_bundle_reconstructs_bit_identically(tiny_ldm, tmp_path):
    from emotive.hub.release import release
    from emotive.infer.motion import MotionAutoencoder

    out = release(tiny_ldm["vae"], tmp_path / "vae-bundle")
    frames = np.random.default_rng(0).normal(size=(37, 385)).astype(np.float32)
    np.testing.assert_array_equal(MotionAutoencoder.load(out).reconstruct(frames),
                                  MotionAutoencoder.load(tiny_ldm["vae"]).reconstruct(frames))


# ------------------------------------------------------------------ motion_ldm bundles

MOTION_METRICS = {"fgd": 1.25, "beat_alignment": 0.5, "emotion_accuracy": 0.375,
                  "lip_sync_lve": 0.0625, "seam_jerk_ratio": 1.5}


@pytest.fixture(scope="module")
def ldm_bundle(tiny_ldm, tmp_path_factory):
    """The tiny LDM released (float32) with a hand-written `emotive eval motion` report of
    the released step (the report's layout, not an evaluation: that test is above)."""
    import json

    from emotive.hub.release import release
    from emotive.infer.bundle import bundle_step

    where = tmp_path_factory.mktemp("ldm_release")
    step = int(sorted((tiny_ldm["ldm"] / "checkpoints").iterdir())[-1].name)
    rows = {"model": {k: {"value": v, "low": v, "high": v} for k, v in MOTION_METRICS.items()},
            "ground truth": {"fgd": {"value": 0.0}}}
    report = {"split": "test", "step": step, "clips": 8, "rows": rows}
    (where / "eval").mkdir()
    (where / "eval" / "report.json").write_text(json.dumps(report))
    out = release(tiny_ldm["ldm"], where / "ldm-bundle", eval_reports=[where / "eval"])
    assert bundle_step(out) == step
    return out


def _strings(tree, prefix=""):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _strings(value, f"{prefix}{key}.")
        elif isinstance(value, str):
            yield prefix + key, value


def test_motion_ldm_bundle_holds_its_vae_and_names_it_relatively(tiny_ldm, ldm_bundle):
    import json

    from emotive.infer import bundle

    out = ldm_bundle
    files = bundle.verify_bundle(out)   # the top-level sums cover vae/ too
    assert "vae/model.safetensors" in files and "vae/config.json" in files
    assert "vae/SHA256SUMS" in files
    assert bundle.is_bundle(out / "vae") and bundle.verify_bundle(out / "vae")
    assert bundle.read_config(out / "vae").task == "motion_vae"
    assert not (out / "speaker").exists() and not (out / "asr").exists()   # mel, no style
    assert not list(out.glob("*.partial")) and not list(out.parent.glob("*.partial"))

    text = (out / "config.json").read_text()
    raw = json.loads(text)
    assert raw["task"] == "motion_ldm"
    assert raw["vae"]["ckpt"] == "vae"
    assert raw["style"]["speaker_ckpt"] == "" and raw["content"]["asr_ckpt"] == ""
    assert str(tiny_ldm["vae"]) not in text and str(tiny_ldm["ldm"]) not in text
    # No machine path names a model. (data.* stays as the run recorded it, as for every
    # family; this fixture trained on an absolute tmp motion_dir.)
    absolute = [k for k, v in _strings(raw) if v.startswith("/") and not k.startswith("data.")]
    assert absolute == []
    # In memory the names resolve inside the bundle, wherever it is read from.
    cfg = bundle.read_config(out)
    assert cfg.vae.ckpt == str(out / "vae")

    meta = bundle.card_metadata(out)
    assert "pipeline_tag" not in meta   # no Hugging Face pipeline fits speech -> motion
    assert {"emotive", "motion", "smpl-x", "latent-diffusion"} <= set(meta["tags"])
    got = {m["type"]: m["value"] for m in bundle.card_metrics(out)}
    assert got == MOTION_METRICS
    card = (out / "README.md").read_text()
    assert "`vae/`" in card and "emotive motion --audio in.wav --ckpt ldm-bundle" in card
    assert "emotive train motion_ldm" in card


def test_motion_ldm_bundle_generates_bit_identically(tiny_ldm, ldm_bundle, tmp_path,
                                                     monkeypatch):
    import emotive
    from emotive.infer.motion import MotionGenerator, resolve_beside

    audio, rate = sf.read(str(tiny_ldm["wav"]), dtype="float32")
    assert rate == 16000
    gen_run = MotionGenerator.load(tiny_ldm["ldm"])
    monkeypatch.chdir(tmp_path)   # the bundle finds vae/ from any working directory,
    (tmp_path / "vae").mkdir()    # its own before a same-named folder of that directory
    assert resolve_beside("vae", ldm_bundle) == ldm_bundle / "vae"
    gen_bundle = emotive.load(ldm_bundle)
    assert isinstance(gen_bundle, MotionGenerator)
    assert gen_bundle.vae.step_dir == ldm_bundle / "vae"
    kw = dict(emotion="happy", seed=3)
    want = gen_run.generate(audio, **kw)
    got = gen_bundle.generate(audio, **kw)
    assert len(got.seams) == len(want.seams) > 0   # several windows, stitched
    np.testing.assert_array_equal(got.frames, want.frames)

    # `emotive motion --ckpt BUNDLE`, from elsewhere, writes the run's motion.
    args = ["--audio", tiny_ldm["wav"], "--emotion", "happy", "--intensity", 2, "--seed", 1]
    assert motion(*args, "--ckpt", tiny_ldm["ldm"], "--out", tmp_path / "run.npz") == 0
    assert motion(*args, "--ckpt", ldm_bundle, "--out", tmp_path / "bundle.npz") == 0
    np.testing.assert_array_equal(read_smplx_npz(tmp_path / "bundle.npz").poses,
                                  read_smplx_npz(tmp_path / "run.npz").poses)


def test_motion_ldm_bundle_refuses_a_tampered_vae(ldm_bundle, tmp_path, capsys):
    import shutil

    from emotive.errors import UserError
    from emotive.infer.motion import MotionGenerator

    changed = tmp_path / "changed"
    shutil.copytree(ldm_bundle, changed)
    data = bytearray((changed / "vae" / "model.safetensors").read_bytes())
    data[-3] ^= 0x01
    (changed / "vae" / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(UserError) as e:
        MotionGenerator.load(changed)
    message = str(e.value)
    assert "\n" not in message and "vae/model.safetensors" in message
    assert "does not match its SHA256SUMS" in message
    assert cli.main(["bundle", "verify", str(changed)]) == 2
    assert "vae/model.safetensors" in capsys.readouterr().err

    extra = tmp_path / "extra"   # a file slipped into vae/ is refused too
    shutil.copytree(ldm_bundle, extra)
    (extra / "vae" / "extra.json").write_text("{}")
    with pytest.raises(UserError, match="vae/extra.json is not listed"):
        MotionGenerator.load(extra)


def test_motion_ldm_bundle_release_resolves_recorded_paths(tiny_ldm, tmp_path, monkeypatch):
    """A relative vae.ckpt is found beside the run (an ancestor), as MotionGenerator.load
    finds it; a missing one, or a model of the wrong task, is one line before any work."""
    import dataclasses

    from emotive.configs import base as config_base
    from emotive.configs.motion_ldm import StyleConfig, VAERef
    from emotive.errors import UserError
    from emotive.hub.nested import motion_models
    from emotive.hub.release import _add_nested, release
    from emotive.infer.bundle import config_class
    from emotive.infer.motion import resolve_beside
    from emotive.train.checkpoint import latest_step_dir, read_config

    step_dir = latest_step_dir(tiny_ldm["ldm"])
    cfg = config_base.from_dict(config_class("motion_ldm"), read_config(step_dir))
    monkeypatch.chdir(tmp_path)
    rel = dataclasses.replace(cfg, vae=VAERef("vae"))
    assert resolve_beside("vae", step_dir) == tiny_ldm["vae"]
    [(key, sub, task, path, _)] = motion_models(rel, step_dir)
    assert (key, sub, task, path) == ("vae.ckpt", "vae", "motion_vae", tiny_ldm["vae"])

    with pytest.raises(UserError, match="vae.ckpt=no-such-vae .*not found"):
        motion_models(dataclasses.replace(cfg, vae=VAERef("no-such-vae")), step_dir)
    wrong = dataclasses.replace(cfg, style=StyleConfig(str(tiny_ldm["vae"])))
    with pytest.raises(UserError, match="'motion_vae' run, not 'speaker'"):
        motion_models(wrong, step_dir)
    # A VAE that is already a bundle is copied, verified, into the new bundle.
    vae_bundle = release(tiny_ldm["vae"], tmp_path / "vae-bundle")
    _add_nested(tmp_path, tmp_path / "copy", vae_bundle, "motion_vae", "vae.ckpt", (),
                "float32", None)
    assert (tmp_path / "copy" / "SHA256SUMS").read_text() == \
        (vae_bundle / "SHA256SUMS").read_text()
    with pytest.raises(UserError, match="is not a motion_ldm bundle"):
        _add_nested(tmp_path, tmp_path / "copy2", vae_bundle, "motion_ldm", "x", (),
                    "float32", None)

    from emotive.hub.card import read_report
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "report.json").write_text('{"split": "test", "rows": {}}')
    with pytest.raises(UserError, match="pass a report of `emotive eval motion`"):
        read_report(tmp_path / "report", "motion_ldm")
