"""Simfish vision: two one-dimensional retinas (UV + two red channels), in pure JAX.

Faithful to the reference (Simfish 2.0 ``Eye.read`` + ``geometry.cpp``), golden data
``simfish/observations.npz``; the README of the golden data (section 4) lists the facts
reproduced here. Units: px, rad, photons.

Per eye (index 0 = left, 1 = right; eye at ``+-eyes_biasx`` px beside the body origin):

* **Photoreceptor grids** (static, :func:`eye_geometry`): 42 UV receptors with sigmoid
  spacing (0.04 rad in the nasal strike zone, 0.1 rad in the periphery), 42 red receptors
  evenly spaced over the 163 deg field, and the 139-point observation grid
  ``arange(min(uv), max(uv) + 0.02, 0.02)``. Angles alpha are relative to the heading.
* **Windows**: the UV (1383^2) and red (391^2) images are centred on
  ``round(fish_xy)`` (half to even), zero outside the arena, and multiplied by
  ``exp(-0.01 r)`` with ``r`` the distance (px) from the window *centre pixel*. The eye
  sits at ``round(fish_xy) + eye_offset`` (the reference drops the fractional part).
* **UV background**: ``water_uv_scatter`` x the sum of the UV image along the receptor's
  ray to the window border. The reference samples the ray every ~0.5 px and adds each
  *distinct* pixel once; larvax uses the closed form

  ``S = rho(u) * exp(-a e.u) * int_0^L g(s) exp(-a s) ds + (f(0) + f(L)) / 2``

  with ``u`` the ray direction, ``e`` the eye offset from the window centre, ``g`` the
  piecewise-linear light gain (0 outside the arena), ``a`` the decay rate and
  ``rho = |ux| + |uy| - h |ux| |uy|`` the expected number of distinct pixels per px of
  ray for sample step ``h`` (a column change has probability ``h|ux|`` per sample, a row
  change ``h|uy|``, both ``h^2|ux||uy|`` for an equidistributed phase); the end terms are
  the Euler-Maclaurin correction. O(1) per receptor instead of ~1400 pixel reads.
  Measured on the golden scenes: see ``tests/test_simfish_vision.py``.
* **UV prey**: each prey within ``ln(1000)/a - 1`` px covers bearings
  ``theta +- atan(radius / rho)`` (seen from the eye shifted by +0.2245 px in x and y, as
  the reference's window coordinates do), painted on 0.001-rad bins from -pi (edges =
  closest bin) with brightness = the UV window value at ``[floor(p'y) - 1, floor(p'x) - 1]``;
  each receptor sums the bins between the closest bins of ``alpha +- rf/2``. Done as an
  exact overlap count of integer bin intervals: O(receptors x prey), fully vectorised.
  Times ``uv_object_intensity``.
* **Red channels** (elevations 50 and 75 deg): the red image (sediment x light gain x
  decay) on the Bresenham circle of radius ``round(50 tan(elev))`` px (60, 187) around the
  integer eye pixel; circle pixels sorted by angle; a receptor averages the pixels from the
  closest-angle index of ``wrap(theta + alpha) - rf/2`` to that of ``+ rf/2``. A predator
  nearer than the circle (centre distance - radius < circle radius) zeroes the circle
  pixels strictly between its edge angles (seen from the fish body position). The circle
  offsets are static, so this is one gather per circle pixel.
* **Shot noise** (``noise=True``): Poisson per receptor reading, before interpolation.
* **Interpolation**: ``np.interp`` (edge-clamped) from receptor angles to the 139-point
  grid as a static matrix, then ``floor`` and clip to [0, 255].

Observation ``visual``: float32 ``[139, 3, 2]`` = [grid position, channel (UV, red 50,
red 75), eye (left, right)], integer photon counts.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from larvax.envs.simfish import arena
from larvax.envs.simfish.config import SimfishParams

Array = jax.Array

PREY_BIN_RAD = 0.001  # angular bin of the reference's prey projection (rad)


# ----------------------------------------------------------------------------- geometry


class EyeGeometry(NamedTuple):
    """Static (NumPy) geometry of both eyes, derived from the parameters.

    uv_angles, red_angles: float64 ``[2, R]`` receptor angles (rad, from the heading).
    interp_angles: float64 ``[2, G]`` observation grid.
    interp_uv, interp_red: float32 ``[2, G, R]`` np.interp as matrices.
    uv_bins: int32 ``[2, R, 2]`` first / last 0.001-rad prey bin of each UV receptor.
    circles: per elevation, (offsets int32 ``[n, 2]`` (drow, dcol) sorted by angle,
        angles float64 ``[n]``, first int32 ``[n]`` = first index holding the same angle).
    radii: int circle radius per elevation (px).
    uv_half: UV window half-width (px, 691); uv_range: ln(1000)/decay (690.78 px).
    red_half: red window half-width (px, 195).
    """

    uv_angles: np.ndarray
    red_angles: np.ndarray
    interp_angles: np.ndarray
    interp_uv: np.ndarray
    interp_red: np.ndarray
    uv_bins: np.ndarray
    circles: tuple
    radii: tuple
    uv_half: int
    uv_range: float
    red_half: int


def _uv_angles(params: SimfishParams, left: bool) -> np.ndarray:
    """Sigmoid-spaced receptor angles: spacing grows from sz_rf_spacing to the periphery's."""
    field = math.radians(params.eyes_visual_field_deg)
    verg = math.radians(params.eyes_verg_angle_deg)
    s0 = params.sz_rf_spacing
    extra = s0 * params.sz_oversampling_factor - s0
    pos = [0.0]
    while True:
        nxt = (
            pos[-1]
            + s0
            + extra / (1.0 + np.exp(-params.sz_edge_steepness * (pos[-1] - params.sz_size)))
        )
        if nxt > field:
            break
        pos.append(nxt)
    pos = np.array(pos)
    if left:
        out = (-np.pi / 2 + field / 2 + verg / 2) - pos
    else:
        out = pos + (np.pi / 2 - field / 2 - verg / 2)
    return np.sort(out)


def _red_angles(params: SimfishParams, left: bool, n: int) -> np.ndarray:
    field = math.radians(params.eyes_visual_field_deg)
    verg = math.radians(params.eyes_verg_angle_deg)
    if left:
        lo, hi = -np.pi / 2 - field / 2 + verg / 2, -np.pi / 2 + field / 2 + verg / 2
    else:
        lo, hi = np.pi / 2 - field / 2 - verg / 2, np.pi / 2 + field / 2 - verg / 2
    return np.linspace(lo, hi, n)


def _interp_matrix(x_new: np.ndarray, xp: np.ndarray) -> np.ndarray:
    """M such that ``M @ fp == np.interp(x_new, xp, fp)`` for every fp."""
    return np.stack([np.interp(x_new, xp, col) for col in np.eye(len(xp))], axis=1)


def _closest(array: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Index of the closest entry (first on ties), as the reference's closest_index."""
    return np.argmin(np.abs(array[None, :] - np.asarray(targets)[:, None]), axis=1)


def _bresenham_circle(radius: int):
    """The reference's 8-way Bresenham circle (duplicates kept) sorted by angle.

    Returns offsets (drow, dcol) int32 ``[n, 2]``, angles atan2(drow, dcol) ``[n]`` sorted
    ascending, and for each index the first index with the same angle.
    """
    pts = []

    def octants(x, y):
        for a, b in ((x, y), (-x, y), (x, -y), (-x, -y), (y, x), (-y, x), (y, -x), (-y, -x)):
            pts.append((a, b))

    x, y, d = 0, radius, 3 - 2 * radius
    octants(x, y)
    while y >= x:
        x += 1
        if d > 0:
            y -= 1
            d = d + 4 * (x - y) + 10
        else:
            d = d + 4 * x + 6
        octants(x, y)
    off = np.array(pts, np.int64)
    ang = np.arctan2(off[:, 0].astype(np.float64), off[:, 1].astype(np.float64))
    order = np.argsort(ang, kind="stable")
    off, ang = off[order], ang[order]
    first = np.searchsorted(ang, ang, side="left")
    return off.astype(np.int32), ang, first.astype(np.int32)


@functools.lru_cache(maxsize=16)
def eye_geometry(params: SimfishParams) -> EyeGeometry:
    """All static eye geometry for ``params`` (cached; NumPy float64 / int32)."""
    uv = np.stack([_uv_angles(params, True), _uv_angles(params, False)])
    if uv.shape[1] != params.num_uv_receptors:
        raise ValueError(
            f"SimfishParams.num_uv_receptors={params.num_uv_receptors!r} is invalid; allowed: "
            f"{uv.shape[1]} (the count the strike-zone parameters produce)"
        )
    red = np.stack([_red_angles(params, e == 0, params.num_red_receptors) for e in range(2)])
    step = params.sz_rf_spacing / 2
    grids = [np.arange(uv[e].min(), uv[e].max() + step, step) for e in range(2)]
    if any(len(g) != params.obs_grid_size for g in grids):
        raise ValueError(
            f"SimfishParams.obs_grid_size={params.obs_grid_size!r} is invalid; allowed: "
            f"{[len(g) for g in grids]} (arange(min(uv), max(uv) + spacing/2, spacing/2))"
        )
    grid = np.stack(grids)
    interp_uv = np.stack([_interp_matrix(grid[e], uv[e]) for e in range(2)]).astype(np.float32)
    interp_red = np.stack([_interp_matrix(grid[e], red[e]) for e in range(2)]).astype(np.float32)

    n_bins = int((2 * np.pi + PREY_BIN_RAD) / PREY_BIN_RAD)
    bins = -np.pi + np.arange(n_bins) * PREY_BIN_RAD
    half_rf = params.uv_rf_size / 2
    uv_bins = np.stack(
        [
            np.stack([_closest(bins, uv[e] - half_rf), _closest(bins, uv[e] + half_rf)], -1)
            for e in range(2)
        ]
    ).astype(np.int32)

    radii = tuple(
        int(np.round(params.fish_elevation_px * np.tan(np.radians(el))))
        for el in params.viewing_elevations_deg
    )
    circles = tuple(_bresenham_circle(r) for r in radii)
    uv_range = abs(math.log(0.001) / params.light_decay_rate)
    red_half = (
        int(
            np.round(
                params.fish_elevation_px * np.tan(np.radians(max(params.viewing_elevations_deg)))
            )
        )
        + 8
    )
    return EyeGeometry(
        uv_angles=uv,
        red_angles=red,
        interp_angles=grid,
        interp_uv=interp_uv,
        interp_red=interp_red,
        uv_bins=uv_bins,
        circles=circles,
        radii=radii,
        uv_half=int(np.round(uv_range)),
        uv_range=uv_range,
        red_half=red_half,
    )


# ----------------------------------------------------------------------------- helpers


def _wrap(a: Array) -> Array:
    return jnp.arctan2(jnp.sin(a), jnp.cos(a))


def eye_offsets(params: SimfishParams, fish_angle: Array) -> Array:
    """Eye positions minus the body position, float32 ``[2 (left, right), 2 (x, y)]`` px."""
    s, c = jnp.sin(fish_angle), jnp.cos(fish_angle)
    b = params.eyes_biasx
    left = jnp.stack([b * s, -b * c])
    return jnp.stack([left, -left]).astype(jnp.float32)


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


def uv_prey(
    params: SimfishParams,
    centre: Array,
    fish_xy: Array,
    fish_angle: Array,
    eye_off: Array,
    eye: int,
    prey_xy: Array,
    prey_alive: Array,
) -> Array:
    """UV prey projection per receptor of eye ``eye`` (photons, times uv_object_intensity).

    prey_xy: float32 ``[P, 2]`` px; prey_alive: bool ``[P]``. Returns ``[R]``.
    """
    geo = eye_geometry(params)
    half, rng = geo.uv_half, geo.uv_range
    n_bins = int((2 * np.pi + PREY_BIN_RAD) / PREY_BIN_RAD)
    rel_fish = prey_xy - fish_xy[None, :]  # prey - fish (px)
    wpos = rel_fish + rng  # the reference's window coordinates p'
    # p' - (eye_off + half) = prey - fish - eye_off - (half - rng)
    rel = rel_fish - (eye_off[None, :] + (half - rng))
    rho = jnp.sqrt(jnp.sum(rel * rel, axis=-1))
    valid = prey_alive & (rho < rng - 1.0) & jnp.all(jnp.isfinite(prey_xy), axis=-1)
    theta = _wrap(jnp.arctan2(rel[:, 1], rel[:, 0]) - fish_angle)
    half_ang = jnp.arctan(params.prey_radius / jnp.maximum(rho, 1e-6))

    def closest_bin(t):
        # bins at -pi + i * 0.001; nearest, ties to the lower index
        i = jnp.ceil((t + jnp.pi) / PREY_BIN_RAD - 0.5)
        return jnp.clip(i, 0, n_bins - 1).astype(jnp.int32)

    lb = closest_bin(theta - half_ang)
    rb = closest_bin(theta + half_ang)
    jx = jnp.clip(jnp.floor(wpos[:, 0]).astype(jnp.int32) - 1, 0, 2 * half)
    jy = jnp.clip(jnp.floor(wpos[:, 1]).astype(jnp.int32) - 1, 0, 2 * half)
    bright, _, _ = _window_value(params, centre, jx, jy, half)
    bright = jnp.where(valid, bright, 0.0)
    rb_ = jnp.asarray(geo.uv_bins[eye])  # [R, 2]
    lo = jnp.maximum(lb[None, :], rb_[:, :1])
    hi = jnp.minimum(rb[None, :], rb_[:, 1:])
    count = jnp.maximum(hi - lo + 1, 0).astype(jnp.float32)  # [R, P]
    return params.uv_object_intensity * (count @ bright)


def _closest_sorted(angles: np.ndarray, first: np.ndarray, t: Array) -> Array:
    """Closest index into sorted ``angles`` (first occurrence on ties), for targets t."""
    n = len(angles)
    ang = jnp.asarray(angles, jnp.float32)
    i = jnp.searchsorted(ang, t, side="left")
    lo = jnp.clip(i - 1, 0, n - 1)
    hi = jnp.clip(i, 0, n - 1)
    dlo = jnp.abs(t - ang[lo])
    dhi = jnp.abs(ang[hi] - t)
    pick = jnp.where(dlo <= dhi, lo, hi)
    return jnp.asarray(first)[pick]


def red_channels(
    params: SimfishParams,
    centre: Array,
    fish_xy: Array,
    fish_angle: Array,
    eye_off: Array,
    eye: int,
    predator_present: Array,
    predator_xy: Array,
    predator_radius: Array,
    sediment: arena.Sediment,
) -> Array:
    """Red readings of eye ``eye`` at both elevations, float32 ``[R, 2]`` (photons)."""
    geo = eye_geometry(params)
    half = geo.red_half
    a = params.light_decay_rate
    ex = jnp.floor(eye_off[0] + half).astype(jnp.int32)
    ey = jnp.floor(eye_off[1] + half).astype(jnp.int32)
    # predator edges seen from the fish body position (wrapped to [-pi, pi])
    pv = predator_xy - fish_xy
    pdist_c = jnp.sqrt(jnp.sum(pv * pv))
    phalf = jnp.arctan2(predator_radius, pdist_c)
    pang = jnp.arctan2(pv[1], pv[0])
    p_left = _wrap(pang + phalf)
    p_right = _wrap(pang - phalf)
    pdist = pdist_c - predator_radius
    corrected = _wrap(jnp.asarray(geo.red_angles[eye], jnp.float32) + fish_angle)
    hrf = params.red_rf_size / 2
    out = []
    for k, (off, ang, first) in enumerate(geo.circles):
        jy = ey + jnp.asarray(off[:, 0])
        jx = ex + jnp.asarray(off[:, 1])
        val, wx, wy = _window_value(params, centre, jx, jy, half)
        inside = (wx >= 0) & (wx < params.arena_width) & (wy >= 0) & (wy < params.arena_height)
        sx = jnp.clip(wx, 0, params.arena_width - 1)
        sy = jnp.clip(wy, 0, params.arena_height - 1)
        sed = arena.sediment_at(sediment, sx, sy)
        val = jnp.where(inside, val * sed, 0.0)
        angf = jnp.asarray(ang, jnp.float32)
        between = jnp.where(
            p_left > p_right,
            (angf < p_left) & (angf > p_right),
            (angf < p_left) | (angf > p_right),
        )
        shadow = predator_present & jnp.isfinite(pdist) & (pdist < geo.radii[k]) & between
        val = jnp.where(shadow, 0.0, val)
        cs = jnp.concatenate([jnp.zeros((1,), jnp.float32), jnp.cumsum(val)])
        n = len(ang)
        li = _closest_sorted(ang, first, corrected - hrf)
        ri = _closest_sorted(ang, first, corrected + hrf) + 1
        li = jnp.clip(li, 0, n - 1)
        ri = jnp.maximum(li + 1, jnp.minimum(ri, n))
        out.append((cs[ri] - cs[li]) / (ri - li).astype(jnp.float32))
    return jnp.stack(out, axis=-1)


# ----------------------------------------------------------------------------- observe


def photoreceptor_readings(
    params: SimfishParams,
    fish_xy: Array,
    fish_angle: Array,
    prey_xy: Array,
    prey_alive: Array,
    predator_present: Array,
    predator_xy: Array,
    predator_radius: Array,
    sediment: arena.Sediment,
) -> dict:
    """Noise-free receptor readings and the interpolated (pre-floor) observation.

    Returns a dict (float32) with ``uv_background`` ``[R, 2]``, ``uv_prey`` ``[R, 2]``,
    ``red`` ``[R, 2 (elevation), 2 (eye)]``, ``eye_offset`` ``[2 (eye), 2 (x, y)]`` and
    ``raw_interp`` ``[G, 3, 2]``, the layouts of the golden ``observations.npz``.
    """
    fish_xy = jnp.asarray(fish_xy, jnp.float32)
    fish_angle = jnp.asarray(fish_angle, jnp.float32)
    prey_xy = jnp.asarray(prey_xy, jnp.float32)
    prey_alive = jnp.asarray(prey_alive, bool)
    predator_xy = jnp.asarray(predator_xy, jnp.float32)
    predator_radius = jnp.asarray(predator_radius, jnp.float32)
    predator_present = jnp.asarray(predator_present, bool)
    geo = eye_geometry(params)
    centre = jnp.round(fish_xy).astype(jnp.int32)
    offs = eye_offsets(params, fish_angle)
    bg, prey, red = [], [], []
    for e in range(2):
        world = _wrap(jnp.asarray(geo.uv_angles[e], jnp.float32) + fish_angle)
        bg.append(uv_background(params, centre, offs[e], world))
        prey.append(uv_prey(params, centre, fish_xy, fish_angle, offs[e], e, prey_xy, prey_alive))
        red.append(
            red_channels(
                params,
                centre,
                fish_xy,
                fish_angle,
                offs[e],
                e,
                predator_present,
                predator_xy,
                predator_radius,
                sediment,
            )
        )
    bg = jnp.stack(bg, -1)
    prey = jnp.stack(prey, -1)
    red = jnp.stack(red, -1)
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
    params: SimfishParams,
    fish_xy: Array,
    fish_angle: Array,
    prey_xy: Array,
    prey_alive: Array,
    predator_present: Array,
    predator_xy: Array,
    predator_radius: Array,
    sediment: arena.Sediment,
    key: Array | None = None,
    noise: bool | None = None,
) -> Array:
    """The visual observation of one fish, float32 ``[G=139, 3, 2]`` (integer photons).

    fish_xy ``[2]`` px, fish_angle rad (unwrapped is fine), prey_xy ``[P, 2]`` px,
    prey_alive ``[P]`` bool, predator_present bool, predator_xy ``[2]`` px,
    predator_radius px, sediment :class:`larvax.envs.simfish.arena.Sediment`.
    ``noise`` (static; default ``params.eyes_shot_noise``) draws Poisson shot noise per
    receptor reading with ``key``. Pure and jit/vmap-able (``params`` static).
    """
    if noise is None:
        noise = params.eyes_shot_noise
    geo = eye_geometry(params)
    fish_xy = jnp.asarray(fish_xy, jnp.float32)
    fish_angle = jnp.asarray(fish_angle, jnp.float32)
    centre = jnp.round(fish_xy).astype(jnp.int32)
    offs = eye_offsets(params, fish_angle)
    prey_xy = jnp.asarray(prey_xy, jnp.float32)
    prey_alive = jnp.asarray(prey_alive, bool)
    uv, red = [], []
    for e in range(2):
        world = _wrap(jnp.asarray(geo.uv_angles[e], jnp.float32) + fish_angle)
        uv.append(
            uv_background(params, centre, offs[e], world)
            + uv_prey(params, centre, fish_xy, fish_angle, offs[e], e, prey_xy, prey_alive)
        )
        red.append(
            red_channels(
                params,
                centre,
                fish_xy,
                fish_angle,
                offs[e],
                e,
                jnp.asarray(predator_present, bool),
                jnp.asarray(predator_xy, jnp.float32),
                jnp.asarray(predator_radius, jnp.float32),
                sediment,
            )
        )
    uv = jnp.stack(uv, -1)
    red = jnp.stack(red, -1)
    if noise:
        if key is None:
            raise ValueError("observe(noise=True) needs a PRNG key; got key=None")
        ku, kr = jax.random.split(key)
        uv = jax.random.poisson(ku, uv).astype(jnp.float32)
        red = jax.random.poisson(kr, red).astype(jnp.float32)
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


__all__ = [
    "EyeGeometry",
    "eye_geometry",
    "eye_offsets",
    "interpolate",
    "observe",
    "photoreceptor_readings",
    "red_channels",
    "reflect_observation",
    "uv_background",
    "uv_prey",
]
