"""Virtual experiments: the reference's evaluation worlds and scripted stimuli.

World presets are data: overrides of a run's :class:`SimfishParams` plus optional
scripted stimuli (the reference's ``env_config/*.yaml`` evaluation worlds)::

    env, params = make_world("tethered_pred", base=run_params)

==================  =======================================================================
world               what changes (on top of the environment the agent was trained in)
==================  =======================================================================
``train``           nothing: the run's own environment
``normal``          every non-vision field at the reference's ``normal.yaml`` value
``empty``           5000 px arena, no dark band, no prey, no predator, no salt
``empty_high_energy``  ``empty`` with the energy fixed at 1.0 (a sated fish)
``empty_low_energy``   ``empty`` with the energy fixed at 0.2 (a hungry fish; larvax's)
``tethered``        ``empty_high_energy`` with the fish held at the centre (2500, 2500),
                    heading pi/2 (1.5707 as the reference), paralysed (it chooses bouts,
                    but never moves or turns), 1000 steps
``tethered_prey``   ``tethered`` + the reference's prey sweep
``tethered_pred``   ``tethered`` + the reference's predator sweep
``tethered_prey_pred``  both sweeps
==================  =======================================================================

**Scripted stimuli** (:class:`ScriptedSimfish`) are seen, not simulated: prey ``[N, S, 2]``
and predator ``[M, S, 2]`` positions (px) per step, NaN where absent. They are added to
the vision's world only: scripted prey cannot be caught, the scripted predator never hits
and gives no reward (as in the reference). A real predator, when present, hides the
scripted one (the vision shows one predator). Indexing follows the reference: the
observation after step ``s`` (log row ``s``) shows ``stimulus[:, s - 1]``; the reset
observation shows none (the reference reads index -1 there, the last step's entry).

The built-in sweeps equal the reference's ``make_stim_files.ipynb``: the predator's x goes
``linspace(cx - 100, cx, 20)`` at ``y = cy + 50`` from steps 250 and 750, a prey's x the
same at ``y = cy + 30`` from steps 300 and 800, for a fish at ``(cx, cy) = (2500, 2500)``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from larvax.envs.simfish import vision
from larvax.envs.simfish.config import SimfishParams
from larvax.envs.simfish.env import Simfish, internal_state

Array = jax.Array

# Fields of the eyes and the vision: a world never changes them (the network depends on them).
_VISION_PREFIXES = ("eyes_", "uv_", "red_", "sz_", "num_", "viewing_", "obs_", "fish_elevation")

_EMPTY = dict(
    arena_width=5000,
    arena_height=5000,
    dark_fraction=0.0,
    prey_num=0,
    predator_probability_per_epoch_step=0.0,
    salt_enabled=False,
)
_TETHERED = dict(
    _EMPTY,
    fish_fixed_energy=True,
    fish_init_energy=1.0,
    fish_init_x=2500.0,
    fish_init_y=2500.0,
    fish_init_angle=1.5707,
    fish_paralyzed=True,
    max_steps=1000,
)

# world name -> (param overrides, stimulus: None, "prey", "predator" or "prey_predator")
WORLDS: dict[str, tuple[dict, str | None]] = {
    "train": ({}, None),
    "normal": (None, None),  # filled by _normal_overrides()
    "empty": (_EMPTY, None),
    "empty_high_energy": (dict(_EMPTY, fish_fixed_energy=True, fish_init_energy=1.0), None),
    "empty_low_energy": (dict(_EMPTY, fish_fixed_energy=True, fish_init_energy=0.2), None),
    "tethered": (_TETHERED, None),
    "tethered_prey": (_TETHERED, "prey"),
    "tethered_pred": (_TETHERED, "predator"),
    "tethered_prey_pred": (_TETHERED, "prey_predator"),
}


def world_names() -> list[str]:
    return list(WORLDS)


def _normal_overrides() -> dict:
    normal = SimfishParams()
    return {
        f.name: getattr(normal, f.name)
        for f in dataclasses.fields(SimfishParams)
        if not f.name.startswith(_VISION_PREFIXES) and f.name != "notes"
    }


def world_overrides(name: str) -> dict:
    """The parameter overrides of world ``name`` (unknown names: a one-line error)."""
    if name not in WORLDS:
        raise ValueError(f"unknown world {name!r}; allowed: {', '.join(WORLDS)}")
    overrides, _ = WORLDS[name]
    return dict(_normal_overrides() if overrides is None else overrides)


# ----------------------------------------------------------------------------- stimuli


def reference_sweeps(centre=(2500.0, 2500.0), steps: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """The reference's built-in sweeps around a fish at ``centre`` (px): ``(prey [1, steps,
    2], predator [1, steps, 2])`` float32, NaN where absent (see the module docstring)."""
    cx, cy = float(centre[0]), float(centre[1])
    prey = np.full((1, steps, 2), np.nan, np.float32)
    pred = np.full((1, steps, 2), np.nan, np.float32)
    sweep_x = np.linspace(cx - 100.0, cx, 20)
    for start in (250, 750):
        n = max(0, min(20, steps - start))
        pred[0, start : start + n, 0] = sweep_x[:n]
        pred[0, start : start + n, 1] = cy + 50.0
    for start in (300, 800):
        n = max(0, min(20, steps - start))
        prey[0, start : start + n, 0] = sweep_x[:n]
        prey[0, start : start + n, 1] = cy + 30.0
    return prey, pred


def _check_stimulus(name: str, value, path) -> np.ndarray | None:
    if value is None:
        return None
    arr = np.asarray(value, np.float32)
    if arr.ndim != 3 or arr.shape[-1] != 2:
        raise ValueError(
            f"stimulus {path}: {name} has shape {arr.shape}; allowed: [N, T, 2] (px, NaN absent)"
        )
    return arr


def load_stimulus(path) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(prey, predator)`` arrays ``[N, T, 2]`` from a stimulus file.

    ``.npz``: arrays ``prey`` and/or ``predator`` (NaN = absent). ``.h5`` / ``.hdf5``: the
    reference's stimulus files (``prey_loc`` / ``predator_loc``, where ``(0, 0)`` means
    absent; converted to NaN).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"stimulus file {str(path)!r} does not exist")
    if path.suffix == ".npz":
        with np.load(path) as data:
            unknown = sorted(set(data.files) - {"prey", "predator"})
            if unknown or not data.files:
                raise ValueError(
                    f"stimulus {path}: arrays {sorted(data.files)}; allowed: 'prey', 'predator'"
                )
            prey = data["prey"] if "prey" in data.files else None
            pred = data["predator"] if "predator" in data.files else None
    elif path.suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "r") as f:
            prey = _zeros_absent(f["prey_loc"][()]) if "prey_loc" in f else None
            pred = _zeros_absent(f["predator_loc"][()]) if "predator_loc" in f else None
    else:
        raise ValueError(f"stimulus file {str(path)!r}: allowed suffixes .npz, .h5, .hdf5")
    return _check_stimulus("prey", prey, path), _check_stimulus("predator", pred, path)


def _zeros_absent(loc) -> np.ndarray:
    loc = np.asarray(loc, np.float32).copy()
    loc[np.all(loc == 0.0, axis=-1)] = np.nan
    return loc


class ScriptedSimfish(Simfish):
    """Simfish whose observations also show scripted prey and a scripted predator.

    Args:
        params, sediment, num_textures, texture_seed: as :class:`Simfish`.
        prey: ``[N, S, 2]`` px per step (NaN absent) or None.
        predator: ``[M, S, 2]`` px per step (only the first present one is drawn) or None.
    """

    def __init__(self, params=None, *, prey=None, predator=None, **kwargs):
        super().__init__(params, **kwargs)
        self.stimulus_prey = _check_stimulus("prey", prey, "argument")
        self.stimulus_predator = _check_stimulus("predator", predator, "argument")

    def stimulus_world(self, world: vision.World, step: Array) -> vision.World:
        """``world`` with the stimuli of the observation after ``step`` steps added."""
        idx = jnp.asarray(step, jnp.int32) - 1
        if self.stimulus_prey is not None:
            stim = jnp.asarray(self.stimulus_prey)
            xy = stim[:, jnp.clip(idx, 0, stim.shape[1] - 1)]
            seen = (idx >= 0) & (idx < stim.shape[1]) & jnp.all(jnp.isfinite(xy), axis=-1)
            world = world._replace(
                prey_xy=jnp.concatenate([world.prey_xy, jnp.where(seen[:, None], xy, 0.0)]),
                prey_alive=jnp.concatenate([world.prey_alive, seen]),
            )
        if self.stimulus_predator is not None:
            stim = jnp.asarray(self.stimulus_predator)
            xy = stim[:, jnp.clip(idx, 0, stim.shape[1] - 1)]
            seen = (idx >= 0) & (idx < stim.shape[1]) & jnp.all(jnp.isfinite(xy), axis=-1)
            first = jnp.argmax(seen)
            show = jnp.any(seen) & ~world.predator_present
            world = world._replace(
                predator_present=world.predator_present | show,
                predator_xy=jnp.where(show, xy[first], world.predator_xy),
            )
        return world

    def observe(self, key: Array, state, params: SimfishParams | None = None):
        p = params or self.params
        world = vision.World.of_state(state, self.sediment_textures)
        visual = vision.observe(p, self.stimulus_world(world, state.step), key)
        return {"visual": visual, "internal": internal_state(p, state)}


def make_world(
    name: str,
    base: SimfishParams | None = None,
    overrides: dict | None = None,
    stimulus_file=None,
    *,
    num_textures: int = 4,
    texture_seed: int = 0,
):
    """``(env, params)`` of world ``name`` on top of ``base`` (default: the normal params),
    then ``overrides`` (e.g. from ``--set env.KEY=VALUE``). ``stimulus_file`` replaces the
    world's built-in sweeps (and adds stimuli to any world)."""
    base = SimfishParams() if base is None else base
    params = base.replace(**world_overrides(name))
    if overrides:
        params = params.replace(**overrides)
    _, kind = WORLDS[name]
    prey = pred = None
    if stimulus_file is not None:
        prey, pred = load_stimulus(stimulus_file)
    elif kind is not None:
        centre = (
            (params.fish_init_x, params.fish_init_y)
            if params.fish_init_x is not None
            else (params.arena_width / 2, params.arena_height / 2)
        )
        sweep_prey, sweep_pred = reference_sweeps(centre, params.max_steps)
        prey = sweep_prey if "prey" in kind else None
        pred = sweep_pred if "predator" in kind else None
    kwargs = dict(num_textures=num_textures, texture_seed=texture_seed)
    if prey is None and pred is None:
        env = Simfish(params, **kwargs)
    else:
        env = ScriptedSimfish(params, prey=prey, predator=pred, **kwargs)
    return env, params


__all__ = [
    "WORLDS",
    "ScriptedSimfish",
    "load_stimulus",
    "make_world",
    "reference_sweeps",
    "world_names",
    "world_overrides",
]
