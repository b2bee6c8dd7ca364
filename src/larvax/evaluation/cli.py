"""``larvax eval RUN_DIR`` (or ``larvax eval --pretrained NAME``): run a trained agent for N
episodes and write its logs.

Writes ``logs_{n}.hdf5`` (docs/evaluation.md), ``metrics.csv`` and ``summary.json`` to
``--out`` (default ``RUN_DIR/eval/<world>``, or ``eval/<NAME>/<world>`` for a pretrained
model) and prints a summary table. Bad arguments give
one-line errors (exit code 2) before anything is compiled.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path


class EvalError(ValueError):
    """A bad ``larvax eval`` argument (one-line message)."""


def add_eval_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``eval`` on the ``larvax`` sub-command parsers."""
    p = subparsers.add_parser("eval", help="evaluate a trained run and write HDF5 episode logs")
    p.add_argument("run_dir", metavar="RUN_DIR", nargs="?", help="a run directory of larvax train")
    p.add_argument(
        "--pretrained",
        metavar="NAME",
        help="evaluate a pretrained model shipped with larvax instead of a run directory",
    )
    p.add_argument("--episodes", type=int, default=10, help="episodes to run (default 10)")
    p.add_argument(
        "--epsilon", type=float, default=0.0, help="random-action probability (default 0: greedy)"
    )
    p.add_argument(
        "--world", default="train", help="virtual-experiment world (default: the run's own)"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="env.KEY=VALUE",
        help="override an environment field, e.g. --set env.max_steps=200",
    )
    p.add_argument("--stimulus", help="scripted stimuli file (.npz prey/predator [N, T, 2])")
    p.add_argument("--out", help="output directory (default RUN_DIR/eval/<world>)")
    p.add_argument("--batch", type=int, default=16, help="episodes run side by side")
    p.add_argument("--chunk", type=int, default=100, help="steps per compiled chunk")
    p.add_argument("--seed", type=int, default=0, help="evaluation seed")
    p.add_argument("--checkpoint", type=int, help="checkpoint step (default: the newest)")
    p.add_argument(
        "--full-sediment", action="store_true", help="also store the sediment image per episode"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval)
    return p


def parse_sets(items: list[str]) -> dict:
    """``["env.KEY=VALUE", ...]`` -> ``{KEY: value}`` (values parsed as YAML scalars)."""
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("env.") or len(key) <= 4:
            raise EvalError(f"--set {item!r} is not allowed; allowed: env.KEY=VALUE")
        parsed = yaml.safe_load(value) if value else None
        out[key[4:]] = tuple(parsed) if isinstance(parsed, list) else parsed
    return out


def check_output(path: Path) -> None:
    """``path`` can be created and written, and holds no episode logs yet."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".larvax-write-test-"):
            pass
    except OSError as err:
        raise EvalError(f"--out {str(path)!r} is not writable ({err.strerror})") from None
    if any(path.glob("logs_*.hdf5")):
        raise EvalError(f"--out {str(path)!r} already holds logs_*.hdf5; choose another --out")


def check_arguments(args) -> tuple[dict, Path]:
    """Everything that can be checked before loading the run: (env overrides, out dir)."""
    from larvax.envs.simfish.experiments import world_names

    if (args.run_dir is None) == (args.pretrained is None):
        raise EvalError("give a RUN_DIR or --pretrained NAME (one of them)")
    if args.pretrained is not None:
        from larvax.pretrained import store

        if args.pretrained not in store.names():
            raise EvalError(
                f"--pretrained {args.pretrained!r} is not allowed; allowed: "
                f"{', '.join(store.names()) or 'none shipped'}"
            )
        run_dir = store.folder(args.pretrained)
    else:
        run_dir = Path(args.run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise EvalError(f"{str(run_dir)!r} is not a larvax run directory (no config.yaml)")
    if args.world not in world_names():
        raise EvalError(f"unknown world {args.world!r}; allowed: {', '.join(world_names())}")
    for name, value, ok, allowed in (
        ("--episodes", args.episodes, args.episodes >= 1, "an int >= 1"),
        ("--epsilon", args.epsilon, 0.0 <= args.epsilon <= 1.0, "a number from 0 to 1"),
        ("--batch", args.batch, args.batch >= 1, "an int >= 1"),
        ("--chunk", args.chunk, args.chunk >= 1, "an int >= 1"),
    ):
        if not ok:
            raise EvalError(f"{name}={value} is not allowed; allowed: {allowed}")
    overrides = parse_sets(args.set)
    _check_simfish_keys(run_dir, overrides)
    if args.stimulus is not None and not Path(args.stimulus).is_file():
        raise EvalError(f"--stimulus {args.stimulus!r} does not exist")
    if args.out:
        out = Path(args.out)
    elif args.pretrained is not None:
        out = Path("eval") / args.pretrained / args.world
    else:
        out = run_dir / "eval" / args.world
    check_output(out)
    return overrides, out


def _check_simfish_keys(run_dir: Path, overrides: dict) -> None:
    """For a Simfish run, every ``--set`` key names a SimfishParams field."""
    import yaml

    from larvax.envs.simfish.config import SimfishParams

    try:
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return  # load_run reports it
    env = cfg.get("env", {}) if isinstance(cfg, dict) else {}
    if not isinstance(env, dict) or env.get("name") != "simfish":
        return
    fields = {f.name: f for f in dataclasses.fields(SimfishParams)}
    for key, value in overrides.items():
        if key not in fields:
            raise EvalError(
                f"--set env.{key}: SimfishParams has no field {key!r}; allowed: {sorted(fields)}"
            )
        rule = fields[key].metadata.get("rule")  # each value on its own, before any loading
        if rule is not None and not rule.ok(value):
            raise EvalError(f"--set env.{key}={value!r} is not allowed; allowed: {rule.describe()}")


def eval_environment(env, params, world: str, overrides: dict, stimulus):
    """The evaluation environment: a Simfish world, or the run's env with overrides."""
    from larvax.envs.simfish.env import Simfish
    from larvax.envs.simfish.experiments import make_world

    if isinstance(env, Simfish):
        return make_world(
            world,
            params,
            overrides,
            stimulus,
            num_textures=getattr(env, "_num_textures", 4),
            texture_seed=getattr(env, "_texture_seed", 0),
        )
    if world != "train" or stimulus is not None:
        raise EvalError(f"--world {world!r} / --stimulus need a Simfish run")
    if overrides:
        if not dataclasses.is_dataclass(params):
            raise EvalError("--set needs environment parameters that are a dataclass")
        names = {f.name for f in dataclasses.fields(params)}
        bad = sorted(set(overrides) - names)
        if bad:
            raise EvalError(f"--set env.{bad[0]}: no such field; allowed: {sorted(names)}")
        params = dataclasses.replace(params, **overrides)
    return env, params


def _simfish_extras(env, params) -> tuple[dict, dict]:
    """(env_variables extras, datasets for every file) of a Simfish world."""
    extras = {
        "sediment_texture_seed": getattr(env, "_texture_seed", 0),
        "sediment_num_textures": getattr(env, "_num_textures", 4),
    }
    data = {}
    for name in ("prey", "predator"):
        stim = getattr(env, f"stimulus_{name}", None)
        if stim is not None:
            data[f"stimulus_{name}_xy"] = stim
    return extras, data


def run_eval(args, console) -> dict:
    """Load the run, evaluate, write logs, metrics and summary; returns the summary."""
    import larvax
    from larvax.evaluation.hdf5 import EpisodeWriter, env_variables, sediment_image
    from larvax.evaluation.loop import evaluate
    from larvax.evaluation.metrics import (
        episode_metrics,
        print_summary,
        summarize,
        write_metrics_csv,
    )
    from larvax.training.loop import load_run

    overrides, out = check_arguments(args)
    if args.pretrained is not None:
        from larvax import pretrained

        fish = pretrained.load(args.pretrained)
        cfg, env, params, agent, state = fish.cfg, fish.env, fish.env_params, fish.agent, fish.state
        record: dict = {}
    else:
        cfg, env, params, agent, state, record = load_run(args.run_dir, args.checkpoint)
    try:
        env, params = eval_environment(env, params, args.world, overrides, args.stimulus)
    except (ValueError, TypeError) as err:
        raise EvalError(str(err).splitlines()[0]) from None
    simfish = hasattr(params, "prey_num")
    extras, data = _simfish_extras(env, params) if simfish else ({}, {})
    extras.update(env_name=cfg["env"]["name"], world=args.world)
    step = record.get("step") if isinstance(record, dict) else None
    attrs = dict(
        larvax_version=larvax.__version__,
        world=args.world,
        epsilon=float(args.epsilon),
        agent=str(cfg["agent"]),
        run_dir=f"pretrained:{args.pretrained}"
        if args.pretrained
        else str(Path(args.run_dir).resolve()),
        checkpoint_step=-1 if step is None else int(step),
        seed=int(args.seed),
    )
    rows: list[dict] = []

    def decorate(n, episode):
        if args.full_sediment and simfish:
            handle = [episode[k] for k in ("sediment_texture_index", "sediment_shift_xy")]
            image = sediment_image(env.sediment_textures, params, *handle, episode["sediment_flip"])
            episode["sediment"] = image[None]

    writer = EpisodeWriter(
        out,
        attrs,
        env_variables(params, extras),
        data,
        decorate=decorate,
        on_episode=lambda n, episode: rows.append(episode_metrics(n, episode)),
    )
    total = args.episodes * int(getattr(params, "max_steps", 0) or 1)
    records = evaluate(
        agent,
        state,
        env,
        params,
        args.episodes,
        args.epsilon,
        batch=args.batch,
        chunk=args.chunk,
        seed=args.seed,
        on_steps=None,
    )
    _drive(records, writer, total, console, progress=not args.no_progress)
    rows.sort(key=lambda r: r["episode"])
    write_metrics_csv(out / "metrics.csv", rows)
    summary = summarize(rows)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print_summary(summary, f"{args.world} ({out})", console)
    return summary


def _drive(records, writer, total: int, console, progress: bool) -> None:
    """Feed the records to the writer, with a rich progress bar over steps and episodes."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    if not progress:
        for r in records:
            writer.add(r)
        return
    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        "steps",
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("eval", total=total)
        for r in records:
            writer.add(r)
            if r.agent:
                bar.advance(task, int(r.valid.sum()))
            bar.update(task, description=f"eval: {len(writer.written)} episodes written")


def cmd_eval(args) -> int:
    from rich.console import Console

    from larvax.training.checkpoint import CheckpointError
    from larvax.training.config import ConfigError
    from larvax.training.loop import RunDirError

    console = Console(stderr=True)
    try:
        run_eval(args, console)
    except (EvalError, RunDirError, CheckpointError, ConfigError) as err:
        print(f"larvax: error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    except OSError as err:  # e.g. the disk filled up while writing logs
        where = f"{err.filename}: " if err.filename else ""
        print(f"larvax: error: {where}{err.strerror or err}", file=sys.stderr)
        return 1
    return 0


__all__ = ["EvalError", "add_eval_parser", "check_arguments", "cmd_eval", "parse_sets"]
