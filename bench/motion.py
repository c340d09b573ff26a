"""Motion generation cost: wall time, real-time factor and memory growth against audio length.

    python bench/motion.py --ckpt LDM_RUN [--seconds 10,60] [--steps N] [--audio corpus.wav]
                           [--emotion-scale 1] [--platform cpu] [--label NAME]
                           [--out bench/results/motion.json]

For each length, one fresh process (`bench/motion.py --child ...`, JAX on `--platform`,
CPU by default) makes the audio, loads the motion LDM (`MotionGenerator.load`), records
its baseline memory, runs one warm-up generation of the same length (compiles every
program; not timed) and then the timed one. Reported: wall seconds of the timed call, the
real-time factor (wall / audio seconds; below 1 is faster than real time), the warm-up
time (compile included), and memory from getrusage's ru_maxrss (the process's peak RSS):
the baseline after loading and before generating, the peak after both generations, and
their difference, the memory growth. If the generator's memory grows only with the audio
(its features, latents and output frames), growth per audio second is about the same at
every length; the script prints that ratio and a line fitted through the lengths (a fixed
part plus MB per audio second). RSS growth includes the compiled programs and the runtime's
buffers, a fixed part that dominates for small models, so a third (untimed) call also
measures the peak of its host (numpy) arrays with tracemalloc, which isolates the part that
grows with the audio (JAX's device buffers are not in it).

The audio is `--audio` (e.g. a corpus wav) tiled to each length, or else a deterministic
synthetic speech-like signal at 16 kHz: a harmonic tone on a gliding 120 Hz pitch,
amplitude-modulated by syllables at about 4 per second in phrases of 2-4 s between short
pauses (it passes the generator's speech check). Prints a table, adds the run to the JSON
under its label.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import time
import tracemalloc

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from bench.fresh import emit, make_audio, max_rss_mb, run_fresh  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", required=True, help="motion_ldm run dir")
    p.add_argument("--seconds", default="10,60", help="comma-separated audio lengths (s)")
    p.add_argument("--steps", type=int, default=None,
                   help="DDIM steps (default: the run's diffusion.sample_steps)")
    p.add_argument("--audio", default=None, help="a speech recording tiled to each length "
                   "(default: the synthetic signal)")
    p.add_argument("--emotion-scale", type=float, default=1.0,
                   help="1: plain conditioning (one denoiser row); otherwise four rows")
    p.add_argument("--platform", default="cpu", help="JAX_PLATFORMS of the child processes")
    p.add_argument("--label", default=None, help="name of this run in the JSON")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "motion.json"))
    p.add_argument("--child", type=float, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- the child


def child(args) -> int:
    import jax

    from emotive.infer.motion import Guidance, MotionGenerator

    seconds = args.child
    audio = make_audio(seconds, args.audio)   # generate() checks it is speech (check_speech)
    start = time.perf_counter()
    gen = MotionGenerator.load(args.ckpt)
    load_s = time.perf_counter() - start
    baseline = max_rss_mb()
    emotion = gen.emotion_condition("happy")
    kwargs = dict(emotion_vec=emotion, guidance=Guidance(emotion=args.emotion_scale), seed=0,
                  steps=args.steps)
    start = time.perf_counter()
    gen.generate(audio, **kwargs)                   # warm-up: compiles, not timed
    warm_s = time.perf_counter() - start
    after_warm = max_rss_mb()
    start = time.perf_counter()
    out = gen.generate(audio, **kwargs)
    wall = time.perf_counter() - start
    peak = max_rss_mb()
    tracemalloc.start()                             # a third call: host arrays, exactly
    gen.generate(audio, **kwargs)
    host_peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    device = jax.devices()[0]
    d = gen.cfg.diffusion
    row = {"seconds": seconds, "frames": len(out.frames), "windows": len(out.seams) + 1,
           "ddim_steps": args.steps or d.sample_steps, "wall_seconds": wall,
           "rtf": wall / seconds, "warmup_seconds": warm_s, "load_seconds": load_s,
           "baseline_rss_mb": baseline, "after_warmup_rss_mb": after_warm,
           "peak_rss_mb": peak, "growth_mb": peak - baseline,
           "growth_mb_per_audio_second": (peak - baseline) / seconds,
           "host_peak_mb": host_peak, "host_peak_mb_per_audio_second": host_peak / seconds,
           "device": f"{device.platform} {device.device_kind}", "step": gen.step,
           "params": gen.num_params, "jax": jax.__version__}
    emit(row)
    return 0


# ----------------------------------------------------------------------------- the parent


def run_child(args, seconds: float) -> dict:
    cmd = [str(pathlib.Path(__file__).resolve()), "--child", str(seconds),
           "--ckpt", args.ckpt, "--emotion-scale", str(args.emotion_scale)]
    if args.steps is not None:
        cmd += ["--steps", str(args.steps)]
    if args.audio is not None:
        cmd += ["--audio", args.audio]
    return run_fresh(cmd, platform=args.platform, what=f"the {seconds:g} s child")


def summarise(rows: list[dict], key: str = "growth_mb") -> dict:
    """Whether `key` (MB) per audio second is about constant over the lengths (largest over
    smallest within 1.5x), and a line through it: a fixed part plus MB per audio second."""
    out = {"per_second_ratio": None, "roughly_constant": None, "fixed_mb": None,
           "mb_per_audio_second": None}
    if len(rows) < 2:
        return out
    per_s = [r[key] / r["seconds"] for r in rows]
    lo, hi = min(per_s), max(per_s)
    ratio = hi / lo if lo > 0 else float("inf")
    slope, intercept = np.polyfit([r["seconds"] for r in rows], [r[key] for r in rows], 1)
    out.update(per_second_ratio=float(ratio), roughly_constant=bool(ratio <= 1.5),
               fixed_mb=float(intercept), mb_per_audio_second=float(slope))
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child is not None:
        return child(args)
    lengths = [float(s) for s in args.seconds.split(",") if s.strip()]
    if not lengths or min(lengths) <= 0:
        raise SystemExit("--seconds takes positive lengths, e.g. 10,60")
    if args.steps is not None and args.steps < 2:
        raise SystemExit("--steps must be at least 2 (one DDIM level would be t = 0 alone)")
    rows = []
    for seconds in lengths:
        print(f"bench/motion.py: {seconds:g} s in a fresh process ...", flush=True)
        rows.append(run_child(args, seconds))
    summary = {"rss_growth": summarise(rows, "growth_mb"),
               "host_peak": summarise(rows, "host_peak_mb")}
    first = rows[0]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    source = args.audio or "synthetic speech-like signal"
    print(f"motion generation: {args.ckpt} (step {first['step']}, {first['params'] / 1e6:.2f}M "
          f"denoiser params) on {first['device']}, {first['ddim_steps']} DDIM steps, emotion "
          f"scale {args.emotion_scale:g}, audio: {source}; wall time after one warm-up "
          f"generation of the same length (compile excluded), one process per length; "
          f"load average {load}")
    print(f"{'audio s':>8}{'frames':>8}{'windows':>9}{'wall s':>9}{'RTF':>8}{'warm-up s':>11}"
          f"{'base MB':>9}{'peak MB':>9}{'growth MB':>11}{'MB/audio s':>12}{'host MB':>9}")
    for r in rows:
        print(f"{r['seconds']:>8g}{r['frames']:>8}{r['windows']:>9}{r['wall_seconds']:>9.3f}"
              f"{r['rtf']:>8.4f}{r['warmup_seconds']:>11.2f}{r['baseline_rss_mb']:>9.0f}"
              f"{r['peak_rss_mb']:>9.0f}{r['growth_mb']:>11.1f}"
              f"{r['growth_mb_per_audio_second']:>12.3f}{r['host_peak_mb']:>9.1f}")
    print("base MB: peak RSS after loading, before generating; peak MB: after the warm-up and "
          "the timed call; growth = peak - base; host MB: peak of the host (numpy) arrays of a "
          "third call, traced by tracemalloc (JAX's device buffers are not in it)")
    for name, what in (("rss_growth", "RSS growth"), ("host_peak", "host array peak")):
        fit = summary[name]
        if fit["per_second_ratio"] is None:
            continue
        verdict = ("roughly constant" if fit["roughly_constant"] else
                   "not constant: a fixed part (compiled programs, runtime buffers) dominates "
                   "at these lengths")
        print(f"{what} per audio second: largest / smallest = {fit['per_second_ratio']:.2f}, "
              f"{verdict}; fitted {fit['fixed_mb']:.1f} MB + {fit['mb_per_audio_second']:.3f} "
              f"MB per audio second")
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(out.read_text()) if out.is_file() else {}
    platform_name = first["device"].split()[0]
    label = args.label or f"{pathlib.Path(args.ckpt).resolve().name}-{platform_name}"
    results[label] = {"device": first["device"], "host": platform.node(),
                      "load_average_1min": load, "jax": first["jax"], "step": first["step"],
                      "params": first["params"], "audio": source,
                      "timing": "wall of one generation after a warm-up of the same length",
                      "memory": "getrusage ru_maxrss in a fresh process per length; growth = "
                                "peak after generating - baseline after loading",
                      "args": {k: v for k, v in vars(args).items() if k not in ("out", "child")},
                      **summary, "rows": rows}
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
