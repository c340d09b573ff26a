"""Tokens/s, achieved TFLOP/s and MFU of the LM train step on one device.

The model, train state and step are the toy_lm task's, from `emotive.train.state`,
on real arrays (full rows of random tokens, so every position is a token). FLOPs
per step are MaxText's analytic count (`emotive.models.transformer.train_flops`);
MFU = analytic FLOP/s / the peak measured in the same run by a large square
matmul in the compute dtype (`emotive.train.flops.measure_matmul_tflops`),
sampled before the steps and after each timed step. MFU takes the fastest step
and the fastest peak sample: on a shared machine other processes only ever slow
a measurement down, so the fastest of each is the least disturbed.

On CPU a second MFU divides by process CPU seconds instead of wall seconds, for
both the step and the matmul. Time slices lost to other processes then cancel
out, so it stays meaningful on a busy box (on an idle one the two should agree).

CPU (127.9M parameters, 2,048 tokens per step; about a minute on 2 idle cores,
several when other jobs share them):

    python bench/train_step.py --preset base --set model.num_layers=4 model.d_model=1024 \
        model.num_heads=16 model.num_kv_heads=4 model.head_dim=64 model.mlp_dim=4096 \
        data.num_symbols=32764 --batch 4 --seq 512 --steps 3 --warmup 1

One H100, a couple of minutes (4 of the 1b preset's 16 layers with its 193,800-token
vocabulary, bf16 compute on fp32 master weights, remat of dots, scanned layers;
`emotive scale toy_lm --preset 1b --set model.num_layers=4 --mesh fsdp=1` puts
it at about 51 GiB):

    python bench/train_step.py --preset 1b --set model.num_layers=4 --dtype bfloat16 \
        --batch 8 --seq 2048 --steps 10 --peak-size 8192

(add `model.attention=cudnn` to --set for cuDNN flash attention; the 1b preset already
chunks its loss, `loss_chunk=0` turns that off).

`--breakdown` also times the forward pass and forward+backward without the
optimiser, to show where a step's time goes. `--profile DIR` traces two more steps
with jax.profiler into DIR (TensorBoard / Perfetto) and prints the ops that took the
most time (XLA's ops on CPU, GPU kernels on a GPU). The fused attention kernel and the
chunked loss are config values:

    python bench/train_step.py --preset base --set model.attention=fused loss_chunk=1024 \
        --batch 2 --seq 128 --steps 2 --profile /tmp/train_step_trace
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import pathlib
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from emotive import configs  # noqa: E402  (no JAX import yet)
from emotive.errors import UserError  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="base", help="toy_lm preset (default: base)")
    p.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                   help="config overrides, e.g. model.num_layers=4")
    p.add_argument("--batch", type=int, default=4, help="rows per step (default: 4)")
    p.add_argument("--seq", type=int, default=512, help="tokens per row (default: 512)")
    p.add_argument("--steps", type=int, default=3, help="timed steps (default: 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps after compiling")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                   help="compute dtype of the model and of the peak matmul")
    p.add_argument("--peak-size", type=int, default=0,
                   help="matmul size for the peak (default: 8192 on GPU/TPU, 2048 on CPU)")
    p.add_argument("--peak-repeats", type=int, default=5,
                   help="matmuls per peak sample (best of them; default: 5)")
    p.add_argument("--breakdown", action="store_true",
                   help="also time forward and forward+backward alone")
    p.add_argument("--profile", default="", metavar="DIR",
                   help="trace two extra steps into DIR and print the costliest ops")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "train_step.json"),
                   help="JSON list the result is added to (replacing one of the same label)")
    p.add_argument("--label", default="", help="name of this run in the table and JSON")
    return p.parse_args(argv)


PROFILE_STEPS = 2
TOP_OPS = 15


def _self_times(events: list[dict]) -> list[tuple[dict, float]]:
    """(event, its duration less its children's) for the complete events of one thread."""
    out, stack = [], []  # stack: [event end, index in out]
    for e in sorted(events, key=lambda e: (e["ts"], -e.get("dur", 0))):
        while stack and stack[-1][0] <= e["ts"]:
            stack.pop()
        if stack:
            parent = out[stack[-1][1]]
            out[stack[-1][1]] = (parent[0], parent[1] - e.get("dur", 0))
        out.append((e, e.get("dur", 0)))
        stack.append((e["ts"] + e.get("dur", 0), len(out) - 1))
    return out


def top_ops(directory: str, n: int = TOP_OPS) -> list[dict]:
    """The n op names with the most self time (less nested ops) in the newest Perfetto
    trace under `directory`, per traced step: [{"op", "where", "ms", "calls"}]. Python's
    thread and the host runtime's own scopes (names with "::") are left out, so what
    stays is XLA's ops on CPU and the kernels on a GPU."""
    traces = sorted(pathlib.Path(directory).glob("**/*.trace.json.gz"),
                    key=lambda f: f.stat().st_mtime)
    if not traces:
        raise UserError(f"no *.trace.json.gz under {directory}: the profiler wrote no trace")
    trace = json.loads(gzip.decompress(traces[-1].read_bytes()))
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    meta = {(e["name"], e["pid"], e.get("tid")): e["args"]["name"] for e in events
            if e.get("ph") == "M" and e.get("name") in ("process_name", "thread_name")}
    threads = collections.defaultdict(list)
    for e in events:
        if e.get("ph") == "X" and meta.get(("thread_name", e["pid"], e.get("tid"))) != "python":
            threads[(e["pid"], e.get("tid"))].append(e)
    total, calls = collections.Counter(), collections.Counter()
    for (pid, _), thread in threads.items():
        where = meta.get(("process_name", pid, None), "?")
        for e, self_us in _self_times(thread):
            if where.startswith("/host") and ("::" in e["name"] or e["name"].startswith("end:")):
                continue
            total[(e["name"], where)] += self_us / 1e3
            calls[(e["name"], where)] += 1
    return [{"op": op, "where": where, "ms": ms / PROFILE_STEPS,
             "calls": calls[(op, where)] // PROFILE_STEPS}
            for (op, where), ms in total.most_common(n)]


def timed(fn) -> tuple[float, float]:
    """Runs fn() to completion; returns (wall seconds, process CPU seconds)."""
    import jax

    wall, cpu = time.perf_counter(), time.process_time()
    jax.block_until_ready(fn())
    return time.perf_counter() - wall, time.process_time() - cpu


def make_peak_sampler(size: int, dtype, repeats: int, device):
    """Returns sample() -> (wall TFLOP/s, CPU-time TFLOP/s) of a size^3 matmul."""
    import jax
    import jax.numpy as jnp

    from emotive.train.flops import measure_matmul_tflops

    a = jax.device_put(jnp.ones((size, size), dtype), device)
    matmul = jax.jit(lambda x: x @ x)
    timed(lambda: matmul(a))  # compile once, outside any sample
    flops = 2 * size**3 / 1e12

    def sample() -> tuple[float, float]:
        wall = measure_matmul_tflops(size, dtype, repeats=repeats, device=device)
        cpu = min(timed(lambda: matmul(a))[1] for _ in range(repeats))
        return wall, flops / max(cpu, 1e-9)

    return sample


def build(cfg, args, device):
    """The toy_lm train state on one device, a batch and the compiled step."""
    import jax
    import numpy as np

    from emotive.models.sharding import use_mesh
    from emotive.train.mesh import make_mesh, replicated
    from emotive.train.optim import adamw, lr_schedule
    from emotive.train.state import (batch_shardings, init_state, make_train_step,
                                      split_abstract)
    from emotive.train.tasks import make_task
    from emotive.train.tasks.toy_lm import FIRST_SYMBOL

    task = make_task(cfg)
    mesh = make_mesh(cfg.mesh, [device])
    model, _ = split_abstract(task, seed=0)
    steps_total = max(cfg.train.steps, args.warmup + args.steps)
    optimizers = {g: adamw(cfg.optim, steps_total) for g in task.groups}
    schedules = {g: lr_schedule(cfg.optim, steps_total) for g in task.groups}
    state, shardings = init_state(task, model, optimizers, mesh, seed=0)

    # Full rows of random payload tokens: every position is a real token, as in packed data.
    rng = np.random.default_rng(0)
    tokens = rng.integers(FIRST_SYMBOL, cfg.data.vocab_size, (args.batch, args.seq + 1),
                          dtype=np.int32)
    local = {"inputs": tokens[:, :-1], "targets": tokens[:, 1:],
             "loss_mask": np.ones((args.batch, args.seq), np.float32),
             "segment_ids": np.ones((args.batch, args.seq), np.int32)}
    batch_sh = batch_shardings(local, mesh)
    batch = jax.device_put(local, batch_sh)
    step_fn = jax.jit(make_train_step(task, model, optimizers, schedules, 0, 1),
                      in_shardings=(shardings, batch_sh),
                      out_shardings=(shardings, replicated(mesh)), donate_argnums=(0,))
    start = time.perf_counter()
    with use_mesh(mesh):
        compiled = step_fn.lower(state, batch).compile()
    return task, model, mesh, state, batch, compiled, time.perf_counter() - start


def run(args: argparse.Namespace) -> dict:
    """Builds, compiles and times the step; returns the result record."""
    if min(args.batch, args.seq, args.steps) < 1 or args.warmup < 0:
        raise UserError("--batch, --seq and --steps must be >= 1 and --warmup >= 0")
    cfg = configs.load("toy_lm", args.preset, list(args.overrides) + [
        f"model.dtype={args.dtype}", f"train.batch_size={args.batch}",
        "mesh.data=1", "mesh.fsdp=1", "mesh.tensor=1"])

    import jax
    import jax.numpy as jnp
    import numpy as np

    from emotive.models.transformer import train_flops
    from emotive.train.flops import known_peak_tflops
    from emotive.train.scale import param_counts

    device = jax.devices()[0]
    on_cpu = device.platform == "cpu"
    peak_size = args.peak_size or (2048 if on_cpu else 8192)
    sample_peak = make_peak_sampler(peak_size, jnp.dtype(args.dtype), args.peak_repeats, device)
    peaks = [sample_peak()]

    task, model, mesh, state, batch, compiled, compile_s = build(cfg, args, device)
    holder = {"state": state}

    def one_step():
        holder["state"], holder["metrics"] = compiled(holder["state"], batch)
        return holder["state"]

    for _ in range(args.warmup):
        timed(one_step)
    steps = []
    for _ in range(args.steps):  # a peak sample after each step sees the same machine load
        steps.append(timed(one_step))
        peaks.append(sample_peak())

    if args.profile:
        with jax.profiler.trace(args.profile, create_perfetto_trace=True):
            for _ in range(PROFILE_STEPS):
                timed(one_step)

    flops = train_flops(cfg.model, args.batch, args.seq,
                        head_params=cfg.model.d_model * cfg.data.vocab_size)
    walls = [w for w, _ in steps]
    step_s = min(walls)  # best of both, see the module docstring
    achieved = flops / step_s / 1e12
    peak = max(p for p, _ in peaks)
    datasheet = known_peak_tflops(device)  # bf16 dense, where the device is in the table
    m = cfg.model
    label = args.label or (f"{args.preset} L{m.num_layers} d{m.d_model} h{m.num_heads}/"
                           f"{m.num_kv_heads} mlp{m.mlp_dim} V{cfg.data.vocab_size}"
                           + ("" if m.attention == "einsum" else f" {m.attention}")
                           + (f" chunk{cfg.loss_chunk}" if cfg.loss_chunk else ""))
    result = {
        "label": label, "device": device.device_kind, "platform": device.platform,
        "dtype": args.dtype, "params": param_counts(model)["total"],
        "batch": args.batch, "seq": args.seq, "tokens_per_step": args.batch * args.seq,
        "step_seconds": step_s, "step_seconds_median": statistics.median(walls),
        "step_seconds_all": walls, "tokens_per_s": args.batch * args.seq / step_s,
        "flops_per_step": flops, "achieved_tflops": achieved, "peak_tflops": peak,
        "peak_matmul_size": peak_size, "peak_samples_tflops": [p for p, _ in peaks],
        "mfu": achieved / peak, "datasheet_peak_tflops": datasheet,
        "mfu_datasheet": None if datasheet is None else achieved / datasheet,
        "compile_seconds": compile_s, "remat": m.remat, "scan_layers": m.scan_layers,
        "attention": m.attention, "loss_chunk": cfg.loss_chunk,
        "preset": args.preset, "overrides": list(args.overrides),
        "loss_finite": bool(np.isfinite(float(jax.device_get(holder["metrics"]["loss"])))),
    }
    if on_cpu:  # CPU seconds: other processes' time slices drop out of both sides
        step_cpu = min(c for _, c in steps)
        result["step_cpu_seconds"] = step_cpu
        result["peak_cpu_tflops"] = max(c for _, c in peaks)
        result["mfu_cpu_time"] = flops / step_cpu / 1e12 / result["peak_cpu_tflops"]
    if args.profile:
        result["profile_top_ops"] = top_ops(args.profile)
    if args.breakdown:
        result["breakdown_seconds"] = breakdown(task, model, holder["state"], batch, mesh,
                                                args.steps)
    return result


def breakdown(task, model, state, batch, mesh, n: int) -> dict:
    """Best wall seconds of the forward loss and of forward+backward, without the optimiser."""
    import jax

    from emotive.models.sharding import use_mesh

    group = task.groups[0]
    params, rest = state["params"], state["rest"]

    def loss_of(p):
        return task.losses[group](model.merge({**params, group: p}, rest), batch,
                                  jax.random.key(0))[0]

    out = {}
    with use_mesh(mesh):
        for name, fn in (("forward", loss_of), ("forward_backward", jax.grad(loss_of))):
            compiled = jax.jit(fn).lower(params[group]).compile()
            timed(lambda: compiled(params[group]))
            out[name] = min(timed(lambda: compiled(params[group]))[0] for _ in range(n))
    return out


def format_table(results: list[dict]) -> str:
    """One row per result: config, params, batch x seq, step time, tokens/s, TFLOP/s, MFU."""
    header = ("config", "params", "batch x seq", "step ms (median)", "tokens/s", "TFLOP/s",
              "peak TFLOP/s", "MFU", "MFU (CPU time)")
    rows = [header]
    for r in results:
        cpu_mfu = r.get("mfu_cpu_time")
        rows.append((f"{r['label']} [{r['dtype']}, {r['device']}]", f"{r['params'] / 1e6:.1f}M",
                     f"{r['batch']} x {r['seq']}",
                     f"{r['step_seconds'] * 1e3:.0f} ({r['step_seconds_median'] * 1e3:.0f})",
                     f"{r['tokens_per_s']:,.0f}", f"{r['achieved_tflops']:.4f}",
                     f"{r['peak_tflops']:.4f}", f"{100 * r['mfu']:.1f}%",
                     "-" if cpu_mfu is None else f"{100 * cpu_mfu:.1f}%"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def save(result: dict, path: pathlib.Path) -> list[dict]:
    """Adds `result` to the JSON list at `path`, replacing an entry of the same label,
    device and dtype; returns the list."""
    entries = []
    if path.exists():
        try:
            entries = json.loads(path.read_text())
        except json.JSONDecodeError:
            raise UserError(f"{path} is not valid JSON; move it away or pass another --out") \
                from None
    key = (result["label"], result["device"], result["dtype"])
    entries = [e for e in entries if (e["label"], e["device"], e["dtype"]) != key]
    entries.append(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries, indent=2) + "\n")
    return entries


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        result = run(args)
        save(result, pathlib.Path(args.out))
    except UserError as exc:
        print(f"bench/train_step.py: error: {exc}", file=sys.stderr)
        return 2
    print(format_table([result]))
    if "breakdown_seconds" in result:
        parts = ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in result["breakdown_seconds"].items())
        print(f"breakdown: {parts}, full step {result['step_seconds'] * 1e3:.0f} ms")
    if "profile_top_ops" in result:
        print(f"top ops of a traced step (trace in {args.profile}):")
        for op in result["profile_top_ops"]:
            share = op["ms"] / (result["step_seconds"] * 1e3)
            print(f"  {op['ms']:9.2f} ms {100 * share:5.1f}%  x{op['calls']:<4} "
                  f"{op['op'][:60]}  [{op['where']}]")
    samples = ", ".join(f"{p:.4f}" for p in result["peak_samples_tflops"])
    print(f"compiled in {result['compile_seconds']:.1f}s; {result['peak_matmul_size']}^3 matmul "
          f"samples {samples} TFLOP/s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
