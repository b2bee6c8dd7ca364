"""Simfish vision, red channels: the sediment on two Bresenham circles, shadowed by the
predator. See the package docstring for the model. Units: px, rad, photons.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from larvax.envs.simfish import arena
from larvax.envs.simfish.config import SimfishParams
from larvax.envs.simfish.vision.geometry import CELLS, Circle, eye_geometry, wrap_angle
from larvax.envs.simfish.vision.world import World

Array = jax.Array


def closest_index(circle: Circle, t: Array) -> Array:
    """Closest circle index (first occurrence on ties) for target angles ``t`` (rad)."""
    ang = jnp.asarray(circle.angles, jnp.float32)
    n = ang.shape[0]
    cell_lo = jnp.asarray(circle.cell_lo)
    m = jnp.clip(jnp.floor((t + jnp.pi) * (CELLS / (2 * np.pi))), 0, CELLS - 1).astype(jnp.int32)
    lo_m, hi_m = cell_lo[m], cell_lo[m + 1]
    i = jnp.where((lo_m < hi_m) & (t > ang[jnp.minimum(lo_m, n - 1)]), hi_m, lo_m)
    lo = jnp.clip(i - 1, 0, n - 1)
    hi = jnp.clip(i, 0, n - 1)
    pick = jnp.where(jnp.abs(t - ang[lo]) <= jnp.abs(ang[hi] - t), lo, hi)
    return jnp.asarray(circle.first)[pick]


def red_channels(
    params: SimfishParams, world: World, centre: Array, eye_off: Array, eye: int
) -> Array:
    """Red readings of eye ``eye`` at both elevations, float32 ``[R, 2]`` (photons).

    world: the fish, the predator and the sediment; centre: int32 ``[2]`` window centre;
    eye_off: float32 ``[2]`` that eye's offset from the body (px).
    """
    fish_angle, predator_radius = world.fish_angle, world.predator_radius
    geo = eye_geometry(params)
    half = geo.red_half
    ex = jnp.floor(eye_off[0] + half).astype(jnp.int32)
    ey = jnp.floor(eye_off[1] + half).astype(jnp.int32)
    # predator edges seen from the fish body position (wrapped to [-pi, pi])
    pv = world.predator_xy - world.fish_xy
    pdist_c = jnp.sqrt(jnp.sum(pv * pv))
    phalf = jnp.arctan2(predator_radius, pdist_c)
    pang = jnp.arctan2(pv[1], pv[0])
    p_left = wrap_angle(pang + phalf)
    p_right = wrap_angle(pang - phalf)
    pdist = pdist_c - predator_radius
    corrected = wrap_angle(jnp.asarray(geo.red_angles[eye], jnp.float32) + fish_angle)
    hrf = params.red_rf_size / 2
    out = []
    for k, circle in enumerate(geo.circles):
        # Only the circle pixels some receptor averages are read: [R, window] of them.
        n = len(circle.angles)
        li = closest_index(circle, corrected - hrf)
        ri = closest_index(circle, corrected + hrf) + 1
        li = jnp.clip(li, 0, n - 1)
        ri = jnp.maximum(li + 1, jnp.minimum(ri, n))
        j = jnp.minimum(li[:, None] + jnp.arange(circle.window)[None, :], n - 1)  # [R, K]
        take = (li[:, None] + jnp.arange(circle.window)[None, :]) < ri[:, None]
        # one gather from the static table: offsets, decay from the window centre, angle
        cls = (ex - half - circle.class_lo) * circle.class_n + (ey - half - circle.class_lo)
        cls = jnp.clip(cls, 0, circle.class_n**2 - 1)
        t = jnp.asarray(circle.table)[cls][j]  # [R, K, 4]
        wy = centre[1] + (ey - half) + t[..., 0].astype(jnp.int32)
        wx = centre[0] + (ex - half) + t[..., 1].astype(jnp.int32)
        inside = (wx >= 0) & (wx < params.arena_width) & (wy >= 0) & (wy < params.arena_height)
        val = arena.luminance_at_rows(params, wy) * t[..., 2]
        sx = jnp.clip(wx, 0, params.arena_width - 1)
        sy = jnp.clip(wy, 0, params.arena_height - 1)
        sed = arena.sediment_at(world.sediment, sx, sy)
        angf = t[..., 3]
        between = jnp.where(
            p_left > p_right,
            (angf < p_left) & (angf > p_right),
            (angf < p_left) | (angf > p_right),
        )
        shadow = world.predator_present & jnp.isfinite(pdist) & (pdist < geo.radii[k]) & between
        val = jnp.where(inside & take & ~shadow, val * sed, 0.0)
        out.append(val.sum(-1) / (ri - li).astype(jnp.float32))
    return jnp.stack(out, axis=-1)


__all__ = ["closest_index", "red_channels"]
