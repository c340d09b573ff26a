"""`emotive bundle verify DIR` and `emotive bundle info DIR`: check or describe a release bundle.

    emotive bundle verify releases/ser-judge     # every file against SHA256SUMS; exit 2 if not
    emotive bundle info releases/ser-judge       # family, parameters, dtype, files, metrics

A changed, missing or extra file is a one-line error naming it (exit status 2). `info`
verifies first too, then prints what the bundle holds and the metrics its card states.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True,
                                parser_class=type(parser))
    verify = sub.add_parser("verify", help="check every file against SHA256SUMS")
    verify.add_argument("dir", help="a bundle folder written by `emotive release`")
    info = sub.add_parser("info", help="family, parameter count and bytes, dtype, files, "
                                       "card metrics")
    info.add_argument("dir", help="a bundle folder written by `emotive release`")
    info.add_argument("--json", action="store_true", help="print the summary as JSON")


def _size(n: int) -> str:
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


def run(args: argparse.Namespace) -> int:
    import json

    from emotive.infer import bundle

    if args.action == "verify":
        files = bundle.verify_bundle(args.dir)
        print(f"{args.dir}: OK, {len(files)} files match SHA256SUMS")
        return 0
    info = bundle.summary(args.dir)
    info["card_metrics"] = bundle.card_metrics(args.dir)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    meta = info["metadata"]
    print(f"{args.dir}: {info['task']} bundle (step {meta.get('step', '?')}, released as "
          f"{meta.get('dtype', '?')})")
    print(f"  parameters: {info['parameters']:,} ({_size(info['parameter_bytes'])}, "
          f"{info['dtype']}); other variables: {info['rest_values']:,} "
          f"({_size(info['rest_bytes'])}, {info['rest_dtype']})")
    print("  files:")
    for name, size in info["files"].items():
        print(f"    {name:<40} {_size(size)}")
    if info["card_metrics"]:
        print("  card metrics:")
        for m in info["card_metrics"]:
            print(f"    {m['name'] or m['type']}: {m['value']} ({m['dataset']})")
    else:
        print("  card metrics: none stated")
    return 0
