"""Classifier speed: real-time factor of each recogniser (SER, student, speaker, ASR).

    python bench/classifiers.py [--models ser,student,speaker,asr] [--preset base]
                                [--seconds 4] [--batch 1,16] [--threads 1]
                                [--out bench/results/classifiers.json]

Each model is built from its experiment's preset with random weights (speed does not
depend on the values) and its jitted forward pass is timed on `--seconds`-long clips of
noise, after one warm-up call per shape (compile time reported separately). RTF = compute
seconds / audio seconds; "x real time" is its inverse. `--threads 1` pins the process to one
core and XLA to one thread before jax starts, for the "on one core" figures; 0 leaves both
alone. Wall time is the median of `--repeats` calls; on a shared machine the process CPU
time per call (also reported) is the steadier number. GFLOP/aud-s is XLA's own FLOP count
of the compiled forward pass per second of audio, and "ceiling xRT" is the speed the model
would reach if every one of those FLOPs ran at the rate of a dense fp32 matmul measured in
the same process: an upper bound no implementation of that architecture can pass on this
core. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def pin_threads(threads: int) -> None:
    """One core and single-threaded XLA; must run before jax is imported."""
    if threads <= 0:
        return
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:threads]))
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'}"
                               f" intra_op_parallelism_threads={threads}").strip()


def builders():
    """name -> (experiment, build(cfg) -> module, forward(module, audio, lengths) -> array)."""
    from emotive.models.asr import CtcRecognizer
    from emotive.models.ser import SpeechEmotionModel
    from emotive.models.speaker import SpeakerEncoder
    from emotive.models.wav2small import Wav2Small

    return {
        "ser": ("ser", lambda cfg, rngs: SpeechEmotionModel(cfg.model, rngs),
                lambda m, a, n: m(a, n)["adv"]),
        "student": ("student", lambda cfg, rngs: Wav2Small(cfg.model, rngs),
                    lambda m, a, n: m(a, n)),
        "speaker": ("speaker", lambda cfg, rngs: SpeakerEncoder(cfg.model, rngs=rngs),
                    lambda m, a, n: m(a, n)["embedding"]),
        "asr": ("asr", lambda cfg, rngs: CtcRecognizer(cfg.model, rngs=rngs),
                lambda m, a, n: m(a, n)["logits"]),
    }


def bench_model(name: str, preset: str, seconds: float, batches, repeats: int) -> list[dict]:
    import jax
    import numpy as np
    from flax import nnx

    from emotive import configs
    from emotive.configs.common import SAMPLE_RATE

    experiment, build, forward = builders()[name]
    cfg = configs.load(experiment, preset)
    model = build(cfg, nnx.Rngs(0))
    model.eval()
    graphdef, state = nnx.split(model)
    params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state.filter(nnx.Param)))
    fn = jax.jit(lambda s, a, n: forward(nnx.merge(graphdef, s), a, n))
    rng = np.random.default_rng(0)
    rows = []
    for b in batches:
        audio = (0.1 * rng.standard_normal((b, int(seconds * SAMPLE_RATE)))).astype(np.float32)
        lengths = np.full(b, audio.shape[1], np.int32)
        start = time.perf_counter()
        jax.block_until_ready(fn(state, audio, lengths))
        first = time.perf_counter() - start
        walls, cpus = [], []
        for _ in range(repeats):
            w, c = time.perf_counter(), time.process_time()
            jax.block_until_ready(fn(state, audio, lengths))
            walls.append(time.perf_counter() - w)
            cpus.append(time.process_time() - c)
        wall, cpu = float(np.median(walls)), float(np.median(cpus))
        audio_seconds = b * seconds
        flops = compiled_flops(fn, state, audio, lengths)
        rows.append({"model": name, "preset": preset, "params": params, "batch": b,
                     "clip_seconds": seconds, "seconds_per_call": wall,
                     "cpu_seconds_per_call": cpu, "first_call_seconds": first,
                     "rtf": wall / audio_seconds, "x_real_time": audio_seconds / wall,
                     "x_real_time_cpu": audio_seconds / max(cpu, 1e-9),
                     "gflop_per_audio_second": flops / audio_seconds / 1e9,
                     "achieved_gflops_cpu": flops / max(cpu, 1e-9) / 1e9})
    return rows


def compiled_flops(fn, *args) -> float:
    """XLA's FLOP count of one call (its cost analysis of the compiled program)."""
    cost = fn.lower(*args).compile().cost_analysis()
    if isinstance(cost, (list, tuple)):  # older jax: one dict per program
        cost = cost[0]
    return float(cost.get("flops", 0.0))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="ser,student,speaker,asr")
    parser.add_argument("--preset", default="base", help="preset of every model")
    parser.add_argument("--seconds", type=float, default=4.0, help="clip length")
    parser.add_argument("--batch", default="1,16", help="comma-separated batch sizes")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1,
                        help="cores and XLA threads (default 1: the one-core figures; 0 = all)")
    parser.add_argument("--label", default=None, help="name of this run in the JSON")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "classifiers.json"))
    args = parser.parse_args(argv)
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    pin_threads(args.threads)
    sys.path.insert(0, str(ROOT))
    import jax

    unknown = sorted(set(names) - set(builders()))
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {', '.join(builders())}")
    batches = [int(b) for b in args.batch.split(",") if b.strip()]
    rows = [r for name in names
            for r in bench_model(name, args.preset, args.seconds, batches, args.repeats)]
    device = jax.devices()[0]
    print(f"classifiers ({args.preset} presets, random weights) on {device.platform} "
          f"({device.device_kind}), threads={args.threads or 'all'}, {args.seconds:g} s clips, "
          f"median of {args.repeats}")
    # The ceiling: x real time if every FLOP ran at this process's dense fp32 matmul rate.
    from emotive.train.flops import measure_matmul_tflops

    peak_gflops = 1e3 * measure_matmul_tflops(1024)
    print(f"{'model':<9}{'params':>11}{'batch':>6}{'s/call':>10}{'CPU s':>9}{'RTF':>9}"
          f"{'x real time':>13}{'x RT (CPU)':>12}{'GFLOP/aud-s':>13}{'GFLOP/s':>9}"
          f"{'ceiling xRT':>13}{'1st call s':>12}")
    for r in rows:
        r["ceiling_x_real_time"] = peak_gflops / max(r["gflop_per_audio_second"], 1e-12)
        print(f"{r['model']:<9}{r['params']:>11,}{r['batch']:>6}{r['seconds_per_call']:>10.4f}"
              f"{r['cpu_seconds_per_call']:>9.4f}{r['rtf']:>9.5f}{r['x_real_time']:>13.0f}"
              f"{r['x_real_time_cpu']:>12.0f}{r['gflop_per_audio_second']:>13.3f}"
              f"{r['achieved_gflops_cpu']:>9.1f}{r['ceiling_x_real_time']:>13.0f}"
              f"{r['first_call_seconds']:>12.2f}")
    print(f"ceiling xRT = the measured fp32 matmul rate ({peak_gflops:.1f} GFLOP/s with these "
          "threads) / the model's GFLOP per audio second")
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(out.read_text()) if out.is_file() else {}
    label = args.label or f"{args.preset}-{device.platform}-threads{args.threads}"
    results[label] = {"device": f"{device.platform} {device.device_kind}",
                      "host": platform.node(), "threads": args.threads,
                      "matmul_peak_gflops": peak_gflops, "rows": rows}
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
