"""Cheap random numbers for the Simfish hot path: counter-hashed uniforms and a loop-free
Poisson sampler, each drawing ONE value from the JAX key.

Threefry costs ~40 ns per 32-bit value on a contended CPU core; :func:`hashed_uniforms`
costs ~10 integer operations per value. Used for the prey's per-step draws, their escape
jumps and the eyes' shot noise. Statistically sound for these; not for cryptography.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

_POISSON_SMALL = 10.0  # below: inversion with a fixed number of terms; above: PTRS
_POISSON_TERMS = 40  # P(X >= 40 | lam < 10) < 1e-11
_POISSON_TRIES = 4  # PTRS accepts >= 88 % per try for lam >= 10: all 4 fail w.p. < 2e-4


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
    """
    seed = jax.random.bits(key, (2,), jnp.uint32)
    n = int(np.prod(shape)) if len(shape) else 1
    i = jnp.arange(n, dtype=jnp.uint32)
    x = _mix32(_mix32(i ^ seed[0]) + seed[1])
    u = ((x >> 8).astype(jnp.float32) + 0.5) * (1.0 / 16777216.0)
    return u.reshape(shape)


def _log_factorial(k: Array) -> Array:
    """log(k!) by Stirling's series with terms to 1/(1260 n^5), n = k + 1 (error < 3e-4 at
    k = 0, < 1e-8 for k >= 5): cheaper than ``lax.lgamma`` in the PTRS acceptance test."""
    n = k + 1.0
    inv = 1.0 / n
    inv2 = inv * inv
    series = inv * (1.0 / 12.0 - inv2 * (1.0 / 360.0 - inv2 / 1260.0))
    return (n - 0.5) * jnp.log(n) - n + 0.5 * np.log(2 * np.pi) + series


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


__all__ = ["hashed_uniforms", "poisson"]
