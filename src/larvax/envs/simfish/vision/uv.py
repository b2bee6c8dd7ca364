"""Simfish vision, UV channel: the background scatter (closed form) and the prey projection.

See the package docstring for the model and its measured accuracy. Units: px, rad, photons.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from larvax.envs.simfish import arena
from larvax.envs.simfish.config import SimfishParams
from larvax.envs.simfish.vision.geometry import PREY_BIN_RAD, eye_geometry, wrap_angle
from larvax.envs.simfish.vision.world import World

Array = jax.Array


def _window_value(params, centre, jx, jy, half):
    """Light gain x inside x exp(-a r) of window pixels (jx, jy) (window px, int)."""
    wx = centre[0] + jx - half
    wy = centre[1] + jy - half
    inside = (wx >= 0) & (wx < params.arena_width)
    lum = arena.luminance_at_rows(params, wy)
    r = jnp.sqrt(((jx - half) ** 2 + (jy - half) ** 2).astype(jnp.float32))
    return jnp.where(inside, lum, 0.0) * jnp.exp(-params.light_decay_rate * r), wx, wy


def _linear_exp_integral(a, p, q, gp, gq):
    """int_p^q of the linear interpolant of (p, gp)-(q, gq) times exp(-a s) ds (q >= p)."""
    d = q - p
    ep, eq = jnp.exp(-a * p), jnp.exp(-a * q)
    const = gp * (ep - eq) / a
    safe_d = jnp.where(d > 1e-2, d, 1.0)
    slope_term = (gq - gp) / safe_d * (ep - eq * (1.0 + a * d)) / (a * a)
    small = 0.5 * (gp + gq) * ep * d
    return jnp.where(d > 1e-2, const + slope_term, small)


def uv_background(params: SimfishParams, centre: Array, eye_off: Array, world_angles: Array):
    """Closed-form UV background ``water_uv_scatter * ray_sum`` per receptor (photons).

    centre: int32 ``[2]`` window centre = round(fish_xy) (px); eye_off: float32 ``[2]`` eye
    offset (px); world_angles: float32 ``[R]`` ray directions (rad). Returns ``[R]``.
    """
    geo = eye_geometry(params)
    half = geo.uv_half
    a = params.light_decay_rate
    ux, uy = jnp.cos(world_angles), jnp.sin(world_angles)
    big = 1e9

    def _safe(v):
        return jnp.where(jnp.abs(v) < 1e-12, 1e-12, v)

    sux, suy = _safe(ux), _safe(uy)
    p0x, p0y = eye_off[0] + half, eye_off[1] + half
    lx = jnp.where(ux > 0, (2 * half - p0x) / sux, jnp.where(ux < 0, -p0x / sux, big))
    ly = jnp.where(uy > 0, (2 * half - p0y) / suy, jnp.where(uy < 0, -p0y / suy, big))
    length = jnp.maximum(jnp.minimum(lx, ly), 0.0)
    x0 = centre[0].astype(jnp.float32) + eye_off[0]
    y0 = centre[1].astype(jnp.float32) + eye_off[1]

    def interval(c0, u, su, hi):
        t1 = (-0.5 - c0) / su
        t2 = (hi - 0.5 - c0) / su
        lo_s, hi_s = jnp.minimum(t1, t2), jnp.maximum(t1, t2)
        inside0 = (c0 >= -0.5) & (c0 < hi - 0.5)
        lo_s = jnp.where(jnp.abs(u) < 1e-12, jnp.where(inside0, -big, big), lo_s)
        hi_s = jnp.where(jnp.abs(u) < 1e-12, jnp.where(inside0, big, -big), hi_s)
        return lo_s, hi_s

    ax0, ax1 = interval(x0, ux, sux, params.arena_width)
    ay0, ay1 = interval(y0, uy, suy, params.arena_height)
    sa = jnp.maximum(jnp.maximum(ax0, ay0), 0.0)
    sb = jnp.minimum(jnp.minimum(ax1, ay1), length)
    sb = jnp.maximum(sb, sa)

    r0, g = arena._ramp_rows(params)
    y_lo, y_hi = (float(r0), float(r0 + g - 1)) if g > 1 else (r0 - 1.0, float(r0))
    b1 = jnp.clip((y_lo - y0) / suy, sa, sb)
    b2 = jnp.clip((y_hi - y0) / suy, sa, sb)
    t1, t2 = jnp.minimum(b1, b2), jnp.maximum(b1, b2)

    def gain(s):
        return arena.luminance_continuous(params, y0 + s * uy)

    total = 0.0
    for p, q in ((sa, t1), (t1, t2), (t2, sb)):
        total = total + _linear_exp_integral(a, p, q, gain(p), gain(q))

    n_steps = jnp.floor(length / 0.5)
    h = jnp.where(n_steps > 0, length / jnp.maximum(n_steps, 1.0), 0.5)
    aux, auy = jnp.abs(ux), jnp.abs(uy)
    rho = aux + auy - h * aux * auy
    integral = rho * jnp.exp(-a * (eye_off[0] * ux + eye_off[1] * uy)) * total

    def end_value(s):
        xs, ys = x0 + s * ux, y0 + s * uy
        inside = (xs >= -0.5) & (xs < params.arena_width - 0.5)
        inside &= (ys >= -0.5) & (ys < params.arena_height - 0.5)
        r = jnp.sqrt((eye_off[0] + s * ux) ** 2 + (eye_off[1] + s * uy) ** 2)
        return jnp.where(inside, gain(s), 0.0) * jnp.exp(-a * r)

    ends = 0.5 * (end_value(jnp.zeros_like(length)) + end_value(length))
    return params.water_uv_scatter * (integral + ends)


def uv_prey(params: SimfishParams, world: World, centre: Array, eye_offs: Array) -> Array:
    """UV prey projection per receptor, both eyes (photons, times uv_object_intensity).

    world: the fish and its prey (``prey_xy [P, 2]`` px, ``prey_alive [P]``); centre: int32
    ``[2]`` window centre; eye_offs: ``[2 (eye), 2]`` px. Returns ``[R, 2 (eye)]``.
    """
    fish_xy, fish_angle, prey_xy = world.fish_xy, world.fish_angle, world.prey_xy
    geo = eye_geometry(params)
    half, rng = geo.uv_half, geo.uv_range
    n_bins = int((2 * np.pi + PREY_BIN_RAD) / PREY_BIN_RAD)
    rel_fish = prey_xy - fish_xy[None, :]  # prey - fish (px)
    wpos = rel_fish + rng  # the reference's window coordinates p'
    # brightness: UV window value at [floor(p'y) - 1, floor(p'x) - 1] (same for both eyes)
    jx = jnp.clip(jnp.floor(wpos[:, 0]).astype(jnp.int32) - 1, 0, 2 * half)
    jy = jnp.clip(jnp.floor(wpos[:, 1]).astype(jnp.int32) - 1, 0, 2 * half)
    bright, _, _ = _window_value(params, centre, jx, jy, half)
    ok = world.prey_alive & jnp.all(jnp.isfinite(prey_xy), axis=-1)
    out = []
    for e in range(2):
        # p' - (eye_off + half) = prey - fish - eye_off - (half - rng)
        rel = rel_fish - (eye_offs[e][None, :] + (half - rng))
        rho = jnp.sqrt(jnp.sum(rel * rel, axis=-1))
        valid = ok & (rho < rng - 1.0)
        theta = wrap_angle(jnp.arctan2(rel[:, 1], rel[:, 0]) - fish_angle)
        half_ang = jnp.arctan(params.prey_radius / jnp.maximum(rho, 1e-6))
        # nearest of the bins -pi + i * 0.001 (ties to the lower index), clamped
        lb = jnp.clip(jnp.ceil((theta - half_ang + jnp.pi) / PREY_BIN_RAD - 0.5), 0, n_bins - 1)
        rb = jnp.clip(jnp.ceil((theta + half_ang + jnp.pi) / PREY_BIN_RAD - 0.5), 0, n_bins - 1)
        b = jnp.where(valid, bright, 0.0)
        # invalid prey (dead, out of range, NaN): an empty bin interval, so no NaN leaks in
        lb = jnp.where(valid, lb, float(n_bins + 10))
        rb = jnp.where(valid, rb, -10.0)
        # Pass the per-prey bins through a (2 x 2 identity) matmul: it materialises them;
        # otherwise XLA fuses their computation into the [P, R] loop below and recomputes
        # it for every receptor. Exact: integers < 2^24 times 1 and 0.
        lbrb = jnp.dot(jnp.stack([lb, rb], -1), jnp.eye(2, dtype=jnp.float32))
        lb, rb = lbrb[:, 0], lbrb[:, 1]
        # bins shared by [lb, rb] and the receptor's [s, e]: integers, exact in float32
        rbins = jnp.asarray(geo.uv_bins[e], jnp.float32)  # [R, 2]
        lo = jnp.maximum(lb[:, None], rbins[None, :, 0])
        hi = jnp.minimum(rb[:, None], rbins[None, :, 1])
        count = jnp.maximum(hi - lo + 1.0, 0.0)  # [P, R]
        out.append(jnp.einsum("p,pr->r", b, count))
    return params.uv_object_intensity * jnp.stack(out, axis=-1)


__all__ = ["uv_background", "uv_prey"]
