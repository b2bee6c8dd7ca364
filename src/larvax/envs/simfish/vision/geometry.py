"""Static eye geometry of Simfish vision (NumPy, cached per parameters).

Receptor angles (UV sigmoid-spaced, red evenly spaced), the 139-point observation grid and
``np.interp`` as matrices, the UV receptors' 0.001-rad prey bins and the red channels'
Bresenham circles with their lookup tables; plus the two small traced helpers every
channel uses (:func:`wrap_angle`, :func:`eye_offsets`). See the package docstring.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from larvax.envs.simfish.config import SimfishParams
from larvax.validation import fail

Array = jax.Array

PREY_BIN_RAD = 0.001  # angular bin of the reference's prey projection (rad)
CELLS = 16384  # angle cells of a circle's searchsorted lookup (``Circle.cell_lo``)


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
    edges = -np.pi + np.arange(CELLS + 1) * (2 * np.pi / CELLS)
    cell_lo = np.searchsorted(ang, edges, side="left")
    distinct = np.unique(ang)
    per_cell = np.diff(np.searchsorted(distinct, edges, side="left"))
    if per_cell.max() > 1:  # pragma: no cover - only for huge radii
        raise ValueError(f"red circle radius {radius} px too large for {CELLS} angle cells")
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
        fail(
            params,
            "num_uv_receptors",
            params.num_uv_receptors,
            f"{uv.shape[1]} (the count the strike-zone parameters produce)",
        )
    red = np.stack([_red_angles(params, e == 0, params.num_red_receptors) for e in range(2)])
    step = params.sz_rf_spacing / 2
    grids = [np.arange(uv[e].min(), uv[e].max() + step, step) for e in range(2)]
    if any(len(g) != params.obs_grid_size for g in grids):
        fail(
            params,
            "obs_grid_size",
            params.obs_grid_size,
            f"{[len(g) for g in grids]} (arange(min(uv), max(uv) + spacing/2, spacing/2))",
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


def wrap_angle(a: Array) -> Array:
    """Wrap angles to [-pi, pi) (rad) with arithmetic (no transcendental calls)."""
    two_pi = 2 * np.pi
    return a - two_pi * jnp.floor((a + np.pi) / two_pi)


def eye_offsets(params: SimfishParams, fish_angle: Array) -> Array:
    """Eye positions minus the body position, float32 ``[2 (left, right), 2 (x, y)]`` px."""
    s, c = jnp.sin(fish_angle), jnp.cos(fish_angle)
    b = params.eyes_biasx
    left = jnp.stack([b * s, -b * c])
    return jnp.stack([left, -left]).astype(jnp.float32)


__all__ = [
    "CELLS",
    "PREY_BIN_RAD",
    "Circle",
    "EyeGeometry",
    "eye_geometry",
    "eye_offsets",
    "wrap_angle",
]
