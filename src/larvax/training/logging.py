"""Metric logging: CSV (one row per chunk), TensorBoard event files, rich progress.

The CSV is the record of a run. Each row is flushed and fsync'ed when written; on resume
the file is cut back (atomically: write a temporary file, then rename) to the rows the
checkpoint knows about, so no row is lost or duplicated after a crash. TensorBoard is told
the same through ``purge_step``.

Progress goes to stderr in one of two forms: a rich progress display (a terminal; two lines,
readable at 80 columns) or plain lines (``PlainProgress``: stderr is not a terminal, e.g. a
batch job or ``nohup``, or ``larvax train --log-every SECONDS``).
"""

from __future__ import annotations

import csv
import io
import math
import os
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from larvax.training import fault_hooks

# Columns every agent reports (agents/base.py); agent-specific ones follow.
BASE_COLUMNS = ["update", "env_steps", "wall_time_s", "steps_per_s"]


def _fmt(value) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value)
    return str(value)


class CSVLog:
    """Append-only CSV of metric rows with crash-safe truncation on resume."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.columns: list[str] | None = None
        if self.path.exists():
            rows = self.read()
            if rows:
                self.columns = list(rows[0].keys())

    def read(self) -> list[dict]:
        """Complete rows only (a line cut by a crash is dropped)."""
        if not self.path.exists():
            return []
        text = self.path.read_text()
        lines = text.splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines = lines[:-1]
        if not lines:
            return []
        reader = csv.DictReader(lines)
        header = reader.fieldnames or []
        return [r for r in reader if len(r) == len(header) and None not in r.values()]

    def truncate(self, num_rows: int) -> None:
        """Keep the first ``num_rows`` complete rows (atomic rewrite)."""
        rows = self.read()[:num_rows]
        tmp = self.path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as f:
            if rows:
                writer = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
                writer.writeheader()
                writer.writerows(rows)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self.columns = list(rows[0].keys()) if rows else None

    def append(self, row: dict) -> None:
        new_file = not self.path.exists() or self.path.stat().st_size == 0
        if self.columns is None:
            self.columns = list(row.keys())
        text = io.StringIO()
        writer = csv.writer(text)
        if new_file:
            writer.writerow(self.columns)
        writer.writerow([_fmt(row.get(c, float("nan"))) for c in self.columns])
        line = text.getvalue()
        half = len(line) // 2
        with self.path.open("a", newline="") as f:
            f.write(line[:half])
            if fault_hooks.ENV in os.environ:  # test hook: a kill with half a row on disk
                f.flush()
                os.fsync(f.fileno())
                fault_hooks.maybe_kill("csv-row")
            f.write(line[half:])
            f.flush()
            os.fsync(f.fileno())


class TensorBoardLog:
    """Scalars to TensorBoard event files (tensorboardX), one point per chunk."""

    def __init__(self, directory: str | Path, purge_step: int | None = None):
        from tensorboardX import SummaryWriter

        self._writer = SummaryWriter(str(directory), purge_step=purge_step, flush_secs=30)

    def write(self, row: dict, step: int) -> None:
        for key, value in row.items():
            if key in ("update", "env_steps"):
                continue
            if isinstance(value, (int, float)) and not (
                isinstance(value, float) and math.isnan(value)
            ):
                self._writer.add_scalar(key, value, step)

    def close(self) -> None:
        self._writer.flush()
        self._writer.close()


def _stats(columns, row: dict) -> str:
    parts = []
    for key, label, fmt in columns:
        value = row.get(key)
        if isinstance(value, float) and not math.isnan(value):
            parts.append(f"{label} {fmt.format(value)}")
    return "  ".join(parts)


def _columns(episode_metrics) -> list[tuple[str, str, str]]:
    """(row key, label, format) of the statistics shown: return, labelled metrics, loss."""
    columns = [("episode_return", "return", "{:.2f}")]
    columns += [(m.name, m.label, "{:.2f}") for m in episode_metrics if m.label]
    columns.append(("loss", "loss", "{:.4f}"))
    return columns


class _TwoLineProgress(Progress):
    """A progress bar line (steps, time) and, below it, a line of statistics: each line fits
    in 80 columns, so nothing is cut to fragments."""

    stats = ""

    def get_renderables(self):
        yield self.make_tasks_table(self.tasks)
        if self.stats:
            yield Text(self.stats, overflow="fold")


class ProgressDisplay:
    """A rich progress display: env steps of the budget actually run, elapsed time and ETA on
    the first line; steps/s, recent return, the environment's labelled episode metrics
    (``EpisodeMetric.label``) and loss on the second."""

    def __init__(
        self,
        total_env_steps: int,
        start_env_steps: int = 0,
        console: Console | None = None,
        episode_metrics=(),
    ):
        self.console = console or Console(stderr=True)
        self._columns = _columns(episode_metrics)
        self._progress = _TwoLineProgress(
            TextColumn("[bold]train"),
            BarColumn(bar_width=None),
            TaskProgressColumn(),
            TextColumn("{task.completed:,.0f}/{task.total:,.0f} steps"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
            expand=True,
        )
        self._task = self._progress.add_task(
            "train", total=total_env_steps, completed=start_env_steps, stats=""
        )

    def __enter__(self):
        self._progress.start()
        return self

    def __exit__(self, *exc):
        self._progress.stop()

    def update(self, row: dict) -> None:
        stats = _stats(self._columns, row)
        stage = f"stage {row['stage_label']}  " if row.get("stage_label") else ""
        self._progress.stats = f"{stage}{row['steps_per_s']:,.0f} steps/s  {stats}".rstrip()
        self._progress.update(self._task, completed=row["env_steps"], stats=stats)


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class PlainProgress:
    """Plain progress lines for logs: steps of the budget, steps/s, return and the labelled
    episode metrics, loss, elapsed time and ETA. One line after the first chunk, then at
    most one every ``every_s`` seconds (checked after each chunk), and one at the end."""

    def __init__(
        self,
        total_env_steps: int,
        start_env_steps: int = 0,
        stream=None,
        episode_metrics=(),
        every_s: float = 30.0,
        clock=time.monotonic,
    ):
        self.total = int(total_env_steps)
        self.start_steps = int(start_env_steps)
        self.stream = stream
        self.every_s = float(every_s)
        self._columns = _columns(episode_metrics)
        self._clock = clock
        self._t0 = clock()
        self._last: float | None = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def line(self, row: dict, now: float) -> str:
        steps = int(row["env_steps"])
        elapsed = now - self._t0
        rate = (steps - self.start_steps) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - steps) / rate if rate > 0 else float("nan")
        percent = 100.0 * steps / max(self.total, 1)
        parts = [
            f"train {steps:,}/{self.total:,} steps ({percent:.0f}%)",
            f"stage {row['stage_label']}" if row.get("stage_label") else "",
            f"{row['steps_per_s']:,.0f} steps/s",
            _stats(self._columns, row),
            f"elapsed {_clock(elapsed)}",
            f"ETA {_clock(eta) if math.isfinite(eta) else '-'}",
        ]
        return "  ".join(p for p in parts if p)

    def update(self, row: dict) -> None:
        now = self._clock()
        done = int(row["env_steps"]) >= self.total
        if self._last is not None and now - self._last < self.every_s and not done:
            return
        self._last = now
        print(self.line(row, now), file=self.stream or sys.stderr, flush=True)
