"""The committed pretrained bundles (releases/): every one verifies, loads through the same
path as a run, and runs on speech; together they stay under the 60 MB cap."""

import pathlib

import numpy as np
import pytest

import emotive
from emotive.infer import bundle

RELEASES = pathlib.Path(__file__).resolve().parents[2] / "releases"
BUNDLES = sorted(p for p in RELEASES.iterdir() if bundle.is_bundle(p))


def test_the_releases_are_there_and_under_the_cap():
    names = {p.name for p in BUNDLES}
    assert {"tts-small", "ser-base", "student-base", "asr-base", "speaker-base"} <= names
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
    out = emotive.load(RELEASES / "ser-base").predict(audio)
    assert out["probs"].shape == (1, 8) and np.isclose(out["probs"].sum(), 1, atol=1e-4)
    student = emotive.load(RELEASES / "student-base").predict(audio)
    assert student["adv"].shape == (1, 3) and np.isfinite(student["adv"]).all()
    emb = emotive.load(RELEASES / "speaker-base").embed(audio)
    assert np.isclose(np.linalg.norm(emb), 1, atol=1e-4)
    assert isinstance(emotive.load(RELEASES / "asr-base").transcribe(audio)[0], str)
