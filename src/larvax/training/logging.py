"""Metric logging: CSV (one row per chunk), TensorBoard event files, rich progress.

The CSV is the record of a run. Each row is flushed and fsync'ed when written; on resume
the file is cut back (atomically: write a temporary file, then rename) to the rows the
checkpoint knows about, so no row is lost or duplicated after a crash. TensorBoard is told
the same through ``purge_step``.
"""

from __future__ import annotations

import csv
import math
import os
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
        with self.path.open("a", newline="") as f:
            writer = csv.writer(f)
            if new_file:
                writer.writerow(self.columns)
            writer.writerow([_fmt(row.get(c, float("nan"))) for c in self.columns])
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


class ProgressDisplay:
    """A rich progress bar: env steps, steps/s, recent return, the environment's labelled
    episode metrics (``EpisodeMetric.label``), loss, ETA."""

    def __init__(
        self,
        total_env_steps: int,
        start_env_steps: int = 0,
        console: Console | None = None,
        episode_metrics=(),
    ):
        self.console = console or Console(stderr=True)
        self._columns = [("episode_return", "return", "{:.2f}")]
        self._columns += [(m.name, m.label, "{:.2f}") for m in episode_metrics if m.label]
        self._columns.append(("loss", "loss", "{:.4f}"))
        self._progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.completed:,.0f}/{task.total:,.0f} steps"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self._task = self._progress.add_task(
            "train", total=total_env_steps, completed=start_env_steps, rate="", stats=""
        )

    def __enter__(self):
        self._progress.start()
        return self

    def __exit__(self, *exc):
        self._progress.stop()

    def update(self, row: dict) -> None:
        parts = []
        for key, label, fmt in self._columns:
            value = row.get(key)
            if isinstance(value, float) and not math.isnan(value):
                parts.append(f"{label} {fmt.format(value)}")
        self._progress.update(
            self._task,
            completed=row["env_steps"],
            rate=f"{row['steps_per_s']:,.0f} steps/s",
            stats="  ".join(parts),
        )
