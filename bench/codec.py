"""Codec speed: encode and decode real-time factors and throughput against batch size.

    python bench/codec.py [--ckpt RUN_DIR | --preset tiny] [--seconds 4] [--batch 1,4,16]
                          [--out bench/results/codec.json]

Times the jitted batch encode (audio -> codes) and decode (codes -> audio) of
`emotive.infer.codec` on `--seconds`-long clips, after one warm-up call per shape (compile
time is reported separately). RTF = compute seconds / audio seconds (below 1 is faster than
real time); throughput = audio seconds per wall second. Weights come from `--ckpt`, or are
random for `--preset` (speed does not depend on the values). Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import sys
import time

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from emotive import configs  # noqa: E402
from emotive.configs.common import SAMPLE_RATE  # noqa: E402
from emotive.infer import codec as codec_lib  # noqa: E402


def make_codec(args) -> codec_lib.LoadedCodec:
    if args.ckpt:
        return codec_lib.load_codec(args.ckpt)
    from flax import nnx

    from emotive.models.codec import Codec

    cfg = configs.load("codec", args.preset, args.set)
    return codec_lib.LoadedCodec(cfg, Codec(cfg.model, rngs=nnx.Rngs(0)), step=0)


def timed(fn, repeats: int) -> tuple[float, float]:
    """(first call seconds, including compile; median seconds of `repeats` later calls)."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    return first, median_seconds(fn, repeats)


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def bench(codec, seconds: float, batches, repeats: int) -> list[dict]:
    rng = np.random.default_rng(0)
    samples = int(seconds * SAMPLE_RATE)
    rows = []
    for b in batches:
        audio = (0.1 * rng.standard_normal((b, samples))).astype(np.float32)
        start = time.perf_counter()
        codes, frames = codec.encode(audio)  # the decoder's input; the encoder's first call
        encode_first = time.perf_counter() - start
        for name, fn in (("encode", lambda: codec.encode(audio)),
                         ("decode", lambda: codec.decode(codes, frames))):
            if name == "encode":
                first, median = encode_first, median_seconds(fn, repeats)
            else:
                first, median = timed(fn, repeats)
            audio_seconds = b * seconds
            rows.append({"op": name, "batch": b, "clip_seconds": seconds,
                         "seconds_per_call": median, "first_call_seconds": first,
                         "rtf": median / audio_seconds,
                         "audio_seconds_per_second": audio_seconds / median,
                         "tokens_per_second": b * codes.shape[1] / median})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", default=None, help="codec run dir (default: random weights)")
    parser.add_argument("--preset", default="tiny", help="codec preset when no --ckpt")
    parser.add_argument("--set", nargs="*", default=[], help="config overrides for --preset")
    parser.add_argument("--seconds", type=float, default=4.0, help="clip length")
    parser.add_argument("--batch", default="1,4,16", help="comma-separated batch sizes")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--label", default=None, help="name of this run in the JSON")
    parser.add_argument("--out", default="bench/results/codec.json")
    args = parser.parse_args(argv)
    codec = make_codec(args)
    batches = [int(b) for b in args.batch.split(",") if b.strip()]
    rows = bench(codec, args.seconds, batches, args.repeats)
    device = jax.devices()[0]
    print(f"codec {args.ckpt or args.preset} on {device.platform} ({device.device_kind}), "
          f"{args.seconds:g} s clips, median of {args.repeats}")
    print(f"{'op':<7}{'batch':>6}{'s/call':>10}{'RTF':>10}{'audio s/s':>12}{'tokens/s':>11}"
          f"{'1st call s':>12}")
    for r in rows:
        print(f"{r['op']:<7}{r['batch']:>6}{r['seconds_per_call']:>10.4f}{r['rtf']:>10.4f}"
              f"{r['audio_seconds_per_second']:>12.1f}{r['tokens_per_second']:>11.0f}"
              f"{r['first_call_seconds']:>12.2f}")
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(out.read_text()) if out.is_file() else {}
    label = args.label or f"{args.ckpt or args.preset}-{device.platform}"
    results[label] = {"device": f"{device.platform} {device.device_kind}",
                      "host": platform.node(), "step": codec.step, "rows": rows}
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
