"""The toy LM experiment: a causal LM learns to reverse random token sequences.

It is the project's first task and smoke test of the whole core: the one
transformer, sharding rules, grain input, the trainer and checkpoints.
"""

from __future__ import annotations

import dataclasses

from emotive.configs.common import (LARGE_VOCAB_LOSS_CHUNK, MeshConfig, OptimConfig,
                                    TrainConfig, TransformerConfig, check_loss_chunk,
                                    llama_3_1_8b, llama_3_2_1b)
from emotive.errors import UserError


@dataclasses.dataclass(frozen=True)
class ReversalDataConfig:
    """Rows [BOS, a_1..a_n, SEP, a_n..a_1, EOS, PAD...]; loss on the reversed half."""

    num_symbols: int = 16  # payload alphabet; ids 0..3 are PAD, BOS, SEP, EOS
    min_len: int = 4
    max_len: int = 12
    num_train: int = 100_000  # distinct training examples (indexed, not stored)
    num_eval: int = 512

    @property
    def seq_len(self) -> int:
        return 2 * self.max_len + 3

    @property
    def vocab_size(self) -> int:
        return self.num_symbols + 4


@dataclasses.dataclass(frozen=True)
class ToyLMConfig:
    task: str = "toy_lm"
    model: TransformerConfig = TransformerConfig()
    data: ReversalDataConfig = ReversalDataConfig()
    optim: OptimConfig = OptimConfig()
    mesh: MeshConfig = MeshConfig()
    train: TrainConfig = TrainConfig()
    # Vocabulary ids whose logits the train loss makes at a time (0 = all at once): the fp32
    # logits [B, T, V] are never whole (emotive.train.losses.chunked_lm_loss).
    loss_chunk: int = 0

    def validate(self) -> None:
        if not 1 <= self.data.min_len <= self.data.max_len:
            raise UserError("data.min_len must be between 1 and data.max_len")
        check_loss_chunk(self.loss_chunk)


def tiny() -> ToyLMConfig:
    """Trains on 2 CPU cores in about a minute to near-perfect reversal."""
    return ToyLMConfig(
        model=TransformerConfig(num_layers=2, d_model=64, num_heads=4, num_kv_heads=2,
                                head_dim=16, mlp_dim=192),
        optim=OptimConfig(lr=3e-3, warmup_steps=50, weight_decay=0.0),
        train=TrainConfig(steps=600, batch_size=64, log_every=50, eval_every=200,
                          ckpt_every=200),
    )


def base() -> ToyLMConfig:
    return ToyLMConfig(
        model=TransformerConfig(num_layers=6, d_model=256, num_heads=8, num_kv_heads=4,
                                head_dim=32, mlp_dim=768),
        data=ReversalDataConfig(num_symbols=64, max_len=32),
        optim=OptimConfig(lr=1e-3, warmup_steps=200),
        train=TrainConfig(steps=5000, batch_size=128, eval_every=500, ckpt_every=500),
    )


def llasa_1b() -> ToyLMConfig:
    """Llama-3.2-1B / Llasa-1B shape (untied, vocabulary 193,800) on the same task.

    For scale-on-paper, MFU and multi-device runs; 2049-token rows like Llasa's 2048.
    """
    return ToyLMConfig(
        model=llama_3_2_1b(),
        data=ReversalDataConfig(num_symbols=193_796, max_len=1023),
        optim=OptimConfig(lr=5e-5, warmup_steps=1000, b2=0.95, weight_decay=0.01),
        mesh=MeshConfig(data=1, fsdp=-1),
        train=TrainConfig(steps=20_000, batch_size=256, eval_every=1000, ckpt_every=1000),
        loss_chunk=LARGE_VOCAB_LOSS_CHUNK,
    )


def llama_8b() -> ToyLMConfig:
    """Llama-3.1-8B shape with the Llasa vocabulary."""
    return dataclasses.replace(llasa_1b(), model=llama_3_1_8b())


PRESETS = {"tiny": tiny, "base": base, "1b": llasa_1b, "8b": llama_8b}
