"""CER/WER of a trained CTC recogniser on a held-out split, overall and per condition.

    report = evaluate(load_recognizer("runs/asr-base"), data_dir, "test", out_dir=DIR)

Every utterance of the split is transcribed whole (greedy CTC, or a `BeamDecoder`).
CER/WER are corpus-level over normalised text (emotive.metrics.recognition). Writes
report.json and transcripts.jsonl (every reference and hypothesis).
"""

from __future__ import annotations

import json
import pathlib

from emotive.codecs.chars import normalize_text
from emotive.evals.common import by_condition, clip_batches, corpus_rates, write_report
from emotive.infer.asr import Recognizer
from emotive.infer.ctc_decode import BeamDecoder


def evaluate(rec: Recognizer, data_dir, split: str = "test", *, dataset: str = "emotive_speech",
             batch_size: int = 16, limit: int | None = None, out_dir=None,
             decoder: BeamDecoder | None = None) -> dict:
    """Transcribes every utterance of `split` (greedy, or with `decoder`); returns (and writes
    to out_dir/report.json, with every transcript in out_dir/transcripts.jsonl) a report:

    {split, step, utterances, decoding, overall: {cer, wer, char_edits, chars, word_edits,
     words}, per_condition: {condition: the same}, normalisation, examples: first 10 pairs}.
    """
    records = []
    for batch, rows in clip_batches(data_dir, dataset, split, batch_size=batch_size,
                                    limit=limit, desc=f"asr {split}"):
        hyps = rec.transcribe(batch["audio"], batch["length"], decoder)
        records += [{"id": str(batch["id"][r]), "condition": str(batch["condition"][r]),
                     "text": str(batch["text"][r]), "hyp": hyps[r]} for r in rows]
    refs, hyps = [r["text"] for r in records], [r["hyp"] for r in records]
    per_condition = {c: {"utterances": int(rows.size),
                         **corpus_rates([refs[i] for i in rows], [hyps[i] for i in rows])}
                     for c, rows in by_condition([r["condition"] for r in records]).items()}
    report = {"split": split, "dataset": dataset, "step": rec.step, "utterances": len(records),
              "decoding": decoder.describe() if decoder is not None else {"method": "greedy"},
              "overall": corpus_rates(refs, hyps), "per_condition": per_condition,
              "normalisation": "emotive.codecs.chars.normalize_text on reference and hypothesis",
              "examples": [{"id": r["id"], "ref": normalize_text(r["text"]), "hyp": r["hyp"]}
                           for r in records[:10]]}
    if out_dir is not None:
        write_report(out_dir, report)
        with open(pathlib.Path(out_dir) / "transcripts.jsonl", "w") as f:
            for r in records:
                f.write(json.dumps({"id": r["id"], "condition": r["condition"],
                                    "ref": normalize_text(r["text"]), "hyp": r["hyp"]}) + "\n")
    return report


def format_report(report: dict) -> str:
    """A few readable lines: overall and per-condition CER and WER."""
    o = report["overall"]
    lines = [f"asr on {report['dataset']}/{report['split']} ({report['utterances']} utterances, "
             f"step {report['step']}): CER {100 * o['cer']:.2f}%  WER {100 * o['wer']:.2f}%"]
    for c, m in report["per_condition"].items():
        lines.append(f"  {c:<10} {m['utterances']:>5} utt  CER {100 * m['cer']:6.2f}%  "
                     f"WER {100 * m['wer']:6.2f}%")
    return "\n".join(lines)
