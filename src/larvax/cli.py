"""The ``larvax`` command line.

``larvax --version``; ``larvax models`` (registered networks and their arguments);
``larvax train`` (the main job: R2D2 on Simfish by default, any preset by name).
"""

from __future__ import annotations

import argparse
import os
import sys

import larvax
from larvax.evaluation.cli import add_eval_parser
from larvax.evaluation.cli_render import add_plot_parser, add_render_parser


def _error(message: str, code: int = 2) -> int:
    print(f"larvax: error: {message}", file=sys.stderr)
    return code


def cmd_models(args) -> int:
    from larvax.networks.registry import list_models

    models = list_models()
    width = max(len(n) for n in models)
    for name, info in sorted(models.items()):
        signature = info.get("signature", "") if isinstance(info, dict) else str(info)
        doc = info.get("doc", "") if isinstance(info, dict) else ""
        print(f"{name:<{width}}  {signature}")
        if doc:
            print(f"{'':<{width}}  {doc}")
    return 0


def _start_processes(args, console) -> int:
    """Join a multi-process run (flags, LARVAX_* variables or srun/mpirun) and take this
    process's devices; only process 0 prints. Returns the number of processes; bad settings
    raise a one-line DeviceError."""
    from larvax import distributed
    from larvax.devices import DeviceError, use_devices

    if args.resume and args.devices is not None:
        raise DeviceError(
            f"--devices {args.devices} with --resume: the run's config.yaml decides the devices"
        )
    try:
        processes = distributed.start(args.coordinator, args.num_processes, args.process_id)
    except distributed.DistributedError as err:
        raise DeviceError(str(err)) from None
    use_devices(args.devices, args.cpu_devices)
    console.quiet = not distributed.is_writer()  # process 0 speaks for the run
    args.no_progress = args.no_progress or not distributed.is_writer()
    return processes


def _with_devices(cfg: dict, args, processes: int) -> dict:
    """``cfg`` with the agent's ``num_devices`` from ``--devices`` and the process count
    (checked against its batches); a multi-process run needs ``--run-dir``."""
    from larvax.devices import DeviceError, num_devices_for
    from larvax.training import config as C

    try:
        count = num_devices_for(cfg, args.devices, processes)
    except DeviceError as err:
        raise C.ConfigError(str(err)) from None
    if processes > 1 and args.run_dir is None:
        raise C.ConfigError(f"--run-dir is required with {processes} processes (one for all)")
    if count is None:
        return cfg
    return C.validate({**cfg, "agent_config": {**cfg["agent_config"], "num_devices": count}})


def _resume_extras(args) -> bool:
    """Whether ``--resume`` came with options that only a new run takes."""
    return bool(args.preset or args.config or args.set or args.run_dir or args.init_from
                or args.seed is not None)  # fmt: skip


def _resume_budget(args) -> dict | None:
    """The run's config with ``--steps`` as its new budget (None: the saved budget)."""
    if args.steps is None:
        return None
    import yaml

    path = os.path.join(args.resume, "config.yaml")
    if not os.path.isfile(path):
        return None  # the loop reports the missing config
    with open(path) as f:
        cfg = yaml.safe_load(f)
    cfg["total_env_steps"] = int(args.steps)
    return cfg


def cmd_train(args) -> int:
    from rich.console import Console

    from larvax.training import config as C
    from larvax.training.checkpoint import CheckpointError
    from larvax.training.loop import RunDirError, TrainingDiverged, run

    console = Console(stderr=True)
    if args.cpu_devices is not None and args.cpu_devices < 1:
        return _error(f"--cpu-devices={args.cpu_devices} is not allowed; allowed: an int >= 1")
    if args.log_every is not None and not args.log_every > 0:
        return _error(f"--log-every={args.log_every} is not allowed; allowed: seconds > 0")
    from larvax.devices import DeviceError

    try:  # before JAX starts: join the processes, then this process's devices
        processes = _start_processes(args, console)
    except DeviceError as err:
        return _error(str(err))
    if args.list_presets:
        for name, description in C.list_presets().items():
            marker = " (default)" if name == C.DEFAULT_PRESET else ""
            print(f"{name}{marker}: {description}")
        return 0
    try:
        if args.resume:
            if _resume_extras(args):
                return _error(
                    "--resume takes only the run directory (and optionally --steps to extend "
                    "the budget); the run's own config.yaml is used"
                )
            console.print(f"[bold]larvax[/] resuming {args.resume}")
            result = run(_resume_budget(args), run_dir=args.resume, resume=True,
                         console=console, progress=not args.no_progress,
                         log_every=args.log_every)  # fmt: skip
        else:
            cfg = C.resolve(args.preset, args.config, args.set or [], args.steps, args.seed)
            if args.init_from is not None:
                cfg = C.validate({**cfg, "init_from": args.init_from})
            cfg = _with_devices(cfg, args, processes)
            console.print(
                f"[bold]larvax {larvax.__version__}[/] preset [cyan]{cfg['name']}[/]: "
                f"{cfg['description']}"
            )
            console.print(
                f"agent {cfg['agent']}, env {cfg['env']}, network {cfg['network']['name']}, "
                f"seed {cfg['seed']}"
            )
            result = run(cfg, run_dir=args.run_dir, console=console,
                         progress=not args.no_progress, log_every=args.log_every)  # fmt: skip
    except (C.ConfigError, RunDirError, CheckpointError) as err:
        return _error(str(err))
    except OSError as err:  # a file-system failure during the run: path and cause
        where = f"{err.filename}: " if err.filename else ""
        return _error(f"{where}{err.strerror or err}", code=1)
    except TrainingDiverged as err:
        return _error(str(err), code=1)
    except KeyboardInterrupt:
        return _error("interrupted; continue with `larvax train --resume RUN_DIR`", code=130)
    console.print(f"[bold green]done[/]: {result.env_steps:,} env steps in {result.run_dir}")
    for key, value in result.summary.items():
        if isinstance(value, float):
            console.print(f"  {key}: {value:.4g}")
    return 0


def _add_process_flags(parser: argparse.ArgumentParser) -> None:
    """``larvax train``'s devices and processes (docs/scaling.md)."""
    parser.add_argument(
        "--devices",
        type=int,
        metavar="N",
        help="devices of this process to train on (GPUs, or N CPU devices on a CPU-only "
        "machine); the agent splits its environments and batches over N x processes devices",
    )
    parser.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        help="multi-process run: process 0's address (with --num-processes, --process-id; or "
        "LARVAX_COORDINATOR etc.; auto-detected under srun / mpirun); see docs/scaling.md",
    )
    parser.add_argument("--num-processes", type=int, metavar="P", help="processes in the run")
    parser.add_argument("--process-id", type=int, metavar="I", help="this process: 0..P-1")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="larvax", description="Memory-based reinforcement learning in JAX."
    )
    parser.add_argument("--version", action="version", version=f"larvax {larvax.__version__}")
    sub = parser.add_subparsers(dest="command")

    p_models = sub.add_parser("models", help="list the registered models and their arguments")
    p_models.set_defaults(func=cmd_models)

    p_train = sub.add_parser(
        "train",
        help="train an agent (default: R2D2 on Simfish)",
        description="Train an agent. The config is built from a preset, a config file, "
        "--set overrides, then --steps/--seed, in that order.",
    )
    p_train.add_argument(
        "--preset",
        help="preset name (see --list-presets; default: r2d2-simfish, also with --config)",
    )
    p_train.add_argument(
        "--config",
        metavar="FILE",
        help="a YAML config file merged over --preset, or over the default preset without "
        "one; a section naming another agent, env or network replaces the preset's",
    )
    p_train.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set agent_config.batch_size=64 (repeatable)",
    )
    p_train.add_argument(
        "--steps",
        type=int,
        help="budget in environment steps (default: the preset's), rounded up to whole "
        "chunks of chunk_updates updates (the banner states the budget actually run)",
    )
    p_train.add_argument("--run-dir", help="run directory (default: runs/<preset>-<date>-<time>)")
    p_train.add_argument("--seed", type=int, help="random seed (default: the preset's, 0)")
    p_train.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue a run from its newest good checkpoint (with --steps: a new budget)",
    )
    p_train.add_argument(
        "--init-from",
        metavar="RUN_DIR|NAME",
        help="start the network from a trained run's newest checkpoint or a pretrained model "
        "(larvax.pretrained); optimiser, replay and environments start fresh; the network "
        "must fit this run's environment",
    )
    p_train.add_argument("--list-presets", action="store_true", help="list the presets and exit")
    p_train.add_argument("--no-progress", action="store_true", help="no progress display or lines")
    p_train.add_argument(
        "--log-every",
        type=float,
        metavar="SECONDS",
        help="plain progress lines at most every SECONDS, checked after each chunk "
        "(default: a live display on a terminal, lines every 30 s otherwise)",
    )
    p_train.add_argument(
        "--cpu-devices",
        type=int,
        metavar="N",
        help="JAX CPU devices to split the agent over (default 1; at most the CPU cores; see "
        "larvax.devices: on a 2-core CPU R2D2 is faster on one); R2D2 uses as many as "
        "divide num_envs and batch_size and says so when that is fewer",
    )
    _add_process_flags(p_train)
    p_train.set_defaults(func=cmd_train)
    add_eval_parser(sub)
    add_render_parser(sub)
    add_plot_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
