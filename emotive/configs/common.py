"""Config sections shared by every experiment: model core, optimiser, mesh, training loop."""

from __future__ import annotations

import dataclasses
import typing
from typing import Literal

from emotive.errors import UserError

SAMPLE_RATE = 16000  # Hz, every audio model and corpus
# The attention kernel (emotive.models.transformer.dot_product_attention): "einsum" is the
# reference; "fused" is jax.nn.dot_product_attention with jax's choice of implementation
# (XLA's in jax 0.10); "cudnn" demands cuDNN flash attention (NVIDIA GPU, bf16 compute).
AttentionKernel = Literal["einsum", "fused", "cudnn"]
ATTENTION_KERNELS = typing.get_args(AttentionKernel)
CUDNN_MAX_HEAD_DIM = 256  # on Hopper and later (128 before)


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """The one transformer. Every model family composes it through these fields."""

    num_layers: int = 2
    d_model: int = 64
    num_heads: int = 4
    num_kv_heads: int = 4  # < num_heads gives grouped-query attention
    head_dim: int = 16
    mlp_dim: int = 256
    mlp_type: Literal["swiglu", "gelu"] = "swiglu"
    norm_type: Literal["rms", "layer"] = "rms"
    norm_eps: float = 1e-5
    # "pre": h = h + f(norm(h)) (Llama, stable-layer-norm wav2vec2);
    # "post": h = norm(h + f(h)) (original transformer, base wav2vec2).
    norm_position: Literal["pre", "post"] = "pre"
    final_norm: bool = True
    use_bias: bool = False  # biases on attention and MLP projections (wav2vec2 has them)
    causal: bool = True
    position: Literal["rope", "none"] = "rope"
    rope_theta: float = 10000.0
    # Llama-3 rotary frequency scaling; factor 0 disables it.
    rope_scaling_factor: float = 0.0
    rope_low_freq_factor: float = 1.0
    rope_high_freq_factor: float = 4.0
    rope_original_max_len: int = 8192
    cross_attention: bool = False  # adds a cross-attention sublayer to every block
    cond_dim: int = 0  # > 0 adds adaptive-norm (adaLN-Zero) conditioning on a vector
    scan_layers: bool = False
    remat: Literal["none", "full", "dots"] = "none"
    attention: AttentionKernel = "einsum"
    dtype: Literal["float32", "bfloat16"] = "float32"  # compute dtype
    param_dtype: Literal["float32", "bfloat16"] = "float32"  # master weights

    def validate(self) -> None:
        if self.num_heads % self.num_kv_heads:
            raise UserError(f"model.num_heads={self.num_heads} must be a multiple of "
                            f"model.num_kv_heads={self.num_kv_heads}")
        if self.position == "rope" and self.head_dim % 2:
            raise UserError(f"model.head_dim={self.head_dim} must be even for rotary embeddings")
        for name in ("num_layers", "d_model", "num_heads", "num_kv_heads", "head_dim", "mlp_dim"):
            if getattr(self, name) <= 0:
                raise UserError(f"model.{name} must be positive, got {getattr(self, name)}")
        if self.attention not in ATTENTION_KERNELS:  # --set checks it; a JSON config may not
            raise UserError(f"model.attention must be one of {', '.join(ATTENTION_KERNELS)}, "
                            f"got {self.attention!r}")
        if self.attention == "cudnn" and (self.dtype != "bfloat16" or self.head_dim % 8
                                          or self.head_dim > CUDNN_MAX_HEAD_DIM):
            raise UserError(f"model.attention=cudnn needs model.dtype=bfloat16 and a head_dim "
                            f"that is a multiple of 8 up to {CUDNN_MAX_HEAD_DIM}; got "
                            f"{self.dtype}, {self.head_dim} (or use model.attention=fused)")


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warm-up then cosine decay, global-norm clipping, accumulation."""

    lr: float = 3e-4
    min_lr_ratio: float = 0.1  # the cosine ends at lr * min_lr_ratio
    warmup_steps: int = 100
    b1: float = 0.9
    b2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.01
    clip_norm: float = 1.0  # 0 disables clipping
    grad_accum: int = 1  # micro-batches per step; the global batch is split evenly

    def validate(self) -> None:
        if self.lr <= 0:
            raise UserError(f"optim.lr must be positive, got {self.lr}")
        if self.grad_accum < 1:
            raise UserError(f"optim.grad_accum must be >= 1, got {self.grad_accum}")


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    """Device mesh sizes; -1 on one axis takes all remaining devices."""

    data: int = -1
    fsdp: int = 1
    tensor: int = 1


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The training loop: length, batch, logging, eval, checkpoints, profiling."""

    steps: int = 1000
    batch_size: int = 32  # global batch, across all processes
    seed: int = 0
    log_every: int = 20
    eval_every: int = 200  # 0 disables periodic eval
    eval_batches: int = 4
    ckpt_every: int = 200  # 0 disables checkpoints
    keep_ckpts: int = 3
    async_ckpt: bool = True
    profile_start: int = -1  # >= 0 traces steps [profile_start, profile_start + profile_steps)
    profile_steps: int = 3
    peak_tflops: float = 0.0  # per-device peak for MFU; 0 = look up or measure

    def validate(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise UserError("train.steps and train.batch_size must be >= 1")


# Loss chunk of the Llasa-vocabulary presets: a 2048-position row's fp32 logits over 16,384
# ids take 128 MiB, against 1.5 GiB over all 193,920 (`emotive scale tts --preset 1b`:
# 8.75 GiB of temporaries a device without chunks, 6.11 GiB with them).
LARGE_VOCAB_LOSS_CHUNK = 16384


def check_loss_chunk(loss_chunk: int) -> None:
    """An LM experiment's `loss_chunk`: vocabulary ids per chunk of the loss's logits, 0 =
    the whole vocabulary at once."""
    if loss_chunk < 0:
        raise UserError(f"loss_chunk must be >= 0 (0 = the whole vocabulary), got {loss_chunk}")


def llama_3_2_1b(**overrides) -> TransformerConfig:
    """Llama-3.2-1B's transformer (Llasa-1B): 16 x 2048, GQA 32/8, rope 500k with Llama-3
    scaling 32, set up to train at scale (scanned layers, remat of dots, bf16 compute)."""
    return dataclasses.replace(TransformerConfig(
        num_layers=16, d_model=2048, num_heads=32, num_kv_heads=8, head_dim=64, mlp_dim=8192,
        rope_theta=500000.0, rope_scaling_factor=32.0, scan_layers=True, remat="dots",
        dtype="bfloat16"), **overrides)


def llama_3_1_8b(**overrides) -> TransformerConfig:
    """Llama-3.1-8B's transformer (Llasa-8B): 32 x 4096, GQA 32/8, MLP 14336, scaling 8."""
    return llama_3_2_1b(num_layers=32, d_model=4096, num_heads=32, num_kv_heads=8,
                        head_dim=128, mlp_dim=14336, rope_scaling_factor=8.0, **overrides)
