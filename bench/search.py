"""Search cost: wall time of best-of-N and beam search against one plain sample, and where the
time goes (LM decoding, codec, verifiers).

    python bench/search.py --tts RUN --codec RUN --verifier emotion=SER_RUN \
        [--verifier intelligibility=ASR_RUN] [--budgets 1,4,16] [--strategies best_of_n,prm_orm]
        [--requests 4] [--repeats 2] [--out bench/results/search.json]

With trained runs (the TTS recipe's, see WORKSPACE.md) it times real models; the
requests are the first --requests of a fixed list of held-out-style sentences, one per
emotion, searched in one batch. Each setting runs once to compile (not timed), then
--repeats times; the median wall time is reported with its split into LM, codec and
verifier seconds (Compute, measured inside the search) and the ratio to budget 1.
Prints a table, adds the run to the JSON under its label.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import sys
import time


ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

SENTENCES = [("The tea has gone cold.", "sad"), ("We won the final match today!", "happy"),
             ("Who left the door wide open?", "angry"), ("Something moved in the dark.",
                                                         "fearful"),
             ("The train leaves at nine.", "neutral"), ("Take a slow, deep breath.", "calm"),
             ("You did all of this yourself?", "surprised"), ("This soup smells rotten.",
                                                              "disgusted")]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tts", required=True, help="TTS run dir")
    p.add_argument("--codec", required=True, help="codec run dir")
    p.add_argument("--verifier", action="append", default=[], metavar="KIND=RUN")
    p.add_argument("--budgets", default="1,4,16")
    p.add_argument("--strategies", default="best_of_n,prm_orm")
    p.add_argument("--requests", type=int, default=4)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--max-seconds", type=float, default=6.0)
    p.add_argument("--label", default=None, help="name of this run in the JSON")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "search.json"))
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from emotive.commands.search import pairs
    from emotive.infer.codec import load_codec
    from emotive.infer.tts_model import load_tts
    from emotive.search.search import search_batch
    from emotive.search.verifiers import Request, load_verifiers

    budgets = [int(b) for b in args.budgets.split(",")]
    strategies = [s for s in args.strategies.split(",") if s]
    lm, codec = load_tts(args.tts), load_codec(args.codec)
    verifiers = load_verifiers(pairs(args.verifier, "--verifier", number=False))
    requests = [Request(text=t, emotion=e) for t, e in SENTENCES[:args.requests]]
    rows = []
    for name in strategies:
        for b in budgets:
            if name != "best_of_n" and b < 2:
                continue
            runs = []
            for rep in range(args.repeats + 1):
                t0 = time.perf_counter()
                results = search_batch(lm, codec, requests, verifiers=verifiers, strategy=name,
                                       budget=b, seed=rep, max_seconds=args.max_seconds)
                wall = time.perf_counter() - t0
                c = [r.compute for r in results]
                runs.append({"wall": wall, "lm": sum(x.lm_seconds for x in c),
                             "codec": sum(x.codec_seconds for x in c),
                             "verifier": sum(x.verifier_seconds for x in c),
                             "tokens": sum(x.lm_tokens for x in c),
                             "audio": sum(x.audio_seconds for x in c)})
            timed = sorted(runs[1:], key=lambda r: r["wall"])[len(runs[1:]) // 2]
            rows.append({"strategy": name, "budget": b, **timed})
            print(f"{name} x{b}: {timed['wall']:.2f} s", flush=True)
    base = next(r["wall"] for r in rows if r["strategy"] == "best_of_n" and r["budget"] == 1) \
        if any(r["budget"] == 1 for r in rows) else rows[0]["wall"]
    print(f"\n{len(requests)} requests in one batch, median of {args.repeats}")
    print(f"{'strategy':<12}{'N':>4}{'wall s':>9}{'x N=1':>7}{'LM':>7}{'codec':>7}"
          f"{'verif':>7}{'other':>7}{'LM tok':>9}{'RTF':>7}")
    for r in rows:
        other = max(0.0, r["wall"] - r["lm"] - r["codec"] - r["verifier"])
        share = lambda x: f"{100 * x / r['wall']:>6.0f}%"  # noqa: E731
        r["ratio_to_one"] = r["wall"] / base
        print(f"{r['strategy']:<12}{r['budget']:>4}{r['wall']:>9.2f}{r['ratio_to_one']:>7.2f}"
              f"{share(r['lm'])}{share(r['codec'])}{share(r['verifier'])}{share(other)}"
              f"{r['tokens']:>9}{r['wall'] / max(r['audio'], 1e-9):>7.2f}")
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(out.read_text()) if out.exists() else {}
    import jax
    device = jax.devices()[0]
    label = args.label or f"{device.platform}-{time.strftime('%Y%m%d-%H%M')}"
    data[label] = {"device": f"{device.platform} {device.device_kind}", "host": platform.node(),
                   "requests": len(requests), "repeats": args.repeats,
                   "verifiers": args.verifier, "rows": rows}
    out.write_text(json.dumps(data, indent=2))
    print(f"wrote {out} [{label}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
