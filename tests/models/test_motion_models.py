"""The motion VAE, the diffusion maths, the denoiser's conditioning and windowed sampling.

Models here are randomly initialised: the properties hold for any parameters. The parameters
are numpy draws and the model calls are jitted (eager initialisers and ops would compile one
program per op and shape, a minute on a CPU)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from emotive.configs import motion_ldm, motion_vae
from emotive.data.pipelines import motion as md
from emotive.errors import UserError
from emotive.infer.motion import Guidance, MotionAutoencoder, MotionGenerator
from emotive.infer.motion_conditions import ContentEncoder, StyleEncoder
from emotive.models.diffusion import Schedule, ddim_timesteps
from emotive.models.motion_denoiser import Conditions, MotionDenoiser
from emotive.models.motion_vae import MotionVAE, RunningMoments
from emotive.train.tasks.motion_ldm import drop_conditions
from tests.conftest import numpy_init


def _speech(seconds: float, seed: int = 0) -> np.ndarray:
    """Syllable-rate modulated harmonics: passes check_speech, has onsets."""
    t = np.arange(int(seconds * 16000)) / 16000
    rng = np.random.default_rng(seed)
    env = np.clip(np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6)), 0, None) ** 2
    tone = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((140, 280, 420), 1))
    return (0.3 * env * tone).astype(np.float32)


def test_schedule_targets_invert_and_scaled_linear_betas():
    sched = Schedule.scaled_linear(1000, 0.00085, 0.012)
    betas = 1 - sched.alphas_cumprod / np.append(1.0, sched.alphas_cumprod[:-1])
    np.testing.assert_allclose(betas[[0, -1]], [0.00085, 0.012], rtol=1e-9)
    np.testing.assert_allclose(np.sqrt(betas), np.linspace(np.sqrt(0.00085), np.sqrt(0.012),
                                                           1000), rtol=1e-9)
    x0, eps = jax.random.normal(jax.random.key(0), (2, 3, 5, 4))
    t = jnp.array([0, 400, 999])
    x_t = sched.q_sample(x0, t, eps)
    for kind in ("epsilon", "v"):
        got_x0, got_eps = sched.split(sched.target(x0, eps, t, kind), x_t, t, kind)
        np.testing.assert_allclose(got_x0, x0, atol=2e-4 if kind == "epsilon" else 1e-5)
        np.testing.assert_allclose(got_eps, eps, atol=1e-5)
    ts = ddim_timesteps(1000, 50)
    assert len(ts) == 50 and ts[0] == 999 and ts[-1] == 0 and np.all(np.diff(ts) < 0)


def test_ddim_with_an_oracle_denoiser_lands_on_the_clean_sample():
    """Deterministic DDIM from pure noise reaches x0 exactly when the model knows x0."""
    sched = Schedule.scaled_linear(1000, 0.00085, 0.012)
    x0 = jax.random.normal(jax.random.key(1), (2, 6, 3))
    z = jax.random.normal(jax.random.key(2), x0.shape)
    ts = ddim_timesteps(1000, 10)
    for t, t_next in zip(ts, list(ts[1:]) + [-1]):
        tb = jnp.full((2,), t)
        a, s = sched._coef(tb, z)
        eps = (z - a * x0) / s                       # the oracle's noise estimate
        pred = sched.target(x0, eps, tb, "v")
        x0_hat, eps_hat = sched.split(pred, z, tb, "v")
        z = sched.ddim_step(x0_hat, eps_hat, jnp.full((2,), t_next))
    np.testing.assert_allclose(z, x0, atol=1e-4)


def test_running_moments_average_the_first_batches_then_freeze():
    norm = RunningMoments(2, batches=3)
    rng = np.random.default_rng(0)
    batches = [rng.normal(i, 1 + i, (4, 5, 2)).astype(np.float32) for i in range(5)]
    mask = np.ones((4, 5), np.float32)
    for x in batches:
        norm.update(jnp.asarray(x), jnp.asarray(mask))
    means = np.stack([x.reshape(-1, 2).mean(0) for x in batches[:3]]).mean(0)
    np.testing.assert_allclose(norm.mean[...], means, rtol=1e-5)
    assert float(norm.count[...]) == 3


def test_vae_latents_of_a_padded_clip_equal_the_unpadded_ones():
    cfg = motion_vae.tiny().model
    vae = numpy_init(lambda: MotionVAE(cfg, frame_dim=md.FRAME_DIM, rngs=nnx.Rngs(0)),
                     params_only=True)
    encode = nnx.jit(lambda m, x, mask: m.encode(x, mask))
    x = np.random.default_rng(0).normal(size=(1, 32, md.FRAME_DIM)).astype(np.float32)
    padded = np.concatenate([x, np.zeros((1, 32, md.FRAME_DIM), np.float32)], 1)
    mask = np.concatenate([np.ones((1, 32)), np.zeros((1, 32))], 1).astype(np.float32)
    short, _ = encode(vae, jnp.asarray(x), jnp.ones((1, 32)))
    long, _ = encode(vae, jnp.asarray(padded), jnp.asarray(mask))
    assert short.shape == (1, 8, cfg.latent_dim)
    np.testing.assert_allclose(long[:, :8], short, atol=1e-5)
    out = nnx.jit(lambda m, z: m.decode(z))(vae, short)
    assert out.shape == (1, 32, md.FRAME_DIM)


def _denoiser(content_dim=md.CONTENT_DIM_MEL, style_dim=3):
    cfg = motion_ldm.tiny().model.transformer
    # Every parameter random: adaLN-Zero and the output layer start at zero, which would hide
    # every condition (the properties must hold for any parameters).
    return numpy_init(lambda: MotionDenoiser(
        cfg, latent_dim=8, downsample=4, content_dim=content_dim, style_dim=style_dim,
        emotion_dim=md.EMOTION_DIM, norm_batches=5, rngs=nnx.Rngs(0)), seed=3,
        params_only=True)


def _conds(b, t, rng, content_keep=1.0, style_keep=1.0):
    return Conditions(jnp.asarray(rng.normal(size=(b, t, md.CONTENT_DIM_MEL)), jnp.float32),
                      jnp.full((b,), content_keep), jnp.asarray(
                          np.stack([md.emotion_vector("happy")] * b)),
                      jnp.asarray(rng.normal(size=(b, 3)), jnp.float32),
                      jnp.full((b,), style_keep))


def test_dropped_conditions_are_ignored_and_given_ones_matter():
    model = _denoiser()
    rng = np.random.default_rng(0)
    z = jnp.asarray(rng.normal(size=(2, 8, 8)), jnp.float32)
    t = jnp.array([10, 500])
    lm, fm = jnp.ones((2, 8)), jnp.ones((2, 32))
    a, b = _conds(2, 32, rng), _conds(2, 32, rng)
    forward = nnx.jit(lambda m, c: m(z, t, c, lm, fm))
    run = lambda c: np.asarray(forward(model, c))
    assert np.abs(run(a) - run(a._replace(content=b.content))).max() > 1e-4
    dropped = a._replace(content_keep=jnp.zeros(2), style_keep=jnp.zeros(2))
    swapped = dropped._replace(content=b.content, style=b.style)
    np.testing.assert_allclose(run(dropped), run(swapped), atol=1e-6)
    assert np.abs(run(a) - run(a._replace(style=b.style))).max() > 1e-4


def test_condition_dropout_rates_and_emotion_parts():
    cfg = dataclasses.replace(motion_ldm.tiny(), guidance=motion_ldm.GuidanceConfig(
        content_dropout=0.2, emotion_dropout=0.0, style_dropout=0.0, all_dropout=0.0,
        category_only=0.3, adv_only=0.3))
    n = 4000
    batch = {"content": jnp.ones((n, 4, 2)), "emotion": jnp.asarray(
        np.stack([md.emotion_vector("sad", 2)] * n)), "style": jnp.ones((n, 3)),
        "style_keep": jnp.ones(n)}
    c = drop_conditions(cfg, batch, jax.random.key(0))
    assert abs(1 - float(c.content_keep.mean()) - 0.2) < 0.03
    e = np.asarray(c.emotion)
    has_cat, has_adv = e[:, md._HAS_CAT] > 0, e[:, md._HAS_ADV] > 0
    assert abs(np.mean(has_cat & ~has_adv) - 0.3) < 0.03
    assert abs(np.mean(~has_cat & has_adv) - 0.3) < 0.03
    assert np.all(has_cat | has_adv)
    assert np.all(e[~has_cat, :md._HAS_CAT + 1] == 0) and np.all(e[~has_adv, md._ADV.start:] == 0)


def test_emotion_vectors():
    v = md.emotion_vector("angry", 1)
    assert v[md._HAS_CAT] == 1 and v[md._HAS_ADV] == 1 and v[md._INTENSITY] == 0.6
    only_adv = md.emotion_vector(adv=(0.2, 0.5, 0.9))
    assert only_adv[md._HAS_CAT] == 0 and only_adv[:8].sum() == 0
    ref = md.emotion_from_prediction(np.arange(8.0), (0.1, 0.2, 1.3))
    np.testing.assert_allclose(ref[:8].sum(), 1.0, rtol=1e-6)
    assert ref[md._ADV].max() == 1.0
    with pytest.raises(UserError, match="intensity"):
        md.emotion_vector("neutral", 2)
    with pytest.raises(UserError, match="A/D/V"):
        md.emotion_vector(adv=(0.1, 2.0, 0.3))


def test_frames_round_trip_and_content_length():
    rng = np.random.default_rng(0)
    poses = rng.normal(0, 0.4, (10, 165))
    trans = rng.normal(0, 0.1, (10, 3))
    face = rng.uniform(0, 1, (10, 52))
    x = md.frame_vector(poses, trans, face)
    p2, t2, f2 = md.split_frames(x)
    np.testing.assert_allclose(md.frame_vector(p2, t2, f2), x, atol=1e-5)
    np.testing.assert_allclose(t2, trans - trans[:1], atol=1e-6)
    audio = _speech(2.0)
    assert md.mel_content(audio, 16000, md.audio_frames(audio)).shape == (60, 64)


@pytest.fixture(scope="module")
def generator():
    vcfg = motion_vae.tiny()
    vae = MotionAutoencoder(vcfg, numpy_init(
        lambda: MotionVAE(vcfg.model, frame_dim=md.FRAME_DIM, rngs=nnx.Rngs(0)),
        params_only=True))
    lcfg = motion_ldm.tiny()
    model = _denoiser(style_dim=1)
    return MotionGenerator(lcfg, model, vae=vae, content=ContentEncoder("mel"),
                           style=StyleEncoder(""))


def test_any_length_windows_inpaint_and_batch_like_alone(generator):
    short, long = _speech(1.5, 1), _speech(9.0, 2)
    both = generator.generate_batch([short, long], emotion=["happy", "sad"], seed=3)
    assert both[0].frames.shape == (45, md.FRAME_DIM) and both[0].seams == []
    assert both[1].frames.shape == (270, md.FRAME_DIM)
    hop = 64 - 16
    assert both[1].seams == [hop * j + 8 for j in range(1, 6)]   # 6 windows cover 270
    # Clip k of a batch is seeded (seed, k) and padding is masked: the long clip first in a
    # batch with the short one equals the long clip alone.
    alone = generator.generate_batch([long], emotion=["sad"], seed=3)
    first = generator.generate_batch([long, short], emotion=["sad", "happy"], seed=3)
    np.testing.assert_allclose(first[0].frames, alone[0].frames, atol=1e-4)
    poses, trans, face = both[1].parts
    assert poses.shape == (270, 165) and np.all((face >= 0) & (face <= 1))


def test_guidance_scales_one_equal_the_plain_prediction(generator):
    audio = _speech(2.0, 4)
    plain = generator.generate(audio, emotion="calm", seed=1).frames
    guided = generator.generate(audio, emotion="calm", seed=1,
                                guidance=Guidance(1.0, 1.000001, 1.0)).frames
    np.testing.assert_allclose(plain, guided, atol=1e-3)
    strong = generator.generate(audio, emotion="calm", seed=1, guidance=Guidance(1, 4, 1)).frames
    assert np.abs(strong - plain).max() > 1e-4


def test_silent_audio_is_refused(generator):
    with pytest.raises(UserError, match="silent"):
        generator.generate(np.zeros(32000, np.float32))
    with pytest.raises(UserError, match="at least 0.2 s"):
        generator.generate(_speech(0.1))


def test_recogniser_content_covers_every_frame_in_chunks():
    """asr+mel content: encoder states resampled to 30 fps beside the log-mel features; a
    long file runs in chunks (here 1 s with 0.25 s context) and every frame gets a value."""
    from emotive.configs import asr
    from emotive.infer.asr import Recognizer
    from emotive.models.asr import CtcRecognizer

    cfg = asr.tiny()
    enc = ContentEncoder("mel")
    enc.source = "asr+mel"
    enc.recognizer = Recognizer(cfg, CtcRecognizer(cfg.model, rngs=nnx.Rngs(0)))
    audio = _speech(3.3, 5)
    whole = enc(audio, 99)
    assert whole.shape == (99, 32 + md.CONTENT_DIM_MEL) and np.isfinite(whole).all()
    enc.CHUNK_S, enc.CONTEXT_S = 1.0, 0.25
    chunked = enc(audio, 99)
    assert chunked.shape == whole.shape and np.isfinite(chunked).all()
    np.testing.assert_array_equal(chunked[:, 32:], whole[:, 32:])   # mel is not chunked
    # Away from chunk edges the context makes chunked states close to the whole file's.
    r = np.corrcoef(chunked[:, :32].ravel(), whole[:, :32].ravel())[0, 1]
    assert r > 0.9
