"""EER of a trained speaker encoder on held-out speakers, overall and per condition.

    report = evaluate(load_speaker_encoder("runs/speaker-base"), data_dir, "test", out_dir=DIR)

Protocol: every utterance of the split is embedded whole; every unordered pair of different
utterances is a trial scored by cosine similarity; EER and its threshold come from
emotive.metrics.recognition.eer. Per condition, both sides of a trial are in that condition;
"clean_vs" pairs a clean utterance with one in the other condition (enrolment clean, test
degraded), the usual way a verifier meets far-field or shouted speech.
"""

from __future__ import annotations

import pathlib

import numpy as np

from emotive.data.pipelines.speech import split_speakers
from emotive.errors import UserError
from emotive.evals.common import by_condition, clip_batches, write_report
from emotive.infer.speaker import SpeakerEmbedder
from emotive.metrics.recognition import cosine_trials, eer


def _eer_entry(scores, same) -> dict | None:
    if not same.any() or same.all():
        return None  # one speaker only, or no pairs: no EER
    rate, threshold = eer(scores, same)
    return {"eer": rate, "threshold": threshold, "trials": int(same.size),
            "same_trials": int(same.sum())}


def _within(emb, speakers, subset=None) -> dict | None:
    scores, same = cosine_trials(emb, speakers, subset)
    entry = _eer_entry(scores, same)
    if entry is not None:
        entry.update(mean_same_cosine=float(scores[same].mean()),
                     mean_different_cosine=float(scores[~same].mean()))
    return entry


def _across(emb, speakers, rows_a, rows_b) -> dict | None:
    """Trials pairing an utterance of rows_a with one of rows_b."""
    emb = emb / np.maximum(np.linalg.norm(emb, axis=-1, keepdims=True), 1e-12)
    if not rows_a.size or not rows_b.size:
        return None
    scores = (emb[rows_a] @ emb[rows_b].T).reshape(-1)
    same = (speakers[rows_a][:, None] == speakers[rows_b][None, :]).reshape(-1)
    return _eer_entry(scores, same)


def evaluate(enc: SpeakerEmbedder, data_dir, split: str = "test", *,
             dataset: str = "emotive_speech", batch_size: int = 16, limit: int | None = None,
             out_dir=None) -> dict:
    """Embeds every utterance of `split` and scores all trial pairs; returns (and writes to
    out_dir/report.json, with the embeddings in out_dir/embeddings.npz) a report:

    {split, step, utterances, speakers, overall: {eer, threshold, trials, same_trials,
     mean_same_cosine, mean_different_cosine}, per_condition: {condition: the same},
     clean_vs: {condition: {eer, threshold, trials, same_trials}}}.
    """
    names = split_speakers(data_dir, dataset, split)
    embs, speakers, conditions, ids = [], [], [], []
    for batch, rows in clip_batches(data_dir, dataset, split, batch_size=batch_size,
                                    limit=limit, desc=f"speaker {split}"):
        embs.append(enc.embed(batch["audio"], batch["length"])[rows])
        speakers += [names[i] if i >= 0 else "" for i in batch["speaker"][rows]]
        conditions += [c or "unknown" for c in batch["condition"][rows]]
        ids += list(batch["id"][rows])
    speakers, conditions = np.array(speakers), np.array(conditions)
    if len(set(speakers)) < 2:
        raise UserError(f"{dataset}/{split} has {len(set(speakers))} speaker(s); an EER needs "
                        "at least two (pick a split with several held-out speakers)")
    emb = np.concatenate(embs).astype(np.float32)
    groups = by_condition(conditions)
    per_condition = {c: _within(emb, speakers, conditions == c) for c in sorted(groups)}
    clean = groups.get("clean", np.zeros(0, int))
    clean_vs = {c: _across(emb, speakers, clean, rows) for c, rows in sorted(groups.items())
                if c != "clean"}
    report = {"split": split, "dataset": dataset, "step": enc.step, "utterances": len(ids),
              "speakers": sorted(set(speakers.tolist())),
              "overall": _within(emb, speakers),
              "per_condition": {c: v for c, v in per_condition.items() if v is not None},
              "clean_vs": {c: v for c, v in clean_vs.items() if v is not None},
              "protocol": "cosine of whole-utterance embeddings, all unordered pairs; accept "
                          "score >= threshold"}
    if out_dir is not None:
        write_report(out_dir, report)
        np.savez(pathlib.Path(out_dir) / "embeddings.npz", embedding=emb, speaker=speakers,
                 condition=conditions, id=np.array(ids, dtype=str))
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
