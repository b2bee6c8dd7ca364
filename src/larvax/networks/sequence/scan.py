"""Reset-aware linear recurrences, computed with a parallel associative scan.

Every linear-recurrent torso (MinGRU, LRU, S5, Mamba) reduces to the element-wise
recurrence, over the time axis 1 of ``[B, T, ...]`` arrays::

    h_t = a_t * h_{t-1} + b_t,          h_{-1} = h0  (the carry passed in)

with episode resets: where ``starts[b, t]`` is True, ``h_{t-1}`` is replaced by the
initial carry, which is zero for every model here, so the reset is ``a_t := 0``.

The scan runs on the pairs ``(a, b)`` with the associative operator (first element
applied first)::

    (a1, b1) . (a2, b2) = (a2 * a1, a2 * b1 + b2)

(Blelloch 1990; Martin & Cundy 2018; used by S5, LRU and Mamba). A reset inside a span is
carried by that span's cumulative ``a`` becoming exactly 0: ``0 * x = 0`` for every finite
``x``, so the pair ``(0, b)`` forgets everything before it. This is the same as scanning
triples ``(a, b, reset)`` with ``a := where(reset, 0, a)`` in the operator, without a
separate flag. The initial carry enters as ``b_0 := a_0 * h0 + b_0``.

``a`` and ``b`` may be real or complex. :func:`linear_scan_sequential` is the
``lax.scan`` definition the parallel version is tested against. On a CPU, which has no
parallelism across time to exploit, the sequential loop does less work and is often the
faster one (the associative scan does ~2x the operations over ``log2 T`` passes through
memory); every linear model therefore takes ``scan="associative" | "sequential"``
(default associative), chosen with :func:`scan_function`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def _expand(mask: Array, like: Array) -> Array:
    return jnp.reshape(mask, mask.shape + (1,) * (like.ndim - mask.ndim))


def _combine(left, right):
    a1, b1 = left
    a2, b2 = right
    return a2 * a1, a2 * b1 + b2


def linear_scan(a: Array, b: Array, starts: Array, h0: Array) -> Array:
    """All states ``h [B, T, ...]`` of ``h_t = a_t h_{t-1} + b_t`` with resets to zero.

    Args:
        a: decay ``[B, T, ...]`` (or broadcastable to ``b``), real or complex.
        b: input ``[B, T, ...]``.
        starts: ``[B, T]`` bool; True resets the state to zero before step t.
        h0: ``[B, ...]`` state before step 0 (the carry).

    Returns:
        ``h [B, T, ...]``, the dtype of ``a * b``; ``h[:, -1]`` is the next carry.
    """
    a = jnp.broadcast_to(a, b.shape)
    a = jnp.where(_expand(starts, a), jnp.zeros((), a.dtype), a)
    b = b.at[:, 0].add(a[:, 0] * h0)
    _, h = jax.lax.associative_scan(_combine, (a, b), axis=1)
    return h


def linear_scan_sequential(a: Array, b: Array, starts: Array, h0: Array) -> Array:
    """Reference definition of :func:`linear_scan`: a ``lax.scan`` loop over time.

    A decay without batch and time axes (``a.ndim <= b.ndim - 2``, e.g. LRU's and S5's
    ``[N]`` eigenvalues) is used as a constant instead of being broadcast to ``[B, T, ...]``.
    """
    a = jnp.asarray(a)
    constant = a.ndim <= b.ndim - 2
    h0 = h0.astype(jnp.result_type(a.dtype, b.dtype))

    def step(h, inputs):
        a_t, b_t, s_t = inputs
        h = jnp.where(_expand(s_t, h), jnp.zeros((), h.dtype), h)
        h = (a if constant else a_t) * h + b_t
        return h, h

    a_seq = (
        jnp.zeros((b.shape[1],), a.dtype)
        if constant
        else jnp.swapaxes(jnp.broadcast_to(a, b.shape), 0, 1)
    )
    _, h = jax.lax.scan(step, h0, (a_seq, jnp.swapaxes(b, 0, 1), starts.T))
    return jnp.swapaxes(h, 0, 1)


SCAN_METHODS = ("associative", "sequential")


def check_scan_method(owner: str, method: str) -> str:
    """Validate a ``scan`` constructor argument."""
    if method not in SCAN_METHODS:
        raise ValueError(f"{owner}.scan must be one of {SCAN_METHODS}, got {method!r}")
    return method


def scan_function(method: str):
    """:func:`linear_scan` for ``"associative"``, :func:`linear_scan_sequential` otherwise."""
    if check_scan_method("scan_function", method) == "associative":
        return linear_scan
    return linear_scan_sequential
