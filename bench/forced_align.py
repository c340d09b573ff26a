"""Forced alignment against eSpeak's own timings: boundary error in ms of CTC alignment.

    python bench/forced_align.py --asr RUN_OR_BUNDLE --data-dir DATA_DIR [--split test]
                                 [--limit 200] [--hop 320] [--batch 8]
                                 [--out bench/results/forced_align.json]
    python bench/forced_align.py --random-preset tiny --data-dir DATA_DIR --limit 8

Aligns every clip of a built split (`emotive.infer.align.align_clips`, with the phoneme
recogniser `--asr`: a run or bundle trained with `model.targets=phonemes`; each clip
phonemised in its speaker's accent) and compares the phones it gives with the clip's eSpeak
`phones` (the corpus's phoneme events at the codec's rate, `--hop` samples a frame). The
boundary error is the absolute difference in ms between the two start times of a phoneme,
over the phonemes the two lists share (pauses and first phonemes left out; pairs found by
`paired_starts`); per clip the mean, then the mean and median over clips, and the mean over
all phonemes; beside them chance: the same phonemes with the clip shared out evenly. Clips whose phonemes differ from eSpeak's events are still measured on the
shared ones and counted. Failed clips are listed with their reasons, never dropped.

`--random-preset`: a random-initialised phoneme recogniser of that asr preset, to check the
script runs end to end; its figures mean nothing. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from emotive.configs.common import SAMPLE_RATE  # noqa: E402
from emotive.data.pipelines.ella import parse_phones, phone_frames  # noqa: E402
from emotive.data.pipelines.speech import split_speakers, whole_clip_batches  # noqa: E402
from emotive.data.speech.phoneme_targets import PhonemeTargets, speaker_voice  # noqa: E402
from emotive.infer.align import align_clips, paired_starts, phone_starts  # noqa: E402
from emotive.infer.asr import Recognizer  # noqa: E402


def make_recognizer(args) -> Recognizer:
    if args.asr:
        return Recognizer.load(args.asr)
    from flax import nnx

    from emotive import configs
    from emotive.models.asr import CtcRecognizer

    cfg = configs.load("asr", args.random_preset, ["model.targets=phonemes"])
    return Recognizer(cfg, CtcRecognizer(cfg.model, rngs=nnx.Rngs(0)))


def clips(args):
    """(id, audio float32 [T], text, voice, eSpeak phones JSON at the codec rate) per clip."""
    speakers = split_speakers(args.data_dir, args.dataset, args.split)
    done = 0
    batches = whole_clip_batches(args.data_dir, args.dataset, args.split,
                                 batch_size=args.batch)
    try:
        for batch in batches:
            for r in np.flatnonzero(batch["example_mask"]):
                length, speaker = int(batch["length"][r]), int(batch["speaker"][r])
                voice = speaker_voice(speakers[speaker] if speaker >= 0 else "")
                frames = -(-length // args.hop)
                yield (str(batch["id"][r]), batch["audio"][r, :length], str(batch["text"][r]),
                       voice, phone_frames(batch["phones"][r], args.hop, frames))
                done += 1
                if args.limit is not None and done >= args.limit:
                    return
    finally:
        batches.close()


def measure(args) -> dict:
    rec = make_recognizer(args)
    frame_ms = 1000.0 * args.hop / SAMPLE_RATE
    rows = list(clips(args))
    start = time.perf_counter()
    results = align_clips(rec, [r[1] for r in rows], [r[2] for r in rows],
                          [-(-len(r[1]) // args.hop) for r in rows],
                          voices=[r[3] for r in rows], hop=args.hop, targets=PhonemeTargets(),
                          batch_size=args.batch)
    seconds = time.perf_counter() - start
    per_clip, errors, shared, phonemes, exact, unreferenced = [], [], 0, 0, 0, 0
    even_errors = []  # chance: the reference's own phonemes, the clip shared out evenly
    for (_, _, _, _, reference), result in zip(rows, results):
        if result.failure:
            continue
        if not reference:
            unreferenced += 1
            continue
        starts_a, starts_r = paired_starts(result.phones, reference)
        names_a = [n for n, _ in phone_starts(result.phones)]
        exact += names_a == [n for n, _ in phone_starts(reference)]
        shared += starts_a.size
        phonemes += max(len(names_a) - 1, 0)
        if starts_a.size:
            clip_errors = np.abs(starts_a - starts_r) * frame_ms
            per_clip.append(float(clip_errors.mean()))
            errors.append(clip_errors)
        listed = parse_phones(reference)
        frames = sum(f for _, f in listed)
        share = np.diff(np.round(np.linspace(0, frames, len(listed) + 1)).astype(int))
        even = [[name, int(f)] for (name, _), f in zip(listed, share)]
        starts_e, starts_re = paired_starts(even, reference)
        if starts_e.size:
            even_errors.append(float(np.abs(starts_e - starts_re).mean() * frame_ms))
    figures = dict.fromkeys(("mean_boundary_error_ms", "median_boundary_error_ms",
                             "phoneme_mean_error_ms"))
    if per_clip:
        figures = {"mean_boundary_error_ms": float(np.mean(per_clip)),
                   "median_boundary_error_ms": float(np.median(per_clip)),
                   "phoneme_mean_error_ms": float(np.concatenate(errors).mean())}
    return {
        "asr": args.asr or f"random {args.random_preset} (figures mean nothing)",
        "data_dir": str(args.data_dir), "dataset": args.dataset, "split": args.split,
        "hop": args.hop, "frame_ms": frame_ms, "clips": len(rows),
        "aligned": sum(not r.failure for r in results),
        "failed": sum(bool(r.failure) for r in results),
        "without_reference": unreferenced, "measured": len(per_clip),
        "same_phonemes": int(exact), "phonemes_shared": shared / max(phonemes, 1), **figures,
        "even_split_mean_ms": float(np.mean(even_errors)) if even_errors else None,
        "align_seconds": seconds,
        "failures": [{"id": row[0], "reason": r.failure}
                     for row, r in zip(rows, results) if r.failure]}


def print_table(report: dict) -> None:
    def ms(v):
        return "-" if v is None else f"{v:.1f}"

    print(f"forced alignment by {report['asr']} on {report['dataset']}/{report['split']}")
    print("clips  aligned  failed  measured  same  shared  mean ms  median ms  per-phoneme ms")
    print(f"{report['clips']:5d}  {report['aligned']:7d}  {report['failed']:6d}  "
          f"{report['measured']:8d}  {report['same_phonemes']:4d}  "
          f"{report['phonemes_shared']:6.1%}  {ms(report['mean_boundary_error_ms']):>7}  "
          f"{ms(report['median_boundary_error_ms']):>9}  "
          f"{ms(report['phoneme_mean_error_ms']):>14}")
    print(f"chance (the reference's phonemes, the clip shared out evenly): "
          f"{ms(report.get('even_split_mean_ms'))} ms")
    for failure in report["failures"][:10]:
        print(f"  failed {failure['id']}: {failure['reason']}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--asr", help="phoneme recogniser: run dir, checkpoint or bundle")
    which.add_argument("--random-preset", help="random-initialised asr preset (smoke test)")
    parser.add_argument("--data-dir", required=True, help="TFDS data dir with phones")
    parser.add_argument("--dataset", default="emotive_speech")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=None, help="at most this many clips")
    parser.add_argument("--hop", type=int, default=320, help="codec samples per frame")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--out", default=str(ROOT / "bench/results/forced_align.json"))
    args = parser.parse_args(argv)
    report = measure(args)
    print_table(report)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
