"""One recorded Simfish episode as NumPy arrays: read from an HDF5 episode log, or simulated
with uniformly random bouts. What videos (``video.py``) and plots (``plots.py``) read.

The log layout is the reference simulator's (``docs/evaluation.md``): per step, ``T + 1``
rows (row 0 from reset) of ``fish_x``, ``fish_y``, ``fish_angle``, ``prey_x``, ``prey_y``
(NaN where no prey), ``predator_x``, ``predator_y`` (0 when absent), ``action``,
``reward``, ``event_consumed_prey``, ``event_survived_predator``,
``event_captured_by_predator``, ``vis_observation`` ``[T+1, 139, 3, 2]``,
``internal_state`` ``[T+1, 3]`` (in light, energy, salt); ``actor_state`` ``[T, H]``; per episode
``salt_location`` and the ``env_variables`` group of parameters (attributes). Only the
datasets named ``REQUIRED`` must exist; the others are used when present.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from larvax.envs.simfish.config import SimfishParams
from larvax.envs.simfish.physics import REWARD_COMPONENTS

REQUIRED = ("fish_x", "fish_y", "fish_angle", "action")
EVENTS = {  # log dataset -> short name
    "event_consumed_prey": "consumed_prey",
    "event_survived_predator": "survived_predator",
    "event_captured_by_predator": "captured_by_predator",
}


class LogError(ValueError):
    """A log file or directory that cannot be read (one-line message)."""


@dataclass
class RecordedEpisode:
    """One episode, ``T + 1`` rows (row 0 = the reset state; ``action[t]`` is the bout that
    led from row ``t - 1`` to row ``t``, so ``action[0]`` is a placeholder: -1 in larvax
    logs, 0 in the reference's).

    Positions in px (x right, y down), angles in rad.
    """

    fish_xy: np.ndarray  # float [T+1, 2]
    fish_angle: np.ndarray  # float [T+1]
    action: np.ndarray  # int [T+1]
    prey_xy: np.ndarray  # float [T+1, P, 2], NaN = no prey in that slot
    predator_xy: np.ndarray  # float [T+1, 2]
    predator_present: np.ndarray  # bool [T+1]
    reward: np.ndarray  # float [T+1]
    events: dict  # short event name -> bool [T+1]
    params: SimfishParams
    visual: np.ndarray | None = None  # float [T+1, G, 3, 2] photons
    internal: np.ndarray | None = None  # float [T+1, 3] (in light, energy, salt)
    actor_state: np.ndarray | None = None  # float [T, H]: row t read observation row t
    reward_components: dict = field(default_factory=dict)  # name -> float [T+1]
    prey_caught: np.ndarray | None = None  # int [T+1] prey eaten per step (larvax logs)
    # scripted stimuli [N, S, 2] px, NaN = absent; log row t shows index t - 1 (seen only)
    stimulus_prey_xy: np.ndarray | None = None
    stimulus_predator_xy: np.ndarray | None = None
    salt_location: np.ndarray = field(default_factory=lambda: np.full(2, np.nan))
    sediment: object = None  # [H, W] texture, an arena.Sediment, or None (flat sand)
    name: str = ""

    @property
    def num_steps(self) -> int:
        """``T``: bouts taken (rows minus the reset row)."""
        return int(self.fish_xy.shape[0]) - 1

    @property
    def prey_per_step(self) -> np.ndarray:
        """int [T+1]: prey eaten in each step (``prey_caught``, else the consumption event)."""
        if self.prey_caught is not None:
            return self.prey_caught.reshape(-1)
        return self.events["consumed_prey"].astype(np.int64)

    @property
    def energy(self) -> np.ndarray | None:
        return None if self.internal is None else self.internal[:, 1]


def params_from_attrs(attrs) -> SimfishParams:
    """SimfishParams from an ``env_variables`` attribute mapping (unknown keys ignored;
    a set that does not validate falls back to the arena geometry alone, then defaults)."""
    fields = {f.name: f for f in dataclasses.fields(SimfishParams)}
    kwargs = {}
    for key, value in dict(attrs).items():
        if key not in fields:
            continue
        default = fields[key].default
        value = value.item() if isinstance(value, np.generic) else value
        value = value.decode() if isinstance(value, bytes) else value
        if isinstance(value, str) and value == "None":  # how a log writes None
            value = None
        if value is None or isinstance(value, str):
            if value is None or isinstance(default, str):
                kwargs[key] = value
            continue
        if isinstance(default, tuple):
            value = tuple(float(v) for v in np.ravel(value))
        elif isinstance(default, bool):
            value = bool(value)
        elif isinstance(default, int):
            value = int(value)
        elif isinstance(default, float):
            value = float(value)
        kwargs[key] = value
    try:
        return SimfishParams(**kwargs)
    except ValueError:
        geometry = ("arena_width", "arena_height", "dark_fraction", "light_gradient_px")
        try:
            return SimfishParams(**{k: kwargs[k] for k in geometry if k in kwargs})
        except ValueError:
            return SimfishParams()


def _opt(f, name, dtype=np.float64):
    return np.asarray(f[name][()], dtype) if name in f else None


def read_episode(
    path: str | Path, with_sediment: bool = False, with_observations: bool = True
) -> RecordedEpisode:
    """Read one ``logs_{n}.hdf5`` episode log (h5py).

    with_sediment: also read the sediment image (the ``sediment`` dataset, else rebuilt from
    the logged handle by ``larvax.evaluation.hdf5.regenerate_sediment`` when available);
    without it (or when neither works) videos draw flat sand.
    with_observations: read ``vis_observation`` and ``actor_state`` (the bulk of a log;
    analysis plots skip them).
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise LogError(f"log file {str(path)!r} does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise LogError(f"log file {str(path)!r} is not an HDF5 file ({err})") from None
    with f:
        missing = [k for k in REQUIRED if k not in f]
        if missing:
            raise LogError(
                f"log file {str(path)!r} has no dataset {missing[0]!r}; "
                "expected a Simfish episode log (docs/evaluation.md)"
            )
        fish = np.stack([_opt(f, "fish_x"), _opt(f, "fish_y")], axis=-1)
        rows = fish.shape[0]
        if "prey_x" in f and "prey_y" in f:
            prey = np.stack([_opt(f, "prey_x"), _opt(f, "prey_y")], axis=-1).reshape(rows, -1, 2)
        else:
            prey = np.zeros((rows, 0, 2))
        if "predator_x" in f and "predator_y" in f:
            pred = np.stack([_opt(f, "predator_x"), _opt(f, "predator_y")], axis=-1)
        else:
            pred = np.zeros((rows, 2))
        if "predator_present" in f:
            present = _opt(f, "predator_present", bool)
        else:  # the reference's convention: 0 when absent
            present = np.any(pred != 0, axis=-1)
        actor = _opt(f, "actor_state", np.float32) if with_observations else None
        visual = _opt(f, "vis_observation", np.float32) if with_observations else None
        attrs = f["env_variables"].attrs if "env_variables" in f else {}
        sediment = _opt(f, "sediment", np.float32) if with_sediment else None
        return RecordedEpisode(
            fish_xy=fish,
            fish_angle=_opt(f, "fish_angle"),
            action=_opt(f, "action", np.int64).reshape(rows),
            prey_xy=prey,
            predator_xy=pred,
            predator_present=present.reshape(rows),
            reward=_opt(f, "reward") if "reward" in f else np.zeros(rows),
            events={
                short: _opt(f, key, bool).reshape(rows) if key in f else np.zeros(rows, bool)
                for key, short in EVENTS.items()
            },
            params=params_from_attrs(attrs),
            visual=visual,
            internal=_opt(f, "internal_state", np.float32),
            actor_state=None if actor is None else actor.reshape(len(actor), -1),
            reward_components=_reward_components(f, rows),
            prey_caught=_opt(f, "prey_caught", np.int64),
            stimulus_prey_xy=_opt(f, "stimulus_prey_xy"),
            stimulus_predator_xy=_opt(f, "stimulus_predator_xy"),
            salt_location=_opt(f, "salt_location").reshape(2)
            if "salt_location" in f
            else np.full(2, np.nan),
            sediment=_sediment(path, sediment) if with_sediment else None,
            name=path.name,
        )


def _sediment(path: Path, stored):
    """The ``[H, W]`` sediment image of a log, or None (flat sand)."""
    if stored is not None:
        return stored.reshape(stored.shape[-2:])
    try:
        from larvax.evaluation.hdf5 import regenerate_sediment
    except ImportError:
        return None
    try:
        return np.asarray(regenerate_sediment(path), np.float32)
    except (KeyError, ValueError, OSError):  # a log without the handle or its pool seed
        return None


def _reward_components(f, rows: int) -> dict:
    """Per-step reward components: datasets ``reward_<component>`` or a group
    ``reward_components`` of datasets (whichever the log has)."""
    out = {}
    group = f["reward_components"] if "reward_components" in f else None
    for c in REWARD_COMPONENTS:
        if group is not None and c in group:
            out[c] = np.asarray(group[c][()], np.float64).reshape(rows)
        elif f"reward_{c}" in f:
            out[c] = np.asarray(f[f"reward_{c}"][()], np.float64).reshape(rows)
    return out


def episode_logs(directory: str | Path) -> list[Path]:
    """The ``logs_{n}.hdf5`` files of an evaluation directory, ordered by ``n``."""
    directory = Path(directory)
    found = []
    for p in directory.glob("logs_*.hdf5"):
        m = re.fullmatch(r"logs_(\d+)\.hdf5", p.name)
        if m:
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def _snapshot(state, ts, action) -> dict:
    """One log row of a Simfish state and the TimeStep that reached it (JAX, traced)."""
    import jax.numpy as jnp

    info = ts.info
    return {
        "fish_xy": state.fish_xy,
        "fish_angle": state.fish_angle,
        "prey_xy": jnp.where(state.prey_alive[:, None], state.prey_xy, jnp.nan),
        "predator_xy": jnp.where(state.predator_present, state.predator_xy, 0.0),
        "predator_present": state.predator_present,
        "action": action,
        "reward": ts.reward,
        "visual": ts.observation["visual"],
        "internal": ts.observation["internal"],
        "prey_caught": info["prey_caught"],
        "consumed_prey": info["prey_caught"] > 0,
        "survived_predator": info["attack_survived"],
        "captured_by_predator": info["predator_hit"],
        "done": ts.terminated | ts.truncated,
        **{f"reward_{c}": info["reward_components"][c] for c in REWARD_COMPONENTS},
    }


def random_episode(
    preset: str = "normal", seed: int = 0, max_steps: int | None = None, **overrides
) -> RecordedEpisode:
    """Simulate one Simfish episode with uniformly random bouts (one compiled scan of the
    env's step) and record it as a log would; ends at the episode's first end."""
    import jax
    import jax.numpy as jnp

    from larvax.envs import make
    from larvax.envs.simfish import arena
    from larvax.envs.simfish.bouts import NUM_ACTIONS

    if max_steps is not None:
        overrides["max_steps"] = int(max_steps)
    env, params = make("simfish", preset=preset, **overrides)
    k_reset, k_run = jax.random.split(jax.random.key(seed))

    @jax.jit
    def run(k_reset, k_run):
        state, ts = env.reset(k_reset, params)
        first = _snapshot(state, ts, jnp.full((), -1, jnp.int32))

        def body(state, key):
            k_act, k_step = jax.random.split(key)
            action = jax.random.randint(k_act, (), 0, NUM_ACTIONS)
            state, ts = env.step(k_step, state, action, params)
            return state, _snapshot(state, ts, action)

        _, rest = jax.lax.scan(body, state, jax.random.split(k_run, params.max_steps))
        rows = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b]), first, rest)
        return rows, state.sediment, state.salt_source_xy

    rows, handle, salt_xy = run(k_reset, k_run)
    rows = jax.tree_util.tree_map(np.asarray, rows)
    done = np.flatnonzero(rows["done"][1:])
    n = int(done[0]) + 2 if done.size else rows["done"].shape[0]  # rows through the end
    rows = {k: v[:n] for k, v in rows.items()}
    return RecordedEpisode(
        fish_xy=rows["fish_xy"].astype(np.float64),
        fish_angle=rows["fish_angle"].astype(np.float64),
        action=rows["action"].astype(np.int64),
        prey_xy=rows["prey_xy"].astype(np.float64),
        predator_xy=rows["predator_xy"].astype(np.float64),
        predator_present=rows["predator_present"],
        reward=rows["reward"].astype(np.float64),
        events={short: rows[short] for short in EVENTS.values()},
        params=params,
        visual=rows["visual"],
        internal=rows["internal"],
        prey_caught=rows["prey_caught"].astype(np.int64),
        reward_components={c: rows[f"reward_{c}"].astype(np.float64) for c in REWARD_COMPONENTS},
        salt_location=np.asarray(salt_xy, np.float64)
        if params.salt_enabled
        else np.full(2, np.nan),
        sediment=arena.Sediment(env.sediment_textures, handle),
        name=f"random bouts, {preset} (seed {seed})",
    )


__all__ = [
    "EVENTS",
    "REQUIRED",
    "LogError",
    "RecordedEpisode",
    "episode_logs",
    "params_from_attrs",
    "random_episode",
    "read_episode",
]
