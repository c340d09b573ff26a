"""The speech codec task: a GAN with two parameter groups, "generator" then "discriminator".

Per step the trainer updates the generator (mel L1 x mel_weight + LSGAN x adv_weight +
feature matching x fm_weight, the GAN terms off for the first `loss.gan_start_step` steps,
plus semantic.weight x the feature-reconstruction loss against a frozen teacher if set),
then the discriminators (LSGAN on real crops and on the generator's output). Both groups
get AdamW from `optim` (X-codec2's betas 0.8, 0.9).

Two small pieces of state ride along as non-parameter variables (the trainer's `rest`),
so the generic trainer needs nothing codec-specific:
- `fake`: the generator's last output, stored by the generator loss and judged by the
  discriminator loss, which saves a second generator forward pass per step;
- `micro_steps`: micro-batches seen, which switches the GAN terms on (and is checkpointed,
  so a resumed run keeps its schedule).

Batches: random crops of `data.crop_seconds` from the emotive_speech TFDS split
(`crop_batches`), shorter clips zero-padded and masked by `length`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from emotive.codecs.fsq import codebook_usage
from emotive.configs.asr import MelEncoderConfig
from emotive.configs.codec import SAMPLE_RATE, CodecConfig
from emotive.models.asr import MelEncoder
from emotive.errors import UserError
from emotive.models.codec import Codec, mel_distance, multi_resolution_mel_loss, si_sdr
from emotive.models.discriminators import (Discriminators, feature_matching_loss,
                                           lsgan_discriminator_loss, lsgan_generator_loss)
from emotive.models.semantic import (SemanticHead, check_rates, cosine_distance_loss,
                                     teacher_features, teacher_hop, teacher_targets)
from emotive.models.wav2vec2 import Wav2Vec2Encoder
from emotive.train.losses import audio_throughput, crop_data
from emotive.train.task import Task

# The semantic teacher (if any) matches neither filter: it is frozen state, never trained.
GENERATOR = nnx.All(nnx.Param, nnx.Any(nnx.PathContains("codec"),
                                       nnx.PathContains("semantic_head")))
DISCRIMINATOR = nnx.All(nnx.Param, nnx.PathContains("disc"))
DEVICE_FIELDS = ("audio", "length")


class Carry(nnx.Variable):
    """Non-parameter state carried between the loss functions of one step."""


class CodecGAN(nnx.Module):
    """The generator (`codec`), the discriminators (`disc`) and the carried state; with
    semantic distillation also the frozen `teacher` encoder and the `semantic_head`."""

    def __init__(self, cfg: CodecConfig, *, rngs: nnx.Rngs, teacher=None):
        self.codec = Codec(cfg.model, rngs=rngs)
        self.disc = Discriminators(cfg.disc, rngs=rngs)
        if teacher is not None:  # (encoder config, its trained state)
            teacher_cfg, teacher_state = teacher
            self.teacher = build_teacher(teacher_cfg, rngs)
            nnx.update(self.teacher, teacher_state)
            dim = teacher_dim(teacher_cfg)
            self.semantic_head = SemanticHead(self.codec.fsq.dim, dim, dim, rngs=rngs)
        else:
            self.teacher = self.semantic_head = None
        micro_batch = cfg.train.batch_size // cfg.optim.grad_accum
        crop = cfg.data.crop_samples(cfg.model.hop)
        self.fake = Carry(jnp.zeros((micro_batch, crop), jnp.float32), axes=("batch", None))
        self.micro_steps = Carry(jnp.zeros((), jnp.int32), axes=())


def build_teacher(teacher_cfg, rngs: nnx.Rngs) -> nnx.Module:
    """The frozen encoder of a teacher config: a `ser` run's wav2vec2-style encoder or an
    `asr` run's log-mel encoder."""
    if isinstance(teacher_cfg, MelEncoderConfig):
        return MelEncoder(teacher_cfg, rngs=rngs)
    return Wav2Vec2Encoder(teacher_cfg, rngs)


def teacher_frame_samples(teacher_cfg) -> int:
    if isinstance(teacher_cfg, MelEncoderConfig):
        return teacher_cfg.frame_samples
    return teacher_hop(teacher_cfg.conv_stride)


def teacher_dim(teacher_cfg) -> int:
    if isinstance(teacher_cfg, MelEncoderConfig):
        return teacher_cfg.transformer.d_model
    return teacher_cfg.d_model


def load_teacher(cfg: CodecConfig):
    """(encoder config, trained encoder state) of the semantic teacher (a `ser` or `asr`
    run's encoder), or None when off."""
    if cfg.semantic.weight <= 0:
        return None
    from emotive.infer.loading import load_trained

    trained = load_trained(cfg.semantic.teacher_ckpt, task=cfg.semantic.teacher_task)
    encoder = trained.model.encoder
    check_rates(cfg.model.hop, teacher_frame_samples(encoder.cfg))
    if cfg.semantic.teacher_task == "ser":
        layers = encoder.cfg.transformer.num_layers
        if not -1 <= cfg.semantic.layer <= layers:
            raise UserError(f"semantic.layer must be -1 or in [0, {layers}] for this teacher, "
                            f"got {cfg.semantic.layer}")
    return encoder.cfg, nnx.state(encoder)


def make_task(cfg: CodecConfig) -> Task:
    lc, hop = cfg.loss, cfg.model.hop
    sc, teacher = cfg.semantic, load_teacher(cfg)
    crop = cfg.data.crop_samples(hop)
    codebook_size = int(np.prod(cfg.model.fsq_levels))
    gan_start = lc.gan_start_step * cfg.optim.grad_accum
    use_gan = lc.adv_weight > 0 or lc.fm_weight > 0

    def mel_loss(pred, target, lengths):
        return multi_resolution_mel_loss(pred, target, lengths, sample_rate=SAMPLE_RATE,
                                         n_ffts=lc.mel_n_ffts, n_mels=lc.mel_n_mels)

    def generator_loss(model: CodecGAN, batch, rng):
        del rng
        audio, lengths = batch["audio"], batch["length"]
        out = model.codec(audio, lengths)
        fake = out["audio"]
        model.fake[...] = jax.lax.stop_gradient(fake)
        mel = mel_loss(fake, audio, lengths)

        def gan_terms(fake):
            real_out, fake_out = model.disc(audio), model.disc(fake)
            return lsgan_generator_loss(fake_out), feature_matching_loss(real_out, fake_out)

        zeros = lambda fake: (jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32))
        if use_gan:  # cond: the warm-up steps skip the discriminators' cost entirely
            gan_on = model.micro_steps[...] >= gan_start
            adv, fm = jax.lax.cond(gan_on, gan_terms, zeros, fake)
        else:
            gan_on, (adv, fm) = jnp.zeros((), bool), zeros(fake)
        loss = lc.mel_weight * mel + lc.adv_weight * adv + lc.fm_weight * fm
        metrics = {}
        if teacher is not None:
            metrics["semantic_loss"] = semantic_loss(model, batch, out)
            loss = loss + sc.weight * metrics["semantic_loss"]
        usage = codebook_usage(out["indices"], codebook_size, out["frame_mask"])
        return loss, {**metrics, "mel_loss": mel, "adv_loss": adv, "fm_loss": fm,
                      "gan_on": gan_on.astype(jnp.float32),
                      "codebook_usage": usage["usage"], "perplexity": usage["perplexity"]}

    def semantic_loss(model: CodecGAN, batch, out):
        feats, mask = teacher_features(model.teacher, batch["audio"], batch["length"], sc.layer)
        target, valid = teacher_targets(feats, mask, hop, teacher_frame_samples(teacher[0]),
                                        out["codes"].shape[1])
        return cosine_distance_loss(model.semantic_head(out["codes"]), target,
                                    valid & out["frame_mask"])

    def discriminator_loss(model: CodecGAN, batch, rng):
        del rng
        model.micro_steps[...] += 1
        real_out = model.disc(batch["audio"])
        fake_out = model.disc(model.fake[...])
        loss = lsgan_discriminator_loss(real_out, fake_out)
        real_score = jnp.mean(jnp.stack([jnp.mean(r) for r, _ in real_out]))
        fake_score = jnp.mean(jnp.stack([jnp.mean(f) for f, _ in fake_out]))
        return loss, {"disc_real": real_score, "disc_fake": fake_score}

    def eval_fn(model: CodecGAN, batch):
        audio, lengths = batch["audio"], batch["length"]
        out = model.codec(audio, lengths)
        usage = codebook_usage(out["indices"], codebook_size, out["frame_mask"])
        return {"mel_distance": mel_distance(out["audio"], audio, lengths),
                "mel_loss": mel_loss(out["audio"], audio, lengths),
                "si_sdr": jnp.mean(si_sdr(out["audio"], audio, lengths)),
                "codebook_usage": usage["usage"], "perplexity": usage["perplexity"]}

    return Task(
        name="codec",
        make_model=lambda rngs: CodecGAN(cfg, rngs=rngs, teacher=teacher),
        data=crop_data(cfg, crop_samples=crop, fields=DEVICE_FIELDS),
        losses={"generator": generator_loss, "discriminator": discriminator_loss},
        param_filters={"generator": GENERATOR, "discriminator": DISCRIMINATOR},
        eval_fn=eval_fn,
        **audio_throughput(),
    )


def report_after_training(cfg: CodecConfig, summary: dict) -> str:
    ev = summary.get("eval", {})
    ckpt = summary["checkpoint_dir"]
    lines = [f"codec: eval on {cfg.data.eval_split} crops: mel distance "
             f"{ev.get('mel_distance', float('nan')):.3f}, SI-SDR "
             f"{ev.get('si_sdr', float('nan')):.2f} dB, codebook usage "
             f"{ev.get('codebook_usage', float('nan')):.4f} (perplexity "
             f"{ev.get('perplexity', float('nan')):.1f})",
             f"checkpoints: {ckpt}",
             f"full eval: emotive codec eval --ckpt {ckpt} --data-dir {cfg.data.data_dir}",
             f"encode/decode: emotive codec encode IN.wav --ckpt {ckpt} --out codes.npy; "
             f"emotive codec decode codes.npy --ckpt {ckpt} --out OUT.wav",
             f"TensorBoard logs: {summary['tensorboard_dir']}",
             f"metrics (JSONL): {summary['metrics_file']}"]
    return "\n".join(lines)
