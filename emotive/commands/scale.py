"""`emotive scale CONFIG [--preset NAME] [--mesh fsdp=8 ...] [--set k=v ...] [--batch N]
[--devices N] [--json PATH]`.

Counts parameters, compiles one train step on N simulated CPU devices from shapes
only (no parameter is allocated), and prints per-device memory and FLOPs. JAX is
imported only after the arguments are parsed, because the number of simulated
devices is an XLA flag that must be set before JAX starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import pathlib
import re
import sys

from emotive import configs
from emotive.configs.common import MeshConfig
from emotive.errors import UserError

MESH_AXES = tuple(f.name for f in dataclasses.fields(MeshConfig))
DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help=f"experiment config: {', '.join(configs.EXPERIMENTS)}")
    parser.add_argument("--preset", default="tiny", help="named preset of the config "
                        "(default: tiny)")
    parser.add_argument("--mesh", nargs="+", default=["fsdp=8"], metavar="AXIS=SIZE",
                        help=f"mesh sizes over {', '.join(MESH_AXES)}; axes not named are 1; "
                        "one size may be -1 with --devices (default: fsdp=8)")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override config keys, e.g. --set model.num_layers=2")
    parser.add_argument("--batch", type=int, default=None,
                        help="global batch (default: one row per data-parallel device)")
    parser.add_argument("--devices", type=int, default=None,
                        help="simulated CPU devices (default: the product of the mesh sizes)")
    parser.add_argument("--json", default=None, metavar="PATH",
                        help="also write the report as JSON to PATH")


def parse_mesh(items: list[str]) -> dict[str, int]:
    """['fsdp=8', 'tensor=2'] -> {'data': 1, 'fsdp': 8, 'tensor': 2}; bad items raise UserError."""
    sizes = {axis: 1 for axis in MESH_AXES}
    for item in items:
        axis, sep, text = item.partition("=")
        axis = axis.strip()
        if not sep or axis not in MESH_AXES:
            raise UserError(f"bad --mesh item '{item}': expected AXIS=SIZE with AXIS one of "
                            f"{', '.join(MESH_AXES)}, e.g. --mesh fsdp=8")
        try:
            size = int(text)
        except ValueError:
            raise UserError(f"bad --mesh size in '{item}': expected an integer") from None
        if size == 0 or size < -1:
            raise UserError(f"bad --mesh size in '{item}': sizes must be positive, or -1 "
                            "for the remaining devices")
        sizes[axis] = size
    return sizes


def device_count(sizes: dict[str, int], devices: int | None) -> int:
    """The number of simulated devices: --devices, else the product of the mesh sizes."""
    if devices is not None:
        if devices < 1:
            raise UserError(f"--devices must be >= 1, got {devices}")
        return devices
    if -1 in sizes.values():
        raise UserError("a --mesh size of -1 needs --devices N to say how many devices to fill")
    return math.prod(sizes.values())


def _simulate_cpu_devices(n: int) -> None:
    """Asks XLA for `n` CPU devices and no accelerator, if JAX has not been imported yet.

    Once JAX is imported (a test or notebook calling `run`) its flags are fixed,
    so the environment is left as it is and `run` checks the devices it finds.
    """
    if "jax" in sys.modules:
        return
    flags = re.sub(DEVICE_COUNT_FLAG + r"=\S+", "", os.environ.get("XLA_FLAGS", ""))
    os.environ["XLA_FLAGS"] = f"{flags} {DEVICE_COUNT_FLAG}={n}".strip()
    os.environ["JAX_PLATFORMS"] = "cpu"  # simulated devices are host devices, even on a GPU box


def run(args: argparse.Namespace) -> int:
    sizes = parse_mesh(args.mesh)
    n = device_count(sizes, args.devices)
    mesh_sets = [f"mesh.{axis}={size}" for axis, size in sizes.items()]
    cfg = configs.load(args.config, args.preset, list(args.overrides) + mesh_sets)
    if args.batch is not None and args.batch < 1:
        raise UserError(f"--batch must be >= 1, got {args.batch}")
    _simulate_cpu_devices(n)
    import jax  # only now: the device-count flag is read when the CPU backend starts

    from emotive.train.scale import format_report, scale_report

    try:
        available = jax.devices("cpu")
    except RuntimeError:  # JAX was started earlier without its CPU backend
        available = []
    if len(available) < n:
        raise UserError(f"JAX already started with {len(available)} CPU devices, fewer than "
                        f"{n}; run `emotive scale` in a fresh process")
    report = scale_report(cfg, available[:n], args.batch)
    report = {"config": args.config, "preset": args.preset, "overrides": list(args.overrides),
              **report}
    title = f"{args.config} --preset {args.preset}" + (
        f" --set {' '.join(args.overrides)}" if args.overrides else "")
    print(format_report(report, title))
    if args.json:
        path = pathlib.Path(args.json)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(report, indent=2) + "\n")
        except OSError as exc:
            raise UserError(f"cannot write --json {path} ({exc.strerror}); choose another "
                            "path") from None
        print(f"wrote {path}")
    return 0
