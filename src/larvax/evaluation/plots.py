"""Analysis plots (PNG, matplotlib Agg) of a training run and of evaluation episode logs.

From a run directory (``metrics.csv``): ``learning_curves.png``, the episode return and
every declared episode metric (and reward-component columns when present) against env
steps. From an evaluation directory (``logs_*.hdf5``):

* ``bout_usage.png``       fraction of bouts of each kind (``action[1:]``; row 0 is reset)
* ``prey_per_episode.png`` prey eaten in each episode
* ``reward_composition.png`` each reward component's sum per episode (stacked) and the return
* ``event_bouts.png``      bout proportions from 15 steps before to 25 after each event:
  prey consumed, predator appears, attack survived, caught (:func:`event_triggered_bouts`)
* ``trajectories.png``     the fish's path in up to 9 episodes, coloured by bout

A panel with no data says so instead of drawing an empty axis.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from larvax.envs.simfish.bouts import BOUT_NAMES
from larvax.envs.simfish.physics import REWARD_COMPONENTS
from larvax.evaluation.recorded import LogError, RecordedEpisode, episode_logs, read_episode
from larvax.evaluation.style import bout_color_floats

EVENT_WINDOW = (15, 25)  # steps before, after
EVENT_NAMES = ("prey consumed", "predator appears", "attack survived", "caught")
NUM_BOUTS = len(BOUT_NAMES)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _empty(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def _integer_x(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


# ----------------------------------------------------------------------------- analysis


def event_rows(ep: RecordedEpisode) -> dict[str, np.ndarray]:
    """Rows (steps) of each event in one episode: ``EVENT_NAMES`` -> int array.

    "predator appears" is the first row of each run of ``predator_present`` (a predator
    present right after reset counts at row 0); the others are the log's event flags.
    """
    present = np.asarray(ep.predator_present, bool)
    onset = present & ~np.concatenate([[False], present[:-1]])
    return {
        "prey consumed": np.flatnonzero(ep.events["consumed_prey"]),
        "predator appears": np.flatnonzero(onset),
        "attack survived": np.flatnonzero(ep.events["survived_predator"]),
        "caught": np.flatnonzero(ep.events["captured_by_predator"]),
    }


def event_triggered_bouts(actions, event_rows_per_episode, before=15, after=25, num_actions=21):
    """Bout proportions around events.

    actions: per episode, int ``[T+1]`` (``action[r]`` the bout of step ``r``; negative =
        none, e.g. the reset row). event_rows_per_episode: per episode, the event rows.
    Returns ``(lags [L], proportions [L, num_actions], counts [L])`` with
    ``lags = -before..after``: at lag ``k``, over every event row ``e`` whose row ``e + k``
    holds a bout, the fraction of those bouts of each kind (NaN where ``counts`` is 0).
    Lag 0 is the bout of the step in which the event happened.
    """
    lags = np.arange(-before, after + 1)
    hist = np.zeros((lags.size, num_actions))
    for act, rows in zip(actions, event_rows_per_episode, strict=True):
        act = np.asarray(act, np.int64)
        for e in np.asarray(rows, np.int64):
            r = e + lags
            ok = (r >= 0) & (r < act.size)
            a = np.full(lags.size, -1)
            a[ok] = act[r[ok]]
            ok &= (a >= 0) & (a < num_actions)
            hist[np.flatnonzero(ok), a[ok]] += 1
    counts = hist.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        props = np.where(counts[:, None] > 0, hist / counts[:, None], np.nan)
    return lags, props, counts


def bout_counts(episodes) -> np.ndarray:
    """int ``[21]``: bouts of each kind over ``episodes`` (steps 1..T; row 0 is reset)."""
    total = np.zeros(NUM_BOUTS, np.int64)
    for ep in episodes:
        a = np.asarray(ep.action[1:], np.int64)
        a = a[(a >= 0) & (a < NUM_BOUTS)]
        total += np.bincount(a, minlength=NUM_BOUTS)
    return total


# ----------------------------------------------------------------------------- eval plots


def plot_bout_usage(episodes, path: Path) -> Path:
    plt = _pyplot()
    counts = bout_counts(episodes)
    fig, ax = plt.subplots(figsize=(8, 3.2))
    if counts.sum() == 0:
        _empty(ax, "no bouts in these episodes")
    else:
        frac = counts / counts.sum()
        ax.bar(np.arange(NUM_BOUTS), frac, color=bout_color_floats(), edgecolor="0.3", lw=0.5)
        ax.set_xticks(np.arange(NUM_BOUTS), BOUT_NAMES, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("fraction of bouts")
        ax.grid(axis="y", alpha=0.3)
    ax.set_title(f"bout usage ({int(counts.sum()):,} bouts, {len(episodes)} episodes)", fontsize=9)
    return _save(fig, path)


def plot_prey_per_episode(episodes, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3))
    if not episodes:
        _empty(ax, "no episodes")
    else:
        prey = [int(np.sum(ep.prey_per_step[1:])) for ep in episodes]
        ax.bar(np.arange(1, len(prey) + 1), prey, color="0.35")
        ax.axhline(np.mean(prey), color="C1", lw=1, label=f"mean {np.mean(prey):.2f}")
        ax.set_xlabel("episode")
        ax.set_ylabel("prey eaten")
        _integer_x(ax)
        ax.legend(fontsize=8)
    ax.set_title("prey eaten per episode", fontsize=9)
    return _save(fig, path)


def plot_reward_composition(episodes, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    names = [c for c in REWARD_COMPONENTS if any(c in ep.reward_components for ep in episodes)]
    if not episodes:
        _empty(ax, "no episodes")
    else:
        x = np.arange(1, len(episodes) + 1)
        pos, neg = np.zeros(len(episodes)), np.zeros(len(episodes))
        for i, c in enumerate(names):
            v = np.array([np.sum(ep.reward_components.get(c, np.zeros(1))) for ep in episodes])
            base = np.where(v >= 0, pos, neg)
            ax.bar(x, v, bottom=base, color=f"C{i}", label=c)
            pos, neg = pos + np.maximum(v, 0), neg + np.minimum(v, 0)
        ret = [float(np.sum(ep.reward)) for ep in episodes]
        ax.plot(x, ret, "k_", ms=14, mew=2, label="return", ls="none")
        ax.axhline(0, color="0.5", lw=0.6)
        ax.set_xlabel("episode")
        ax.set_ylabel("reward (sum over the episode)")
        _integer_x(ax)
        ax.legend(fontsize=7, ncol=3)
    title = "reward composition per episode"
    if episodes and not names:
        title += " (no components logged: return only)"
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def plot_event_bouts(episodes, path: Path, window=EVENT_WINDOW) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5))
    per_ep = [event_rows(ep) for ep in episodes]
    colors = bout_color_floats()
    handles = None
    for ax, name in zip(axes.ravel(), EVENT_NAMES, strict=True):
        rows = [r[name] for r in per_ep]
        n_events = int(sum(len(r) for r in rows))
        lags, props, counts = event_triggered_bouts(
            [ep.action for ep in episodes], rows, window[0], window[1], NUM_BOUTS
        )
        ax.set_title(f"{name} (n = {n_events})", fontsize=9)
        if n_events == 0 or not np.any(counts > 0):
            _empty(ax, f"no '{name}' events in these episodes")
            continue
        bottom = np.zeros(lags.size)
        handles = []
        for b in range(NUM_BOUTS):  # stacked bars, one per lag (steps are discrete)
            height = np.nan_to_num(props[:, b])
            handles.append(ax.bar(lags, height, 1.0, bottom=bottom, color=colors[b], lw=0))
            bottom += height
        ax.axvline(0, color="k", lw=0.8, ls="--")
        ax.set_xlim(lags[0] - 0.5, lags[-1] + 0.5)
        ax.set_ylim(0, 1)
        ax.set_ylabel("bout proportion", fontsize=8)
        ax.set_xlabel("steps from the event (0: the step it happened in)", fontsize=8)
    if handles is not None:
        fig.legend(handles, BOUT_NAMES, loc="center right", fontsize=7, frameon=False)
        fig.tight_layout(rect=(0, 0, 0.87, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_trajectories(episodes, path: Path, max_episodes: int = 9) -> Path:
    plt = _pyplot()
    from matplotlib.collections import LineCollection

    shown = episodes[:max_episodes]
    n = max(len(shown), 1)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 3.3 * rows), squeeze=False)
    colors = bout_color_floats()
    for ax in axes.ravel():
        ax.set_axis_off()
    if not shown:
        axes[0, 0].set_axis_on()
        _empty(axes[0, 0], "no episodes")
    for ax, ep in zip(axes.ravel(), shown, strict=False):
        ax.set_axis_on()
        p = ep.params
        xy = ep.fish_xy
        seg = np.stack([xy[:-1], xy[1:]], axis=1)
        a = np.clip(ep.action[1:], 0, NUM_BOUTS - 1)
        ax.add_collection(LineCollection(seg, colors=colors[a], linewidths=1.2))
        ax.plot(*xy[0], "o", color="k", ms=4)
        eaten = np.flatnonzero(ep.prey_per_step > 0)
        ax.plot(xy[eaten, 0], xy[eaten, 1], "x", color="C3", ms=4)
        ax.axhspan(0, p.dark_rows, color="0.2", alpha=0.15, lw=0)
        ax.set_xlim(0, p.arena_width)
        ax.set_ylim(p.arena_height, 0)  # y down, as the arena image
        ax.set_aspect("equal")
        ax.tick_params(labelsize=6)
        ax.set_title(f"{ep.name}: {ep.num_steps} steps", fontsize=8)
    fig.suptitle("fish paths coloured by bout (o start, x prey eaten, grey dark zone)", fontsize=9)
    return _save(fig, path)


def plot_eval_dir(eval_dir, out_dir) -> list[Path]:
    """All evaluation plots of the logs in ``eval_dir``, written to ``out_dir``."""
    logs = episode_logs(eval_dir)
    if not logs:
        raise LogError(f"{str(eval_dir)!r} holds no logs_*.hdf5 episode logs")
    episodes = [read_episode(p, with_observations=False) for p in logs]
    out = Path(out_dir)
    return [
        plot_bout_usage(episodes, out / "bout_usage.png"),
        plot_prey_per_episode(episodes, out / "prey_per_episode.png"),
        plot_reward_composition(episodes, out / "reward_composition.png"),
        plot_event_bouts(episodes, out / "event_bouts.png"),
        plot_trajectories(episodes, out / "trajectories.png"),
    ]


# ----------------------------------------------------------------------------- run plots


def _declared_metrics(run_dir: Path) -> list[str]:
    """The run's environment's declared episode metrics (empty if it cannot be built)."""
    import yaml

    try:
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
        from larvax.envs import make

        env_cfg = dict(cfg["env"])
        env, _ = make(env_cfg.pop("name"), **env_cfg)
        return [m.name for m in getattr(env, "episode_metrics", ())]
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
        return []


def plot_learning_curves(run_dir, path) -> Path:
    """``episode_return``, each declared metric and ``reward_*`` columns vs env steps."""
    run_dir, path = Path(run_dir), Path(path)
    with (run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    columns = list(rows[0]) if rows else []
    wanted = ["episode_return", *_declared_metrics(run_dir)]
    wanted += [c for c in columns if c.startswith("reward_") and c not in wanted]
    panels = [c for c in wanted if c in columns] or ["episode_return"]
    plt = _pyplot()
    ncols = 2 if len(panels) > 3 else 1
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5 * ncols, 2.3 * nrows), squeeze=False)
    for ax in axes.ravel()[len(panels) :]:
        ax.set_axis_off()

    def col(name):
        return np.array([float(r.get(name) or "nan") for r in rows], np.float64)

    steps = col("env_steps") if "env_steps" in columns else np.arange(len(rows), dtype=float)
    for ax, name in zip(axes.ravel(), panels, strict=False):
        y = col(name) if name in columns else np.array([])
        ok = np.isfinite(y)
        ax.set_title(name.replace("_", " "), fontsize=9)
        if not ok.any():
            _empty(ax, f"no finite '{name}' values yet")
            continue
        ax.plot(steps[ok], y[ok], lw=0.8, alpha=0.6, color="C0", marker="o", ms=2.5)
        k = max(1, int(ok.sum()) // 20)
        if ok.sum() >= 5:
            smooth = np.convolve(y[ok], np.ones(k) / k, mode="valid")
            ax.plot(steps[ok][k - 1 :], smooth, lw=1.6, color="C1")
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("environment steps", fontsize=8)
    fig.suptitle(f"learning curves: {run_dir.name}", fontsize=9)
    return _save(fig, path)


def plot_dir(directory, out_dir=None) -> list[Path]:
    """Plots of a run directory (learning curves, and every ``eval/<world>/`` under it) or
    of an evaluation directory; default ``out_dir``: ``<directory>/plots``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise LogError(f"{str(directory)!r} is not a directory")
    out = Path(out_dir) if out_dir is not None else directory / "plots"
    is_run = (directory / "metrics.csv").is_file()
    evals = [directory] if episode_logs(directory) else []
    if is_run:
        evals += sorted(d for d in (directory / "eval").glob("*") if episode_logs(d))
    if not is_run and not evals:
        raise LogError(
            f"{str(directory)!r} holds neither metrics.csv (a run directory) nor "
            "logs_*.hdf5 (an evaluation directory)"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise LogError(f"--out {str(out)!r} cannot be created ({err.strerror})") from None
    written = []
    if is_run:
        written.append(plot_learning_curves(directory, out / "learning_curves.png"))
    for d in evals:
        sub = out if d == directory else out / d.name
        sub.mkdir(parents=True, exist_ok=True)
        written += plot_eval_dir(d, sub)
    return written


__all__ = [
    "EVENT_NAMES",
    "EVENT_WINDOW",
    "bout_counts",
    "event_rows",
    "event_triggered_bouts",
    "plot_dir",
    "plot_eval_dir",
    "plot_learning_curves",
]
