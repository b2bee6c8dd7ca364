"""Causal multi-head self-attention over a sliding window, with a key/value cache carry."""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from larvax.networks.sequence.base import (
    check_batch_shape,
    check_inputs,
    check_positive_float,
    check_positive_int,
)

Array = jax.Array

_MASKED = -1e30  # finite, so a fully masked (padding) row gives no NaN


class AttentionCache(NamedTuple):
    """The carry of :class:`SelfAttention`: the last ``S = cache_size`` steps.

    keys, values: ``[B, S, heads, head_dim]`` (keys before the rotary encoding).
    valid: ``[B, S]`` bool, False for slots never written (fewer than S steps seen).
    episode: ``[B, S]`` int32, episode index relative to the last step seen (0 = the
        current episode, -1 the one before, ...), so it never overflows.
    Slot ``j`` holds the step ``S - j`` steps before the next input.
    """

    keys: Array
    values: Array
    valid: Array
    episode: Array


def rotary(x: Array, positions: Array, base: float) -> Array:
    """Rotary position encoding (Su et al. 2021, RoFormer) of ``x [B, L, heads, d]``.

    ``positions [B, L]`` (or ``[L]``) in steps; pairs ``(x[2i], x[2i+1])`` are rotated by the
    angle ``position * base^(-2i/d)``, so ``<rot(q, p), rot(k, p')>`` depends on ``p - p'``.
    """
    d = x.shape[-1]
    freqs = base ** (-jnp.arange(0, d, 2, dtype=jnp.float32) / d)  # [d/2]
    angles = positions.astype(jnp.float32)[..., None] * freqs  # [..., L, d/2]
    if angles.ndim == 2:
        angles = angles[None]
    cos, sin = jnp.cos(angles)[:, :, None, :], jnp.sin(angles)[:, :, None, :]
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = jnp.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)
    return out.reshape(x.shape)


class SelfAttention(nnx.Module):
    """Multi-head causal self-attention that never attends across an episode start.

    Window semantics (identical for any chunking, hence exact step equivalence): the
    query at step ``t`` attends to the steps ``t - S, ..., t`` (``S = cache_size``
    previous steps and itself) that belong to the same episode as ``t``. The carry
    (:class:`AttentionCache`) holds the keys/values of the last ``S`` steps, so a call on a
    chunk of any length ``T`` continued from the carry equals one call on the whole
    sequence. Episode membership is tracked by episode indices derived from ``starts``
    (``cumsum`` within the chunk, relative indices in the cache), including across the
    cache/chunk boundary.

    Scores ``softmax(q k^T / sqrt(d) + mask) v`` (Vaswani et al. 2017) with rotary position
    encoding (``rope=True``) on queries and keys; positions are counted from the start of
    the chunk (cache slots at negative positions), which is exact because rotary scores
    depend only on the position difference. For ``T > S`` the chunk is processed in blocks
    of ``S`` queries, each attending only to its own and the previous block (``2 S``
    keys), so the cost is ``O(T S)``, not ``O(T^2)``.

    Args:
        features: model size D (in and out features), divisible by ``num_heads``.
        num_heads: number of heads; head size ``D / num_heads`` (even when ``rope``).
        cache_size: S, how many previous steps a query may see (window length).
        rope: use rotary position encoding (default True).
        rope_base: rotary wavelength base (10000).
        rngs: ``nnx.Rngs``.

    Carry: :class:`AttentionCache`; output ``[B, T, D]``.
    """

    def __init__(
        self,
        features: int,
        num_heads: int,
        cache_size: int,
        *,
        rope: bool = True,
        rope_base: float = 10000.0,
        rngs: nnx.Rngs,
    ):
        name = "SelfAttention"
        self.features = check_positive_int(name, "features", features)
        self.num_heads = check_positive_int(name, "num_heads", num_heads)
        self.cache_size = check_positive_int(name, "cache_size", cache_size)
        if self.features % self.num_heads:
            raise ValueError(
                f"SelfAttention.features must be divisible by num_heads, got features="
                f"{features!r}, num_heads={num_heads!r}"
            )
        self.head_dim = self.features // self.num_heads
        self.rope = bool(rope)
        self.rope_base = check_positive_float(name, "rope_base", rope_base)
        if self.rope and self.head_dim % 2:
            raise ValueError(
                f"SelfAttention: rotary encoding needs an even head size, got features/"
                f"num_heads = {self.head_dim} (features={features}, num_heads={num_heads})"
            )
        self.in_features = self.out_features = self.features
        self.qkv = nnx.Linear(self.features, 3 * self.features, use_bias=False, rngs=rngs)
        self.out = nnx.Linear(self.features, self.features, rngs=rngs)

    def initialize_carry(self, batch_shape: tuple[int, ...]) -> AttentionCache:
        shape = check_batch_shape("SelfAttention", batch_shape) + (self.cache_size,)
        kv = jnp.zeros(shape + (self.num_heads, self.head_dim), jnp.float32)
        return AttentionCache(kv, kv, jnp.zeros(shape, bool), jnp.zeros(shape, jnp.int32))

    def _attend(self, q, k, v, mask):
        """q [B, ..., Q, h, d], k/v [B, ..., K, h, d], mask [B, ..., Q, K] -> [B, ..., Q, h, d]."""
        scores = jnp.einsum("...qhd,...khd->...hqk", q, k) / math.sqrt(self.head_dim)
        scores = jnp.where(mask[..., None, :, :], scores, _MASKED)
        weights = jax.nn.softmax(scores, axis=-1)
        return jnp.einsum("...hqk,...khd->...qhd", weights, v)

    def __call__(self, x: Array, starts: Array, carry: AttentionCache | None = None):
        starts = check_inputs("SelfAttention", x, starts, self.features)
        bsz, t, _ = x.shape
        s = self.cache_size
        if carry is None:
            carry = self.initialize_carry((bsz,))
        q, k, v = jnp.split(self.qkv(x), 3, axis=-1)
        q, k, v = (z.reshape(bsz, t, self.num_heads, self.head_dim) for z in (q, k, v))
        ep = jnp.cumsum(starts, axis=1, dtype=jnp.int32)  # [B, T], cache is <= 0
        k_all = jnp.concatenate([carry.keys, k], axis=1)  # [B, S+T, h, d]
        v_all = jnp.concatenate([carry.values, v], axis=1)
        valid_all = jnp.concatenate([carry.valid, jnp.ones((bsz, t), bool)], axis=1)
        ep_all = jnp.concatenate([carry.episode, ep], axis=1)
        new_cache = AttentionCache(
            k_all[:, t:], v_all[:, t:], valid_all[:, t:], ep_all[:, t:] - ep[:, -1:]
        )
        if t <= s:
            y = self._window(q, k_all, v_all, valid_all, ep_all, ep)
        else:
            y = self._blocked(q, k_all, v_all, valid_all, ep_all, ep)
        return new_cache, self.out(y.reshape(bsz, t, self.features))

    def _window(self, q, k_all, v_all, valid_all, ep_all, ep):
        """All S + T keys at once (T <= S)."""
        s, t = self.cache_size, q.shape[1]
        pos_q = jnp.arange(t)
        pos_k = jnp.arange(-s, t)
        if self.rope:
            q = rotary(q, pos_q, self.rope_base)
            k_all = rotary(k_all, pos_k, self.rope_base)
        rel = pos_k[None, :] - pos_q[:, None]  # [T, S+T]
        in_window = (rel <= 0) & (rel >= -s)
        mask = in_window[None] & valid_all[:, None, :] & (ep[:, :, None] == ep_all[:, None, :])
        return self._attend(q, k_all, v_all, mask)

    def _blocked(self, q, k_all, v_all, valid_all, ep_all, ep):
        """Blocks of S queries; block i sees key blocks i-1 and i (T > S)."""
        s, (bsz, t) = self.cache_size, q.shape[:2]
        nb = -(-t // s)
        pad = nb * s - t

        def pad_time(z, value):
            return jnp.pad(z, [(0, 0), (0, pad)] + [(0, 0)] * (z.ndim - 2), constant_values=value)

        q, ep = pad_time(q, 0.0), pad_time(ep, -1)
        k_all, v_all = pad_time(k_all, 0.0), pad_time(v_all, 0.0)
        valid_all, ep_all = pad_time(valid_all, False), pad_time(ep_all, -1)
        if self.rope:
            q = rotary(q, jnp.arange(nb * s), self.rope_base)
            k_all = rotary(k_all, jnp.arange(-s, nb * s), self.rope_base)

        def blocks(z):  # [B, (nb+1) S, ...] -> [B, nb, 2S, ...]
            z = z.reshape((bsz, nb + 1, s) + z.shape[2:])
            return jnp.concatenate([z[:, :-1], z[:, 1:]], axis=2)

        kb, vb, validb, epb = blocks(k_all), blocks(v_all), blocks(valid_all), blocks(ep_all)
        qb = q.reshape((bsz, nb, s) + q.shape[2:])
        epq = ep.reshape(bsz, nb, s)
        rel = jnp.arange(2 * s)[None, :] - s - jnp.arange(s)[:, None]  # key - query position
        in_window = (rel <= 0) & (rel >= -s)  # [S, 2S]
        mask = in_window & validb[:, :, None, :] & (epq[..., :, None] == epb[:, :, None, :])
        y = self._attend(qb, kb, vb, mask)  # [B, nb, S, h, d]
        return y.reshape((bsz, nb * s) + y.shape[3:])[:, :t]
