"""Hand-written forms of three operations that XLA:CPU runs slowly in their plain form.

Each computes the same function as the plain JAX expression (tested in
``tests/test_fast_ops.py``); only the way XLA is asked to compute it differs.

- ``transposed_matmul(a, b) = sum_i a_i^T b_i`` over all leading axes, with ``a^T``
  materialised: XLA:CPU runs a dot that contracts the leading axis of both operands ~3x
  slower than a plain ``[M, K] x [K, N]`` one (256 x 128 x 128). The weight gradients of
  dense layers and of the hand-written GRU (``sequence/rnn.py``) use it.
- ``dense_matmul(x, w) = x @ w`` with a backward pass whose ``dw`` is a
  ``transposed_matmul``; ``use_fast_dense(module)`` makes every ``nnx.Linear`` in a module
  use it (the actor-critics do).
- ``conv1d_same(x, kernel, stride)``: a 1-D SAME convolution as im2col (the ``k`` strided
  slices of the padded input concatenated, times the kernel as a ``[k * C, C']`` matrix).
  The gradient of ``lax.conv`` inside ``lax.scan``/``lax.cond`` (where R2D2's learner runs)
  is ~10x slower on XLA:CPU than this matmul form. The Simfish ``Retina`` uses it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

Array = jax.Array


def transposed_matmul(a: Array, b: Array) -> Array:
    """``sum_i a_i^T b_i`` over all leading axes: ``[..., M] x [..., N] -> [M, N]``.

    ``a`` is transposed into a ``[M, rows]`` array first; an optimisation barrier keeps
    XLA from folding the transpose back into the dot.
    """
    a = a.reshape(-1, a.shape[-1])
    b = b.reshape(-1, b.shape[-1])
    return jax.lax.optimization_barrier(a.T) @ b


@jax.custom_vjp
def dense_matmul(x: Array, w: Array) -> Array:
    """``x [..., K] @ w [K, N]``; the backward pass computes ``dw = transposed_matmul(x, dy)``."""
    return x @ w


def _dense_matmul_fwd(x: Array, w: Array):
    return x @ w, (x, w)


def _dense_matmul_bwd(residuals, dy: Array):
    x, w = residuals
    return dy @ w.T, transposed_matmul(x, dy)


dense_matmul.defvjp(_dense_matmul_fwd, _dense_matmul_bwd)


def dense_dot_general(lhs, rhs, dimension_numbers, precision=None, **kwargs):
    """``lax.dot_general`` for ``nnx.Linear``: its plain ``x @ kernel`` uses ``dense_matmul``,
    every other contraction falls back to ``lax.dot_general``."""
    (lhs_contract, rhs_contract), (lhs_batch, rhs_batch) = dimension_numbers
    plain = (
        tuple(lhs_contract) == (lhs.ndim - 1,) and tuple(rhs_contract) == (0,) and rhs.ndim == 2
        and not lhs_batch and not rhs_batch and precision is None
        and all(v is None for v in kwargs.values()) and lhs.dtype == rhs.dtype
    )  # fmt: skip
    if plain:
        return dense_matmul(lhs, rhs)
    return jax.lax.dot_general(lhs, rhs, dimension_numbers, precision=precision, **kwargs)


def use_fast_dense(module: nnx.Module) -> None:
    """Make every ``nnx.Linear`` in ``module`` use ``dense_dot_general`` (the same values
    and gradients; forward-mode differentiation, ``jax.jvp``, is then not supported)."""
    for _, sub in nnx.iter_graph(module):
        if isinstance(sub, nnx.Linear) and sub.dot_general is jax.lax.dot_general:
            sub.dot_general = dense_dot_general


def conv1d_same(x: Array, kernel: Array, stride: int) -> Array:
    """SAME 1-D convolution without bias: ``x [N, L, C]``, ``kernel [k, C, C']`` ->
    ``[N, ceil(L / stride), C']``, the function of ``nnx.Conv(padding="SAME")`` (padding
    split as in TF/haiku: the smaller half before)."""
    k, c_in, c_out = kernel.shape
    length = x.shape[1]
    out = -(-length // stride)
    pad = max((out - 1) * stride + k - length, 0)
    xp = jnp.pad(x, ((0, 0), (pad // 2, pad - pad // 2), (0, 0)))
    end = (out - 1) * stride + 1
    cols = [jax.lax.slice_in_dim(xp, j, j + end, stride, axis=1) for j in range(k)]
    return jnp.concatenate(cols, axis=-1) @ kernel.reshape(k * c_in, c_out)


__all__ = [
    "conv1d_same",
    "dense_dot_general",
    "dense_matmul",
    "transposed_matmul",
    "use_fast_dense",
]
