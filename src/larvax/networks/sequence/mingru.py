"""minGRU (Feng et al. 2024, "Were RNNs all we needed?"), reset-aware and parallel in time."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from larvax.networks.sequence.base import (
    check_batch_shape,
    check_inputs,
    check_positive_int,
)
from larvax.networks.sequence.scan import check_scan_method, scan_function

Array = jax.Array


class MinGRU(nnx.Module):
    """minGRU: a GRU whose gates depend on the input only, so time is a linear scan.

    Feng et al. 2024, Sec. 3.1.2::

        z_t = sigmoid(Linear_z(x_t))
        h~_t = Linear_h(x_t)
        h_t = (1 - z_t) * h_{t-1} + z_t * h~_t

    computed with :func:`larvax.networks.sequence.scan.linear_scan` (``a = 1 - z``,
    ``b = z * h~``). ``1 - z`` is evaluated as ``sigmoid(-k)`` to avoid cancellation.

    Args:
        in_features: F; hidden_size: H (output size).
        scan: ``"fused"`` (default: a time loop with a hand-written reverse-recurrence
            backward pass; fastest on CPU), ``"associative"`` (parallel in time, for
            accelerators) or ``"sequential"`` (the ``lax.scan`` reference); all compute the
            same function.
        rngs: ``nnx.Rngs``.

    Carry: ``h`` ``[B, H]``; output ``y = h``: ``[B, T, H]``.
    """

    def __init__(self, in_features: int, hidden_size: int, *, scan: str = "fused", rngs: nnx.Rngs):
        self.in_features = check_positive_int("MinGRU", "in_features", in_features)
        self.scan = check_scan_method("MinGRU", scan)
        self.hidden_size = check_positive_int("MinGRU", "hidden_size", hidden_size)
        self.out_features = self.hidden_size
        self.proj = nnx.Linear(self.in_features, 2 * self.hidden_size, rngs=rngs)

    def initialize_carry(self, batch_shape: tuple[int, ...]) -> Array:
        shape = check_batch_shape("MinGRU", batch_shape) + (self.hidden_size,)
        return jnp.zeros(shape, jnp.float32)

    def __call__(self, x: Array, starts: Array, carry=None):
        starts = check_inputs("MinGRU", x, starts, self.in_features)
        if carry is None:
            carry = self.initialize_carry(x.shape[:1])
        k, h_tilde = jnp.split(self.proj(x), 2, axis=-1)
        a = jax.nn.sigmoid(-k)  # 1 - z
        b = jax.nn.sigmoid(k) * h_tilde  # z * h~
        h = scan_function(self.scan)(a, b, starts, carry)
        return h[:, -1], h
