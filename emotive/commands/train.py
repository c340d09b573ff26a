"""`emotive train CONFIG [--preset NAME] [--set key=value ...] [--workdir DIR] [--resume]`."""

from __future__ import annotations

import argparse
import json

from emotive import configs
from emotive.configs import base


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help=f"experiment config: {', '.join(configs.EXPERIMENTS)}")
    parser.add_argument("--preset", default="tiny", help="named preset of the config "
                        "(default: tiny)")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override config keys, e.g. --set model.num_layers=4 optim.lr=3e-4")
    parser.add_argument("--workdir", default=None,
                        help="where checkpoints, logs and metrics go (default: runs/CONFIG-PRESET)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in --workdir")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved config as JSON and exit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    group = parser.add_argument_group("multi-process (see WORKSPACE.md; auto-detected on TPU "
                                      "pods and Slurm)")
    group.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                       help="address of process 0 (or EMOTIVE_COORDINATOR)")
    group.add_argument("--num-processes", type=int, default=None,
                       help="number of processes (or EMOTIVE_NUM_PROCESSES)")
    group.add_argument("--process-id", type=int, default=None,
                       help="this process's index (or EMOTIVE_PROCESS_ID)")


def run(args: argparse.Namespace) -> int:
    cfg = configs.load(args.config, args.preset, args.overrides)
    if args.print_config:
        print(base.to_json(cfg))
        return 0
    from emotive.train import distributed

    distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    from emotive.train import trainer  # heavy imports only once the config is valid

    workdir = args.workdir or f"runs/{args.config}-{args.preset}"
    try:
        summary = trainer.train(cfg, workdir, resume=args.resume, progress=not args.no_progress)
    except trainer.Preempted as exc:
        print(f"emotive train: {exc}", flush=True)
        return trainer.EXIT_PREEMPTED
    except trainer.NonFiniteLoss as exc:
        print(f"emotive train: error: {exc}", flush=True)
        return trainer.EXIT_NONFINITE
    import jax

    if jax.process_index() != 0:
        return 0
    report = {k: v for k, v in summary.items() if k != "state"}
    print(json.dumps(report, indent=2, default=float))
    from emotive.train.tasks import report_after_training

    message = report_after_training(cfg, summary)
    if message:
        print(message)
    return 0
