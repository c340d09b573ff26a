"""The codec end to end: a few trainer steps on a built corpus, and the tools on a codec
checkpoint (encode/decode commands and their errors, streaming decode, split pre-encoding, eval).

The tools use a checkpoint of random weights written the way the trainer writes it, so they do
not wait for the trainer test (with pytest -n 2 the two halves run side by side)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile as sf
from flax import nnx

from emotive import cli, configs
from emotive.configs import base
from emotive.data.pipelines.encoded import EncodedSource
from emotive.errors import UserError
from emotive.infer import codec as codec_lib
from emotive.evals.codec import evaluate
from emotive.models.codec import Codec
from emotive.train.checkpoint import Checkpointer
from emotive.train.tasks import make_task
from emotive.train.trainer import train
from tests.conftest import MICRO, numpy_init


@pytest.fixture(scope="module")
def data_dir(tiny_speech_data):
    """A 24-clip corpus (14 train, 4 validation, 6 test clips) built as emotive_speech."""
    return tiny_speech_data


@pytest.fixture(scope="module")
def run(data_dir, tmp_path_factory):
    """A checkpoint as `emotive train codec` writes it, with random MICRO weights."""
    cfg = configs.load("codec", "tiny", MICRO + [f"data.data_dir={data_dir}"])
    model = numpy_init(lambda: Codec(cfg.model, rngs=nnx.Rngs(0)))
    params = {"generator": {"codec": nnx.state(model, nnx.Param).to_pure_dict()}}
    run_dir = tmp_path_factory.mktemp("codec_run")
    ckpt = Checkpointer(run_dir / "checkpoints", async_save=False)
    ckpt.save(7, {"step": jnp.int32(7), "params": params}, None, base.to_dict(cfg))
    ckpt.close()
    return data_dir, run_dir


@pytest.fixture(scope="module")
def codec(run):
    return codec_lib.load_codec(run[1])


def test_trainer_end_to_end_lowers_the_mel_loss_and_starts_the_gan(data_dir, tmp_path):
    cfg = configs.load("codec", "tiny", MICRO + [f"data.data_dir={data_dir}"])
    # Two devices: the batch (and the carried generator output) is sharded for real.
    train(cfg, tmp_path / "run", progress=False, devices=jax.devices()[:2])
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text()
            .splitlines()]
    train_rows = [r for r in rows if r.get("split") != "eval"]
    mel = [r["mel_loss"] for r in train_rows]
    assert len(mel) == 24
    assert np.mean(mel[-4:]) < np.mean(mel[:4]) - 0.1, mel
    assert [r["gan_on"] for r in train_rows][11:13] == [0.0, 1.0]
    assert train_rows[-1]["adv_loss"] > 0 and train_rows[-1]["fm_loss"] > 0
    assert [r["step"] for r in rows if r.get("split") == "eval"] == [24]
    assert "mel_distance" in rows[-1] and "si_sdr" in rows[-1]
    assert codec_lib.load_codec(tmp_path / "run").step == 24


def test_missing_dataset_names_both_build_commands(tmp_path):
    cfg = configs.load("codec", "tiny", [f"data.data_dir={tmp_path / 'nowhere'}"])
    with pytest.raises(UserError) as err:
        make_task(cfg).data.train(0, 1)
    message = str(err.value)
    assert "emotive data synth --preset tiny" in message
    assert f"emotive data build emotive_speech --src data/emotive_speech --out " \
           f"{tmp_path / 'nowhere'}" in message and "\n" not in message


def test_encode_decode_commands_resample_and_round_trip(run, codec, tmp_path, capsys):
    rng = np.random.default_rng(0)
    t = np.arange(int(0.7 * 22050)) / 22050
    stereo = 0.3 * np.sin(2 * np.pi * 220 * t)[:, None] * [1.0, 0.5]
    stereo += 0.01 * rng.standard_normal(stereo.shape)
    sf.write(tmp_path / "in.wav", stereo, 22050)
    assert cli.main(["codec", "encode", str(tmp_path / "in.wav"), "--ckpt", str(run[1]),
                     "--out", str(tmp_path / "codes.npy")]) == 0
    assert "resampled from 22050 Hz" in capsys.readouterr().out
    codes = np.load(tmp_path / "codes.npy")
    assert codes.dtype == np.int32 and codes.shape == (-(-int(0.7 * 16000) // 320),)
    assert 0 <= codes.min() and codes.max() < codec.codebook_size
    assert cli.main(["codec", "decode", str(tmp_path / "codes.npy"), "--ckpt", str(run[1]),
                     "--out", str(tmp_path / "out.wav")]) == 0
    audio, rate = sf.read(tmp_path / "out.wav")
    assert rate == 16000 and audio.shape == (codes.size * 320,)


def _write_bad_inputs(path):
    sf.write(path / "silent.wav", np.zeros(16000), 16000)
    sf.write(path / "empty.wav", np.zeros(0), 16000)
    np.save(path / "range.npy", np.array([1, 2, 10**9]))
    np.save(path / "shape.npy", np.zeros((2, 3, 4), np.int32))
    np.save(path / "float.npy", np.zeros(5, np.float32))
    np.save(path / "none.npy", np.zeros(0, np.int32))
    (path / "junk.npy").write_text("not an array")


@pytest.mark.parametrize("action, name, message", [
    ("encode", "missing.wav", "no such file"),
    ("encode", "silent.wav", "silent"),
    ("encode", "empty.wav", "no audio samples"),
    ("decode", "missing.npy", "no such file"),
    ("decode", "range.npy", "must lie in [0, 64000)"),
    ("decode", "shape.npy", "expected a 1-D array of code indices [N], got shape (2, 3, 4)"),
    ("decode", "float.npy", "must be integers"),
    ("decode", "none.npy", "holds no codes"),
    ("decode", "junk.npy", "not a readable .npy array"),
])
def test_bad_inputs_are_one_line_errors(run, tmp_path, capsys, action, name, message):
    _write_bad_inputs(tmp_path)
    status = cli.main(["codec", action, str(tmp_path / name), "--ckpt", str(run[1]),
                       "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 2
    assert message in err and err.count("\n") == 1, err


def test_folders_without_a_codec_checkpoint_are_refused(tmp_path):
    with pytest.raises(UserError, match="no checkpoint found"):
        codec_lib.load_codec(tmp_path)
    ckpt = Checkpointer(tmp_path / "lm" / "checkpoints", async_save=False)
    ckpt.save(1, {"step": jnp.int32(1)}, None, {"task": "toy_lm"})
    ckpt.close()
    with pytest.raises(UserError, match="is a 'toy_lm' run, not a codec"):
        codec_lib.load_codec(tmp_path / "lm")


def test_streaming_decode_matches_the_full_decode(codec):
    rng = np.random.default_rng(1)
    codes = rng.integers(0, codec.codebook_size, 40).astype(np.int32)
    full = codec.decode(codes[None])[0]
    # A window that covers the whole clip reproduces the full decode exactly.
    whole = np.concatenate(list(codec_lib.stream_decode(codec, codes, chunk_frames=10,
                                                        left_context=40, lookahead=40)))
    np.testing.assert_allclose(whole, full, atol=1e-4)
    # Bounded context (latency 10 + 2 frames = 240 ms) stays close to the full decode. On this
    # 24-step model with random codes (a worst case) the SNR against the full decode is about
    # 8 dB; the trained tiny codec on real speech codes gets more (WORKSPACE.md).
    pieces = list(codec_lib.stream_decode(codec, codes, chunk_frames=10, left_context=20,
                                          lookahead=2))
    assert [p.size for p in pieces] == [3200] * 4
    stream = np.concatenate(pieces)
    snr = 10 * np.log10(np.sum(full**2) / np.sum((stream - full) ** 2))
    assert snr > 5, snr


def test_encode_split_carries_labels_and_matches_single_clip_codes(run, codec, tmp_path):
    data_dir = run[0]
    table = codec_lib.encode_split(codec, data_dir, "validation", batch_size=4)
    codec_lib.save_encoded(tmp_path / "val", table)
    again = codec_lib.load_encoded(tmp_path / "val")
    assert EncodedSource(tmp_path / "val")[1]["id"] == again["id"][1]
    assert set(again) == set(table) and len(again["id"]) == len(again["offsets"]) - 1 == 4
    np.testing.assert_array_equal(again["codes"], table["codes"])
    rows = {r["id"]: r for r in codec_lib.iterate_split(codec, data_dir, "validation",
                                                        batch_size=4)}
    for c, clip_id in enumerate(again["id"]):
        codes = again["codes"][again["offsets"][c]:again["offsets"][c + 1]]
        row = rows[str(clip_id)]
        assert codes.size == -(-row["audio"].size // 320)
        np.testing.assert_array_equal(codes, row["codes"])
        assert again["speakers"][again["speaker"][c]] in ("spk05", "spk12")
        assert again["emotion"][c] == row["emotion"] and again["text"][c] == row["text"]
        # eSpeak's phone timings travel with the codes, in frames that add up to them
        phones = json.loads(again["phones"][c])
        assert sum(f for _, f in phones) == codes.size and phones[-1][0] == "_"
    # Padded batches code each clip as if it were alone (one clip checked: one compile).
    alone, _ = codec.encode(row["audio"][None])
    np.testing.assert_array_equal(codes, alone[0])


def test_eval_writes_report_and_spectrogram_plot(run, codec, tmp_path):
    report = evaluate(codec, run[0], "test", limit=2, batch_size=2, out_dir=tmp_path / "ev")
    for key in ("pesq_nb", "pesq_wb", "stoi", "mel_distance", "si_sdr", "codebook_usage"):
        assert key in report
    assert report["clips"] == 2 and 0 < report["codebook_usage"] <= 1
    assert -1 <= report["stoi"] <= 1 and report["mel_distance"] > 0
    saved = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert saved["clips"] == 2 and len(saved["per_clip"]) == 2
    assert (tmp_path / "ev" / "spectrograms.png").stat().st_size > 10_000
