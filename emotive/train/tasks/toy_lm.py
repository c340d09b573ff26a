"""The toy LM task: learn to reverse random token sequences, loss on the answer only.

Row layout (length 2 * max_len + 3):  BOS a_1 .. a_n SEP a_n .. a_1 EOS PAD ...
The model predicts token t+1 from tokens <= t; the loss mask covers the reversed
half and EOS, where a uniform guess costs log(num_symbols) nats per token.
"""

from __future__ import annotations

import grain
import jax.numpy as jnp
import numpy as np

from emotive.configs.toy_lm import ReversalDataConfig, ToyLMConfig
from emotive.models.lm import CausalLM
from emotive.models.transformer import train_flops
from emotive.data.pipelines.input import make_iterator
from emotive.train.losses import causal_lm_loss, masked_lm_loss
from emotive.train.task import DataSpec, Task

PAD, BOS, SEP, EOS = 0, 1, 2, 3
FIRST_SYMBOL = 4


def reversal_example(index: int, cfg: ReversalDataConfig, seed: int) -> dict:
    """Example `index` of the (deterministic, never stored) reversal dataset."""
    rng = np.random.default_rng([seed, index])
    n = int(rng.integers(cfg.min_len, cfg.max_len + 1))
    payload = rng.integers(FIRST_SYMBOL, FIRST_SYMBOL + cfg.num_symbols, size=n)
    row = np.concatenate([[BOS], payload, [SEP], payload[::-1], [EOS]])
    tokens = np.full(cfg.seq_len + 1, PAD, np.int32)
    tokens[:len(row)] = row
    # Target tokens[t + 1] is predicted at input position t; train on the answer and EOS.
    loss_mask = np.zeros(cfg.seq_len, np.float32)
    loss_mask[n + 1:2 * n + 2] = 1.0
    segment_ids = (np.arange(cfg.seq_len) < len(row) - 1).astype(np.int32)
    return {"inputs": tokens[:-1], "targets": tokens[1:], "loss_mask": loss_mask,
            "segment_ids": segment_ids}


def make_task(cfg: ToyLMConfig) -> Task:
    data = cfg.data
    seq_accuracy_eps = 1e-6

    def make_model(rngs):
        return CausalLM(cfg.model, data.vocab_size, rngs=rngs)

    def loss_fn(model, batch, rng):
        del rng
        loss, accuracy = causal_lm_loss(model, batch["inputs"], batch["targets"],
                                        batch["loss_mask"], chunk=cfg.loss_chunk,
                                        segment_ids=batch["segment_ids"])
        return loss, {"accuracy": accuracy}

    def eval_fn(model, batch):
        logits = model(batch["inputs"], segment_ids=batch["segment_ids"])
        loss, accuracy = masked_lm_loss(logits, batch["targets"], batch["loss_mask"])
        wrong = (jnp.argmax(logits, -1) != batch["targets"]) * batch["loss_mask"]
        exact = jnp.mean((wrong.sum(-1) < seq_accuracy_eps).astype(jnp.float32))
        return {"loss": loss, "accuracy": accuracy, "sequence_accuracy": exact}

    def iterator(split_seed, num, shuffle):
        def source_at(process_index, process_count):
            source = grain.MapDataset.range(num).map(
                lambda i: reversal_example(int(i), data, split_seed))
            return make_iterator(source, global_batch_size=cfg.train.batch_size,
                                 seed=cfg.train.seed, process_index=process_index,
                                 process_count=process_count, shuffle=shuffle,
                                 num_epochs=None if shuffle else 1)
        return source_at

    return Task(
        name="toy_lm",
        make_model=make_model,
        data=DataSpec(train=iterator(1, data.num_train, True),
                      eval=iterator(2, data.num_eval, False)),
        losses={"model": loss_fn},
        eval_fn=eval_fn,
        flops_per_step=train_flops(cfg.model, cfg.train.batch_size, data.seq_len,
                                   head_params=cfg.model.d_model * data.vocab_size),
        throughput_unit="tokens",
        count_units=lambda batch: int(np.asarray(batch["segment_ids"]).sum()),
    )


def uniform_loss(cfg: ToyLMConfig) -> float:
    """Cross-entropy of guessing uniformly over the payload alphabet (the baseline to beat)."""
    return float(np.log(cfg.data.num_symbols))



def report_after_training(cfg: ToyLMConfig, summary: dict) -> str:
    ev = summary.get("eval", summary.get("train", {}))
    return (f"toy LM: eval loss {ev.get('loss', float('nan')):.4f} nats/token against "
            f"{uniform_loss(cfg):.4f} for a uniform guess; token accuracy "
            f"{ev.get('accuracy', float('nan')):.3f}, whole-sequence accuracy "
            f"{ev.get('sequence_accuracy', float('nan')):.3f}.\n"
            f"checkpoints: {summary['checkpoint_dir']}\nTensorBoard logs: "
            f"{summary['tensorboard_dir']}\nmetrics (JSONL): {summary['metrics_file']}")
