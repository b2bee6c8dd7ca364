"""What training says on the console: one-line notes, the budget banner, and the choice
between a rich progress display (a terminal) and plain progress lines (logs)."""

from __future__ import annotations

import sys

import jax

from larvax.training.logging import PlainProgress, ProgressDisplay


def reporter(console):
    """``report(message)``: one unwrapped ``larvax: ...`` line on ``console`` or stderr."""
    if console is None:
        return lambda message: print(f"larvax: {message}", file=sys.stderr, flush=True)
    return lambda message: console.print(
        f"larvax: {message}", soft_wrap=True, markup=False, highlight=False
    )


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def banner(cfg: dict, agent, chunk: int, total_updates: int, updates: int, env_steps: int,
           report) -> None:  # fmt: skip
    """The budget actually run (whole chunks of ``chunk`` updates), its estimated time from
    the preset's measured rate (``expected_steps_per_s``), and devices left unused."""
    per_update = int(agent.env_steps_per_update)
    total_steps = total_updates * per_update
    rounded = ""
    if total_steps != cfg["total_env_steps"]:
        rounded = f", {cfg['total_env_steps']:,} requested, rounded up to whole chunks"
    rate = float(cfg.get("expected_steps_per_s") or 0)
    if rate > 0:
        left = total_steps - env_steps
        estimate = f"about {duration(left / rate)} at the preset's measured {rate:,.0f} steps/s"
    else:
        estimate = "no measured rate for this config (see the progress ETA)"
    at = f", resuming at {env_steps:,}" if updates else ""
    limit = float(cfg.get("max_wall_time_s") or 0)
    if limit > 0:
        estimate += f"; stops after {duration(limit)} of training (max_wall_time_s)"
    report(
        f"budget {total_steps:,} env steps ({total_updates:,} updates of {per_update:,} in "
        f"chunks of {chunk:,}{rounded}){at}; {estimate}, plus compilation"
    )
    if updates and updates >= total_updates:
        report(
            f"the budget of {total_steps:,} env steps is already used (the run has "
            f"{env_steps:,}): nothing to train; give a larger --steps to continue it"
        )
    used, available = getattr(agent, "num_devices", None), len(jax.devices())
    if used is not None and used < available:
        report(
            f"the agent uses {used} of the {available} JAX devices (its num_devices setting: "
            "'auto' takes the most that divide num_envs and batch_size)"
        )


def progress_display(total_env_steps: int, env_steps: int, episode_metrics, console,
                     log_every: float | None):  # fmt: skip
    """Plain progress lines when the console is not a terminal or ``log_every`` (seconds)
    is given (default 30 s), else a rich display; both count ``total_env_steps``."""
    terminal = console.is_terminal if console is not None else sys.stderr.isatty()
    if log_every is not None or not terminal:
        stream = console.file if console is not None else None
        every = 30.0 if log_every is None else log_every
        return PlainProgress(total_env_steps, env_steps, stream, episode_metrics, every_s=every)
    return ProgressDisplay(total_env_steps, env_steps, console, episode_metrics)
