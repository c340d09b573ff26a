"""Decode speed: tokens/s of batched sampling, ours against transformers' generate.

    python bench/decode.py [--batch 1,8,32] [--prompt 32] [--new 128] [--repeats 3]
                           [--hidden 256 --layers 4 --heads 8 --kv-heads 2 --codes 4096]
                           [--threads N] [--skip-torch] [--out bench/results/decode.json]

About two minutes on 2 idle cores (`--threads 2`). On a shared, busy machine PyTorch's
spinning worker threads collapse (14x slower at 2 threads than at 1 in one run here), so
compare with `--threads 1` there, or better on an idle machine.

One small Llama with a Llasa-style vocabulary (256 text ids + 8 specials + `--codes` speech
codes) is built in transformers with random weights, saved as safetensors and imported with
`emotive.hub.hf_llama.import_hf_llama`, so both sides run the same weights. For each batch size
both sample `--new` tokens after `--prompt`-token prompts with the same settings
(temperature 0.8, top-k 50, top-p 0.95, repetition penalty 1.2, no stop token, so every row
makes exactly `--new` tokens; transformers also gets min_new_tokens). Ours is
`emotive.infer.sampling.generate` (one jitted prefill + on-device while_loop over the KV
cache); theirs is `LlamaForCausalLM.generate` in PyTorch on CPU with its dynamic cache.
One warm-up call per shape is excluded (our compile time is reported apart); the time is the
median of `--repeats` calls, prefill included. tokens/s counts new tokens of all rows.
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
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

TEXT, SPECIALS = 256, 8
SETTINGS = dict(temperature=0.8, top_k=50, top_p=0.95, repetition_penalty=1.2)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", default="1,8,32", help="comma-separated batch sizes")
    p.add_argument("--prompt", type=int, default=32, help="prompt tokens per row")
    p.add_argument("--new", type=int, default=128, help="new tokens per row")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per side and batch")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--mlp", type=int, default=704)
    p.add_argument("--codes", type=int, default=4096, help="speech codes in the vocabulary")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads for both sides (default: each library's own choice); "
                        "1 keeps a busy shared machine from distorting the comparison")
    p.add_argument("--skip-torch", action="store_true", help="time ours only (e.g. on a GPU)")
    p.add_argument("--label", default=None, help="name of this run in the JSON")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "decode.json"))
    return p.parse_args(argv)


def build(args, workdir: pathlib.Path):
    """(transformers model, our CausalLM) with the same random weights."""
    import torch
    import transformers

    from emotive.hub.hf_llama import import_hf_llama

    cfg = transformers.LlamaConfig(
        vocab_size=TEXT + SPECIALS + args.codes, hidden_size=args.hidden,
        intermediate_size=args.mlp, num_hidden_layers=args.layers,
        num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
        max_position_embeddings=max(2048, args.prompt + args.new), tie_word_embeddings=False)
    torch.manual_seed(0)
    hf = transformers.LlamaForCausalLM(cfg).eval()
    hf.save_pretrained(workdir, safe_serialization=True)
    model, _ = import_hf_llama(workdir)
    return hf, model


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def bench_ours(model, prompts, args) -> tuple[float, float]:
    """(first call seconds incl. compile, median seconds)."""
    from emotive.infer.sampling import SamplingConfig, generate, prepare

    cfg = SamplingConfig(**SETTINGS, max_new_tokens=args.new)
    model = prepare(model)  # split once, as a serving loop would
    seeds = list(range(len(prompts)))
    call = lambda: generate(model, prompts, cfg, seeds=seeds)
    start = time.perf_counter()
    out = call()
    first = time.perf_counter() - start
    assert out.tokens.shape == (len(prompts), args.new) and not out.stopped.any()
    return first, median_seconds(call, args.repeats)


def bench_torch(hf, prompts, args) -> float:
    import torch
    import transformers

    gen = transformers.GenerationConfig(do_sample=True, max_new_tokens=args.new,
                                        min_new_tokens=args.new, eos_token_id=None,
                                        pad_token_id=0, **SETTINGS)
    ids = torch.tensor(np.asarray(prompts))

    def call():
        with torch.no_grad():
            out = hf.generate(ids, attention_mask=torch.ones_like(ids), generation_config=gen)
        assert out.shape == (len(prompts), args.prompt + args.new)

    call()  # warm-up
    return median_seconds(call, args.repeats)


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
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        hf, model = build(args, pathlib.Path(tmp))
    for b in batches:
        prompts = rng.integers(0, TEXT, (b, args.prompt)).tolist()
        first, ours = bench_ours(model, prompts, args)
        theirs = None if args.skip_torch else bench_torch(hf, prompts, args)
        new = b * args.new
        rows.append({"batch": b, "new_tokens": new, "ours_seconds": ours,
                     "ours_first_call_seconds": first, "ours_tokens_per_second": new / ours,
                     "torch_seconds": theirs,
                     "torch_tokens_per_second": None if theirs is None else new / theirs,
                     "speedup": None if theirs is None else theirs / ours})
    device = jax.devices()[0]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    params = sum(p.numel() for p in hf.parameters())
    print(f"decode: Llama {params / 1e6:.1f}M params (hidden {args.hidden}, {args.layers} "
          f"layers, vocab {TEXT + SPECIALS + args.codes}), prompt {args.prompt}, {args.new} new "
          f"tokens, {SETTINGS}; ours on {device.platform} ({device.device_kind}), transformers "
          f"{transformers_version()} on CPU ({torch.get_num_threads()} threads); "
          f"median of {args.repeats}; load average {load}")
    print(f"{'batch':>5}{'ours tok/s':>12}{'torch tok/s':>13}{'speedup':>9}{'ours s':>9}"
          f"{'torch s':>9}{'compile s':>11}")
    for r in rows:
        torch_tps = "-" if r["torch_seconds"] is None else f"{r['torch_tokens_per_second']:.0f}"
        torch_s = "-" if r["torch_seconds"] is None else f"{r['torch_seconds']:.3f}"
        speed = "-" if r["speedup"] is None else f"{r['speedup']:.1f}x"
        print(f"{r['batch']:>5}{r['ours_tokens_per_second']:>12.0f}{torch_tps:>13}{speed:>9}"
              f"{r['ours_seconds']:>9.3f}{torch_s:>9}{r['ours_first_call_seconds']:>11.2f}")
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(out.read_text()) if out.is_file() else {}
    label = args.label or f"h{args.hidden}-l{args.layers}-v{TEXT + SPECIALS + args.codes}-" \
                          f"{device.platform}"
    results[label] = {"device": f"{device.platform} {device.device_kind}",
                      "host": platform.node(), "load_average_1min": load,
                      "params": params, "settings": SETTINGS,
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
