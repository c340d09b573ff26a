"""Input pipeline throughput (examples/s) against what the tiny training presets consume.

Measures, on a built `emotive_speech` split (the tiny corpus unless `--data` is given):
- raw random-access reads of records from the TFDS array_record source, one thread;
- codec-style batches: 2 s random crops with masks, batch 16 (`crop_batches`);
- variable-length batches padded to length buckets, batch 16 (`bucket_batches`), with the
  share of padded samples that hold audio;
- with `--augment`: the recognisers' training augmentations on crops, clips/s on one core for
  each kind alone and all together (`augment_crop`), and the crop pipeline with
  `augment.preset=all`.

The consumer it is compared with is an assumption, stated in the output: a tiny codec step
eats 16 examples and runs at about 5 steps/s on CPU, so about 80 examples/s. The pipeline
should outpace it by at least 10x so that input never limits a run.

    python bench/data.py                 # builds the tiny corpus into a temp dir (~30 s)
    python bench/data.py --data DATA_DIR # a dir where `emotive data build emotive_speech` wrote
    python bench/data.py --augment       # plus the augmentation rows

Results are printed as a table and written to `--out` (bench/results/data.json).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import pathlib
import platform
import shutil
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import numpy as np  # noqa: E402

from emotive.configs.augment import AUGMENTATIONS, AugmentConfig  # noqa: E402
from emotive.configs.common import SAMPLE_RATE  # noqa: E402
from emotive.data.pipelines.augment import augment_crop  # noqa: E402
from emotive.data.pipelines import speech as pipeline  # noqa: E402
from emotive.data.builders.tfds_io import open_split  # noqa: E402

ASSUMED_BATCH = 16
ASSUMED_STEPS_PER_S = 5.0
SR = SAMPLE_RATE


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None,
                   help="TFDS data dir holding emotive_speech (default: build the tiny corpus)")
    p.add_argument("--split", default="train", help="split to read (default: train)")
    p.add_argument("--batch", type=int, default=16, help="global batch size (default: 16)")
    p.add_argument("--crop-seconds", type=float, default=2.0, help="crop length (default: 2)")
    p.add_argument("--buckets", type=float, nargs="+", default=[1, 2, 3, 4, 6, 8],
                   help="bucket lengths in seconds (default: 1 2 3 4 6 8)")
    p.add_argument("--seconds", type=float, default=5.0, help="time per measurement (default 5)")
    p.add_argument("--prefetch-threads", type=int, default=0,
                   help="make_iterator's extra prefetch thread buffer (default 0)")
    p.add_argument("--augment", action="store_true",
                   help="also time the training augmentations (each kind, all, in crops)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "data.json"),
                   help="JSON file to write")
    return p.parse_args(argv)


def ensure_data(data_dir: str | None) -> str:
    """Returns a data dir holding emotive_speech, building the tiny corpus into a temporary
    folder (removed at exit) when none is given."""
    if data_dir:
        return data_dir
    from emotive.data import builders
    from emotive.data.speech import synth

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="bench_data_"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    start = time.perf_counter()
    synth.build_corpus(tmp / "corpus", preset="tiny", progress=False)
    builders.build("emotive_speech", tmp / "corpus", tmp / "tfds", progress=False, verbose=False)
    print(f"built the tiny corpus into {tmp} in {time.perf_counter() - start:.0f} s")
    return str(tmp / "tfds")


def time_iterator(it, batch: int, seconds: float) -> dict:
    """Examples/s of `it` over about `seconds`, after two warm-up batches."""
    for _ in range(2):
        next(it)
    n, valid, padded, shapes = 0, 0, 0, set()
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        b = next(it)
        n += batch
        valid += int(b["length"].sum())
        padded += b["audio"].size
        shapes.add(b["audio"].shape)
    elapsed = time.perf_counter() - start
    it.close()
    return {"examples_per_s": n / elapsed, "batches": n // batch, "seconds": elapsed,
            "audio_fraction": valid / padded, "shapes": sorted(shapes)}


def time_reads(source, seconds: float) -> dict:
    """Random-access reads/s of whole records, in this thread."""
    order = np.random.default_rng(0).permutation(len(source))
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        source[int(order[n % order.size])]
        n += 1
    elapsed = time.perf_counter() - start
    return {"examples_per_s": n / elapsed, "batches": 0, "seconds": elapsed,
            "audio_fraction": 1.0, "shapes": []}


def time_augment(source, cfg: AugmentConfig, crop: int, seconds: float) -> dict:
    """Augmented crops/s (`augment_crop` on random records) in this thread: one core."""
    order = np.random.default_rng(0).permutation(len(source))
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        audio = np.asarray(source[int(order[n % order.size])]["audio"])
        augment_crop(audio, crop, cfg, np.random.default_rng(n))
        n += 1
    elapsed = time.perf_counter() - start
    return {"examples_per_s": n / elapsed, "batches": 0, "seconds": elapsed,
            "audio_fraction": 1.0, "shapes": []}


def augment_results(split, crop: int, common: dict, args) -> dict:
    """The --augment rows: each kind always on, all always on (one core each), and the crop
    pipeline with augment.preset=all."""
    label = f"{args.crop_seconds:g} s crops"
    per_kind = max(1.0, args.seconds / 4)
    rows = {f"augment {kind}, {label} (1 core)": time_augment(
        split.source, AugmentConfig(**{f"{kind}_prob": 1.0}), crop, per_kind)
        for kind in AUGMENTATIONS}
    every = AugmentConfig(**{f"{kind}_prob": 1.0 for kind in AUGMENTATIONS})
    rows[f"augment all 7, {label} (1 core)"] = time_augment(split.source, every, crop,
                                                            args.seconds)
    rows[f"crops {args.crop_seconds:g} s, batch {args.batch}, preset=all"] = time_iterator(
        pipeline.crop_batches(split.source, crop_samples=crop,
                              augment=AugmentConfig(preset="all"), **common),
        args.batch, args.seconds)
    return rows


def main(argv=None) -> int:
    args = parse_args(argv)
    data_dir = ensure_data(args.data)
    split = open_split(data_dir, "emotive_speech", args.split)
    crop = int(args.crop_seconds * SR)
    buckets = [int(s * SR) for s in args.buckets]
    common = dict(global_batch_size=args.batch, seed=0, speakers=split.speakers,
                  prefetch_threads=args.prefetch_threads)
    results = {
        "random reads (1 thread)": time_reads(split.source, args.seconds),
        f"crops {args.crop_seconds:g} s, batch {args.batch}": time_iterator(
            pipeline.crop_batches(split.source, crop_samples=crop, **common),
            args.batch, args.seconds),
        f"buckets {'/'.join(f'{s:g}' for s in args.buckets)} s, batch {args.batch}":
            time_iterator(pipeline.bucket_batches(split.source, split.num_samples,
                                                  buckets=buckets, **common),
                          args.batch, args.seconds),
    }
    if args.augment:
        results.update(augment_results(split, crop, common, args))
    consumption = ASSUMED_BATCH * ASSUMED_STEPS_PER_S
    print(f"\n{len(split.source)} records in {data_dir} ({args.split}), "
          f"mean {split.num_samples.mean() / SR:.2f} s; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"assumed consumption: tiny codec step, {ASSUMED_BATCH} examples x "
          f"{ASSUMED_STEPS_PER_S:g} steps/s on CPU = {consumption:.0f} examples/s\n")
    print(f"{'pipeline':<44} {'examples/s':>11} {'x need':>7} {'audio %':>8}  shapes")
    for name, r in results.items():
        r["ratio_to_consumption"] = r["examples_per_s"] / consumption
        shapes = ", ".join("x".join(map(str, s)) for s in r["shapes"])
        print(f"{name:<44} {r['examples_per_s']:>11.0f} {r['ratio_to_consumption']:>6.1f}x "
              f"{100 * r['audio_fraction']:>7.1f}%  {shapes}")
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "data_dir": data_dir, "split": args.split, "records": len(split.source),
        "cpus": os.cpu_count(), "load_average": os.getloadavg()[0],
        "machine": platform.processor() or platform.machine(),
        "assumed_consumption_examples_per_s": consumption,
        "assumption": f"tiny codec step: {ASSUMED_BATCH} examples at {ASSUMED_STEPS_PER_S:g} "
                      "steps/s on CPU",
        "results": {k: {**v, "shapes": [list(s) for s in v["shapes"]]}
                    for k, v in results.items()},
    }, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
