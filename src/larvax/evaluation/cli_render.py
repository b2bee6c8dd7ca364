"""``larvax render`` (an episode as MP4 / GIF) and ``larvax plot`` (analysis PNGs).

```
larvax render (RUN_DIR | --random | --log FILE.hdf5|EVAL_DIR) [--episode K] --out FILE.mp4|.gif
              [--pca] [--fps F] [--every N] [--size PX] [--preset P] [--seed S] [--steps N]
larvax plot RUN_DIR | EVAL_DIR [--out DIR]
```

``RUN_DIR`` renders episode ``K`` of the run's evaluation logs (``RUN_DIR/eval/<world>/``,
written by ``larvax eval``; ``--world`` picks one, default ``train``); when the run has no
logs for that world, it evaluates episodes 1..K (greedy, through ``larvax eval``'s
``run_eval``) into a temporary directory first. Every bad argument ends in one line on
stderr and exit status 2.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path


def _error(message: str) -> int:
    print(f"larvax: error: {message}", file=sys.stderr)
    return 2


def add_render_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "render", help="render an episode (arena, retinas, energy, bout) as MP4 or GIF"
    )
    p.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="a training run directory")
    p.add_argument("--random", action="store_true", help="a Simfish episode of random bouts")
    p.add_argument("--log", metavar="FILE", help="an episode log (logs_N.hdf5) or its directory")
    p.add_argument("--episode", type=int, metavar="K", help="episode number n of logs_n (1..N)")
    p.add_argument("--world", help="with RUN_DIR: the evaluation world (RUN_DIR/eval/WORLD)")
    p.add_argument("--out", required=True, metavar="FILE", help="output .mp4 or .gif")
    p.add_argument("--pca", action="store_true", help="show the recurrent state's PC1..3")
    p.add_argument("--fps", type=float, default=10.0, help="frames per second (default 10)")
    p.add_argument("--every", type=int, default=1, metavar="N", help="render every N-th step")
    p.add_argument("--size", type=int, default=480, metavar="PX", help="arena panel side (px)")
    p.add_argument("--preset", default="normal", help="with --random: the Simfish preset")
    p.add_argument("--seed", type=int, default=0, help="with --random: the seed")
    p.add_argument("--steps", type=int, metavar="N", help="with --random: at most N steps")
    p.set_defaults(func=cmd_render)


def add_plot_parser(subparsers) -> None:
    p = subparsers.add_parser("plot", help="analysis plots (PNG) of a run or evaluation dir")
    p.add_argument("directory", metavar="RUN_DIR|EVAL_DIR")
    p.add_argument("--out", metavar="DIR", help="output directory (default DIR/plots)")
    p.set_defaults(func=cmd_plot)


def _pick_log(directory: Path, episode: int | None) -> Path:
    from larvax.evaluation.recorded import LogError, episode_logs

    logs = episode_logs(directory)
    if not logs:
        raise LogError(f"{str(directory)!r} holds no logs_*.hdf5 episode logs")
    numbers = [int(p.stem.split("_")[1]) for p in logs]
    k = numbers[0] if episode is None else episode
    if k not in numbers:
        raise LogError(
            f"--episode {k} is out of range; allowed: {numbers[0]}..{numbers[-1]} "
            f"({len(numbers)} logs in {str(directory)!r})"
        )
    return logs[numbers.index(k)]


def _run_dir_log(run_dir: Path, world: str | None, episode: int | None) -> Path | None:
    """The log of ``episode`` among the run's evaluation logs, or None when the run has
    none for ``world`` (then :func:`_evaluate_run` makes them)."""
    from larvax.evaluation.recorded import LogError, episode_logs

    if not run_dir.is_dir():
        raise LogError(f"run directory {str(run_dir)!r} does not exist")
    if not (run_dir / "config.yaml").is_file():
        raise LogError(f"{str(run_dir)!r} is not a larvax run directory (no config.yaml)")
    worlds = sorted(d.name for d in (run_dir / "eval").glob("*") if episode_logs(d))
    if world is None:
        if len(worlds) > 1 and "train" not in worlds:
            raise LogError(f"several evaluation worlds; choose --world from {', '.join(worlds)}")
        world = "train" if "train" in worlds or not worlds else worlds[0]
    if world not in worlds:
        return None
    return _pick_log(run_dir / "eval" / world, episode)


def _evaluate_run(run_dir: Path, world: str | None, episode: int | None, tmp: str) -> Path:
    """Run ``larvax eval`` for episodes 1..K of a run into ``tmp``; the log of episode K."""
    import argparse

    from rich.console import Console

    from larvax.evaluation.cli import add_eval_parser, run_eval
    from larvax.evaluation.recorded import LogError
    from larvax.training.checkpoint import CheckpointError

    k = 1 if episode is None else episode
    if k < 1:
        raise LogError(f"--episode {k} is out of range; allowed: an int >= 1")
    parser = argparse.ArgumentParser()
    add_eval_parser(parser.add_subparsers())
    argv = ["eval", str(run_dir), "--episodes", str(k), "--out", tmp, "--no-progress"]
    args = parser.parse_args(argv + (["--world", world] if world else []))
    console = Console(stderr=True)
    console.print(f"no evaluation logs in {run_dir}/eval: evaluating {k} episode(s)")
    try:
        run_eval(args, console)
    except CheckpointError as err:
        raise LogError(str(err).splitlines()[0]) from None
    return Path(tmp) / f"logs_{k}.hdf5"


def _load_episode(args):
    """The episode to render (raises LogError / ValueError with a one-line message)."""
    from larvax.evaluation.recorded import LogError, random_episode, read_episode

    sources = [s for s in (args.run_dir, args.log) if s] + (["--random"] if args.random else [])
    if len(sources) != 1:
        raise LogError("give exactly one of RUN_DIR, --random, --log FILE")
    if args.random:
        if args.episode is not None:
            raise LogError("--episode applies to RUN_DIR and --log DIR, not --random")
        if args.steps is not None and args.steps < 1:
            raise LogError(f"--steps={args.steps} is not allowed; allowed: an int >= 1")
        return random_episode(args.preset, args.seed, args.steps)
    if args.log:
        log = Path(args.log)
        if log.is_dir():
            log = _pick_log(log, args.episode)
        elif not log.is_file():
            raise LogError(f"log file {str(log)!r} does not exist")
        elif args.episode is not None:
            raise LogError("--episode applies to a directory of logs; --log names one file")
    else:
        log = _run_dir_log(Path(args.run_dir), args.world, args.episode)
        if log is None:
            with tempfile.TemporaryDirectory(prefix="larvax-render-") as tmp:
                log = _evaluate_run(Path(args.run_dir), args.world, args.episode, tmp)
                return read_episode(log, with_sediment=True)
    return read_episode(log, with_sediment=True)


def cmd_render(args) -> int:
    from larvax.evaluation.recorded import LogError
    from larvax.evaluation.video import FrameRenderer
    from larvax.evaluation.video_writer import check_output, write_video

    try:
        out = check_output(args.out)
        if args.every < 1:
            raise ValueError(f"--every={args.every} is not allowed; allowed: an int >= 1")
        if not args.fps > 0:
            raise ValueError(f"--fps={args.fps} is not allowed; allowed: a number > 0")
        if args.size < 64:
            raise ValueError(f"--size={args.size} is not allowed; allowed: an int >= 64")
        episode = _load_episode(args)
        if args.pca and episode.actor_state is None:
            raise LogError("--pca needs a recorded actor_state (a log from `larvax eval`)")
        start = time.perf_counter()
        renderer = FrameRenderer(episode, size=args.size, pca=args.pca)
        n = write_video(renderer.frames(args.every), out, args.fps)
    except (LogError, ValueError) as err:  # EvalError, RunDirError are ValueErrors
        return _error(str(err).splitlines()[0])
    except OSError as err:  # the file system failed while writing
        return _error(f"cannot write --out {args.out!r}: {err.strerror or err}")
    seconds = time.perf_counter() - start
    print(f"wrote {out} ({n} frames, {episode.num_steps} steps, {seconds:.1f} s)")
    return 0


def cmd_plot(args) -> int:
    from larvax.evaluation.plots import plot_dir
    from larvax.evaluation.recorded import LogError

    try:
        written = plot_dir(args.directory, args.out)
    except (LogError, ValueError) as err:
        return _error(str(err))
    for path in written:
        print(f"wrote {path}")
    return 0


__all__ = ["add_plot_parser", "add_render_parser", "cmd_plot", "cmd_render"]
