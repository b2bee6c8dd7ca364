"""Per-episode evaluation metrics (CSV) and the summary table printed with rich.

One row per episode, from the datasets of its log: ``episode, length, return``, the sum of
each reward component (``reward_energy`` ...), ``prey_caught``, ``capture_bouts`` (SCS and
LCS bouts taken), ``capture_success = prey_caught / capture_bouts`` (empty when no capture
bout), ``predators_avoided``, ``predators_hit``, ``wall_touches`` and ``end_cause``.
Environments other than Simfish get ``episode, length, return``.
"""

from __future__ import annotations

import csv
import io
import math

import numpy as np

from larvax.evaluation.hdf5 import write_atomic


def episode_metrics(n: int, data: dict) -> dict:
    """The metrics row of episode ``n`` from its datasets (see :mod:`.hdf5`)."""
    row = {
        "episode": n,
        "length": int(data["episode_length"]),
        "return": float(data["episode_return"]),
    }
    if "fish_x" not in data:
        return row
    from larvax.envs.simfish.bouts import IS_CAPTURE
    from larvax.envs.simfish.physics import END_CAUSES, REWARD_COMPONENTS

    for c in REWARD_COMPONENTS:
        row[f"reward_{c}"] = float(np.sum(data[f"reward_{c}"][1:], dtype=np.float64))
    actions = np.asarray(data["action"][1:])
    prey = int(np.sum(data["prey_caught"][1:]))
    bouts = int(np.sum(IS_CAPTURE[actions])) if actions.size else 0
    row.update(
        prey_caught=prey,
        capture_bouts=bouts,
        capture_success=prey / bouts if bouts else math.nan,
        predators_avoided=int(np.sum(data["event_survived_predator"][1:])),
        predators_hit=int(np.sum(data["event_captured_by_predator"][1:])),
        wall_touches=int(np.sum(data["wall_touch"][1:])),
        end_cause=END_CAUSES.get(int(data["end_cause"]), "stopped")
        if int(data["end_cause"])
        else "stopped",
    )
    return row


def write_metrics_csv(path, rows: list[dict]) -> None:
    """Write the rows (atomically) with the union of their columns, in first-seen order."""
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if _isnan(v) else v) for k, v in r.items()})
    text = buf.getvalue()
    write_atomic(path, lambda tmp: tmp.write_text(text))


def _isnan(v) -> bool:
    return isinstance(v, float) and math.isnan(v)


def summarize(rows: list[dict]) -> dict:
    """Mean, std, min and max of every numeric column, and the count of each end cause."""
    out: dict = {"episodes": len(rows)}
    numeric = [k for k in rows[0] if k not in ("episode", "end_cause")] if rows else []
    for k in numeric:
        vals = np.array([r[k] for r in rows], np.float64)
        vals = vals[~np.isnan(vals)]
        if vals.size:
            out[k] = {
                "mean": float(vals.mean()),
                "std": float(vals.std()),
                "min": float(vals.min()),
                "max": float(vals.max()),
            }
    causes = [r["end_cause"] for r in rows if "end_cause" in r]
    if causes:
        out["end_causes"] = {c: causes.count(c) for c in sorted(set(causes))}
    return out


def print_summary(summary: dict, title: str = "evaluation", console=None) -> None:
    """The summary as a rich table (one line per metric, end causes below)."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title=f"{title}: {summary['episodes']} episodes")
    for col in ("metric", "mean", "std", "min", "max"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for k, v in summary.items():
        if isinstance(v, dict) and "mean" in v:
            table.add_row(k, *(f"{v[s]:.4g}" for s in ("mean", "std", "min", "max")))
    console.print(table)
    if "end_causes" in summary:
        causes = ", ".join(f"{k}: {n}" for k, n in summary["end_causes"].items())
        console.print(f"end causes: {causes}")


__all__ = ["episode_metrics", "print_summary", "summarize", "write_metrics_csv"]
