"""Any-length audio (emotive.infer.chunking): window plans, and each predictor's chunked path
against its whole-file path on random-weight tiny models.

Windows of 1 s with 0.5 s of context on a 4 s input: stitched frame outputs have exactly the
whole-file length; they equal the whole-file outputs where the receptive field fits in the
context (the codec with its attention switched off) and are close with attention; pooled
outputs are the kept-length-weighted means of the windows' outputs."""

import numpy as np
import pytest
from flax import nnx

from emotive import configs
from emotive.errors import UserError
from emotive.infer.asr import Recognizer, _best_path
from emotive.infer.chunking import Chunking, Window, chunked_apply, kept, plan_windows
from emotive.infer.codec import LoadedCodec, _encode
from emotive.infer.emotion import EmotionPredictor, _forward
from emotive.infer.predictor import pad_rows
from emotive.infer.speaker import SpeakerEmbedder
from emotive.models.asr import CtcRecognizer
from emotive.models.codec import Codec
from emotive.models.ser import SpeechEmotionModel
from emotive.models.speaker import SpeakerEncoder
from tests.conftest import numpy_init

SMALL = Chunking(chunk_seconds=1.0, context_seconds=0.5, batch=4)
WHOLE = Chunking(chunk_seconds=100.0)  # every test input fits one window: the whole-file path
# A 1-D codec small enough to compile in a second (still 320 samples per frame).
CODEC = ["model.channels=4,4,6", "model.strides=16,20", "model.dilations=",
         "model.activation=gelu", "model.encoder.d_model=8", "model.encoder.head_dim=4",
         "model.encoder.num_heads=2", "model.encoder.num_kv_heads=2", "model.encoder.mlp_dim=16",
         "model.decoder.num_layers=1", "model.decoder.d_model=8", "model.decoder.head_dim=4",
         "model.decoder.num_heads=2", "model.decoder.num_kv_heads=2", "model.decoder.mlp_dim=16"]


def random_model(family, make, overrides=(), seed=0, attention=True):
    """(config, module) of the family's tiny preset with numpy random weights; attention=False
    zeroes every attention output projection (each transformer then acts frame by frame)."""
    cfg = configs.load(family, "tiny", list(overrides))
    if attention:
        zero = None
    else:
        def zero(path):
            return [p.key for p in path[-3:-1]] == ["attn", "o"]
    return cfg, numpy_init(lambda: make(cfg.model, rngs=nnx.Rngs(0)), seed, zero=zero)


def speechy(seconds, seed=0):
    """float32 [1, T]: a modulated tone plus a little noise."""
    t = np.arange(int(seconds * 16000)) / 16000
    rng = np.random.default_rng(seed)
    x = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))
    return (x + 0.02 * rng.standard_normal(t.size)).astype(np.float32)[None]


def with_chunking(predictor, chunking):
    predictor.chunking = chunking
    return predictor


def test_plan_windows_tile_the_signal_at_aligned_starts():
    assert plan_windows(60, 40, 10, 5) == [Window(0, 0, 60, 60)]  # fits: one window
    length, chunk, context, align = 1003, 200, 50, 10
    windows = plan_windows(length, chunk, context, align)
    assert [(w.start, w.end) for w in windows] == [(s, min(s + chunk, length))
                                                  for s in range(0, length, chunk)]
    for w in windows:
        assert w.lo % align == 0 and (w.hi - w.lo == chunk + 2 * context or w.hi == length)
        assert w.lo <= max(w.start - context, 0) and w.hi >= min(w.end + context, length)
    assert windows[-1] == Window(710, 1000, 1003, 1003)  # shifted inwards, aligned start
    assert kept(windows[-1], 10, 2) == slice(58, 60)
    with pytest.raises(UserError, match="chunk_seconds"):
        Chunking(chunk_seconds=0)


def test_codec_chunked_codes_and_audio_match_the_whole_file():
    audio = speechy(4.0 + 123 / 16000)  # not a whole number of frames
    frames = -(-audio.shape[1] // 320)
    for attention in (False, True):
        codec = LoadedCodec(*random_model("codec", Codec, CODEC, attention=attention))
        whole, n = with_chunking(codec, WHOLE).encode(audio)
        # (a) a clip that fits one window runs exactly as the whole-file path.
        (one, _), steps = chunked_apply(codec, _encode, audio, None, WHOLE, ("stitch", None))
        np.testing.assert_array_equal(one[:, :frames], whole)
        np.testing.assert_array_equal(steps, n)
        # (b) 1 s windows with 0.5 s of context.
        codes, m = with_chunking(codec, SMALL).encode(audio)
        assert codes.shape == whole.shape == (1, frames) and m.tolist() == n.tolist() == [frames]
        audio_whole = with_chunking(codec, WHOLE).decode(whole)
        audio_chunked = with_chunking(codec, SMALL).decode(whole)
        assert audio_chunked.shape == audio_whole.shape == (1, frames * 320)
        if attention:  # measured: 96.5% of codes, audio within 2.5% of its peak
            assert np.mean(codes == whole) > 0.9
            assert np.abs(audio_chunked - audio_whole).max() < 0.05 * np.abs(audio_whole).max()
        else:  # receptive field within the context: exact
            np.testing.assert_array_equal(codes, whole)
            np.testing.assert_allclose(audio_chunked, audio_whole, atol=1e-5)


def test_ctc_slots_are_stitched_to_the_whole_file_length():
    rec = Recognizer(*random_model("asr", CtcRecognizer))
    audio = speechy(4.02)
    ids, slots = with_chunking(rec, WHOLE).per_slot(_best_path, audio)
    ids_c, slots_c = with_chunking(rec, SMALL).per_slot(_best_path, audio)
    frame = rec.cfg.model.encoder.frame_samples
    assert slots.tolist() == slots_c.tolist() == [-(-audio.shape[1] // frame)]
    assert ids_c.shape == (1, slots[0])
    # Each window standardises its own features and attends within itself: measured 92%.
    assert np.mean(ids_c[0] == ids[0, :slots[0]]) > 0.85
    assert isinstance(rec.transcribe(audio)[0], str)


def test_utterance_outputs_are_length_weighted_means_of_windows():
    audio = speechy(3.3, seed=1)
    ser = EmotionPredictor(*random_model("ser", SpeechEmotionModel))
    out = with_chunking(ser, SMALL).predict(audio)
    # (c) by hand: each window alone, weighted by its kept length.
    chunk, context = SMALL.sizes(320)
    windows = plan_windows(audio.shape[1], chunk, context, 320)
    assert len(windows) == 4 and windows[-1].end - windows[-1].start == 0.3 * 16000
    parts = ser.apply(_forward, *pad_rows([audio[0, w.lo:w.hi] for w in windows]))
    weights = np.array([w.end - w.start for w in windows], np.float64)
    for got, part in zip((out["adv"], out["logits"]), parts):
        want = np.tensordot(weights, np.asarray(part, np.float64), 1) / weights.sum()
        np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-6)

    spk = SpeakerEmbedder(*random_model("speaker", SpeakerEncoder))
    emb = with_chunking(spk, SMALL).embed(audio)
    emb_whole = with_chunking(spk, WHOLE).embed(audio)
    assert emb.shape == emb_whole.shape == (1, spk.dim)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    assert float(np.sum(emb * emb_whole)) > 0.999  # measured 0.9999
