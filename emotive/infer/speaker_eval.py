"""The trained speaker encoder: batched, jitted embeddings, and EER on held-out speakers.

    enc = load_speaker_encoder("runs/speaker-base")        # a run dir, checkpoints/ or step
    emb_BxD = enc.embed(audio_BxT, lengths_B)              # unit-length embeddings (numpy)
    report = evaluate(enc, data_dir, "test", out_dir=...)  # JSON report, see `evaluate`

Protocol: every utterance of the split is embedded whole; every unordered pair of different
utterances is a trial scored by cosine similarity; EER and its threshold come from
emotive.metrics.recognition.eer. Per condition, both sides of a trial are in that condition;
"clean_vs" pairs a clean utterance with one in the other condition (enrolment clean, test
degraded), the usual way a verifier meets far-field or shouted speech.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from emotive.errors import UserError
from emotive.infer.asr_eval import read_split, utterance_batches
from emotive.infer.loading import load_trained, run_split_eval
from emotive.metrics.recognition import cosine_trials, eer


# The graph definition is static: encoders of one architecture share compiled programs.
@functools.partial(jax.jit, static_argnums=0)
def _embed(graphdef, state, audio_BxT, lengths_B):
    return nnx.merge(graphdef, state)(audio_BxT, jnp.maximum(lengths_B, 1))["embedding"]


@dataclasses.dataclass
class SpeakerEmbedder:
    """A loaded speaker encoder with a jitted embedding function."""

    cfg: Any
    model: nnx.Module
    step: int
    step_dir: Any = None

    def __post_init__(self):
        self._graphdef, self._state = nnx.split(self.model)

    @property
    def dim(self) -> int:
        return self.cfg.model.embed_dim

    def embed(self, audio_BxT, lengths_B=None) -> np.ndarray:
        """Unit-length embeddings float32 [B, D] of float audio [B, T] at 16 kHz with valid
        lengths [B] (default: whole rows)."""
        audio_BxT = np.asarray(audio_BxT, np.float32)
        if lengths_B is None:
            lengths_B = np.full(audio_BxT.shape[0], audio_BxT.shape[1], np.int32)
        return np.asarray(_embed(self._graphdef, self._state, audio_BxT,
                                 np.asarray(lengths_B, np.int32)))


def load_speaker_encoder(ckpt) -> SpeakerEmbedder:
    """The encoder of an `emotive train speaker` run (run dir, checkpoints/ or a step dir)."""
    trained = load_trained(ckpt, task="speaker")
    return SpeakerEmbedder(trained.cfg, trained.model, trained.step, trained.step_dir)


def _eer_entry(emb, speakers, subset=None) -> dict | None:
    scores, same = cosine_trials(emb, speakers, subset)
    if not same.any() or same.all():
        return None  # one speaker only, or no pairs: no EER
    rate, threshold = eer(scores, same)
    return {"eer": rate, "threshold": threshold, "trials": int(same.size),
            "same_trials": int(same.sum()), "mean_same_cosine": float(scores[same].mean()),
            "mean_different_cosine": float(scores[~same].mean())}


def _cross_entry(emb, speakers, conditions, a: str, b: str) -> dict | None:
    """Trials pairing an utterance in condition a with one in condition b."""
    emb = emb / np.maximum(np.linalg.norm(emb, axis=-1, keepdims=True), 1e-12)
    ia, ib = np.flatnonzero(conditions == a), np.flatnonzero(conditions == b)
    if not ia.size or not ib.size:
        return None
    scores = (emb[ia] @ emb[ib].T).reshape(-1)
    same = (speakers[ia][:, None] == speakers[ib][None, :]).reshape(-1)
    if not same.any() or same.all():
        return None
    rate, threshold = eer(scores, same)
    return {"eer": rate, "threshold": threshold, "trials": int(same.size),
            "same_trials": int(same.sum())}


def evaluate(enc: SpeakerEmbedder, data_dir, split: str = "test", *,
             dataset: str = "emotive_speech", batch_size: int = 16, limit: int | None = None,
             out_dir=None) -> dict:
    """Embeds every utterance of `split` and scores all trial pairs; returns (and writes to
    out_dir/report.json, with the embeddings in out_dir/embeddings.npz) a report:

    {split, step, utterances, speakers, overall: {eer, threshold, trials, same_trials,
     mean_same_cosine, mean_different_cosine}, per_condition: {condition: the same},
     clean_vs: {condition: {eer, threshold, trials, same_trials}}}.
    """
    records = read_split(data_dir, split, dataset=dataset, limit=limit)
    speakers = np.array([r["speaker"] for r in records])
    if len(set(speakers)) < 2:
        raise UserError(f"{dataset}/{split} has {len(set(speakers))} speaker(s); an EER needs "
                        "at least two (pick a split with several held-out speakers)")
    emb = np.zeros((len(records), enc.dim), np.float32)
    for idx, audio, lengths in utterance_batches([r["audio"] for r in records], batch_size):
        emb[idx] = enc.embed(audio, lengths)[:len(idx)]
    conditions = np.array([r["condition"] or "unknown" for r in records])
    per_condition = {c: _eer_entry(emb, speakers, conditions == c)
                     for c in sorted(set(conditions))}
    clean_vs = {c: _cross_entry(emb, speakers, conditions, "clean", c)
                for c in sorted(set(conditions)) if c != "clean"}
    report = {"split": split, "dataset": dataset, "step": enc.step, "utterances": len(records),
              "speakers": sorted(set(speakers.tolist())),
              "overall": _eer_entry(emb, speakers),
              "per_condition": {c: v for c, v in per_condition.items() if v is not None},
              "clean_vs": {c: v for c, v in clean_vs.items() if v is not None},
              "protocol": "cosine of whole-utterance embeddings, all unordered pairs; accept "
                          "score >= threshold"}
    if out_dir is not None:
        out = pathlib.Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        np.savez(out / "embeddings.npz", embedding=emb, speaker=speakers,
                 condition=conditions, id=np.array([r["id"] for r in records]))
    return report


def format_report(report: dict) -> str:
    """A few readable lines: overall, per-condition and clean-vs-condition EER."""
    o = report["overall"]
    lines = [f"speaker on {report['dataset']}/{report['split']} ({report['utterances']} "
             f"utterances, {len(report['speakers'])} speakers, step {report['step']}): EER "
             f"{100 * o['eer']:.2f}% at cosine {o['threshold']:.3f} ({o['trials']} trials)"]
    for c, m in report["per_condition"].items():
        lines.append(f"  {c:<10} EER {100 * m['eer']:6.2f}%  ({m['trials']} trials)")
    for c, m in report["clean_vs"].items():
        lines.append(f"  clean vs {c:<10} EER {100 * m['eer']:6.2f}%  ({m['trials']} trials)")
    return "\n".join(lines)


def run_eval(kind: str, args) -> int:
    """`emotive eval speaker`: load, embed the split, print and write the report."""
    return run_split_eval(kind, args, load_speaker_encoder(args.ckpt), evaluate, format_report)
