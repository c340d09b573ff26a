"""Semantic distillation for the codec: predict a frozen speech encoder's features from codes.

X-codec2 makes its single codebook carry content by reconstructing a self-supervised
encoder's hidden states from the quantised representation. Here the teacher is any
wav2vec2-style encoder of this repo (`models/wav2vec2.py`, e.g. a trained `ser` run); its
frames are averaged down to the codec's frame rate, and a small head on the FSQ codes is
trained to match them by cosine similarity. The teacher is never trained: the codec task
keeps it outside every parameter group (see `train/tasks/codec.py`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from emotive.errors import UserError
from emotive.models.layers import Dense
from emotive.models.wav2vec2 import Wav2Vec2Encoder


def teacher_hop(conv_stride) -> int:
    """Samples per teacher frame: the product of its conv strides."""
    hop = 1
    for s in conv_stride:
        hop *= int(s)
    return hop


def pool_to_frames(h_BxMxE: jax.Array, mask_BxM: jax.Array, ratio: int,
                   frames: int) -> tuple[jax.Array, jax.Array]:
    """Averages each run of `ratio` teacher frames into one codec frame.

    Returns features [B, frames, E] and a mask bool [B, frames] (True where the codec frame
    saw at least one valid teacher frame). Teacher frames past `frames * ratio` are dropped;
    missing ones count as invalid.
    """
    b, m, e = h_BxMxE.shape
    need = frames * ratio
    if m < need:
        h_BxMxE = jnp.pad(h_BxMxE, ((0, 0), (0, need - m), (0, 0)))
        mask_BxM = jnp.pad(mask_BxM, ((0, 0), (0, need - m)))
    h = h_BxMxE[:, :need].astype(jnp.float32).reshape(b, frames, ratio, e)
    w = mask_BxM[:, :need].astype(jnp.float32).reshape(b, frames, ratio, 1)
    count = jnp.sum(w, axis=2)
    pooled = jnp.sum(h * w, axis=2) / jnp.maximum(count, 1.0)
    return pooled, count[..., 0] > 0


def cosine_distance_loss(pred_BxNxE, target_BxNxE, mask_BxN) -> jax.Array:
    """Mean of 1 - cos(pred, target) over valid frames (a scalar in [0, 2])."""
    p = pred_BxNxE.astype(jnp.float32)
    t = target_BxNxE.astype(jnp.float32)
    cos = jnp.sum(p * t, -1) / (jnp.linalg.norm(p, axis=-1) * jnp.linalg.norm(t, axis=-1) + 1e-6)
    m = mask_BxN.astype(jnp.float32)
    return jnp.sum((1.0 - cos) * m) / jnp.maximum(jnp.sum(m), 1.0)


class SemanticHead(nnx.Module):
    """FSQ codes [B, N, D] -> predicted teacher features [B, N, E] (Dense, GELU, Dense)."""

    def __init__(self, code_dim: int, hidden: int, out_dim: int, *, rngs: nnx.Rngs):
        self.up = Dense(code_dim, hidden, in_axes=None, out_axes="mlp", use_bias=True, rngs=rngs)
        self.out = Dense(hidden, out_dim, in_axes="mlp", out_axes="embed", use_bias=True,
                         rngs=rngs)

    def __call__(self, codes_BxNxD):
        return self.out(jax.nn.gelu(self.up(codes_BxNxD)))


def frame_ratio(codec_hop: int, teacher_frame) -> tuple[int, int]:
    """(teacher frames averaged into one codec frame, codec frames per teacher frame): a
    finer teacher is pooled, a coarser one (a 40 ms ASR encoder under a 20 ms codec) is
    repeated; one of the two is 1. teacher_frame is the teacher's samples per frame (int)
    or its conv strides. UserError unless one hop divides the other."""
    hop_t = teacher_frame if isinstance(teacher_frame, int) else teacher_hop(teacher_frame)
    if codec_hop % hop_t == 0:
        return codec_hop // hop_t, 1
    if hop_t % codec_hop == 0:
        return 1, hop_t // codec_hop
    raise UserError(f"semantic teacher frames every {hop_t} samples, which does not divide "
                    f"the codec hop {codec_hop} nor is a multiple of it; pick a teacher whose "
                    "conv strides multiply to a divisor or a multiple of the hop")


def check_rates(codec_hop: int, teacher_frame) -> int:
    """The teacher frames averaged per codec frame (see frame_ratio)."""
    return frame_ratio(codec_hop, teacher_frame)[0]


def teacher_targets(feats_BxMxE, mask_BxM, codec_hop: int, teacher_frame, frames: int):
    """The teacher's features at the codec's frame rate [B, frames, E] and their mask."""
    pool, repeat = frame_ratio(codec_hop, teacher_frame)
    if repeat > 1:
        feats_BxMxE = jnp.repeat(feats_BxMxE, repeat, axis=1)
        mask_BxM = jnp.repeat(mask_BxM, repeat, axis=1)
    return pool_to_frames(feats_BxMxE, mask_BxM, pool, frames)


def teacher_features(teacher: nnx.Module, audio_BxT, lengths_B, layer: int):
    """The frozen teacher's hidden state `layer` [B, M, E] and its mask [B, M], no gradient.

    A wav2vec2-style encoder gives any layer; a log-mel (ASR) encoder its last."""
    if not isinstance(teacher, Wav2Vec2Encoder):  # MelEncoder: (hidden, frame segments)
        hidden, frame_seg = teacher(audio_BxT, lengths_B)
        return jax.lax.stop_gradient(hidden), frame_seg > 0
    out = teacher(audio_BxT, lengths_B, output_hidden_states=layer != -1)
    h = out["last_hidden_state"] if layer == -1 else out["hidden_states"][layer]
    return jax.lax.stop_gradient(h), out["mask"]
