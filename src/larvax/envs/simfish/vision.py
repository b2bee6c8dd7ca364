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
  Measured effect on the 101 golden scenes (8484 receptor readings of ~1-12 photons):
  mean abs error 0.11 photons, 99th percentile 0.96, max 2.94, mean -0.002 (unbiased).
  The largest errors are rays within ~1 % of a diagonal (or another low-order slope such
  as 3/4), where the reference's distinct-pixel count depends on the ray's phase. After
  interpolation and floor: UV mean abs error 0.079 photons, max 3; 97.4 % of all
  observation values identical to the reference.
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
  geometry is static (a lookup table per eye-pixel offset gives each circle pixel's offset,
  decay and angle), and only the <= ``window`` pixels each receptor averages are read from
  the sediment: 42 x (4 + 6) texture reads per eye instead of 1408. Max error 3e-6.
* **Shot noise** (``noise=True``): Poisson per receptor reading, before interpolation
  (:func:`poisson`: loop-free, see its docstring for why not ``jax.random.poisson``).
* **Interpolation**: ``np.interp`` (edge-clamped) from receptor angles to the 139-point
  grid as a static matrix, then ``floor`` and clip to [0, 255].

Observation ``visual``: float32 ``[139, 3, 2]`` = [grid position, channel (UV, red 50,
red 75), eye (left, right)], integer photon counts.

Float32 throughout (the reference is float64): prey projection max error 2e-6 photons on
the golden scenes. Cost per observation (both eyes) is dominated by the red channels'
texture reads, the prey projection (2 x 42 x P overlap counts) and the 252 Poisson draws;
``benchmarks/simfish_vision.py`` measures each part.
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
    circles: per elevation, a :class:`Circle` (static circle tables).
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


class Circle(NamedTuple):
    """Static tables of one red-channel circle (see :func:`_bresenham_circle`).

    offsets: int32 ``[n, 2]`` (drow, dcol) sorted by angle; angles: float64 ``[n]``;
    first: int32 ``[n]`` first index holding the same angle; cell_lo: int32 ``[M + 1]``
    ``searchsorted(angles, -pi + m * 2 pi / M)`` (every cell holds at most one distinct
    angle, so a lookup plus one comparison gives searchsorted); window: int, the most
    circle pixels a receptor can average; table: float32 ``[C, n, 4]`` per eye-pixel class
    (the eye's integer pixel minus the window centre, ``(dx, dy)`` in
    ``[class_lo, class_lo + class_n)^2``, ``c = (dx - lo) * class_n + (dy - lo)``):
    (drow, dcol, exp(-decay * distance from the window centre), angle) of each pixel.
    """

    offsets: np.ndarray
    angles: np.ndarray
    first: np.ndarray
    cell_lo: np.ndarray
    window: int
    table: np.ndarray
    class_lo: int
    class_n: int


_CELLS = 16384


def _bresenham_circle(radius: int, half_rf: float, biasx: float, decay: float) -> Circle:
    """The reference's 8-way Bresenham circle (duplicates kept), sorted by angle."""
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
    edges = -np.pi + np.arange(_CELLS + 1) * (2 * np.pi / _CELLS)
    cell_lo = np.searchsorted(ang, edges, side="left")
    distinct = np.unique(ang)
    per_cell = np.diff(np.searchsorted(distinct, edges, side="left"))
    if per_cell.max() > 1:  # pragma: no cover - only for huge radii
        raise ValueError(f"red circle radius {radius} px too large for {_CELLS} angle cells")
    # the widest receptor window, checked on a fine grid of directions
    n = len(ang)
    t = np.linspace(-np.pi - 0.02, np.pi + 0.02, 200001)
    li = np.clip(_closest_sorted_np(ang, t - half_rf), 0, n - 1)
    ri = np.maximum(li + 1, np.minimum(_closest_sorted_np(ang, t + half_rf) + 1, n))
    window = int((ri - li).max()) + 1  # +1: float32 angles may widen a window by one
    lo = int(np.floor(-biasx))
    nc = int(np.floor(biasx)) - lo + 1
    table = np.zeros((nc * nc, n, 4))
    for a in range(nc):
        for b in range(nc):
            dx, dy = lo + a, lo + b
            dist = np.hypot(off[:, 1] + dx, off[:, 0] + dy)
            table[a * nc + b] = np.stack([off[:, 0], off[:, 1], np.exp(-decay * dist), ang], -1)
    return Circle(
        off.astype(np.int32),
        ang,
        first.astype(np.int32),
        cell_lo.astype(np.int32),
        window,
        table.astype(np.float32),
        lo,
        nc,
    )


def _closest_sorted_np(ang: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Closest index (first on ties) into sorted ``ang`` for each target (NumPy)."""
    n = len(ang)
    i = np.searchsorted(ang, t, side="left")
    lo = np.clip(i - 1, 0, n - 1)
    hi = np.clip(i, 0, n - 1)
    pick = np.where(np.abs(t - ang[lo]) <= np.abs(ang[hi] - t), lo, hi)
    return np.searchsorted(ang, ang[pick], side="left")


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
    circles = tuple(
        _bresenham_circle(r, params.red_rf_size / 2, params.eyes_biasx, params.light_decay_rate)
        for r in radii
    )
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
    """Wrap angles to [-pi, pi) (rad) with arithmetic (no transcendental calls)."""
    two_pi = 2 * np.pi
    return a - two_pi * jnp.floor((a + np.pi) / two_pi)


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
    eye_offs: Array,
    prey_xy: Array,
    prey_alive: Array,
) -> Array:
    """UV prey projection per receptor, both eyes (photons, times uv_object_intensity).

    centre: int32 ``[2]`` window centre; eye_offs: ``[2 (eye), 2]`` px; prey_xy: float32
    ``[P, 2]`` px; prey_alive: bool ``[P]``. Returns ``[R, 2 (eye)]``.
    """
    geo = eye_geometry(params)
    half, rng = geo.uv_half, geo.uv_range
    n_bins = int((2 * np.pi + PREY_BIN_RAD) / PREY_BIN_RAD)
    rel_fish = prey_xy - fish_xy[None, :]  # prey - fish (px)
    wpos = rel_fish + rng  # the reference's window coordinates p'
    # brightness: UV window value at [floor(p'y) - 1, floor(p'x) - 1] (same for both eyes)
    jx = jnp.clip(jnp.floor(wpos[:, 0]).astype(jnp.int32) - 1, 0, 2 * half)
    jy = jnp.clip(jnp.floor(wpos[:, 1]).astype(jnp.int32) - 1, 0, 2 * half)
    bright, _, _ = _window_value(params, centre, jx, jy, half)
    ok = prey_alive & jnp.all(jnp.isfinite(prey_xy), axis=-1)
    out = []
    for e in range(2):
        # p' - (eye_off + half) = prey - fish - eye_off - (half - rng)
        rel = rel_fish - (eye_offs[e][None, :] + (half - rng))
        rho = jnp.sqrt(jnp.sum(rel * rel, axis=-1))
        valid = ok & (rho < rng - 1.0)
        theta = _wrap(jnp.arctan2(rel[:, 1], rel[:, 0]) - fish_angle)
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


def _closest_sorted(circle: Circle, t: Array) -> Array:
    """Closest circle index (first occurrence on ties) for target angles ``t`` (rad)."""
    ang = jnp.asarray(circle.angles, jnp.float32)
    n = ang.shape[0]
    cell_lo = jnp.asarray(circle.cell_lo)
    m = jnp.clip(jnp.floor((t + jnp.pi) * (_CELLS / (2 * np.pi))), 0, _CELLS - 1).astype(jnp.int32)
    lo_m, hi_m = cell_lo[m], cell_lo[m + 1]
    i = jnp.where((lo_m < hi_m) & (t > ang[jnp.minimum(lo_m, n - 1)]), hi_m, lo_m)
    lo = jnp.clip(i - 1, 0, n - 1)
    hi = jnp.clip(i, 0, n - 1)
    pick = jnp.where(jnp.abs(t - ang[lo]) <= jnp.abs(ang[hi] - t), lo, hi)
    return jnp.asarray(circle.first)[pick]


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
    for k, circle in enumerate(geo.circles):
        # Only the circle pixels some receptor averages are read: [R, window] of them.
        n = len(circle.angles)
        li = _closest_sorted(circle, corrected - hrf)
        ri = _closest_sorted(circle, corrected + hrf) + 1
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
        sed = arena.sediment_at(sediment, sx, sy)
        angf = t[..., 3]
        between = jnp.where(
            p_left > p_right,
            (angf < p_left) & (angf > p_right),
            (angf < p_left) | (angf > p_right),
        )
        shadow = predator_present & jnp.isfinite(pdist) & (pdist < geo.radii[k]) & between
        val = jnp.where(inside & take & ~shadow, val * sed, 0.0)
        out.append(val.sum(-1) / (ri - li).astype(jnp.float32))
    return jnp.stack(out, axis=-1)


# ----------------------------------------------------------------------------- observe


def _readings(
    params,
    fish_xy,
    fish_angle,
    prey_xy,
    prey_alive,
    predator_present,
    predator_xy,
    predator_radius,
    sediment,
):
    fish_xy = jnp.asarray(fish_xy, jnp.float32)
    fish_angle = jnp.asarray(fish_angle, jnp.float32)
    prey_xy = jnp.asarray(prey_xy, jnp.float32)
    prey_alive = jnp.asarray(prey_alive, bool)
    predator_present = jnp.asarray(predator_present, bool)
    predator_xy = jnp.asarray(predator_xy, jnp.float32)
    predator_radius = jnp.asarray(predator_radius, jnp.float32)
    geo = eye_geometry(params)
    centre = jnp.round(fish_xy).astype(jnp.int32)
    offs = eye_offsets(params, fish_angle)
    bg, red = [], []
    for e in range(2):
        world = _wrap(jnp.asarray(geo.uv_angles[e], jnp.float32) + fish_angle)
        bg.append(uv_background(params, centre, offs[e], world))
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
    prey = uv_prey(params, centre, fish_xy, fish_angle, offs, prey_xy, prey_alive)
    return jnp.stack(bg, -1), prey, jnp.stack(red, -1), offs


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

    Arguments as :func:`observe`. Returns a dict (float32) with ``uv_background``
    ``[R, 2]``, ``uv_prey`` ``[R, 2]``, ``red`` ``[R, 2 (elevation), 2 (eye)]``,
    ``eye_offset`` ``[2 (eye), 2 (x, y)]`` and ``raw_interp`` ``[G, 3, 2]``: the layouts of
    the golden ``observations.npz`` intermediates.
    """
    bg, prey, red, offs = _readings(
        params,
        fish_xy,
        fish_angle,
        prey_xy,
        prey_alive,
        predator_present,
        predator_xy,
        predator_radius,
        sediment,
    )
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
    if noise and key is None:
        raise ValueError("observe(noise=True) needs a PRNG key; got key=None")
    bg, prey, red, _ = _readings(
        params,
        fish_xy,
        fish_angle,
        prey_xy,
        prey_alive,
        predator_present,
        predator_xy,
        predator_radius,
        sediment,
    )
    uv = bg + prey
    if noise:
        ku, kr = jax.random.split(key)
        uv = poisson(ku, uv)
        red = poisson(kr, red)
    raw = interpolate(params, uv, red)
    return jnp.clip(jnp.floor(raw), 0.0, 255.0).astype(jnp.float32)


_POISSON_SMALL = 10.0  # below: inversion with a fixed number of terms; above: PTRS
_POISSON_TERMS = 40  # P(X >= 40 | lam < 10) < 1e-11
_POISSON_TRIES = 4  # PTRS accepts >= 88 % per try for lam >= 10: all 4 fail w.p. < 2e-4


def _log_factorial(k: Array) -> Array:
    """log(k!) by Stirling's series with terms to 1/(1260 n^5), n = k + 1 (error < 3e-4 at
    k = 0, < 1e-8 for k >= 5): cheaper than ``lax.lgamma`` in the PTRS acceptance test."""
    n = k + 1.0
    inv = 1.0 / n
    inv2 = inv * inv
    series = inv * (1.0 / 12.0 - inv2 * (1.0 / 360.0 - inv2 / 1260.0))
    return (n - 0.5) * jnp.log(n) - n + 0.5 * np.log(2 * np.pi) + series


def _mix32(x: Array) -> Array:
    """MurmurHash3's 32-bit finaliser (an avalanche mixer), uint32 -> uint32."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x85EBCA6B)
    x = x ^ (x >> 13)
    x = x * jnp.uint32(0xC2B2AE35)
    return x ^ (x >> 16)


def hashed_uniforms(key: Array, shape: tuple) -> Array:
    """Uniforms in (0, 1), float32 ``shape``, from ONE draw of the JAX key.

    Two 32-bit seeds come from ``key``; element ``i`` is
    ``mix(mix(i ^ seed0) + seed1)`` (MurmurHash3 finaliser, counter based), top 24 bits.
    Threefry costs ~40 ns per 32-bit value on a contended CPU core; this is ~10 integer
    operations per value. Statistically sound for shot noise; not for cryptography.
    """
    seed = jax.random.bits(key, (2,), jnp.uint32)
    n = int(np.prod(shape)) if len(shape) else 1
    i = jnp.arange(n, dtype=jnp.uint32)
    x = _mix32(_mix32(i ^ seed[0]) + seed[1])
    u = ((x >> 8).astype(jnp.float32) + 0.5) * (1.0 / 16777216.0)
    return u.reshape(shape)


def poisson(key: Array, lam: Array) -> Array:
    """Poisson samples with means ``lam`` (float32 array, >= 0); float32 counts.

    Why not ``jax.random.poisson``: its rejection loops are ``while_loop`` s that, vmapped
    over a batch of fish, draw fresh threefry numbers for every lane on every iteration;
    it took ~1.2 us per sample here (252 samples per fish step) and dominated the step.
    This sampler takes its uniforms from :func:`hashed_uniforms` (one key draw) and has
    no loops: inversion of the CDF over ``_POISSON_TERMS`` terms for ``lam < 10`` (exact
    up to 1e-11), and for ``lam >= 10`` the transformed rejection with squeeze (PTRS) of
    Hormann (1993), "The transformed rejection method for generating Poisson random
    variables", Insurance: Mathematics and Economics 12, 39-45, unrolled
    ``_POISSON_TRIES`` times; if every try is rejected (probability < 2e-4) the sample is
    ``round(lam + sqrt(lam) (2 u - 1) sqrt(3))`` (mean and variance kept).
    """
    lam = jnp.maximum(jnp.asarray(lam, jnp.float32), 0.0)
    u = hashed_uniforms(key, (2 * _POISSON_TRIES + 1,) + lam.shape)
    # --- inversion for small means
    small = jnp.minimum(lam, _POISSON_SMALL)
    u0 = u[-1]
    pmf = jnp.exp(-small)
    cdf = pmf
    count = jnp.zeros_like(lam)
    for j in range(1, _POISSON_TERMS):
        count = count + (u0 > cdf)
        pmf = pmf * small / j
        cdf = cdf + pmf
    # --- PTRS for large means
    big = jnp.maximum(lam, _POISSON_SMALL)
    slam = jnp.sqrt(big)
    loglam = jnp.log(big)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    log_inv_alpha = jnp.log(1.1239 + 1.1328 / (b - 3.4))
    vr = 0.9277 - 3.6224 / (b - 2.0)
    result = jnp.round(big + slam * (2.0 * u0 - 1.0) * np.sqrt(3.0))
    for t in reversed(range(_POISSON_TRIES)):  # earlier tries overwrite later ones
        uu = u[2 * t] - 0.5
        v = u[2 * t + 1]
        us = 0.5 - jnp.abs(uu)
        k = jnp.floor((2.0 * a / us + b) * uu + big + 0.43)
        squeeze = (us >= 0.07) & (v <= vr)
        reject = (k < 0) | ((us < 0.013) & (v > us))
        lhs = jnp.log(v / (a / (us * us) + b)) + log_inv_alpha
        rhs = -big + k * loglam - _log_factorial(jnp.maximum(k, 0.0))
        accept = squeeze | (~reject & (lhs <= rhs))
        result = jnp.where(accept, k, result)
    result = jnp.maximum(result, 0.0)
    return jnp.where(lam < _POISSON_SMALL, count, result).astype(jnp.float32)


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
    "poisson",
    "photoreceptor_readings",
    "red_channels",
    "reflect_observation",
    "uv_background",
    "uv_prey",
]
