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

The mouth-wall contact follows Chipmunk's solver (:func:`fish_substep`): contacts persist
while the mouth overlaps the wall (no new penalty, the fish slides along the wall), the
overlap is pushed out gradually (penetration bias), and only a *new* contact zeroes the
velocity and is penalised.

A tail in a wall is pushed out the same way (the fish gets angular velocity).

larvax approximations (measured in docs/simfish.md): the head circle does not collide with
the walls, the tail's wall contact is a single vertex per wall, the solver runs one pass
instead of pymunk's 10 iterations, and the wall ends (corners) are treated as infinite
lines.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from larvax.envs.simfish import bouts as bouts_lib
from larvax.envs.simfish.config import SimfishParams

Array = jax.Array

WALL_HALF_WIDTH = 5.0  # px, the radius of the reference's wall segments


class FishBody(NamedTuple):
    """The fish's rigid body through the sub-steps of one env step (the loop's carry).

    xy float32 ``[2]`` px; angle float32 ``[]`` rad; velocity float32 ``[2]`` px/s;
    angular_velocity float32 ``[]`` rad/s; bias float32 ``[3]`` the contact solver's pending
    penetration fix ``(vx, vy px/s, w rad/s)``; contact bool ``[4]`` mouth-wall contacts
    (left, right, top, bottom).
    """

    xy: Array
    angle: Array
    velocity: Array
    angular_velocity: Array
    bias: Array
    contact: Array


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


def wall_separations(params: SimfishParams, xy: Array) -> tuple[Array, Array]:
    """Signed gaps (px) between the mouth circle and the four walls, ``[..., 4]`` (negative =
    overlap), in the order left, right, top, bottom, and the walls' unit normals ``[4, 2]``
    (pointing into the arena)."""
    x0, x1, y0, y1 = wall_limits(params)
    r = params.fish_mouth_radius
    x, y = xy[..., 0], xy[..., 1]
    gaps = jnp.stack([x - r - x0, x1 - (x + r), y - r - y0, y1 - (y + r)], -1)
    normals = jnp.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]], jnp.float32)
    return gaps, normals


def wall_response(params: SimfishParams, xy: Array) -> Array:
    """The reference's ``_touch_wall`` position rule at a new mouth-wall contact: x < 8 -> 10,
    x > W-7 -> W-9, the same for y (the velocity is zeroed by the caller). At the left and
    bottom walls this leaves the mouth clear of the wall; at the right and top walls it stays
    in contact."""
    w, h = float(params.arena_width), float(params.arena_height)
    x, y = xy[..., 0], xy[..., 1]
    x = jnp.where(x < 8.0, 10.0, jnp.where(x > w - 7.0, w - 9.0, x))
    y = jnp.where(y < 8.0, 10.0, jnp.where(y > h - 7.0, h - 9.0, y))
    return jnp.stack([x, y], -1)


def bring_in_bounds(params: SimfishParams, xy: Array) -> Array:
    """The reference's end-of-step safety net: a fish within 4 px of the arena edge is
    clipped into ``[6, W-30] x [6, H-30]``."""
    w, h = float(params.arena_width), float(params.arena_height)
    x, y = xy[..., 0], xy[..., 1]
    out = (x < 4) | (y < 4) | (x > w - 4) | (y > h - 4)
    clipped = jnp.stack([jnp.clip(x, 6.0, w - 30.0), jnp.clip(y, 6.0, h - 30.0)], -1)
    return jnp.where(out[..., None], clipped, xy)


COLLISION_SLOP = 0.1  # px, pymunk Space.collision_slop (allowed overlap)
COLLISION_BIAS = 0.9**60  # pymunk Space.collision_bias (overlap left after 1 s)


def fish_inertia(params: SimfishParams) -> float:
    """Moment of inertia of the fish body (mass x px^2): pymunk ``moment_for_circle(m, 0, r_head)``
    = m r_head^2 / 2 (156.25), about the body origin (the mouth)."""
    return params.fish_mass * params.fish_head_radius**2 / 2.0


def tail_vertices(params: SimfishParams, xy: Array, angle: Array) -> Array:
    """World positions of the tail triangle's vertices ``[3, 2]``: the tip and the two base
    corners (the base lies ``head_offset`` px behind the mouth, half-width ``head_radius``)."""
    c, s = jnp.cos(angle), jnp.sin(angle)
    h = jnp.stack([c, s])
    perp = jnp.stack([-s, c])
    base = params.fish_head_offset
    tip = xy - (base + params.fish_tail_length) * h
    left = xy - base * h + params.fish_head_radius * perp
    right = xy - base * h - params.fish_head_radius * perp
    return jnp.stack([tip, left, right])


def fish_substep(params: SimfishParams, fish: FishBody) -> tuple[FishBody, Array]:
    """One physics sub-step of the fish against the walls, as Chipmunk2D does it.

    1. ``x += (v + v_bias) dt``, ``angle += (w + w_bias) dt`` (the bias velocities are the
       solver's penetration fix, used once).
    2. Mouth-wall collision detection: a *new* overlap (that wall was not in contact at the
       previous sub-step) calls the reference's begin callback: velocity zeroed,
       :func:`wall_response`, wall penalty for the step.
    3. Damping ``v *= q``, ``w *= q``.
    4. Solver, inelastic and frictionless. Mouth: the velocity into an overlapped wall is
       removed (the fish slides along it); the bias pushes ``1 - 0.9^(60 dt)`` (1.26 %) of the
       overlap beyond the 0.1 px slop out per sub-step. Tail (triangle vs the 10 px thick
       wall): the contact normal is the shorter way out of the wall (back into the arena,
       or -- for a tail that went through the wall -- out beyond it, as the reference's
       GJK/EPA does), at the deepest vertex that way; the tail's velocity into the contact
       is removed and its overlap pushed out as an impulse at that point, which mostly
       turns the fish (its moment of inertia about the mouth is tiny next to m L^2).

    The bias velocities and the mouth contacts carry over to the next sub-step (and step).
    Returns ``(fish after the sub-step, new_touch)``.
    """
    xy, angle, velocity, angular_velocity = (
        fish.xy,
        fish.angle,
        fish.velocity,
        fish.angular_velocity,
    )
    bias, contact = fish.bias, fish.contact
    dt = params.phys_dt
    q = params.substep_damping
    xy = xy + (velocity + bias[:2]) * dt
    angle = angle + (angular_velocity + bias[2]) * dt
    gaps, normals = wall_separations(params, xy)
    overlap = gaps < 0
    new_touch = jnp.any(overlap & ~contact)
    velocity = jnp.where(new_touch, 0.0, velocity)
    xy = jnp.where(new_touch, wall_response(params, xy), xy)
    velocity = velocity * q
    w = angular_velocity * q
    bias_coef = 1.0 - COLLISION_BIAS**dt
    # mouth (at the centre of gravity: no torque). The normals are (+-1, 0), (0, +-1): the
    # products with them are written out (no tiny matmuls in the sub-step loop)
    vn = jnp.stack([velocity[0], -velocity[0], velocity[1], -velocity[1]])
    push = jnp.where(overlap, jnp.minimum(vn, 0.0), 0.0)
    velocity = velocity - jnp.stack([push[0] - push[1], push[2] - push[3]])
    pen = jnp.where(overlap, jnp.maximum(-gaps - COLLISION_SLOP, 0.0), 0.0)
    bp = bias_coef * pen / dt
    b_lin = jnp.stack([bp[0] - bp[1], bp[2] - bp[3]])
    b_ang = jnp.zeros((), jnp.float32)
    # tail
    verts = tail_vertices(params, xy, angle)  # [3, 2]
    x0, x1, y0, y1 = wall_limits(params)
    u = jnp.stack([verts[:, 0] - x0, x1 - verts[:, 0], verts[:, 1] - y0, y1 - verts[:, 1]], -1)
    u_min, u_max = jnp.min(u, 0), jnp.max(u, 0)  # [4] along each inward normal
    thick = 2 * WALL_HALF_WIDTH
    t_overlap = (u_min < 0) & (u_max > -thick)
    out_in = -u_min <= u_max + thick  # push back into the arena (else through the wall)
    t_pen = jnp.where(out_in, -u_min, u_max + thick)
    vert = jnp.where(out_in, jnp.argmin(u, 0), jnp.argmax(u, 0))
    inertia = fish_inertia(params)
    m = params.fish_mass
    for i in range(4):  # sequential impulses, one contact per wall
        n = normals[i] * jnp.where(out_in[i], 1.0, -1.0)
        r = jnp.where(vert[i] == 0, verts[0], jnp.where(vert[i] == 1, verts[1], verts[2])) - xy
        rn = r[0] * n[1] - r[1] * n[0]
        k = 1.0 / m + rn**2 / inertia
        v_tip = (velocity[0] * n[0] + velocity[1] * n[1]) + w * rn
        j = jnp.where(t_overlap[i], jnp.maximum(-v_tip, 0.0) / k, 0.0)
        velocity = velocity + j * n / m
        w = w + rn * j / inertia
        jb = jnp.where(
            t_overlap[i], bias_coef * jnp.maximum(t_pen[i] - COLLISION_SLOP, 0.0) / dt / k, 0.0
        )
        b_lin = b_lin + jb * n / m
        b_ang = b_ang + rn * jb / inertia
    bias = jnp.concatenate([b_lin, b_ang[None]])
    return FishBody(xy, angle, velocity, w, bias, overlap), new_touch


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
    "FishBody",
    "bout_velocity",
    "bring_in_bounds",
    "energy_use",
    "fish_inertia",
    "fish_substep",
    "tail_vertices",
    "glide",
    "wall_separations",
    "start_bout",
    "substep_trajectory",
    "update_energy",
    "wall_limits",
    "wall_response",
]
