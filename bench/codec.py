"""Codec speed: encode and decode real-time factors and throughput against batch size.

    python bench/codec.py [--ckpt RUN_DIR | --preset tiny] [--seconds 4] [--batch 1,4,16]
                          [--out bench/results/codec.json]
    python bench/codec.py --long 10,60,600 [--ops encode,decode,classify,transcribe,embed]
                          [--ckpt RUN_DIR | --preset base] [--ser RUN] [--asr RUN]
                          [--speaker RUN] [--recogniser-preset base]

Times the jitted batch encode (audio -> codes) and decode (codes -> audio) of
`emotive.infer.codec` on `--seconds`-long clips, after one warm-up call per shape (compile
time is reported separately). RTF = compute seconds / audio seconds (below 1 is faster than
real time); throughput = audio seconds per wall second. Weights come from `--ckpt`, or are
random for `--preset` (speed does not depend on the values). Prints a table, writes JSON.

`--long`: memory and time of one file of growing length through each op (codec encode and
decode, emotion classify, CTC transcribe, speaker embed; the chunked paths of
emotive.infer.chunking past one 32 s window). Each (length, op) runs in a fresh process
(the pattern of bench/motion.py): it makes the audio (`--audio` tiled, or bench/motion.py's
synthetic speech-like signal), builds the
model (`--ser/--asr/--speaker` checkpoints, else random weights of `--recogniser-preset`;
memory and time do not depend on the values), reads its peak RSS (ru_maxrss) as the
baseline, runs one warm-up call on the first min(length, batch x chunk) seconds (the same
compiled shapes), then the timed call on the whole file, and reads the peak again. Lengths
up to `--compare-seconds` then also run the whole-file path (after the peak is read) and
report how well the chunked output agrees with it. Prints a table, adds the run to the JSON
under its label (`--label`, default long-PRESET-PLATFORM).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import time

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from bench.fresh import emit, make_audio, max_rss_mb, run_fresh  # noqa: E402
from emotive import configs  # noqa: E402
from emotive.configs.common import SAMPLE_RATE  # noqa: E402
from emotive.infer import codec as codec_lib  # noqa: E402
from emotive.infer.chunking import Chunking  # noqa: E402

OPS = ("encode", "decode", "classify", "transcribe", "embed")
WHOLE = Chunking(chunk_seconds=1e9)  # one window, whatever the length: the whole-file path


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


def make_predictor(args, op: str):
    """The op's predictor: a checkpoint, or random weights of a base (or given) preset."""
    if op in ("encode", "decode"):
        return make_codec(args)
    from flax import nnx

    from emotive.infer.asr import Recognizer
    from emotive.infer.emotion import EmotionPredictor
    from emotive.infer.speaker import SpeakerEmbedder
    from emotive.models.asr import CtcRecognizer
    from emotive.models.ser import SpeechEmotionModel
    from emotive.models.speaker import SpeakerEncoder

    family, cls, model, ckpt = {
        "classify": ("ser", EmotionPredictor, SpeechEmotionModel, args.ser),
        "transcribe": ("asr", Recognizer, CtcRecognizer, args.asr),
        "embed": ("speaker", SpeakerEmbedder, SpeakerEncoder, args.speaker)}[op]
    if ckpt:
        return cls.load(ckpt)
    cfg = configs.load(family, args.recogniser_preset)
    return cls(cfg, model(cfg.model, rngs=nnx.Rngs(0)))


def run_op(predictor, op: str, audio_T: np.ndarray, codes_N: np.ndarray):
    """The op's output on one file: codes, audio, probabilities, text or an embedding."""
    if op == "encode":
        return predictor.encode(audio_T[None])[0][0]
    if op == "decode":
        return predictor.decode(codes_N[None])[0]
    if op == "classify":
        out = predictor.predict(audio_T[None])
        return out["probs"][0] if out["probs"] is not None else out["adv"][0]
    if op == "transcribe":
        return predictor.transcribe(audio_T[None])[0]
    return predictor.embed(audio_T[None])[0]


def agreement(op: str, chunked, whole) -> dict:
    """How the chunked output matches the whole-file one, in the op's own terms."""
    if op == "encode":
        return {"codes_equal": float(np.mean(chunked == whole))}
    if op == "decode":
        err = np.sum((chunked - whole) ** 2)
        return {"snr_db": float(10 * np.log10(np.sum(whole ** 2) / max(err, 1e-20)))}
    if op == "classify":
        return {"max_abs_diff": float(np.abs(chunked - whole).max())}
    if op == "transcribe":
        from emotive.metrics.recognition import edit_distance

        return {"same_text": chunked == whole,
                "cer": edit_distance(whole, chunked) / max(len(whole), 1)}
    return {"cosine": float(np.dot(chunked, whole))}


def long_child(args) -> int:
    seconds, op = args.child, args.op
    audio = make_audio(seconds, args.audio)
    predictor = make_predictor(args, op)
    size = predictor.codebook_size if op in ("encode", "decode") else 1
    codes = np.random.default_rng(0).integers(0, size, -(-audio.size // 320)).astype(np.int32)
    baseline = max_rss_mb()
    chunking = predictor.chunking
    warm = int(min(seconds, chunking.batch * chunking.chunk_seconds) * SAMPLE_RATE)
    start = time.perf_counter()
    run_op(predictor, op, audio[:warm], codes[:-(-warm // 320)])  # compiles; not timed
    warm_s = time.perf_counter() - start
    start = time.perf_counter()
    out = run_op(predictor, op, audio, codes)
    wall = time.perf_counter() - start
    peak = max_rss_mb()
    row = {"op": op, "seconds": seconds, "windows": 1 if chunking.fits(audio.size) else
           -(-audio.size // chunking.sizes(320)[0]), "wall_seconds": wall,
           "rtf": wall / seconds, "warmup_seconds": warm_s, "baseline_rss_mb": baseline,
           "peak_rss_mb": peak, "growth_mb": peak - baseline, "params": predictor.num_params,
           "device": f"{jax.devices()[0].platform} {jax.devices()[0].device_kind}"}
    if seconds <= args.compare_seconds:
        predictor.chunking = WHOLE
        row["agreement"] = agreement(op, out, run_op(predictor, op, audio, codes))
    emit(row)
    return 0


def long_bench(args) -> int:
    lengths = [float(s) for s in args.long.split(",") if s.strip()]
    ops = [o for o in args.ops.split(",") if o.strip()]
    if not lengths or min(lengths) <= 0 or not set(ops) <= set(OPS):
        raise SystemExit(f"--long takes positive seconds (e.g. 10,60,600), --ops some of {OPS}")
    rows = []
    for op in ops:
        for seconds in lengths:
            print(f"bench/codec.py: {op} of {seconds:g} s in a fresh process ...", flush=True)
            cmd = [str(pathlib.Path(__file__).resolve()), "--child", str(seconds),
                   "--op", op, "--preset", args.preset, "--recogniser-preset",
                   args.recogniser_preset, "--compare-seconds", str(args.compare_seconds)]
            for flag in ("ckpt", "ser", "asr", "speaker", "audio"):
                if getattr(args, flag):
                    cmd += [f"--{flag}", getattr(args, flag)]
            rows.append(run_fresh(cmd, platform=args.platform, what=f"{op} of {seconds:g} s"))
    weights = {"encode": args.ckpt or f"random {args.preset}",
               **{op: getattr(args, flag) or f"random {args.recogniser_preset}"
                  for op, flag in (("classify", "ser"), ("transcribe", "asr"),
                                   ("embed", "speaker"))}}
    weights["decode"] = weights["encode"]
    print(f"long files on {rows[0]['device']}: one process per (op, length); wall of one call "
          f"after a warm-up on the same window shapes; load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"{'op':<11}{'weights':<16}{'audio s':>8}{'windows':>8}{'wall s':>9}{'RTF':>8}"
          f"{'base MB':>9}{'peak MB':>9}{'growth MB':>10}  agreement with the whole file")
    for r in rows:
        agree = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                          for k, v in r.get("agreement", {}).items())
        print(f"{r['op']:<11}{weights[r['op']]:<16}{r['seconds']:>8g}{r['windows']:>8}"
              f"{r['wall_seconds']:>9.2f}{r['rtf']:>8.4f}{r['baseline_rss_mb']:>9.0f}"
              f"{r['peak_rss_mb']:>9.0f}{r['growth_mb']:>10.1f}  {agree}")
    save(args.out, args.label or f"long-{args.preset}-{rows[0]['device'].split()[0]}",
         {"device": rows[0]["device"], "host": platform.node(), "weights": weights,
          "memory": "getrusage ru_maxrss in a fresh process per (op, length); growth = peak "
                    "after the calls - baseline after loading", "rows": rows})
    return 0


def save(path, label: str, entry: dict) -> None:
    """Adds `entry` under `label` to the JSON results file at `path`."""
    out = pathlib.Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(out.read_text()) if out.is_file() else {}
    results[label] = entry
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


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
    parser.add_argument("--long", default=None, help="comma-separated file lengths (s): "
                        "memory and time of long files instead")
    parser.add_argument("--ops", default=",".join(OPS), help="--long: the ops to run")
    for flag in ("ser", "asr", "speaker"):
        parser.add_argument(f"--{flag}", default=None, help=f"--long: a {flag} run")
    parser.add_argument("--audio", default=None, help="--long: a recording tiled to each "
                        "length (default: bench/motion.py's synthetic speech-like signal)")
    parser.add_argument("--recogniser-preset", default="base",
                        help="--long: preset of the random ser/asr/speaker models")
    parser.add_argument("--compare-seconds", type=float, default=60.0,
                        help="--long: lengths up to this also run the whole-file path")
    parser.add_argument("--platform", default="cpu", help="--long: JAX_PLATFORMS of children")
    parser.add_argument("--child", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--op", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        return long_child(args)
    if args.long:
        return long_bench(args)
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
    save(args.out, args.label or f"{args.ckpt or args.preset}-{device.platform}",
         {"device": f"{device.platform} {device.device_kind}", "host": platform.node(),
          "step": codec.step, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
