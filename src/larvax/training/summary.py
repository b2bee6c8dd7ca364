"""The end of a finished run: ``summary.json`` (final metrics, stages) and the
learning-curve PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from larvax.training.curriculum import parse_stages
from larvax.training.rundir import write_json_atomic
from larvax.training.stages import stage_spans

__all__ = ["finish"]


def finish(run_dir: Path, cfg: dict, rows: list[dict], episode_metrics=()) -> dict:
    """Learning-curve PNG and summary.json for a finished run (``episode_metrics``: the
    environment's declared :class:`larvax.envs.core.EpisodeMetric`)."""
    from larvax.training.plots import learning_curve

    def col(name):
        return np.array([float(r.get(name, "nan")) for r in rows], dtype=np.float64)

    summary: dict = {
        "agent": cfg["agent"],
        "env": cfg["env"],
        "env_steps": int(col("env_steps")[-1]) if rows else 0,
        "wall_time_s": float(col("wall_time_s")[-1]) if rows else 0.0,
        "episodes": float(np.nansum(col("episodes"))) if rows and "episodes" in rows[0] else 0.0,
    }
    declared = [m.name for m in episode_metrics]
    if rows:
        tail = max(1, len(rows) // 10)
        for name in ("episode_return", *declared, "episode_length", "loss"):
            if name in rows[0]:
                values = col(name)[-tail:]
                finite = values[np.isfinite(values)]
                summary[f"final_{name}"] = float(finite.mean()) if len(finite) else float("nan")
        summary["mean_steps_per_s"] = float(np.nanmean(col("steps_per_s")))
    names = [s.name for s in parse_stages(cfg)]
    if cfg.get("stages") and rows:
        summary["stages"] = stage_spans(rows, names)
    write_json_atomic(run_dir / "summary.json", summary)
    if rows:
        panels = ("episode_return", *declared[:1], "loss")
        title = cfg.get("description", "")
        learning_curve(
            rows, run_dir / "learning_curve.png", title=title, panels=panels, stage_names=names
        )
    return summary
