"""Decode speed against transformers' generate and against this machine's rooflines.

    python bench/decode.py [--size small|realistic|llasa] [--batch 1,8,32] [--prompt 32]
                           [--new 128] [--repeats 3] [--threads N] [--skip-torch]
                           [--dtype float32|bfloat16] [--out bench/results/decode.json]

Sizes (a Llama with a Llasa-style vocabulary: `--text` text ids + 8 specials + `--codes`
speech codes; any field can be set by its own flag):

| size      | hidden | layers | heads/kv | MLP | vocabulary            | params | sampling      |
|-----------|--------|--------|----------|-----|-----------------------|--------|---------------|
| small     | 256    | 4      | 8/2      | 704 | 256 + 8 + 4,096       | 5.1M   | whole vocab   |
| realistic | 1024   | 8      | 16/4     | 704 | 256 + 8 + 65,536      | 173M   | whole vocab   |
| llasa     | 1024   | 8      | 16/4     | 704 | 128,256 + 8 + 65,536  | 435M   | speech codes  |

`llasa` has Llasa's full 193,800-id vocabulary and samples speech codes only, as TTS does
(`allowed_range`; transformers gets the same restriction as `suppress_tokens`), so our
head runs over the 65,536 codes alone.

Both sides run the same random weights (built in transformers, saved as safetensors,
imported with `emotive.hub.hf_llama.import_hf_llama`) and sample `--new` tokens after
`--prompt`-token prompts with temperature 0.8, top-k 50, top-p 0.95 and repetition penalty
1.2, no stop token (so every row makes exactly `--new` tokens). Ours is
`emotive.infer.decoder.generate` (one jitted prefill + an on-device while_loop over the KV
cache); theirs is `LlamaForCausalLM.generate` in PyTorch with its dynamic cache. One
warm-up call per shape is excluded (our compile time is reported apart); times are the
median of `--repeats` calls, prefill included; tokens/s counts the new tokens of all rows.

Rooflines, measured in the same process (best of several tries, since other processes
only ever slow a measurement down):
- bandwidth: the fastest read of a 512 MiB float32 array (XLA's sum, numpy with one
  thread and with two threads over halves), in GB/s;
- matmul: the fastest 2048^3 float32 matmul of XLA and of PyTorch, in GFLOP/s.
A decode step of batch B must read every weight it uses once (all layers, the embedding
rows of its tokens and the head columns it computes: all ids, or only the candidates),
plus the valid part of the KV cache (mean length prompt + new/2), so

    bandwidth roofline tokens/s = B * bandwidth / bytes per step
    matmul roofline tokens/s    = B * matmul FLOP/s / (FLOPs per token)

with FLOPs per token = 2 x used matmul weights + 4 x layers x heads x head_dim x mean
length (scores and weighted sum). Prefill is counted in our time but not in the rooflines,
so the fractions are slight underestimates. At batch 1 the bandwidth roofline binds, at
large batch the matmul one. On a shared, busy machine PyTorch's spinning threads collapse
(`--threads 1` compares more fairly there); the load average is recorded with the results.
Prints a table, adds the run to the JSON under its label.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import tempfile
import threading
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

SPECIALS = 8
SETTINGS = dict(temperature=0.8, top_k=50, top_p=0.95, repetition_penalty=1.2)
SIZES = {
    "small": dict(hidden=256, layers=4, heads=8, kv_heads=2, mlp=704, text=256, codes=4096,
                  speech_only=False),
    "realistic": dict(hidden=1024, layers=8, heads=16, kv_heads=4, mlp=704, text=256,
                      codes=65536, speech_only=False),
    "llasa": dict(hidden=1024, layers=8, heads=16, kv_heads=4, mlp=704, text=128256,
                  codes=65536, speech_only=True),
}
BANDWIDTH_BYTES = 512 << 20
PEAK_MATMUL = 2048


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=sorted(SIZES), default="small",
                   help="model size (the table above); the flags below override its fields")
    p.add_argument("--batch", default="1,8,32", help="comma-separated batch sizes")
    p.add_argument("--prompt", type=int, default=32, help="prompt tokens per row")
    p.add_argument("--new", type=int, default=128, help="new tokens per row")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per side and batch")
    for name in ("hidden", "layers", "heads", "kv-heads", "mlp", "text", "codes"):
        p.add_argument(f"--{name}", type=int, default=None)
    p.add_argument("--speech-only", action=argparse.BooleanOptionalAction, default=None,
                   help="sample speech codes only (allowed_range; transformers: suppress_tokens)")
    p.add_argument("--dtype", default="float32",
                   help="our parameter and compute dtypes, comma-separated: float32, bfloat16 "
                        "(transformers stays float32); each gets its own rows and roofline")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads for both sides (default: each library's own choice); "
                        "1 keeps a busy shared machine from distorting the comparison")
    p.add_argument("--skip-torch", action="store_true", help="time ours only (e.g. on a GPU)")
    p.add_argument("--label", default=None, help="name of this run in the JSON")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "decode.json"))
    args = p.parse_args(argv)
    for key, value in SIZES[args.size].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.vocab = args.text + SPECIALS + args.codes
    args.dtypes = [d.strip() for d in args.dtype.split(",") if d.strip()]
    bad = sorted(set(args.dtypes) - {"float32", "bfloat16"})
    if bad or not args.dtypes:
        p.error(f"--dtype takes float32 and/or bfloat16, got {args.dtype!r}")
    return args


def build(args, workdir: pathlib.Path):
    """(transformers model, {dtype: our CausalLM}) with the same random weights."""
    import torch
    import transformers

    from emotive.hub.hf_llama import import_hf_llama

    cfg = transformers.LlamaConfig(
        vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=args.mlp,
        num_hidden_layers=args.layers, num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        max_position_embeddings=max(2048, args.prompt + args.new), tie_word_embeddings=False)
    torch.manual_seed(0)
    hf = transformers.LlamaForCausalLM(cfg).eval()
    hf.save_pretrained(workdir, safe_serialization=True)
    return hf, {d: import_hf_llama(workdir, dtype=d)[0] for d in args.dtypes}


def speech_range(args) -> tuple[int, int]:
    return args.text + SPECIALS, args.vocab


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def best_seconds(fn, repeats: int = 7) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


# ----------------------------------------------------------------------------- rooflines


def measure_bandwidth() -> dict:
    """GB/s of the fastest full read of a BANDWIDTH_BYTES float32 array, by XLA's sum and
    by numpy with one thread and with two threads over halves."""
    import jax
    import jax.numpy as jnp

    host = np.ones(BANDWIDTH_BYTES // 4, np.float32)
    dev = jnp.asarray(host)
    xla_sum = jax.jit(jnp.sum)
    halves = np.array_split(host, 2)

    def two_threads():
        threads = [threading.Thread(target=np.sum, args=(h,)) for h in halves]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    ways = {"xla_sum": lambda: xla_sum(dev).block_until_ready(),
            "numpy_1_thread": lambda: np.sum(host), "numpy_2_threads": two_threads}
    rates = {name: BANDWIDTH_BYTES / best_seconds(fn) / 1e9 for name, fn in ways.items()}
    return {"gb_per_second": max(rates.values()), "by_method": rates}


def measure_matmul(dtype: str, skip_torch: bool) -> dict:
    """GFLOP/s of the fastest PEAK_MATMUL^3 matmul in `dtype` (bfloat16 operands accumulate
    in float32, as our layers do) of XLA and, in float32, of PyTorch."""
    import jax
    import jax.numpy as jnp

    n = PEAK_MATMUL
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), dtype)
    mm = jax.jit(lambda x: jax.lax.dot(x, x, preferred_element_type=jnp.float32))
    rates = {"xla": 2 * n**3 / best_seconds(lambda: mm(a).block_until_ready()) / 1e9}
    if not skip_torch and dtype == "float32":
        import torch

        t = torch.from_numpy(np.array(a))
        with torch.no_grad():
            rates["torch"] = 2 * n**3 / best_seconds(lambda: t @ t) / 1e9
    return {"gflop_per_second": max(rates.values()), "by_library": rates}


def step_cost(args, batch: int, bytes_per_param: int) -> dict:
    """Bytes read and FLOPs of one decode step of `batch` rows (see the module docstring)."""
    e, layers = args.hidden, args.layers
    head_dim = e // args.heads
    kv = args.kv_heads * head_dim
    layer_weights = e * (e + 2 * kv + e) + 3 * e * args.mlp + 2 * e  # + the two norms
    head_columns = args.codes if args.speech_only else args.vocab
    used = layers * layer_weights + e * head_columns + e  # + the final norm
    mean_len = args.prompt + args.new / 2
    cache_bytes = 2 * layers * batch * mean_len * kv * bytes_per_param
    weights_bytes = (used + batch * e) * bytes_per_param  # + each row's embedding row
    attention_flops = 4 * layers * args.heads * head_dim * mean_len
    flops_per_token = 2 * (used - (2 * layers + 1) * e) + attention_flops
    return {"bytes": weights_bytes + cache_bytes, "flops": batch * flops_per_token,
            "flops_per_token": flops_per_token, "matmul_weights": used}


# ----------------------------------------------------------------------------- the two sides


def bench_ours(model, prompts, args) -> tuple[float, float]:
    """(first call seconds incl. compile, median seconds)."""
    from emotive.infer.decoder import generate, prepare
    from emotive.infer.sampling import SamplingConfig

    cfg = SamplingConfig(**SETTINGS, max_new_tokens=args.new,
                         allowed_range=speech_range(args) if args.speech_only else None)
    model = prepare(model)  # split once, as a serving loop would
    seeds = list(range(len(prompts)))
    call = lambda: generate(model, prompts, cfg, seeds=seeds)  # noqa: E731
    start = time.perf_counter()
    out = call()
    first = time.perf_counter() - start
    assert out.tokens.shape == (len(prompts), args.new) and not out.stopped.any()
    if args.speech_only:
        lo, hi = speech_range(args)
        assert ((out.tokens >= lo) & (out.tokens < hi)).all()
    return first, median_seconds(call, args.repeats)


def bench_torch(hf, prompts, args) -> float:
    import torch
    import transformers

    suppress = list(range(speech_range(args)[0])) if args.speech_only else None
    gen = transformers.GenerationConfig(do_sample=True, max_new_tokens=args.new,
                                        min_new_tokens=args.new, eos_token_id=None,
                                        pad_token_id=0, suppress_tokens=suppress, **SETTINGS)
    ids = torch.tensor(np.asarray(prompts))

    def call():
        with torch.no_grad():
            out = hf.generate(ids, attention_mask=torch.ones_like(ids), generation_config=gen)
        assert out.shape == (len(prompts), args.prompt + args.new)

    call()  # warm-up
    return median_seconds(call, args.repeats)


def measure_row(args, b, dtype, model, prompts, theirs, bandwidth, matmul) -> dict:
    """Our tokens/s at batch b in `dtype` against transformers' and the two rooflines."""
    first, ours = bench_ours(model, prompts, args)
    new = b * args.new
    cost = step_cost(args, b, 2 if dtype == "bfloat16" else 4)
    bw_roof = b * bandwidth["gb_per_second"] * 1e9 / cost["bytes"]
    mm_roof = b * matmul["gflop_per_second"] * 1e9 / cost["flops"]
    tps = new / ours
    return {"batch": b, "dtype": dtype, "new_tokens": new, "ours_seconds": ours,
            "ours_first_call_seconds": first, "ours_tokens_per_second": tps,
            "torch_seconds": theirs,
            "torch_tokens_per_second": None if theirs is None else new / theirs,
            "speedup": None if theirs is None else theirs / ours,
            "bytes_per_step": cost["bytes"], "flops_per_step": cost["flops"],
            "bandwidth_roofline_tokens_per_second": bw_roof,
            "matmul_roofline_tokens_per_second": mm_roof,
            "fraction_of_bandwidth_roofline": tps / bw_roof,
            "fraction_of_matmul_roofline": tps / mm_roof,
            "torch_fraction_of_matmul_roofline":
                None if theirs is None or dtype != "float32" else new / theirs / mm_roof}


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:  # before JAX starts its CPU client
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_"
                                   f"eigen={'false' if args.threads == 1 else 'true'} "
                                   f"intra_op_parallelism_threads={args.threads}").strip()
    import jax
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    batches = [int(b) for b in args.batch.split(",") if b.strip()]
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        hf, models = build(args, pathlib.Path(tmp))
    bandwidth = measure_bandwidth()
    matmul = {d: measure_matmul(d, args.skip_torch) for d in args.dtypes}
    rows = []
    for b in batches:
        prompts = rng.integers(0, args.text, (b, args.prompt)).tolist()
        theirs = None if args.skip_torch else bench_torch(hf, prompts, args)
        for dtype, model in models.items():
            rows.append(measure_row(args, b, dtype, model, prompts, theirs, bandwidth,
                                    matmul[dtype]))
    device = jax.devices()[0]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    params = sum(p.numel() for p in hf.parameters())
    print(f"decode: Llama {params / 1e6:.1f}M params (size {args.size}: hidden {args.hidden}, "
          f"{args.layers} layers, vocab {args.vocab}{', speech codes only' * args.speech_only}"
          f"), our dtypes {args.dtype}, prompt {args.prompt}, {args.new} new tokens, {SETTINGS}; "
          f"ours on {device.platform} ({device.device_kind}), transformers "
          f"{transformers_version()} on CPU ({torch.get_num_threads()} threads); median of "
          f"{args.repeats}; load average {load}")
    mm = "; ".join(f"{d} {m['gflop_per_second']:.1f} ("
                   + ", ".join(f"{k} {v:.1f}" for k, v in m["by_library"].items()) + ")"
                   for d, m in matmul.items())
    print(f"rooflines: read bandwidth {bandwidth['gb_per_second']:.1f} GB/s "
          f"({', '.join(f'{k} {v:.1f}' for k, v in bandwidth['by_method'].items())}); "
          f"matmul GFLOP/s {mm}")
    print(f"{'batch':>5}{'dtype':>9}{'ours tok/s':>11}{'torch tok/s':>12}{'speedup':>8}"
          f"{'bw roof':>9}{'of bw':>7}{'mm roof':>9}{'of mm':>7}{'torch of mm':>12}"
          f"{'compile s':>10}")
    for r in rows:
        dash = r["torch_seconds"] is None
        torch_mm = r["torch_fraction_of_matmul_roofline"]
        print(f"{r['batch']:>5}{r['dtype']:>9}{r['ours_tokens_per_second']:>11.0f}"
              f"{'-' if dash else format(r['torch_tokens_per_second'], '.0f'):>12}"
              f"{'-' if dash else format(r['speedup'], '.1f') + 'x':>8}"
              f"{r['bandwidth_roofline_tokens_per_second']:>9.0f}"
              f"{r['fraction_of_bandwidth_roofline']:>7.0%}"
              f"{r['matmul_roofline_tokens_per_second']:>9.0f}"
              f"{r['fraction_of_matmul_roofline']:>7.0%}"
              f"{'-' if torch_mm is None else format(torch_mm, '.0%'):>12}"
              f"{r['ours_first_call_seconds']:>10.2f}")
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(out.read_text()) if out.is_file() else {}
    label = args.label or f"{args.size}-{'-'.join(args.dtypes)}-{device.platform}"
    results[label] = {"device": f"{device.platform} {device.device_kind}",
                      "host": platform.node(), "load_average_1min": load,
                      "params": params, "settings": SETTINGS, "bandwidth": bandwidth,
                      "matmul": matmul,
                      "args": {k: v for k, v in vars(args).items() if k != "out"},
                      "transformers": transformers_version(), "torch": torch.__version__,
                      "jax": jax.__version__, "torch_threads": torch.get_num_threads(),
                      "rows": rows}
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


def transformers_version() -> str:
    import transformers

    return transformers.__version__


if __name__ == "__main__":
    sys.exit(main())
