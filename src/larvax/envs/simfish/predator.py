"""The predator: schedule, spawn, motion, hits (reference: Simfish 2.0 ``simfish_env.py``).

* Schedule: ``predator_epoch_num`` (5) epochs of ``predator_epoch_duration`` (50) steps whose
  starts are uniform integers in ``[immunity (200), max_steps - duration (950))``; in an
  epoch step, a predator appears with p 0.07 when none is present and the fish is at least
  ``1.5 * radius`` (96 px) from every wall (checked before the bout moves the fish).
* Spawn: 180 px from the fish in an integer-degree direction ``a`` chosen by
  :func:`attack_angle` (the reference's table; its "top"/"bottom" cases point *toward* the
  near wall, so such predators often touch the wall at once and count as an avoided attack,
  reproduced as is), at ``fish + 180 * (sin a, cos a)``; target = the fish position then.
* Motion: a circle of radius 64, mass-independent impulse ``90 * (1 - q)`` px/s per sub-step
  toward the target after the integration ``x += v dt; v *= q`` (speed -> 90 px/s).
* Removal: when its rounded position equals the rounded target, when it leaves the arena,
  or when it touches a wall; a removal without a hit is a survived attack (+2 at the end of
  the step). A hit (overlap with the mouth, head or tail after ``immunity`` steps) gives -2
  at the end of the step and removes it. It is invisible in UV and shadows the red channels
  (the vision's business).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from larvax.envs.simfish.body import wall_limits
from larvax.envs.simfish.config import SimfishParams
from larvax.envs.simfish.prey import body_contact

Array = jax.Array


class Predator(NamedTuple):
    """The predator through the sub-steps of one env step (the sub-step loop's carry).

    xy float32 ``[2]`` px; velocity float32 ``[2]`` px/s; present bool; touched bool (it hit
    the fish in this step); survived bool (it left without a hit in this step).
    """

    xy: Array
    velocity: Array
    present: Array
    touched: Array
    survived: Array


def epoch_starts(key: Array, params: SimfishParams) -> Array:
    """Epoch start steps, int32 ``[E]`` (``max_steps`` when no epoch fits: never)."""
    e = max(int(params.predator_epoch_num), 1)
    lo = int(params.predator_immunity_steps)
    hi = int(params.max_steps - params.predator_epoch_duration)
    if hi <= lo or params.predator_epoch_num == 0 or not params.predator_enabled:
        return jnp.full((e,), params.max_steps, jnp.int32)
    return jax.random.randint(key, (e,), lo, hi).astype(jnp.int32)


def spawn_probability(params: SimfishParams, starts: Array, step: Array) -> Array:
    """p of a spawn attempt succeeding at env step ``step`` (0-based, before the step)."""
    inside = (step >= starts) & (step < starts + params.predator_epoch_duration)
    return jnp.where(jnp.any(inside), params.predator_probability_per_epoch_step, 0.0)


def fish_near_wall(params: SimfishParams, fish_xy: Array) -> Array:
    """The fish is nearer than ``predator_wall_margin`` (96 px) to an arena edge."""
    w, h = float(params.arena_width), float(params.arena_height)
    m = params.predator_wall_margin
    x, y = fish_xy[..., 0], fish_xy[..., 1]
    return (x < m) | (w - x < m) | (y < m) | (h - y < m)


def attack_angle(key: Array, params: SimfishParams, fish_xy: Array) -> Array:
    """Direction (rad) of the spawn point from the fish, the reference's table of integer
    degrees by the walls within ``predator_distance_from_fish`` (180 px)."""
    w, h = float(params.arena_width), float(params.arena_height)
    dd = params.predator_distance_from_fish
    x, y = fish_xy[0], fish_xy[1]
    left, right, top, bottom = x < dd, (w - x) < dd, y < dd, (h - y) < dd
    k1, k2 = jax.random.split(key)
    u = jax.random.uniform(k1)
    # (low, high) degree ranges, first match wins as in the reference.
    cases = [
        (left & top, 90, 180),
        (left & bottom, 0, 90),
        (right & top, 180, 270),
        (right & bottom, 270, 360),
        (left, 0, 180),
        (top, 90, 270),
        (bottom, 270, 450),  # choice of [270, 360) or [0, 90): one range mod 360
        (right, 180, 360),
    ]
    lo, hi = jnp.int32(0), jnp.int32(360)
    for cond, a, b in reversed(cases):
        lo = jnp.where(cond, a, lo)
        hi = jnp.where(cond, b, hi)
    deg = lo + jnp.floor(u * (hi - lo)).astype(jnp.int32)
    del k2
    return jnp.radians(jnp.mod(deg, 360).astype(jnp.float32))


def spawn_position(params: SimfishParams, fish_xy: Array, angle: Array) -> Array:
    """``fish + d * (sin a, cos a)`` (the reference's dx = d sin a, dy = d cos a)."""
    d = params.predator_distance_from_fish
    return fish_xy + d * jnp.stack([jnp.sin(angle), jnp.cos(angle)])


def touches_wall(params: SimfishParams, xy: Array) -> Array:
    """The predator circle overlaps a wall segment."""
    x0, x1, y0, y1 = wall_limits(params)
    r = params.predator_radius
    x, y = xy[..., 0], xy[..., 1]
    return (x - r < x0) | (x + r > x1) | (y - r < y0) | (y + r > y1)


def outside_arena(params: SimfishParams, xy: Array) -> Array:
    x, y = xy[..., 0], xy[..., 1]
    return (x < 0) | (x > params.arena_width) | (y < 0) | (y > params.arena_height)


def at_target(xy: Array, target: Array) -> Array:
    """Rounded position equals the rounded target (the reference's test)."""
    return jnp.all(jnp.round(xy) == jnp.round(target), -1)


def hits_fish(params: SimfishParams, xy: Array, fish_xy: Array, fish_angle: Array) -> Array:
    """The predator circle overlaps the mouth, head or tail of the fish."""
    d = xy - fish_xy
    r = params.predator_radius + params.fish_mouth_radius
    mouth = jnp.sum(d * d, -1) < r * r
    return mouth | body_contact(params, fish_xy, fish_angle, xy, radius=params.predator_radius)


def impulse_velocity(params: SimfishParams, xy: Array, target: Array) -> Array:
    """Velocity change of one sub-step's push toward the target (px/s)."""
    q = params.substep_damping
    d = target - xy
    # the unit vector (cos, sin) of atan2(dy, dx) without the transcendental functions
    # (atan2(0, 0) = 0: (1, 0) at the target)
    n2 = d[..., 0] * d[..., 0] + d[..., 1] * d[..., 1]
    norm = jnp.sqrt(jnp.where(n2 > 0, n2, 1.0))
    u = jnp.stack([jnp.where(n2 > 0, d[..., 0] / norm, 1.0), d[..., 1] / norm], -1)
    return params.predator_velocity * (1.0 - q) * u


def spawn(key_spawn: Array, key_angle: Array, params: SimfishParams, state) -> tuple:
    """The spawn attempt at the start of a step (before the bout moves the fish).

    ``state`` is the :class:`~larvax.envs.simfish.state.SimfishState` before the step.
    Returns ``(Predator, target_xy [2])``: the predator entering the sub-steps (touched and
    survived False) and the point it swims to.
    """
    if params.predator_enabled and params.predator_epoch_num > 0:
        prob = spawn_probability(params, state.predator_epoch_starts, state.step)
        new = (
            ~state.predator_present
            & (jax.random.uniform(key_spawn) < prob)
            & ~fish_near_wall(params, state.fish_xy)
        )
        ang = attack_angle(key_angle, params, state.fish_xy)
        xy = jnp.where(new, spawn_position(params, state.fish_xy, ang), state.predator_xy)
        velocity = jnp.where(new, 0.0, state.predator_velocity)
        target = jnp.where(new, state.fish_xy, state.predator_target_xy)
        present = state.predator_present | new
    else:
        xy, velocity = state.predator_xy, state.predator_velocity
        target, present = state.predator_target_xy, state.predator_present
    no = jnp.asarray(False)
    return Predator(xy, velocity, present, no, no), target


def substep(
    params: SimfishParams,
    pred: Predator,
    fish_xy: Array,
    fish_angle: Array,
    immune: Array,
    target: Array,
) -> Predator:
    """One physics sub-step of the predator, after the fish's (``fish_xy``, ``fish_angle``).

    Integration ``x += v dt``; a wall touch removes it (survived unless it hit the fish); a
    hit of the fish (unless ``immune``) marks it touched; damping ``v *= q``; removal at the
    target or outside the arena; else the push toward ``target``.
    """
    on, touched, survived = pred.present, pred.touched, pred.survived
    xy = jnp.where(on, pred.xy + pred.velocity * params.phys_dt, pred.xy)
    wall = on & touches_wall(params, xy)
    hit = on & ~immune & hits_fish(params, xy, fish_xy, fish_angle)
    touched = touched | hit
    survived = survived | (wall & ~touched)
    on = on & ~wall
    velocity = pred.velocity * params.substep_damping
    gone = on & (at_target(xy, target) | outside_arena(params, xy))
    survived = survived | (gone & ~touched)
    on = on & ~gone
    velocity = jnp.where(on, velocity + impulse_velocity(params, xy, target), velocity)
    return Predator(xy, velocity, on, touched, survived)


__all__ = [
    "Predator",
    "at_target",
    "attack_angle",
    "epoch_starts",
    "fish_near_wall",
    "hits_fish",
    "impulse_velocity",
    "outside_arena",
    "spawn",
    "spawn_position",
    "spawn_probability",
    "substep",
    "touches_wall",
]
