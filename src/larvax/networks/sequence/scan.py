"""Reset-aware linear recurrences: a parallel associative scan, and a fused time loop.

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
memory).

:func:`linear_scan_fused` (``scan="fused"``) is the CPU method: one loop over time that
reads and writes the batch-major arrays in place, under a ``jax.custom_vjp`` whose backward
pass is the reverse recurrence ``lam_t = dL/dh_t + a'_{t+1} lam_{t+1}`` (a second loop; no
per-step residuals, no transposes). :func:`linear_scan_fused_packed` runs a complex
recurrence as float32 ``[re | im]`` halves (XLA:CPU is slow on complex64 element-wise work).
Methods: ``scan="fused" | "associative" | "sequential"``, chosen with :func:`scan_function`;
MinGRU, LRU and S5 default to ``"fused"``, Mamba (input-dependent ``[B, T, E, N]`` decay,
chunked) takes ``"associative" | "sequential"`` and defaults to ``"sequential"``.
"""

from __future__ import annotations

from functools import partial

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


def _index(x: Array, t) -> Array:
    return jax.lax.dynamic_index_in_dim(x, t, axis=1, keepdims=False)


def _halves(z: Array) -> tuple[Array, Array]:
    n = z.shape[-1] // 2
    return z[..., :n], z[..., n:]


def _mul(a: Array, h: Array, packed: bool) -> Array:
    """``a * h``; ``packed``: complex numbers stored as real ``[..., re | im]`` halves."""
    if not packed:
        return a * h
    (ar, ai), (hr, hi) = _halves(a), _halves(h)
    return jnp.concatenate([ar * hr - ai * hi, ar * hi + ai * hr], axis=-1)


def _mul_transpose(a: Array, g: Array, packed: bool) -> Array:
    """Transpose of the linear map ``h -> a * h`` (for packed pairs: ``conj(a) * g``).

    JAX's VJP of complex multiplication is the plain transpose, so unpacked complex
    ``a`` is not conjugated either.
    """
    if not packed:
        return a * g
    (ar, ai), (gr, gi) = _halves(a), _halves(g)
    return jnp.concatenate([ar * gr + ai * gi, ar * gi - ai * gr], axis=-1)


def _mul_transpose_a(h: Array, g: Array, packed: bool) -> Array:
    """Transpose of the linear map ``a -> a * h``, applied to ``g``."""
    if not packed:
        return g * h
    (hr, hi), (gr, gi) = _halves(h), _halves(g)
    return jnp.concatenate([gr * hr + gi * hi, gi * hr - gr * hi], axis=-1)


def _forward_loop(a: Array, b: Array, starts: Array, h0: Array, constant: bool, packed: bool):
    """States ``h [B, T, ...]`` by a loop over axis 1 of the batch-major arrays."""
    zero = jnp.zeros((), b.dtype)

    def body(t, carry):
        h, out = carry
        h = jnp.where(_expand(_index(starts, t), h), zero, h)
        h = _mul(a if constant else _index(a, t), h, packed) + _index(b, t)
        return h, jax.lax.dynamic_update_index_in_dim(out, h, t, axis=1)

    _, h = jax.lax.fori_loop(0, b.shape[1], body, (h0, jnp.empty_like(b)))
    return h


@partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def _fused_scan(a, b, starts, h0, constant: bool, packed: bool) -> Array:
    return _forward_loop(a, b, starts, h0, constant, packed)


def _fused_scan_fwd(a, b, starts, h0, constant, packed):
    h = _forward_loop(a, b, starts, h0, constant, packed)
    return h, (a, starts, h0, h)


def _fused_scan_bwd(constant, packed, residuals, g):
    # With a'_t = where(starts_t, 0, a_t): h_t = a'_t h_{t-1} + b_t, so the cotangent of h_t
    # gathered from the future is lam_t = g_t + a'_{t+1}^T lam_{t+1}, a reverse linear
    # recurrence (^T: the transpose of the linear map h -> a h); then d b_t = lam_t,
    # d a_t = (a -> a h_{t-1})^T lam_t where there is no start, d h0 = a'_0^T lam_0.
    a, starts, h0, h = residuals
    length = h.shape[1]
    zero = jnp.zeros((), h.dtype)

    def body(i, carry):
        t = length - 1 - i
        mu, lam_out, da_out = carry  # mu = a'_{t+1}^T lam_{t+1}
        lam = _index(g, t) + mu
        start = _expand(_index(starts, t), lam)
        h_prev = jnp.where(t == 0, h0, _index(h, jnp.maximum(t - 1, 0)))
        da_t = jnp.where(start, zero, _mul_transpose_a(h_prev, lam, packed))
        mu = jnp.where(start, zero, _mul_transpose(a if constant else _index(a, t), lam, packed))
        lam_out = jax.lax.dynamic_update_index_in_dim(lam_out, lam, t, axis=1)
        if constant:
            da_out = da_out + jnp.sum(da_t, axis=0)
        else:
            da_out = jax.lax.dynamic_update_index_in_dim(da_out, da_t, t, axis=1)
        return mu, lam_out, da_out

    da0 = jnp.zeros_like(a) if constant else jnp.empty_like(h)
    init = (jnp.zeros_like(h0), jnp.empty_like(h), da0)
    dh0, db, da = jax.lax.fori_loop(0, length, body, init)
    return da, db, None, dh0


_fused_scan.defvjp(_fused_scan_fwd, _fused_scan_bwd)


def _fused(a: Array, b: Array, starts: Array, h0: Array, packed: bool) -> Array:
    a = jnp.asarray(a)
    dtype = jnp.result_type(a.dtype, b.dtype)
    constant = a.ndim <= b.ndim - 2
    a = jnp.broadcast_to(a.astype(dtype), b.shape[2:] if constant else b.shape)
    return _fused_scan(a, b.astype(dtype), starts, h0.astype(dtype), constant, packed)


def linear_scan_fused(a: Array, b: Array, starts: Array, h0: Array) -> Array:
    """:func:`linear_scan_sequential` as one loop with a hand-written backward pass.

    The forward pass is a loop over time reading and writing the batch-major
    ``[B, T, ...]`` arrays in place (no transposes); the backward pass is the reverse
    linear recurrence ``lam_t = dL/dh_t + a'_{t+1} lam_{t+1}`` (``a' = 0`` at starts), a
    second loop, so no per-step residuals are stored and no associative-scan passes made.
    A decay without batch and time axes (``a.ndim <= b.ndim - 2``) stays a constant.
    Real or complex; see :func:`linear_scan_fused_packed` for complex as real pairs.
    """
    return _fused(a, b, starts, h0, packed=False)


def linear_scan_fused_packed(a: Array, b: Array, starts: Array, h0: Array) -> Array:
    """:func:`linear_scan_fused` of a complex recurrence packed as real ``[re | im]``.

    Every array's last axis holds ``2 N`` reals, the ``N`` real parts then the ``N``
    imaginary parts (``a``: ``[2N]`` or ``[B, T, 2N]``; ``b``: ``[B, T, 2N]``; ``h0``:
    ``[B, 2N]``), and so does the result. Same function as :func:`linear_scan_fused` on
    ``re + i im``, but XLA:CPU runs it (and its gradient) markedly faster than complex64
    arithmetic, and a model can feed the halves from one matmul and read both out with one.
    """
    if b.shape[-1] % 2:
        raise ValueError(f"linear_scan_fused_packed: last axis must be even, got {b.shape}")
    return _fused(a, b, starts, h0, packed=True)


SCAN_METHODS = ("associative", "sequential", "fused")


def check_scan_method(owner: str, method: str, methods: tuple[str, ...] = SCAN_METHODS) -> str:
    """Validate a ``scan`` constructor argument against ``methods``."""
    if method not in methods:
        raise ValueError(f"{owner}.scan must be one of {methods}, got {method!r}")
    return method


def scan_function(method: str):
    """:func:`linear_scan` (``"associative"``), :func:`linear_scan_fused` (``"fused"``) or
    :func:`linear_scan_sequential` (``"sequential"``)."""
    method = check_scan_method("scan_function", method)
    if method == "associative":
        return linear_scan
    if method == "fused":
        return linear_scan_fused
    return linear_scan_sequential
