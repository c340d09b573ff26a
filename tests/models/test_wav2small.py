"""Wav2Small: shapes, parameter count, BatchNorm state, padding, jit, and a tiny fit."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from emotive.codecs.audio import mel_filterbank, stft
from emotive.configs.classifiers import Wav2SmallConfig
from emotive.models.wav2small import Wav2Small, dft_kernel, log_mel, num_trainable

CLIPS, SAMPLES = 16, 1600  # 0.1 s each: 49 frames of hop 32
SHORT = 1000
# Tiny programs: XLA's backend optimisations would cost more time than they save.
FAST_COMPILE = {"xla_backend_optimization_level": 0}


def _clips():
    """16 clips (tone + noise, varied pitch and noise level) and A/D/V-like targets for them."""
    rng = np.random.RandomState(0)
    t = np.arange(SAMPLES) / 16000.0
    pitch, noise = rng.uniform(100, 2000, CLIPS), rng.uniform(0.05, 2.0, CLIPS)
    audio = np.stack([np.sin(2 * np.pi * f * t) + s * rng.randn(SAMPLES)
                      for f, s in zip(pitch, noise)])
    targets = np.stack([(pitch - 100) / 1900, noise / 2.0, rng.uniform(0, 1, CLIPS)], axis=1)
    return jnp.asarray(audio, jnp.float32), jnp.asarray(targets, jnp.float32)


@pytest.fixture(scope="module")
def model():
    # The rbg key compiles its initialisers in about a third of threefry's time on CPU.
    return Wav2Small(Wav2SmallConfig(), nnx.Rngs(jax.random.key(0, impl="rbg")))


def test_parameter_count_and_state_kinds(model):
    # 9*13 + 6*9*13*13 conv taps (no biases: BatchNorm shifts), 7 BatchNorms' scale and
    # shift, the Dense(13, 13) attention scores and the Linear(338, 3) head.
    assert num_trainable(model) == 9 * 13 + 6 * 9 * 169 + 7 * 2 * 13 + (169 + 13) + (338 * 3 + 3)
    assert num_trainable(model) == 10_624
    for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        axes = var.get_metadata().get("axes")
        assert axes is not None and len(axes) == len(var.shape), path
    stats = nnx.state(model, nnx.BatchStat)
    assert len(jax.tree.leaves(stats)) == 2 * 7  # running mean and variance per block


def test_front_end_is_the_power_mel_spectrogram():
    cfg = Wav2SmallConfig()
    x = jnp.asarray(np.random.RandomState(1).randn(1, 800), jnp.float32)
    spec = stft(x, cfg.n_fft, cfg.hop, center=False)[0]  # [33, frames]
    assert dft_kernel(cfg.n_fft).shape == (64, 1, 66)
    want = 10 * np.log10(np.maximum(mel_filterbank(16000, 64, 26, fmax=8000.0)
                                    @ np.abs(np.asarray(spec)) ** 2, 1e-10)).T
    np.testing.assert_allclose(log_mel(x, cfg)[0], want, atol=1e-3)


def _split(model):
    """(graphdef, params, rest) with pure-dict states, as the trainer keeps them."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    return graphdef, params.to_pure_dict(), rest.to_pure_dict()


def _merge(graphdef, params, rest):
    return nnx.merge(graphdef, nnx.State(params), nnx.State(rest))


def _rest(module):
    return nnx.state(module, nnx.Not(nnx.Param)).to_pure_dict()


def test_fits_teacher_targets_and_batchnorm_state():
    """A jitted pure train step (params + 'rest' state) drives the loss down on 16 clips."""
    # Fast-moving running statistics, so eval mode has caught up after 25 steps.
    cfg = Wav2SmallConfig(bn_momentum=0.5)
    graphdef, params, rest = _split(Wav2Small(cfg, nnx.Rngs(jax.random.key(1, impl="rbg"))))
    audio, targets = _clips()
    tx = optax.adam(1e-2)
    opt = tx.init(params)

    def loss_fn(params, rest):
        m = _merge(graphdef, params, rest)
        pred = m(audio, train=True)
        return jnp.mean(jnp.square(pred - targets)), _rest(m)

    @functools.partial(jax.jit, compiler_options=FAST_COMPILE)
    def step(params, rest, opt):
        (loss, rest), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, rest)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), rest, opt, loss

    rest0 = rest
    losses = []
    for _ in range(25):
        params, rest, opt, loss = step(params, rest, opt)
        losses.append(float(loss))
    assert losses[-1] < 0.2 * losses[0], losses[::10]
    # train=True moved the running statistics; they live outside the parameters.
    moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), rest, rest0)
    assert min(jax.tree.leaves(moved)) > 0

    # Eval mode: running statistics, no state change, and a padded row equals its own run.
    @functools.partial(jax.jit, compiler_options=FAST_COMPILE)
    def predict(params, rest, audio_BxT, lengths_B, alone_1xS):
        m = _merge(graphdef, params, rest)
        return m(audio_BxT, lengths_B), m(alone_1xS), _rest(m)

    alone = audio[3:4, :SHORT]
    full, _, rest_after = predict(params, rest, audio, jnp.full((CLIPS,), SAMPLES), alone)
    assert full.shape == (CLIPS, 3) and full.dtype == jnp.float32
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), rest, rest_after))
    eval_loss = float(jnp.mean(jnp.square(full - targets)))
    assert eval_loss < 0.3 * losses[0], (eval_loss, losses[0])
    lengths = jnp.full((CLIPS,), SAMPLES).at[3].set(SHORT)
    padded, alone_out, _ = predict(params, rest, audio.at[3, SHORT:].set(5.0), lengths, alone)
    np.testing.assert_allclose(padded[3], alone_out[0], rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(padded[:3], full[:3])
