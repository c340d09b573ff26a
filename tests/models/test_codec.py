"""The codec generator and discriminators: token rate, padding invariance, losses, presets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from emotive import configs
from emotive.configs.codec import CodecModelConfig, DiscriminatorConfig, _stage
from emotive.errors import UserError
from emotive.models.codec import Codec, count_params, mel_distance, multi_resolution_mel_loss
from emotive.models.discriminators import (Discriminators, feature_matching_loss,
                                           lsgan_discriminator_loss, lsgan_generator_loss)
from tests.conftest import numpy_init

# The tiny preset's layout (strides 2,4,5,8, SnakeBeta, dilated residual units), narrower.
SMALL = CodecModelConfig(channels=(4, 6, 8, 8, 12), dilations=(1, 3),
                         encoder=_stage(1, 16, 2, 32), decoder=_stage(1, 16, 2, 32))
# Two strided convs (16 x 20 = 320) and 8-wide stages: the quickest to compile.
MICRO = CodecModelConfig(channels=(4, 4, 6), strides=(16, 20), dilations=(1,), activation="gelu",
                         encoder=_stage(1, 8, 2, 16), decoder=_stage(1, 8, 2, 16))


@pytest.fixture(scope="module")
def codec():
    return numpy_init(lambda: Codec(SMALL, rngs=nnx.Rngs(0)))


@pytest.fixture(scope="module")
def encode(codec):
    graphdef, state = nnx.split(codec)
    return jax.jit(lambda a, l: nnx.merge(graphdef, state).encode_latents(a, l))


@pytest.fixture(scope="module")
def decode(codec):
    graphdef, state = nnx.split(codec)
    return jax.jit(lambda i, m: nnx.merge(graphdef, state).decode(i, m))


def clips(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in lengths]


def pad(rows, width):
    out = np.zeros((len(rows), width), np.float32)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def test_fifty_tokens_per_second_and_hop_samples_per_token(codec, encode, decode):
    assert codec.hop == 320
    (audio,) = clips([6400])
    z, mask = encode(jnp.asarray(audio[None]), jnp.asarray([5000]))
    assert z.shape == (1, 20, 6) and int(mask.sum()) == 16  # ceil(5000 / 320)
    wave = decode(jnp.zeros((1, 20), jnp.int32), mask)
    assert wave.shape == (1, 20 * 320)
    assert not np.asarray(wave[0, 16 * 320:]).any()  # nothing past the valid frames
    assert np.isfinite(np.asarray(wave)).all()


def test_padded_batch_encodes_each_clip_exactly_as_alone(codec, encode):
    lengths = [6400, 3001, 4799, 320]
    rows = clips(lengths, seed=1)
    z_batch, mask = encode(jnp.asarray(pad(rows, 6400)), jnp.asarray(lengths))
    idx_batch = codec.fsq.codes_to_indices(codec.fsq.quantize(z_batch))
    for i, row in enumerate(rows):
        z_one, mask_one = encode(jnp.asarray(pad([row], 6400)), jnp.asarray([len(row)]))
        n = int(mask_one.sum())
        assert n == int(mask[i].sum()) == -(-len(row) // 320)
        # Same latents up to float reassociation, and the same codes on every valid frame.
        np.testing.assert_allclose(z_batch[i, :n], z_one[0, :n], atol=1e-4)
        idx_one = codec.fsq.codes_to_indices(codec.fsq.quantize(z_one))
        np.testing.assert_array_equal(idx_batch[i, :n], idx_one[0, :n])


def test_padded_batch_decodes_each_clip_as_alone(codec, decode):
    rng = np.random.default_rng(2)
    frames = np.array([20, 11, 4])
    idx = rng.integers(0, codec.fsq.codebook_size, (3, 20))
    mask = np.arange(20)[None] < frames[:, None]
    batch = decode(jnp.asarray(idx), jnp.asarray(mask))
    for i, n in enumerate(frames):  # shapes shared with the test above: no new compiles
        alone = decode(jnp.asarray(idx[i:i + 1]), jnp.asarray(np.arange(20)[None] < n))
        np.testing.assert_allclose(batch[i], alone[0], atol=1e-5)
        assert not np.asarray(batch[i, n * 320:]).any()


def test_gradients_reach_the_encoder_through_the_quantizer():
    graphdef, params = nnx.split(numpy_init(lambda: Codec(MICRO, rngs=nnx.Rngs(0))))
    (audio,) = clips([3200], seed=3)
    audio = jnp.asarray(audio[None])

    def loss(params):
        out = nnx.merge(graphdef, params)(audio)
        return jnp.mean(jnp.abs(out["audio"] - audio))

    grads = jax.jit(jax.grad(loss))(params)
    conv_in = grads["conv_in"]["kernel"][...]
    assert float(jnp.abs(conv_in).max()) > 0


def test_mel_losses_ignore_padding_and_vanish_on_identical_audio():
    a, b = clips([4000, 4000], seed=4)
    kw = dict(sample_rate=16000, n_ffts=(256, 512), n_mels=(20, 40))
    same = multi_resolution_mel_loss(jnp.asarray(a[None]), jnp.asarray(a[None]), None, **kw)
    assert float(same) == 0.0
    assert float(mel_distance(jnp.asarray(b[None]), jnp.asarray(a[None]))) > 0.1
    # Frames centred past the valid length do not count (their windows reach 256 samples on).
    x, y = a.copy(), a.copy()
    y[1300:] = b[1300:]
    masked = multi_resolution_mel_loss(jnp.asarray(x[None]), jnp.asarray(y[None]),
                                       jnp.asarray([1000]), **kw)
    assert float(masked) < 1e-6


def test_discriminators_and_gan_losses():
    cfg = DiscriminatorConfig(periods=(2, 3), period_channels=(4, 8), spec_n_ffts=(256,),
                              spec_hops=(64,), spec_channels=4)
    disc = numpy_init(lambda: Discriminators(cfg, rngs=nnx.Rngs(0)))
    real, fake = (jnp.asarray(np.stack(clips([3201, 3201], seed=s))) for s in (5, 6))
    graphdef, state = nnx.split(disc)
    judge = jax.jit(lambda a, b: (nnx.merge(graphdef, state)(a), nnx.merge(graphdef, state)(b)))
    real_out, fake_out = judge(real, fake)
    assert len(real_out) == 3
    for logits, features in real_out:
        assert logits.shape[-1] == 1 and len(features) >= 3
    assert real_out[0][0].shape[0] == 2 * 2  # period 2 folds the batch: (b p) rows
    d_loss = lsgan_discriminator_loss(real_out, fake_out)
    g_loss = lsgan_generator_loss(fake_out)
    assert np.isfinite(float(d_loss)) and float(g_loss) > 0
    assert float(feature_matching_loss(real_out, real_out)) == 0.0
    assert float(feature_matching_loss(real_out, fake_out)) > 0


def test_presets_grow_from_tiny_to_base():
    # `full` (X-codec2 scale) has 342M generator + 41M discriminator parameters; counting
    # them here would cost seconds of tracing, so WORKSPACE.md records the number.
    sizes = {}
    for preset in ("tiny", "base"):
        cfg = configs.load("codec", preset)
        assert cfg.model.hop == 320
        sizes[preset] = count_params(nnx.eval_shape(lambda: Codec(cfg.model,
                                                                  rngs=nnx.Rngs(0))))
    assert sizes["tiny"] < 1e6 < sizes["base"] < 1e7
    full = configs.load("codec", "full")
    assert full.model.fsq_levels == (4,) * 8 and full.model.strides == (2, 2, 4, 4, 5)
    assert full.model.decoder.num_layers == 12 and full.model.decoder.d_model == 1024


@pytest.mark.parametrize("item, message", [
    ("model.strides=2,4,5", "one more entry than model.strides"),
    ("model.activation=relu", "snake or gelu"),
    ("model.fsq_levels=8,1", "ints >= 2"),
    ("model.decoder.causal=true", "bidirectional"),
    ("loss.mel_n_mels=20", "same, non-zero length"),
    ("disc.spec_hops=128", "same length"),
])
def test_bad_codec_configs_are_one_line_user_errors(item, message):
    with pytest.raises(UserError, match=message) as err:
        configs.load("codec", "tiny", [item])
    assert "\n" not in str(err.value)


def test_a_25_hz_codec_is_a_stride_choice():
    """Issue 17's 25 Hz option: strides whose product is 640 give 25 codes a second, and
    decode returns hop samples per code."""
    cfg = configs.load("codec", "tiny", ["model.strides=4,4,5,8", "model.fsq_levels=8,5,5,5"])
    assert cfg.model.hop == 640
    micro = CodecModelConfig(channels=(4, 4, 6), strides=(32, 20), dilations=(1,),
                             activation="gelu", n_fft=1280, encoder=_stage(1, 8, 2, 16),
                             decoder=_stage(1, 8, 2, 16))
    model = numpy_init(lambda: Codec(micro, rngs=nnx.Rngs(0)))
    (audio,) = clips([16000])
    _, indices, mask = model.encode(jnp.asarray(audio[None]), jnp.asarray([16000]))
    assert indices.shape[1] == 25 and int(mask.sum()) == 25
    assert model.decode(indices, mask).shape == (1, 25 * 640)
