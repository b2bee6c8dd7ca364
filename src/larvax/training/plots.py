"""Learning-curve plot of a run's metric rows (matplotlib, Agg backend)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

NO_EPISODES = "no episodes finished yet"


def learning_curve(
    rows: list[dict],
    path: str | Path,
    title: str = "",
    panels: tuple[str, ...] | list[str] = ("episode_return", "loss"),
    stage_names: list[str] | None = None,
) -> Path:
    """Plot the columns ``panels`` (those present in ``rows``) against env steps, one panel
    each; the training loop shows episode return, the environment's first declared episode
    metric and the loss. A panel without a finite value says so ("no episodes finished
    yet" for episode statistics); the title is wrapped to the figure's width. Rows with a
    ``stage`` column (a curriculum) get a dashed line at each stage boundary, labelled with
    ``stage_names``."""
    import matplotlib.pyplot as plt

    fig = learning_curve_figure(rows, title, panels, stage_names)
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def learning_curve_figure(
    rows: list[dict], title: str = "", panels=("episode_return", "loss"), stage_names=None
):
    """The matplotlib figure of :func:`learning_curve` (not saved)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def col(name):
        return np.array([float(r.get(name, "nan")) for r in rows], dtype=np.float64)

    steps = col("env_steps")
    panels = [p for p in panels if rows and p in rows[0]]
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(7, 2.4 * len(panels)), sharex=True, squeeze=False
    )
    for ax, name in zip(axes[:, 0], panels, strict=True):
        y = col(name)
        ok = np.isfinite(y)
        if not ok.any():
            empty = NO_EPISODES if name != "loss" else "no finite loss yet"
            ax.text(0.5, 0.5, empty, ha="center", va="center", transform=ax.transAxes)
        ax.plot(steps[ok], y[ok], lw=0.8, alpha=0.5, color="C0")
        if ok.sum() >= 5:
            k = max(1, ok.sum() // 20)
            smooth = np.convolve(y[ok], np.ones(k) / k, mode="valid")
            ax.plot(steps[ok][k - 1 :], smooth, lw=1.8, color="C1")
        ax.set_ylabel(name.replace("_", " "))
        ax.grid(alpha=0.3)
    _mark_stages(axes[:, 0], rows, stage_names or [])
    axes[-1, 0].set_xlabel("environment steps")
    if title:  # lines of at most 80 characters of 9-pt text fit across the 7-inch figure
        axes[0, 0].set_title("\n".join(textwrap.wrap(title, 80)), fontsize=9)
    fig.tight_layout()
    return fig


def stage_starts(rows: list[dict]) -> list[tuple[float, int]]:
    """(env steps at which a stage starts, stage index) for every stage in ``rows``."""
    out, prev_stage, prev_steps = [], None, 0.0
    for row in rows:
        if "stage" not in row:
            return []
        stage = int(float(row["stage"]))
        if stage != prev_stage:
            out.append((prev_steps, stage))
            prev_stage = stage
        prev_steps = float(row["env_steps"])
    return out


def _mark_stages(axes, rows: list[dict], names: list[str]) -> None:
    starts = stage_starts(rows)
    if len(starts) < 2 and not (starts and starts[0][1] > 0):
        return
    for ax in axes:
        for steps, _stage in starts:
            if steps > 0:
                ax.axvline(steps, color="0.3", lw=0.9, ls="--")
    first = float(rows[0]["env_steps"])  # the first stage's label at the left edge
    for steps, stage in starts:  # labels on the top panel, just right of each boundary
        label = names[stage] if stage < len(names) else f"stage {stage}"
        axes[0].text(max(steps, first), 1.0, f" {label}", transform=axes[0].get_xaxis_transform(),
                     va="top", ha="left", fontsize=7, color="0.25", clip_on=True, in_layout=False)  # fmt: skip
