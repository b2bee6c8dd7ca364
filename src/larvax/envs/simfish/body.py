"""The fish body: bouts, gliding, walls and energy.

Physics of the reference (pymunk / Chipmunk2D, ``space.damping = 0.7**50`` per second,
100 sub-steps of ``dt = 2 ms`` per env step):

* A bout turns the heading at once, ``angle += theta``, then adds one impulse
  ``d_mm * 8759.73`` (mass 50) along the new heading: ``dv = d_mm * 175.19 px/s``.
* Each sub-step integrates the position *before* damping the velocity:
  ``x += v * dt`` then ``v *= q`` with ``q = 0.7**0.1``. From rest, after ``k`` sub-steps the
  glide is ``d_mm * 10 * (1 - q**k)`` px (97.2 % of ``d * 10`` px at k = 100); the residual
  velocity ``v * q**100`` carries into the next step.
* Walls are pymunk segments of radius 5 px: x in [-5, 5] (left), x in [W-10, W] (right),
  y in [0, 10] (top), y in [H-5, H+5] (bottom). When the *mouth* circle (r = 2 px) touches one
  the reference zeroes the velocity, moves x (or y) to 10 when it is below 8 and to W-9
  (H-9) when it is above W-7 (H-7), and charges the wall penalty once per step.

larvax approximations (measured in docs/simfish.md):

* After a mouth-wall contact the fish is projected out of the wall to touching distance at
  once (pymunk pushes it out gradually with its penetration bias); head and tail do not
  collide with the walls (in pymunk they do, physically, without a penalty).
* A contact is checked at every sub-step from the positions after integration, so a new
  contact at every step whose bout points into the wall is penalised, as in the reference
  (arbiters separate because the fish is left exactly at touching distance).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from larvax.envs.simfish import bouts as bouts_lib
from larvax.envs.simfish.config import SimfishParams

Array = jax.Array

WALL_HALF_WIDTH = 5.0  # px, the radius of the reference's wall segments


def wall_limits(params: SimfishParams) -> tuple[float, float, float, float]:
    """Inner wall surfaces ``(x_min, x_max, y_min, y_max)`` in px: (5, W-10, 10, H-5)."""
    w, h = float(params.arena_width), float(params.arena_height)
    return (WALL_HALF_WIDTH, w - 2 * WALL_HALF_WIDTH, 2 * WALL_HALF_WIDTH, h - WALL_HALF_WIDTH)


def bout_velocity(params: SimfishParams, distance_mm: Array) -> Array:
    """Speed change (px/s) given by a bout of ``distance_mm``: ``d * 8759.73 / mass``."""
    return distance_mm * (bouts_lib.DISTANCE_TO_IMPULSE / params.fish_mass)


def start_bout(
    params: SimfishParams, angle: Array, velocity: Array, distance_mm: Array, angle_rad: Array
) -> tuple[Array, Array]:
    """Turn by ``angle_rad`` then kick along the new heading; returns (angle, velocity [2])."""
    new_angle = angle + jnp.asarray(angle_rad, jnp.float32)
    dv = bout_velocity(params, jnp.asarray(distance_mm, jnp.float32))
    heading = jnp.stack([jnp.cos(new_angle), jnp.sin(new_angle)], -1)
    return new_angle, velocity + dv[..., None] * heading


def glide(params: SimfishParams, xy: Array, velocity: Array, k) -> tuple[Array, Array]:
    """Closed-form free glide over ``k`` sub-steps (no walls): returns (xy, velocity).

    ``xy_k = xy + v * dt * (1 - q^k) / (1 - q)``, ``v_k = v * q^k`` (geometric series of the
    sub-step update ``x += v dt; v *= q``). ``k`` may be an array (broadcast on the left).
    """
    q = params.substep_damping
    dt = params.phys_dt
    k = jnp.asarray(k, jnp.float32)
    qk = jnp.power(jnp.float32(q), k)
    factor = dt * (1.0 - qk) / (1.0 - q)
    return xy + velocity * factor[..., None], velocity * qk[..., None]


def substep_trajectory(
    params: SimfishParams,
    xy: Array,
    angle: Array,
    velocity: Array,
    distance_mm: Array,
    angle_rad: Array,
    num_substeps: int | None = None,
) -> tuple[Array, Array, Array]:
    """Per-sub-step states of one bout in open water (for tests and plots).

    Returns ``(xy [n+1, 2], angle [], velocity [n+1, 2])``: row k is the state after the k-th
    physics sub-step (row 0: before the bout, at the pre-bout velocity), as
    ``dynamics.npz`` ``traj_*``.
    """
    n = params.phys_substeps if num_substeps is None else int(num_substeps)
    xy = jnp.asarray(xy, jnp.float32)
    velocity = jnp.asarray(velocity, jnp.float32)
    new_angle, v0 = start_bout(
        params, jnp.asarray(angle, jnp.float32), velocity, distance_mm, angle_rad
    )
    k = jnp.arange(1, n + 1)
    pos, vel = glide(params, xy[None, :], v0[None, :], k)
    pos = jnp.concatenate([xy[None], pos], 0)
    vel = jnp.concatenate([velocity[None], vel], 0)
    return pos, new_angle, vel


def mouth_touches_wall(params: SimfishParams, xy: Array) -> Array:
    """True when the mouth circle overlaps a wall segment (strict overlap)."""
    x0, x1, y0, y1 = wall_limits(params)
    r = params.fish_mouth_radius
    x, y = xy[..., 0], xy[..., 1]
    return (x - r < x0) | (x + r > x1) | (y - r < y0) | (y + r > y1)


def wall_response(params: SimfishParams, xy: Array) -> Array:
    """Where the fish ends up after a mouth-wall contact (velocity is zeroed by the caller).

    The reference's rule (x < 8 -> 10, x > W-7 -> W-9, the same for y), then the projection
    to touching distance (larvax's stand-in for pymunk's gradual push-out).
    """
    w, h = float(params.arena_width), float(params.arena_height)
    x, y = xy[..., 0], xy[..., 1]
    x = jnp.where(x < 8.0, 10.0, jnp.where(x > w - 7.0, w - 9.0, x))
    y = jnp.where(y < 8.0, 10.0, jnp.where(y > h - 7.0, h - 9.0, y))
    x0, x1, y0, y1 = wall_limits(params)
    r = params.fish_mouth_radius
    x = jnp.clip(x, x0 + r, x1 - r)
    y = jnp.clip(y, y0 + r, y1 - r)
    return jnp.stack([x, y], -1)


def bring_in_bounds(params: SimfishParams, xy: Array) -> Array:
    """The reference's end-of-step safety net: a fish within 4 px of the arena edge is
    clipped into ``[6, W-30] x [6, H-30]``."""
    w, h = float(params.arena_width), float(params.arena_height)
    x, y = xy[..., 0], xy[..., 1]
    out = (x < 4) | (y < 4) | (x > w - 4) | (y > h - 4)
    clipped = jnp.stack([jnp.clip(x, 6.0, w - 30.0), jnp.clip(y, 6.0, h - 30.0)], -1)
    return jnp.where(out[..., None], clipped, xy)


def fish_substep(params: SimfishParams, xy: Array, velocity: Array) -> tuple[Array, Array, Array]:
    """One physics sub-step of the fish: integrate, then wall contact, then damping.

    Returns ``(xy, velocity, touched_wall)``.
    """
    xy = xy + velocity * params.phys_dt
    touch = mouth_touches_wall(params, xy)
    xy = jnp.where(touch[..., None], wall_response(params, xy), xy)
    velocity = jnp.where(touch[..., None], 0.0, velocity) * params.substep_damping
    return xy, velocity, touch


def energy_use(params: SimfishParams, distance_mm: Array, angle_rad: Array, action: Array) -> Array:
    """Energy used by a bout: ``(0.00023|d_mm| + 0.0001|theta| + 0.00002) x (5 if capture)``."""
    return bouts_lib.energy_use(
        distance_mm,
        angle_rad,
        action,
        params.energy_distance_factor,
        params.energy_angle_factor,
        params.energy_baseline,
        params.capture_energy_cost_scaling,
    )


def update_energy(params: SimfishParams, energy: Array, use: Array, consumed: Array) -> Array:
    """``min(energy + energy_per_prey * consumed - use, 1)``; ``consumed`` is a bool (the
    reference gains 1 per step with any catch, and caps at 1)."""
    gain = jnp.where(consumed, params.energy_per_prey, 0.0)
    return jnp.minimum(energy + gain - use, 1.0).astype(jnp.float32)


__all__ = [
    "bout_velocity",
    "bring_in_bounds",
    "energy_use",
    "fish_substep",
    "glide",
    "mouth_touches_wall",
    "start_bout",
    "substep_trajectory",
    "update_energy",
    "wall_limits",
    "wall_response",
]
