"""CER/WER (or PER) of a trained CTC recogniser on a held-out split, overall and per condition.

    report = evaluate(load_recognizer("runs/asr-base"), data_dir, "test", out_dir=DIR)

Every utterance of the split is transcribed whole (greedy CTC, or a `BeamDecoder`).
CER/WER are corpus-level over normalised text (emotive.metrics.recognition). A phoneme
model (`model.targets=phonemes`) is scored by PER instead: edit distance over phonemes
(word boundaries not counted), summed over the split and divided by the reference phonemes,
the reference being eSpeak's phonemes of the text in the speaker's accent for a corpus
speaker, else en-us (emotive.data.speech.phoneme_targets). Writes report.json and
transcripts.jsonl (every reference and hypothesis).
"""

from __future__ import annotations

import json
import pathlib

from emotive.codecs.chars import normalize_text
from emotive.data.pipelines.speech import split_speakers
from emotive.data.speech.phoneme_targets import PhonemeTargets, decode, phones, speaker_voice
from emotive.errors import UserError
from emotive.evals.common import by_condition, clip_batches, corpus_rates, write_report
from emotive.infer.asr import Recognizer
from emotive.infer.ctc_decode import BeamDecoder
from emotive.metrics.recognition import edit_distance, wrong_text_cer


def phoneme_rates(refs: list[str], hyps: list[str]) -> dict:
    """Corpus-level PER of phoneme strings (`phoneme_targets.decode` form) against references:
    {per, phone_edits, phones}; word boundaries are not counted."""
    edits = sum(edit_distance(phones(r), phones(h)) for r, h in zip(refs, hyps, strict=True))
    count = sum(len(phones(r)) for r in refs)
    return {"phone_edits": edits, "phones": count, "per": edits / max(count, 1)}


def _chance(refs: list[str], hyps: list[str], phonemes: bool) -> dict:
    """What the recogniser scores against the wrong texts: each hypothesis against another
    clip's (different) reference. A judge must score far better against the right ones."""
    if phonemes or len(set(refs)) < 2:
        return {}
    return {"wrong_text_cer": wrong_text_cer(refs, hyps),
            "protocol": "each hypothesis scored against another clip's different text (a "
                        "seeded derangement); corpus CER"}


def _speaker_name(batch: dict, row: int, speakers: tuple[str, ...]) -> str:
    """The name of a batch row's speaker ("" when the split names none)."""
    index = int(batch["speaker"][row]) if "speaker" in batch else -1
    return speakers[index] if 0 <= index < len(speakers) else ""


def evaluate(rec: Recognizer, data_dir, split: str = "test", *, dataset: str = "emotive_speech",
             batch_size: int = 16, limit: int | None = None, out_dir=None,
             decoder: BeamDecoder | None = None) -> dict:
    """Transcribes every utterance of `split` (greedy, or with `decoder`); returns (and writes
    to out_dir/report.json, with every transcript in out_dir/transcripts.jsonl) a report:

    {split, step, utterances, decoding, overall: {cer, wer, char_edits, chars, word_edits,
     words}, per_condition: {condition: the same}, normalisation, examples: first 10 pairs};
    for a phoneme model overall and per_condition hold {per, phone_edits, phones}.
    """
    if rec.phonemes and decoder is not None:
        raise UserError("a phoneme recogniser is scored greedily; drop --beam and the "
                        "language models")
    speakers = split_speakers(data_dir, dataset, split) if rec.phonemes else ()
    records = []
    for batch, rows in clip_batches(data_dir, dataset, split, batch_size=batch_size,
                                    limit=limit, desc=f"asr {split}"):
        hyps = rec.transcribe(batch["audio"], batch["length"], decoder)
        records += [{"id": str(batch["id"][r]), "condition": str(batch["condition"][r]),
                     "text": str(batch["text"][r]), "hyp": hyps[r],
                     "speaker": _speaker_name(batch, r, speakers)}
                    for r in rows]
    hyps = [r["hyp"] for r in records]
    if rec.phonemes:
        targets = PhonemeTargets()
        refs = [decode(ids) for ids in targets.encode_many(
            [r["text"] for r in records], [speaker_voice(r["speaker"]) for r in records])]
        shown, rates = refs, phoneme_rates
        normalisation = ("references: eSpeak NG phonemes of the text (the corpus speaker's "
                         "accent, else en-us), no stress marks; PER over phonemes")
    else:
        refs = [r["text"] for r in records]
        shown, rates = [normalize_text(t) for t in refs], corpus_rates
        normalisation = "emotive.codecs.chars.normalize_text on reference and hypothesis"
    per_condition = {c: {"utterances": int(rows.size),
                         **rates([refs[i] for i in rows], [hyps[i] for i in rows])}
                     for c, rows in by_condition([r["condition"] for r in records]).items()}
    report = {"split": split, "dataset": dataset, "step": rec.step, "utterances": len(records),
              "decoding": decoder.describe() if decoder is not None else {"method": "greedy"},
              "overall": rates(refs, hyps), "per_condition": per_condition,
              "chance": _chance(refs, hyps, rec.phonemes),
              "normalisation": normalisation,
              "examples": [{"id": r["id"], "ref": ref, "hyp": r["hyp"]}
                           for r, ref in zip(records[:10], shown)]}
    if out_dir is not None:
        write_report(out_dir, report)
        with open(pathlib.Path(out_dir) / "transcripts.jsonl", "w") as f:
            for r, ref in zip(records, shown):
                f.write(json.dumps({"id": r["id"], "condition": r["condition"],
                                    "ref": ref, "hyp": r["hyp"]}) + "\n")
    return report


def format_report(report: dict) -> str:
    """A few readable lines: overall and per-condition CER and WER (or PER)."""
    o = report["overall"]
    if "per" in o:
        lines = [f"asr on {report['dataset']}/{report['split']} ({report['utterances']} "
                 f"utterances, step {report['step']}): PER {100 * o['per']:.2f}%"]
        lines += [f"  {c:<10} {m['utterances']:>5} utt  PER {100 * m['per']:6.2f}%"
                  for c, m in report["per_condition"].items()]
        return "\n".join(lines)
    lines = [f"asr on {report['dataset']}/{report['split']} ({report['utterances']} utterances, "
             f"step {report['step']}): CER {100 * o['cer']:.2f}%  WER {100 * o['wer']:.2f}%"]
    chance = report.get("chance", {}).get("wrong_text_cer")
    if chance is not None:
        lines.append(f"  against other clips' texts (chance): CER {100 * chance:.2f}%")
    for c, m in report["per_condition"].items():
        lines.append(f"  {c:<10} {m['utterances']:>5} utt  CER {100 * m['cer']:6.2f}%  "
                     f"WER {100 * m['wer']:6.2f}%")
    return "\n".join(lines)
