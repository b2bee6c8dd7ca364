"""Scene API: what does the fish see in a hand-made (or golden) scene?

A *scene* is a mapping with the fields of one scene of the golden ``observations.npz``
(units px, rad)::

    fish_x, fish_y, fish_angle          fish body position and heading
    n_prey, prey_xy [P, 2]              prey centres (rows beyond n_prey / NaN rows ignored)
    predator_present, predator_xy [2], predator_radius
    salt_source_xy [2]                  integer px
    energy_level
    sediment [H, W]                     the bottom texture (photons 0..60), indexed [y, x]

``observe_scene(scene)`` returns ``(visual [139, 3, 2], internal [3])`` as NumPy float32,
computed by the same :func:`larvax.envs.simfish.vision.observe` the environment uses;
``internal`` = (in_light, energy, salt) is computed in float64 and rounded to float32,
exactly as the reference. ``state_from_scene(scene, params)`` builds a full
:class:`~larvax.envs.simfish.state.SimfishState` (zero sediment handle: pool texture 0
unshifted) so a virtual experiment can step it in an env whose sediment pool is
``sediment_pool_from_scene(scene)``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from larvax.envs.simfish import arena, vision
from larvax.envs.simfish.config import SimfishParams

SCENE_FIELDS = (
    "fish_x",
    "fish_y",
    "fish_angle",
    "n_prey",
    "prey_xy",
    "predator_present",
    "predator_xy",
    "predator_radius",
    "salt_source_xy",
    "energy_level",
    "sediment",
)


def _params(preset) -> SimfishParams:
    if isinstance(preset, SimfishParams):
        return preset
    if isinstance(preset, str):
        return SimfishParams.preset(preset)
    raise ValueError(f"preset={preset!r} is invalid; allowed: a preset name or SimfishParams")


def _check(scene: Mapping) -> None:
    if not isinstance(scene, Mapping):
        raise ValueError(f"scene must be a mapping, got {type(scene).__name__}")
    missing = [f for f in SCENE_FIELDS if f not in scene]
    if missing:
        raise ValueError(
            f"scene is missing field(s) {missing}; allowed/required fields: {list(SCENE_FIELDS)}"
        )


def scene_from_golden(data: Mapping, index: int, sediment) -> dict:
    """Scene ``index`` of a loaded golden ``observations.npz`` plus the sediment texture."""
    n = len(data["fish_x"])
    if not 0 <= int(index) < n:
        raise ValueError(f"scene index={index!r} is invalid; allowed: 0 .. {n - 1}")
    scene = {f: np.asarray(data[f][index]) for f in SCENE_FIELDS if f != "sediment"}
    scene["sediment"] = sediment
    return scene


def _prey_arrays(scene: Mapping):
    prey = np.asarray(scene["prey_xy"], np.float64).reshape(-1, 2)
    n = int(scene["n_prey"])
    if not 0 <= n <= len(prey):
        raise ValueError(f"scene n_prey={n!r} is invalid; allowed: 0 .. {len(prey)} (prey_xy rows)")
    alive = np.zeros(len(prey), bool)
    alive[:n] = True
    alive &= np.all(np.isfinite(prey), axis=-1)
    return np.nan_to_num(prey), alive


def _predator(scene: Mapping):
    present = bool(scene["predator_present"])
    xy = np.asarray(scene["predator_xy"], np.float64).reshape(2)
    r = float(scene["predator_radius"]) if present else 0.0
    if present and not (np.all(np.isfinite(xy)) and np.isfinite(r)):
        raise ValueError(
            f"scene predator_xy={xy!r}, predator_radius={r!r} are invalid with "
            "predator_present=True; allowed: finite numbers"
        )
    return present, np.nan_to_num(xy), r


@functools.partial(jax.jit, static_argnames=("params", "noise"))
def _observe_jit(params, world: vision.World, key, noise):
    return vision.observe(params, world, key, noise)


@functools.partial(jax.jit, static_argnames=("params",))
def _readings_jit(params, world: vision.World):
    return vision.photoreceptor_readings(params, world)


def _world(scene: Mapping) -> vision.World:
    prey, alive = _prey_arrays(scene)
    present, pxy, pr = _predator(scene)
    tex = np.asarray(scene["sediment"])
    if tex.ndim != 2:
        raise ValueError(f"scene sediment must be 2-D [H, W], got shape {tex.shape}")
    return vision.World(
        fish_xy=np.array([float(scene["fish_x"]), float(scene["fish_y"])], np.float32),
        fish_angle=np.float32(scene["fish_angle"]),
        prey_xy=prey.astype(np.float32),
        prey_alive=alive,
        predator_present=np.bool_(present),
        predator_xy=pxy.astype(np.float32),
        predator_radius=np.float32(pr),
        sediment=arena.sediment_from_array(tex),
    )


def internal_from_scene(scene: Mapping, preset="normal") -> np.ndarray:
    """(in_light, energy, salt) float32 ``[3]``, computed in float64 as the reference."""
    _check(scene)
    params = _params(preset)
    fish = np.array([float(scene["fish_x"]), float(scene["fish_y"])])
    light = float(fish[1] > params.in_light_threshold_y)
    salt = arena.salt_concentration_np(params, np.asarray(scene["salt_source_xy"]), fish)
    return np.array([light, float(scene["energy_level"]), float(salt)], np.float32)


def observe_scene(scene: Mapping, preset="normal", noise: bool = False, key=None):
    """The observation of one scene: ``(visual float32 [139, 3, 2], internal float32 [3])``.

    ``preset`` is a preset name or a :class:`SimfishParams`; ``noise`` turns on Poisson
    shot noise (then ``key``, a JAX PRNG key, defaults to ``jax.random.key(0)``).
    """
    _check(scene)
    params = _params(preset)
    if key is None:
        key = jax.random.key(0)
    visual = _observe_jit(params, _world(scene), key, bool(noise))
    return np.asarray(visual), internal_from_scene(scene, params)


def scene_readings(scene: Mapping, preset="normal") -> dict:
    """Noise-free receptor readings of a scene (NumPy dict, layouts of the golden
    intermediates): ``uv_background``, ``uv_prey``, ``red``, ``eye_offset``, ``raw_interp``."""
    _check(scene)
    out = _readings_jit(_params(preset), _world(scene))
    return {k: np.asarray(v) for k, v in out.items()}


def sediment_pool_from_scene(scene: Mapping) -> jax.Array:
    """The scene's texture as a one-texture sediment pool ``[1, H, W]`` for the env."""
    _check(scene)
    tex = jnp.asarray(scene["sediment"])
    if tex.ndim != 2:
        raise ValueError(f"scene sediment must be 2-D [H, W], got shape {tuple(tex.shape)}")
    return tex[None]


def state_from_scene(scene: Mapping, params: SimfishParams | str = "normal"):
    """A full :class:`~larvax.envs.simfish.state.SimfishState` for the scene.

    Fish at rest, prey static (gait 0) in the first ``n_prey`` slots, predator (if any)
    aimed at the fish, salt source and concentration, energy, step 0, sediment handle 0
    (use :func:`sediment_pool_from_scene` as the env's sediment pool so the red channels
    read the scene's texture). No predator epochs are scheduled.
    """
    from larvax.envs.simfish.state import make_state

    _check(scene)
    params = _params(params)
    prey, alive = _prey_arrays(scene)
    present, pxy, _ = _predator(scene)
    n = int(scene["n_prey"])
    prey_rows = np.where(alive[:n, None], prey[:n], np.nan)
    internal = internal_from_scene(scene, params)
    return make_state(
        params,
        (float(scene["fish_x"]), float(scene["fish_y"])),
        float(scene["fish_angle"]),
        energy=float(scene["energy_level"]),
        prey_xy=prey_rows if n > 0 else None,
        predator_xy=pxy if present else None,
        salt_source_xy=np.asarray(scene["salt_source_xy"], np.float32),
        salt=float(internal[2]),
        sediment=arena.zero_handle(),
    )


__all__ = [
    "SCENE_FIELDS",
    "internal_from_scene",
    "observe_scene",
    "scene_from_golden",
    "scene_readings",
    "sediment_pool_from_scene",
    "state_from_scene",
]
