"""Semantic distillation in the codec GAN: pooling, the loss, and a frozen teacher."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from emotive import configs
from emotive.configs import classifiers
from emotive.configs.common import MeshConfig
from emotive.errors import UserError
from emotive.models.semantic import check_rates, cosine_distance_loss, pool_to_frames
from emotive.models.wav2vec2 import Wav2Vec2Encoder
from emotive.train import tasks
from emotive.train.mesh import make_mesh
from emotive.train.optim import adamw, lr_schedule
from emotive.train.state import global_batch, init_state, make_train_step, split_abstract
from emotive.train.tasks import codec as codec_task


def test_pool_to_frames_averages_valid_teacher_frames():
    h = np.arange(2 * 7 * 1, dtype=np.float32).reshape(2, 7, 1)
    mask = np.array([[1] * 7, [1] * 3 + [0] * 4], bool)
    pooled, valid = pool_to_frames(jnp.asarray(h), jnp.asarray(mask), 2, 4)
    np.testing.assert_allclose(pooled[0, :, 0], [0.5, 2.5, 4.5, 6.0])  # last: frame 6 alone
    np.testing.assert_allclose(pooled[1, :2, 0], [7.5, 9.0])
    np.testing.assert_array_equal(valid, [[1, 1, 1, 1], [1, 1, 0, 0]])


def test_cosine_distance_loss_ignores_masked_frames():
    t = jnp.ones((1, 3, 4))
    p = jnp.stack([jnp.ones(4), -jnp.ones(4), jnp.ones(4) * 5])[None]
    assert float(cosine_distance_loss(p, t, jnp.array([[1, 0, 1]], bool))) == pytest.approx(0, abs=1e-6)
    assert float(cosine_distance_loss(p, t, jnp.array([[0, 1, 0]], bool))) == pytest.approx(2, abs=1e-6)


def test_teacher_rate_must_divide_the_codec_hop():
    assert check_rates(320, (5, 2, 2)) == 16
    with pytest.raises(UserError, match="does not divide"):
        check_rates(320, (3, 2))


def test_config_needs_a_teacher_when_weighted():
    with pytest.raises(UserError, match="teacher_ckpt"):
        configs.load("codec", "tiny", ["semantic.weight=1.0"])


def _one_step(cfg):
    """(state before, state after, metrics) of one train step on two noise clips."""
    task = tasks.make_task(cfg)
    model, _ = split_abstract(task, 0)
    optimizers = {g: adamw(cfg.optim, 10) for g in task.groups}
    schedules = {g: lr_schedule(cfg.optim, 10) for g in task.groups}
    mesh = make_mesh(MeshConfig(), jax.devices()[:1])
    state, _ = init_state(task, model, optimizers, mesh, 0)
    step = jax.jit(make_train_step(task, model, optimizers, schedules, 0, 1))
    audio = (0.1 * np.random.default_rng(0).standard_normal((2, 3200))).astype(np.float32)
    batch = global_batch({"audio": audio, "length": np.array([3200, 2000], np.int32)}, mesh)
    new, metrics = step(state, batch)
    return state, new, metrics


def test_semantic_loss_trains_the_head_and_leaves_the_teacher_frozen(monkeypatch):
    teacher_cfg = classifiers.tiny()
    teacher = Wav2Vec2Encoder(teacher_cfg, nnx.Rngs(3))
    monkeypatch.setattr(codec_task, "load_teacher",
                        lambda cfg: (teacher_cfg, nnx.state(teacher)))
    cfg = configs.load("codec", "tiny", ["semantic.weight=2.0", "semantic.teacher_ckpt=unused",
                                         "train.batch_size=2", "data.crop_seconds=0.2",
                                         "optim.warmup_steps=0"])
    state, new, metrics = _one_step(cfg)
    assert 0 < float(metrics["semantic_loss"]) <= 2
    # The teacher rides in `rest`, loaded and untouched; the head is a generator parameter.
    want = nnx.state(teacher).to_pure_dict()
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
                 new["rest"]["teacher"], want)
    head0 = state["params"]["generator"]["semantic_head"]["out"]["kernel"]
    head1 = new["params"]["generator"]["semantic_head"]["out"]["kernel"]
    assert not np.allclose(np.asarray(head0), np.asarray(head1))


def test_an_asr_encoder_is_a_phonetic_teacher(monkeypatch):
    """A trained CTC recogniser's log-mel encoder (20 ms frames) as the semantic teacher:
    the loss is defined at 50 Hz (ratio 1) and 25 Hz (ratio 2) codecs, and trains the head."""
    from emotive.models.asr import MelEncoder

    teacher_cfg = configs.load("asr", "tiny").model.encoder
    teacher = MelEncoder(teacher_cfg, rngs=nnx.Rngs(3))
    monkeypatch.setattr(codec_task, "load_teacher",
                        lambda cfg: (teacher_cfg, nnx.state(teacher)))
    for strides in ("2,4,5,8", "2,4,5,16"):
        cfg = configs.load("codec", "tiny", [
            "semantic.weight=1.0", "semantic.teacher_ckpt=unused", "semantic.teacher_task=asr",
            f"model.strides={strides}", "train.batch_size=2", "data.crop_seconds=0.2",
            "optim.warmup_steps=0"])
        state, new, metrics = _one_step(cfg)
        assert 0 < float(metrics["semantic_loss"]) <= 2, strides
        head0 = state["params"]["generator"]["semantic_head"]["out"]["kernel"]
        head1 = new["params"]["generator"]["semantic_head"]["out"]["kernel"]
        assert not np.allclose(np.asarray(head0), np.asarray(head1))


def test_an_asr_teacher_takes_its_last_layer_only():
    with pytest.raises(UserError, match="last layer"):
        configs.load("codec", "tiny", ["semantic.teacher_task=asr", "semantic.layer=2"])
    with pytest.raises(UserError, match="teacher_task"):
        configs.load("codec", "tiny", ["semantic.teacher_task=hubert"])


def test_a_coarser_teacher_is_repeated_to_the_codec_rate():
    from emotive.models.semantic import frame_ratio, teacher_targets

    assert frame_ratio(320, 640) == (1, 2) and frame_ratio(640, 320) == (2, 1)
    h = np.arange(3, dtype=np.float32).reshape(1, 3, 1)  # 3 teacher frames of 40 ms
    mask = np.array([[True, True, False]])
    target, valid = teacher_targets(jnp.asarray(h), jnp.asarray(mask), 320, 640, 6)
    np.testing.assert_allclose(target[0, :, 0], [0, 0, 1, 1, 0, 0])
    np.testing.assert_array_equal(valid[0], [1, 1, 1, 1, 0, 0])
    with pytest.raises(UserError, match="does not divide"):
        frame_ratio(320, 480)
