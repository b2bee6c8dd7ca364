"""Simfish vision, assembly: receptor readings of both eyes, shot noise, interpolation to
the observation grid, and the left/right reflection of an observation."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from larvax.envs.simfish.config import SimfishParams
from larvax.envs.simfish.random_numbers import poisson
from larvax.envs.simfish.vision.geometry import eye_geometry, eye_offsets, wrap_angle
from larvax.envs.simfish.vision.red import red_channels
from larvax.envs.simfish.vision.uv import uv_background, uv_prey
from larvax.envs.simfish.vision.world import World

Array = jax.Array


def _readings(params: SimfishParams, world: World):
    """(UV background ``[R, 2]``, UV prey ``[R, 2]``, red ``[R, 2, 2]``, eye offsets ``[2, 2]``)."""
    world = world.as_arrays()
    geo = eye_geometry(params)
    centre = jnp.round(world.fish_xy).astype(jnp.int32)
    offs = eye_offsets(params, world.fish_angle)
    bg, red = [], []
    for e in range(2):
        rays = wrap_angle(jnp.asarray(geo.uv_angles[e], jnp.float32) + world.fish_angle)
        bg.append(uv_background(params, centre, offs[e], rays))
        red.append(red_channels(params, world, centre, offs[e], e))
    prey = uv_prey(params, world, centre, offs)
    return jnp.stack(bg, -1), prey, jnp.stack(red, -1), offs


def photoreceptor_readings(params: SimfishParams, world: World) -> dict:
    """Noise-free receptor readings and the interpolated (pre-floor) observation.

    Returns a dict (float32) with ``uv_background`` ``[R, 2]``, ``uv_prey`` ``[R, 2]``,
    ``red`` ``[R, 2 (elevation), 2 (eye)]``, ``eye_offset`` ``[2 (eye), 2 (x, y)]`` and
    ``raw_interp`` ``[G, 3, 2]``: the layouts of the golden ``observations.npz``
    intermediates.
    """
    bg, prey, red, offs = _readings(params, world)
    raw = interpolate(params, bg + prey, red)
    return {"uv_background": bg, "uv_prey": prey, "red": red, "eye_offset": offs, "raw_interp": raw}


def interpolate(params: SimfishParams, uv: Array, red: Array) -> Array:
    """Receptor readings -> the observation grid (np.interp, edge-clamped).

    uv: ``[R, 2 (eye)]``; red: ``[R, 2 (elevation), 2 (eye)]``. Returns ``[G, 3, 2]``.
    """
    geo = eye_geometry(params)
    w_uv = jnp.asarray(geo.interp_uv)
    w_red = jnp.asarray(geo.interp_red)
    i_uv = jnp.einsum("egr,re->ge", w_uv, uv)
    i_red = jnp.einsum("egr,rce->gce", w_red, red)
    return jnp.concatenate([i_uv[:, None, :], i_red], axis=1)


def observe(
    params: SimfishParams, world: World, key: Array | None = None, noise: bool | None = None
) -> Array:
    """The visual observation of one fish, float32 ``[G=139, 3, 2]`` (integer photons).

    ``noise`` (static; default ``params.eyes_shot_noise``) draws Poisson shot noise per
    receptor reading with ``key``. Pure and jit/vmap-able (``params`` static).
    """
    if noise is None:
        noise = params.eyes_shot_noise
    if noise and key is None:
        raise ValueError("observe(noise=True) needs a PRNG key; got key=None")
    bg, prey, red, _ = _readings(params, world)
    uv = bg + prey
    if noise:
        ku, kr = jax.random.split(key)
        uv = poisson(ku, uv)
        red = poisson(kr, red)
    raw = interpolate(params, uv, red)
    return jnp.clip(jnp.floor(raw), 0.0, 255.0).astype(jnp.float32)


def reflect_observation(observation):
    """Mirror an observation left <-> right (the world reflected about the heading axis).

    ``visual[..., ::-1, :, ::-1]`` (grid reversed, eyes swapped); ``internal`` unchanged.
    Accepts a dict ``{"visual", "internal"}`` (extra keys kept) or a bare visual array
    with any leading batch dimensions. Approximate at the 0.0046 rad level: the reference's
    two eye grids are not exact mirror images.
    """
    if isinstance(observation, dict):
        out = dict(observation)
        out["visual"] = reflect_observation(observation["visual"])
        return out
    v = observation
    if v.ndim < 3:
        raise ValueError(f"visual must be [..., G, 3, 2], got shape {tuple(v.shape)}")
    return v[..., ::-1, :, ::-1]


__all__ = ["interpolate", "observe", "photoreceptor_readings", "reflect_observation"]
