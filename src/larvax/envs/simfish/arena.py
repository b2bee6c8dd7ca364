"""The Simfish arena: luminance (light / dark), sediment textures, salt.

Frames and units (as the reference, Simfish 2.0): positions in px, arena images indexed
``[row = y, col = x]``; integer pixel ``(x, y)`` is ``image[y, x]``.

Luminance (light gain, dimensionless)
    Rows ``y < r0`` have ``dark_gain``; rows ``r0 .. r0 + g - 1`` hold
    ``linspace(dark_gain, 1, g)``; rows ``>= r0 + g`` have gain 1, with
    ``g = light_gradient_px`` and ``r0 = int(int(dark_fraction * H) - g / 2)``
    (740 .. 759 for ``normal``). It depends on the row only.

Sediment (the bottom seen by the red channels, photons before decay)
    Uniform noise, Gaussian-filtered (``sediment_sigma_px``), min-max normalised to [0, 1],
    times ``bottom_intensity`` (60). The red channels read ``sediment * luminance``.

Sediment memory (design choice)
    A 2500^2 float32 texture is 25 MB, so a batch of 1024 fish cannot each hold one. larvax
    keeps a small **pool** of ``K`` textures shared by every environment of a batch (a
    device array closed over by the jitted step; JAX passes it by reference, it is not
    copied per environment) and gives each episode a :class:`SedimentHandle`: which
    texture, a random toroidal shift and a random flip (x and/or y). Pool textures are
    generated *periodic* (the Gaussian filter is applied with FFT, i.e. wrap-around
    boundaries), so every shift is seamless and has exactly the statistics of the
    reference recipe away from the borders (the reference filters with ``mode='reflect'``;
    only the 20 px next to the original edges differ in correlation structure). With
    ``K = 4`` textures, 2500^2 shifts and 4 flips the variety per episode is effectively
    unlimited, and the red-channel cost is one gather per circle pixel read. The golden
    texture (or any user array) is used as a pool of one texture with a zero handle, so the
    scene API reads it exactly (red channels within 3e-6 photons of the reference).
    Measured effect of the pool: none on the observation model (same recipe, same
    statistics: neighbour correlation > 0.95 across the periodic seam as inside, tested);
    textures are shared across the envs of a batch but placed independently (a random
    shift among 6.25 M and a flip), so two envs see unrelated patches (correlation length
    ~5 px). Memory: 12.5 MB per float16 texture, independent of the batch size.

Salt
    Concentration ``exp(-decay * |source - int(fish)|)`` (the reference indexes its salt
    field at ``[int(fish_x), int(fish_y)]``).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from larvax.envs.simfish.config import SimfishParams

Array = jax.Array


# ----------------------------------------------------------------------------- luminance


def _ramp_rows(params: SimfishParams) -> tuple[int, int]:
    """(first ramp row r0, ramp length g); g = 0 means a hard dark/light edge."""
    dark = params.dark_rows
    g = int(params.light_gradient_px)
    if g > 0 and dark > 0:
        return int(dark - g / 2), g
    return dark, 0


def luminance_profile(params: SimfishParams) -> np.ndarray:
    """Light gain per row, float64 ``[arena_height]`` (``mask[y, x] = profile[y]``).

    Built exactly as the reference's ``Arena.get_global_luminance``.
    """
    h = int(params.arena_height)
    dark = params.dark_rows
    prof = np.ones(h)
    r0, g = _ramp_rows(params)
    prof[:dark] = params.dark_gain
    if g > 0:
        lo, hi = max(r0, 0), min(r0 + g, h)
        prof[lo:hi] = np.linspace(params.dark_gain, 1.0, g)[lo - r0 : hi - r0]
    return prof


def luminance_at_rows(params: SimfishParams, y: Array) -> Array:
    """Light gain of integer rows ``y`` (any shape, int); rows outside the arena get 0.

    Equals :func:`luminance_profile` ``[y]`` in float32.
    """
    y = jnp.asarray(y)
    r0, g = _ramp_rows(params)
    if g == 0:
        gain = jnp.where(y < r0, params.dark_gain, 1.0)
    else:
        yf = y.astype(jnp.float32)
        step = (1.0 - params.dark_gain) / (g - 1) if g > 1 else 0.0
        ramp = params.dark_gain + step * (yf - r0)
        gain = jnp.where(y < r0, params.dark_gain, jnp.where(y >= r0 + g, 1.0, ramp))
    inside = (y >= 0) & (y < params.arena_height)
    return jnp.where(inside, gain, 0.0).astype(jnp.float32)


def luminance_continuous(params: SimfishParams, y: Array) -> Array:
    """Piecewise-linear light gain at continuous row coordinate ``y`` (px, float).

    The linear interpolation of :func:`luminance_profile` between pixel centres (no arena
    clipping): ``dark_gain`` up to ``r0``, linear to 1 at ``r0 + g - 1``, then 1. Used by the
    closed-form UV background.
    """
    r0, g = _ramp_rows(params)
    if g > 1:
        t = (y - r0) / (g - 1)
    else:  # a hard edge between rows r0 - 1 and r0: half way at r0 - 0.5
        t = y - (r0 - 1)
    return params.dark_gain + (1.0 - params.dark_gain) * jnp.clip(t, 0.0, 1.0)


def in_light(params: SimfishParams, fish_y: Array) -> Array:
    """Internal-state flag: 1.0 when ``fish_y > in_light_threshold_y`` (strict), else 0.0."""
    return (jnp.asarray(fish_y) > params.in_light_threshold_y).astype(jnp.float32)


# ----------------------------------------------------------------------------- salt


def salt_concentration(params: SimfishParams, source_xy: Array, fish_xy: Array) -> Array:
    """Salt concentration at the fish (dimensionless, in (0, 1]); 0 when salt is disabled.

    ``exp(-salt_concentration_decay * |source_xy - int(fish_xy)|)``, distance in px, with
    ``int`` truncation toward zero as the reference's ``salt_gradient[int(x), int(y)]``.
    """
    if not params.salt_enabled:
        return jnp.zeros(jnp.shape(fish_xy)[:-1], jnp.float32)
    fish_i = jnp.trunc(jnp.asarray(fish_xy, jnp.float32))
    d = jnp.asarray(source_xy, jnp.float32) - fish_i
    dist = jnp.sqrt(jnp.sum(d * d, axis=-1))
    return jnp.exp(-params.salt_concentration_decay * dist).astype(jnp.float32)


def salt_concentration_np(params: SimfishParams, source_xy, fish_xy) -> np.ndarray:
    """Float64 NumPy twin of :func:`salt_concentration` (bit-exact with the reference)."""
    if not params.salt_enabled:
        return np.zeros(np.shape(fish_xy)[:-1])
    fish_i = np.trunc(np.asarray(fish_xy, np.float64))
    d = np.asarray(source_xy, np.float64) - fish_i
    return np.exp(-params.salt_concentration_decay * np.sum(d * d, axis=-1) ** 0.5)


def sample_salt_source(key: Array, params: SimfishParams) -> Array:
    """A random salt source, int32 ``[2]`` (x, y) uniform in ``[0, W - 2] x [0, H - 2]``.

    (The reference draws ``rng.integers(0, W - 1)``: high exclusive.)
    """
    kx, ky = jax.random.split(key)
    x = jax.random.randint(kx, (), 0, params.arena_width - 1)
    y = jax.random.randint(ky, (), 0, params.arena_height - 1)
    return jnp.stack([x, y]).astype(jnp.int32)


# ----------------------------------------------------------------------------- sediment


class SedimentHandle(NamedTuple):
    """Which pool texture an episode sees and how it is placed (per environment).

    index: int32 scalar, texture in the pool.
    shift_xy: int32 ``[2]`` in ``[0, Wt) x [0, Ht)``, toroidal shift (px).
    flip: int32 scalar in 0..3, bit 0 mirrors x, bit 1 mirrors y.
    Arena pixel (x, y) reads texture pixel ``((+-x + sx) mod Wt, (+-y + sy) mod Ht)``
    (minus where the flip bit is set). Arena pixels must lie in ``[0, Wt) x [0, Ht)``.
    """

    index: Array
    shift_xy: Array
    flip: Array


class Sediment(NamedTuple):
    """A sediment pool and one handle: what :func:`larvax.envs.simfish.vision.observe` reads.

    textures: ``[K, Ht, Wt]`` (float16 or float32) bottom intensity in photons (0..60),
        indexed ``[texture, y, x]``; usually shared by all environments (vmap ``None``).
    handle: :class:`SedimentHandle` (batched with the environment state).
    """

    textures: Array
    handle: SedimentHandle


def zero_handle() -> SedimentHandle:
    """Texture 0, no shift, no flip: the texture is read as it is (golden scenes)."""
    return SedimentHandle(
        index=jnp.zeros((), jnp.int32),
        shift_xy=jnp.zeros((2,), jnp.int32),
        flip=jnp.zeros((), jnp.int32),
    )


def sediment_from_array(texture) -> Sediment:
    """Wrap one ``[H, W]`` texture (e.g. the golden ``sediment.npz`` array) as a Sediment."""
    tex = jnp.asarray(texture)
    if tex.ndim != 2:
        raise ValueError(f"sediment texture must be 2-D [H, W], got shape {tuple(tex.shape)}")
    if not jnp.issubdtype(tex.dtype, jnp.floating):
        raise ValueError(f"sediment texture dtype={tex.dtype} is invalid; allowed: float")
    return Sediment(textures=tex[None], handle=zero_handle())


def sample_sediment_handle(key: Array, num_textures: int, texture_shape) -> SedimentHandle:
    """A uniformly random texture, toroidal shift and flip for a new episode."""
    ki, kx, ky, kf = jax.random.split(key, 4)
    ht, wt = int(texture_shape[0]), int(texture_shape[1])
    return SedimentHandle(
        index=jax.random.randint(ki, (), 0, num_textures).astype(jnp.int32),
        shift_xy=jnp.stack(
            [jax.random.randint(kx, (), 0, wt), jax.random.randint(ky, (), 0, ht)]
        ).astype(jnp.int32),
        flip=jax.random.randint(kf, (), 0, 4).astype(jnp.int32),
    )


def sediment_at(sediment: Sediment, x: Array, y: Array) -> Array:
    """Sediment intensity (photons, no light gain) at integer arena pixels ``(x, y)``.

    ``x``, ``y`` int arrays of one shape (any; they must lie inside the arena, callers
    mask the outside). Returns float32 of that shape.
    """
    tex = sediment.textures
    ht, wt = tex.shape[-2], tex.shape[-1]
    h = sediment.handle
    # (+-x + sx) mod Wt for x in [0, Wt), sx in [0, Wt): one conditional wrap each way
    tx = jnp.where((h.flip & 1) == 1, h.shift_xy[0] - x, h.shift_xy[0] + x)
    ty = jnp.where((h.flip & 2) == 2, h.shift_xy[1] - y, h.shift_xy[1] + y)
    tx = jnp.where(tx >= wt, tx - wt, jnp.where(tx < 0, tx + wt, tx))
    ty = jnp.where(ty >= ht, ty - ht, jnp.where(ty < 0, ty + ht, ty))
    return tex[h.index, ty, tx].astype(jnp.float32)


def make_sediment_texture(
    key: Array, params: SimfishParams, shape: tuple[int, int] | None = None
) -> Array:
    """One periodic sediment texture, float32 ``[H, W]`` (photons, 0..bottom_intensity).

    Uniform noise on [0, 1), Gaussian filter of sigma ``sediment_sigma_px`` applied in
    Fourier space (periodic boundaries, so toroidal shifts are seamless), min-max
    normalised and times ``bottom_intensity``: the reference recipe except the boundary
    mode (``reflect`` there).
    """
    h, w = shape if shape is not None else (params.arena_height, params.arena_width)
    noise = jax.random.uniform(key, (h, w), jnp.float32)
    s = float(params.sediment_sigma_px)
    fy = jnp.fft.fftfreq(h)[:, None]
    fx = jnp.fft.rfftfreq(w)[None, :]
    # Fourier transform of a unit-sum Gaussian of std s (px): exp(-2 pi^2 s^2 f^2).
    gain = jnp.exp(-2.0 * (jnp.pi * s) ** 2 * (fx**2 + fy**2))
    g = jnp.fft.irfft2(jnp.fft.rfft2(noise) * gain, s=(h, w))
    g = g - g.min()
    g = g / g.max()
    return (g * params.bottom_intensity).astype(jnp.float32)


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _make_pool(key, params, num_textures, shape):
    keys = jax.random.split(key, num_textures)
    return jax.lax.map(lambda k: make_sediment_texture(k, params, shape).astype(jnp.float16), keys)


def make_sediment_pool(
    key: Array, params: SimfishParams, num_textures: int = 4, dtype=jnp.float16
) -> Array:
    """``num_textures`` periodic textures ``[K, H, W]`` (float16 by default: 12.5 MB each at
    2500^2; the reference's golden texture is itself float16, max error 0.016 photons)."""
    if isinstance(num_textures, bool) or not isinstance(num_textures, int) or num_textures < 1:
        raise ValueError(f"num_textures={num_textures!r} is invalid; allowed: an int >= 1")
    shape = (int(params.arena_height), int(params.arena_width))
    pool = _make_pool(key, params, num_textures, shape)
    return pool.astype(dtype)


__all__ = [
    "Sediment",
    "SedimentHandle",
    "in_light",
    "luminance_at_rows",
    "luminance_continuous",
    "luminance_profile",
    "make_sediment_pool",
    "make_sediment_texture",
    "salt_concentration",
    "salt_concentration_np",
    "sample_salt_source",
    "sample_sediment_handle",
    "sediment_at",
    "sediment_from_array",
    "zero_handle",
]
