"""Render one Simfish state as an RGB frame (NumPy; fast enough for videos).

``render(state, params, sediment=None, observation=None, size=500)`` returns a uint8
``[size + strip, size, 3]`` image:

* top: the arena seen from above, downscaled to ``size x size`` px (``y`` grows downward,
  as the arena image): sand coloured by the sediment texture times the light gain (dark
  rows at the top), the salt source (green ring), prey (white dots), the predator (dark
  disc with a red rim) and the fish (orange tail + head, black eyes, a short yellow
  heading tick at the mouth). The fish and prey are drawn at a minimum visible size.
* bottom: the observation strip, left eye on the left half, right eye on the right;
  three rows per eye: UV (violet), red at 50 deg and red at 75 deg (red), full intensity at
  30, 30 and 10 photons; 139 grid positions stretched to the half width, ascending eye
  angle from left to right.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from larvax.envs.simfish import arena, vision
from larvax.envs.simfish.config import SimfishParams

SAND = np.array([214, 190, 140], np.float32)
FISH = np.array([255, 140, 0], np.uint8)
PREY = np.array([255, 255, 255], np.uint8)
SALT = np.array([40, 200, 60], np.uint8)
PRED = np.array([40, 30, 30], np.uint8)
PRED_RIM = np.array([200, 30, 30], np.uint8)
# photons shown at full intensity in the strip: UV, red 50 deg, red 75 deg (the far circle
# is dimmer: exp(-0.01 * 187) of the near one's decay)
STRIP_FULL = (30.0, 30.0, 10.0)


def _disk(img, cx, cy, r, color):
    h, w = img.shape[:2]
    x0, x1 = int(max(np.floor(cx - r), 0)), int(min(np.ceil(cx + r) + 1, w))
    y0, y1 = int(max(np.floor(cy - r), 0)), int(min(np.ceil(cy + r) + 1, h))
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1]
    m = (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= r * r
    img[y0:y1, x0:x1][m] = color


def _disks(img, cx, cy, r, color):
    """Many disks of one radius at once (the same pixels as :func:`_disk` for each)."""
    cx, cy = np.asarray(cx, np.float64).ravel(), np.asarray(cy, np.float64).ravel()
    if cx.size == 0:
        return
    h, w = img.shape[:2]
    k = int(np.ceil(r)) + 1
    off = np.arange(-k, k + 1)
    x = np.floor(cx)[:, None, None].astype(np.int64) + off[None, None, :]
    y = np.floor(cy)[:, None, None].astype(np.int64) + off[None, :, None]
    inside = (x + 0.5 - cx[:, None, None]) ** 2 + (y + 0.5 - cy[:, None, None]) ** 2 <= r * r
    inside &= (x >= 0) & (x < w) & (y >= 0) & (y < h)
    x, y = np.broadcast_arrays(x, y)
    img[y[inside], x[inside]] = color


def _ring(img, cx, cy, r, width, color):
    h, w = img.shape[:2]
    x0, x1 = int(max(np.floor(cx - r - width), 0)), int(min(np.ceil(cx + r + width) + 1, w))
    y0, y1 = int(max(np.floor(cy - r - width), 0)), int(min(np.ceil(cy + r + width) + 1, h))
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1]
    d = np.sqrt((xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2)
    img[y0:y1, x0:x1][np.abs(d - r) <= width / 2] = color


def _line(img, x0, y0, x1, y1, width, color):
    n = int(np.ceil(np.hypot(x1 - x0, y1 - y0) * 2)) + 1
    t = np.linspace(0.0, 1.0, n)
    _disks(img, x0 + t * (x1 - x0), y0 + t * (y1 - y0), width / 2, color)


def _as_sediment(sediment, state) -> arena.Sediment:
    if sediment is None:
        return arena.Sediment(jnp.zeros((1, 1, 1), jnp.float32), arena.zero_handle())
    if isinstance(sediment, arena.Sediment):
        return sediment
    tex = jnp.asarray(sediment)
    if tex.ndim == 2:
        tex = tex[None]
    if tex.ndim != 3:
        raise ValueError(
            f"sediment shape={tuple(tex.shape)} is invalid; allowed: [H, W] or [K, H, W]"
        )
    return arena.Sediment(tex, state.sediment)


def arena_background(params: SimfishParams, sediment=None, state=None, size: int = 500):
    """The empty arena, uint8 ``[size, size, 3]``: sand shaded by the sediment texture (read
    through ``state.sediment`` when ``sediment`` is a texture pool) times the light gain.

    A video draws this once and the moving objects on a copy per frame (:func:`draw_objects`).
    """
    w, h = params.arena_width, params.arena_height
    sx, sy = size / w, size / h
    xs = np.minimum(((np.arange(size) + 0.5) / sx).astype(np.int32), w - 1)
    ys = np.minimum(((np.arange(size) + 0.5) / sy).astype(np.int32), h - 1)
    lum = arena.luminance_profile(params)[ys][:, None]
    if sediment is None:
        shade = np.full((size, size), 0.75, np.float32)
    else:
        sed = _as_sediment(sediment, state)
        gx, gy = np.meshgrid(xs, ys)
        vals = np.asarray(arena.sediment_at(sed, jnp.asarray(gx), jnp.asarray(gy)))
        shade = 0.45 + 0.55 * vals / max(params.bottom_intensity, 1e-6)
    gain = 0.15 + 0.85 * lum  # the dark region stays visible, darker
    return np.clip(SAND[None, None, :] * (shade * gain)[..., None], 0, 255).astype(np.uint8)


def draw_objects(img, state, params: SimfishParams) -> np.ndarray:
    """Draw the salt source, prey, predator and fish of ``state`` on ``img`` (in place).

    ``state``: a :class:`SimfishState` or any object with its fields ``fish_xy``,
    ``fish_angle``, ``prey_xy``, ``prey_alive``, ``predator_present``, ``predator_xy``,
    ``predator_radius`` and ``salt_source_xy`` (NumPy or JAX; used for recorded episodes).
    """
    sx, sy = img.shape[1] / params.arena_width, img.shape[0] / params.arena_height
    # salt source
    if params.salt_enabled:
        src = np.asarray(state.salt_source_xy, np.float64)
        if np.all(np.isfinite(src)):
            _ring(img, src[0] * sx, src[1] * sy, 6.0, 2.0, SALT)
            _disk(img, src[0] * sx, src[1] * sy, 1.5, SALT)
    # prey
    alive = np.asarray(state.prey_alive, bool)
    pxy = np.asarray(state.prey_xy, np.float64)[alive]
    _disks(img, pxy[:, 0] * sx, pxy[:, 1] * sy, max(params.prey_radius * sx, 1.2), PREY)
    # predator
    if bool(np.asarray(state.predator_present)):
        px, py = np.asarray(state.predator_xy, np.float64)
        r = float(np.asarray(state.predator_radius)) * sx
        _disk(img, px * sx, py * sy, r, PRED)
        _ring(img, px * sx, py * sy, r, 1.5, PRED_RIM)
    # fish: mouth at the body position, tail behind; drawn at least 14 px long
    fx, fy = np.asarray(state.fish_xy, np.float64)
    a = float(np.asarray(state.fish_angle))
    hx, hy = np.cos(a), np.sin(a)
    length = max((params.fish_head_offset + params.fish_tail_length) * sx, 14.0)
    cx, cy = fx * sx, fy * sy
    _line(img, cx, cy, cx - length * hx, cy - length * hy, max(2.0 * sx, 2.0), FISH)
    head_r = max(params.fish_head_radius * sx, 3.0)
    _disk(img, cx - 0.3 * head_r * hx, cy - 0.3 * head_r * hy, head_r, FISH)
    for side in (-1.0, 1.0):  # eyes beside the head
        ex, ey = cx - side * head_r * 0.8 * hy, cy + side * head_r * 0.8 * hx
        _disk(img, ex - 0.3 * head_r * hx, ey - 0.3 * head_r * hy, 1.2, np.zeros(3, np.uint8))
    _line(img, cx, cy, cx + 0.6 * length * hx, cy + 0.6 * length * hy, 1.0, (255, 230, 0))
    return img


def arena_image(state, params: SimfishParams, sediment=None, size: int = 500) -> np.ndarray:
    """The top-down arena, uint8 ``[size, size, 3]`` (background + objects)."""
    return draw_objects(arena_background(params, sediment, state, size), state, params)


def observation_strip(visual, width: int = 500, row_height: int = 14) -> np.ndarray:
    """The observation as an image, uint8 ``[3 * row_height + 2, width, 3]`` (see module)."""
    v = np.asarray(visual, np.float32)
    if v.shape[-2:] != (3, 2) or v.ndim != 3:
        raise ValueError(f"visual shape={v.shape} is invalid; allowed: [G, 3, 2]")
    g = v.shape[0]
    half = width // 2
    strip = np.zeros((3 * row_height + 2, width, 3), np.uint8)
    cols = np.minimum((np.arange(half) * g / half).astype(int), g - 1)
    for e in range(2):
        for c in range(3):
            vals = v[cols, c, e]
            full = STRIP_FULL[c]
            t = np.clip(vals / full, 0.0, 1.0)[:, None]
            color = (
                np.array([170, 60, 255], np.float32)
                if c == 0
                else np.array([255, 40, 40], np.float32)
            )
            row = (t * color[None, :]).astype(np.uint8)
            y0 = 2 + c * row_height
            x0 = e * half + (1 if e else 0)
            strip[y0 : y0 + row_height - 1, x0 : x0 + half - (1 if e else 0)] = row[
                : half - (1 if e else 0)
            ][None]
    strip[:, half - 1 : half + 1] = 255  # divider between the eyes
    return strip


@functools.partial(jax.jit, static_argnames=("params",))
def _observe(params, world: vision.World):
    return vision.observe(params, world, None, False)


def render(
    state, params: SimfishParams, sediment=None, observation=None, size: int = 500
) -> np.ndarray:
    """One RGB frame, uint8 ``[size + 44, size, 3]``: the arena and the observation strip.

    state: one (unbatched) :class:`~larvax.envs.simfish.state.SimfishState`.
    sediment: the env's texture pool ``[K, H, W]`` / one texture ``[H, W]`` (read through
        ``state.sediment``) or an :class:`~larvax.envs.simfish.arena.Sediment`; None draws
        flat sand and the red channels see no sediment.
    observation: the visual ``[139, 3, 2]`` (or the env's observation dict) to show; None
        recomputes it without noise.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 32:
        raise ValueError(f"render size={size!r} is invalid; allowed: an int >= 32")
    if observation is None:
        sed = _as_sediment(sediment, state)
        world = vision.World.of_state(state, sed.textures)._replace(sediment=sed)
        observation = _observe(params, world)
    if isinstance(observation, dict):
        observation = observation["visual"]
    top = arena_image(state, params, sediment, size)
    strip = observation_strip(observation, size)
    return np.concatenate([top, strip], axis=0)


__all__ = ["arena_background", "arena_image", "draw_objects", "observation_strip", "render"]
