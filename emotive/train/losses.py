"""Losses and input helpers that more than one task uses.

- `masked_mean`, `masked_lm_loss`: means over the rows or positions a mask selects;
- `chunked_lm_loss`, `causal_lm_loss`: the LM loss with the head applied in vocabulary chunks;
- `weighted_ccc`, `adv_cccs`: concordance correlation of arousal/dominance/valence;
- `crop_iterator`, `crop_data`: batches of random crops of a TFDS speech split (augmented
  for training by an experiment's `augment` section);
- `audio_seconds`, `audio_throughput`: throughput in seconds of audio.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from einops import rearrange

from emotive.data.pipelines.input import DeviceBatches
from emotive.data.pipelines.speech import crop_batches
from emotive.data.builders.tfds_io import SAMPLE_RATE, open_data_split
from emotive.models.sharding import constrain
from emotive.train.task import DataSpec

# The fields of a labelled emotion crop that go to the device.
EMOTION_LABEL_FIELDS = ("audio", "length", "emotion", "adv", "has_adv", "example_mask")
CCC_EPS = 1e-8  # keeps 1 - CCC finite on a batch whose targets are all equal


def masked_mean(x_B: jax.Array, weight_B: jax.Array) -> jax.Array:
    """Mean of float [B] over the rows with weight 1 (0 when there are none)."""
    w = weight_B.astype(jnp.float32)
    return jnp.sum(w * x_B) / jnp.maximum(jnp.sum(w), 1.0)


def _masked_lm_sums(logits_BxTxV, targets_BxT, mask_BxT) -> jax.Array:
    """[2]: the masked sums of token cross-entropy and of argmax hits."""
    ce = optax.softmax_cross_entropy_with_integer_labels(logits_BxTxV, targets_BxT)
    correct = (jnp.argmax(logits_BxTxV, -1) == targets_BxT).astype(jnp.float32)
    return jnp.stack([(ce * mask_BxT).sum(), (correct * mask_BxT).sum()])


def _mean_over_mask(sums: jax.Array, mask_BxT) -> tuple[jax.Array, jax.Array]:
    denom = jnp.maximum(mask_BxT.sum(), 1.0)
    return sums[0] / denom, sums[1] / denom


def masked_lm_loss(logits_BxTxV, targets_BxT, mask_BxT):
    """Mean token cross-entropy and accuracy over positions where mask is 1."""
    return _mean_over_mask(_masked_lm_sums(logits_BxTxV, targets_BxT, mask_BxT), mask_BxT)


def chunked_lm_loss(hidden_BxTxE, head_ExV, targets_BxT, mask_BxT, chunk: int):
    """`masked_lm_loss` of the logits `hidden @ head` (fp32) without ever holding them whole:
    the head runs on `chunk` vocabulary ids at a time (a scan, then the remainder), the
    log-sum-exp, target logit and argmax are combined across chunks, and the backward pass
    recomputes each chunk's logits [B, T, chunk] instead of keeping them. Each chunk's head
    gradient is its own slice, so nothing of the head's size is accumulated."""
    h = hidden_BxTxE.astype(head_ExV.dtype)

    @jax.checkpoint
    def stats(w_ExC, first_id):
        """Per position [B, T]: the chunk's log-sum-exp, target logit (0 if the target is
        elsewhere), best logit and its id."""
        logits = jnp.einsum("bte,ec->btc", h, w_ExC).astype(jnp.float32)
        logits = constrain(logits, ("batch", "length", "act_vocab"))
        local = targets_BxT - first_id
        here = (local >= 0) & (local < logits.shape[-1])
        target = jnp.take_along_axis(logits, jnp.clip(local, 0, logits.shape[-1] - 1)[..., None],
                                     -1)[..., 0]
        return (jax.nn.logsumexp(logits, -1), jnp.where(here, target, 0.0),
                jnp.max(logits, -1), jnp.argmax(logits, -1) + first_id)

    def combine(acc, chunk_stats):
        lse, target, best, best_id = acc
        c_lse, c_target, c_best, c_id = chunk_stats
        better = c_best > best  # ties keep the lower id, as argmax does
        return (jnp.logaddexp(lse, c_lse), target + c_target, jnp.where(better, c_best, best),
                jnp.where(better, c_id, best_id))

    v = head_ExV.shape[1]
    whole = v - v % chunk
    shape = targets_BxT.shape
    acc = (jnp.full(shape, -jnp.inf), jnp.zeros(shape), jnp.full(shape, -jnp.inf),
           jnp.zeros(shape, jnp.int32))
    w_NxExC = rearrange(head_ExV[:, :whole], "e (n c) -> n e c", c=chunk)
    first_ids = jnp.arange(0, whole, chunk, dtype=jnp.int32)
    acc, _ = jax.lax.scan(lambda acc, xs: (combine(acc, stats(*xs)), None), acc,
                          (w_NxExC, first_ids))
    if whole < v:
        acc = combine(acc, stats(head_ExV[:, whole:], whole))
    lse, target, _, best_id = acc
    ce = lse - target
    correct = (best_id == targets_BxT).astype(jnp.float32)
    return _mean_over_mask(jnp.stack([(ce * mask_BxT).sum(), (correct * mask_BxT).sum()]),
                           mask_BxT)


def causal_lm_loss(model, inputs_BxT, targets_BxT, mask_BxT, *, chunk: int = 0, **body):
    """masked_lm_loss of a CausalLM on inputs (`body`: positions, segment_ids), its head
    applied to the whole vocabulary at once (chunk 0) or `chunk` ids at a time."""
    if not chunk:
        return masked_lm_loss(model(inputs_BxT, **body), targets_BxT, mask_BxT)
    return chunked_lm_loss(model.hidden(inputs_BxT, **body), model.head_weight(), targets_BxT,
                           mask_BxT, chunk)


def weighted_ccc(pred_B: jax.Array, true_B: jax.Array, weight_B: jax.Array) -> jax.Array:
    """CCC of two float [B] vectors over the rows with weight 1 (population moments), fp32."""
    w = weight_B.astype(jnp.float32)
    n = jnp.maximum(jnp.sum(w), 1.0)
    x, y = pred_B.astype(jnp.float32), true_B.astype(jnp.float32)
    mx, my = jnp.sum(w * x) / n, jnp.sum(w * y) / n
    vx = jnp.sum(w * jnp.square(x - mx)) / n
    vy = jnp.sum(w * jnp.square(y - my)) / n
    cov = jnp.sum(w * (x - mx) * (y - my)) / n
    return 2.0 * cov / (vx + vy + jnp.square(mx - my) + CCC_EPS)


def adv_cccs(pred_Bx3: jax.Array, true_Bx3: jax.Array, weight_B: jax.Array) -> jax.Array:
    """CCC per dimension, float32 [3] in the order arousal, dominance, valence."""
    return jnp.stack([weighted_ccc(pred_Bx3[:, d], true_Bx3[:, d], weight_B) for d in range(3)])


def crop_iterator(cfg, split: str, *, crop_samples: int, fields, shuffle: bool,
                  seed_offset: int = 0, wrap=DeviceBatches, check=None, augment=None):
    """An iterator factory (process_index, process_count) of random crops of `crop_samples`
    from `split` of `cfg.data`, batched by `cfg.train.batch_size` and seeded by
    `cfg.train.seed + seed_offset`. `check(opened)` may reject the opened split (UserError);
    `wrap(inner, fields)` makes the checkpointable device iterator keeping `fields`;
    `augment` (an AugmentConfig, training iterators only) augments every crop."""

    def make(process_index: int, process_count: int):
        opened = open_data_split(cfg.data, split)
        if check is not None:
            check(opened)
        inner = crop_batches(opened.source, crop_samples=crop_samples,
                             global_batch_size=cfg.train.batch_size,
                             seed=cfg.train.seed + seed_offset, process_index=process_index,
                             process_count=process_count, speakers=opened.speakers,
                             shuffle=shuffle, augment=augment)
        return wrap(inner, fields)
    return make


def crop_data(cfg, *, crop_samples: int, fields, eval_fields=None, wrap=DeviceBatches,
              augment=None) -> DataSpec:
    """Shuffled crops of `data.train_split` to train on (augmented by `augment`, an
    AugmentConfig, when given), and crops of `data.eval_split` in file order (`eval_fields`,
    default `fields`) to evaluate on, never augmented."""
    return DataSpec(
        train=crop_iterator(cfg, cfg.data.train_split, crop_samples=crop_samples,
                            fields=fields, shuffle=True, wrap=wrap, augment=augment),
        eval=crop_iterator(cfg, cfg.data.eval_split, crop_samples=crop_samples,
                           fields=eval_fields or fields, shuffle=False, wrap=wrap))


def audio_seconds(batch, field: str = "length") -> float:
    """Seconds of audio in a batch: `field` holds each row's valid samples."""
    return float(np.sum(batch[field])) / SAMPLE_RATE


def audio_throughput(field: str = "length") -> dict:
    """The Task fields that count throughput in seconds of audio (`field`: valid samples)."""
    count = audio_seconds if field == "length" else functools.partial(audio_seconds, field=field)
    return {"throughput_unit": "audio_seconds", "count_units": count}
