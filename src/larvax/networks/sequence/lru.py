"""Linear Recurrent Unit (Orvieto et al. 2023), reset-aware and parallel in time."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from larvax.networks.sequence.base import (
    check_batch_shape,
    check_inputs,
    check_positive_int,
)
from larvax.networks.sequence.scan import (
    check_scan_method,
    linear_scan_fused_packed,
    scan_function,
)

Array = jax.Array


class LRU(nnx.Module):
    """Linear Recurrent Unit: a complex diagonal linear RNN with a real read-out.

    Orvieto et al. 2023, "Resurrecting Recurrent Neural Networks for Long Sequences"::

        lambda = exp(-exp(nu_log) + i exp(theta_log))          (exponential parameterisation)
        h_t = lambda * h_{t-1} + gamma * (B x_t),   gamma = exp(gamma_log) = sqrt(1 - |lambda|^2)
        y_t = Re(C h_t) + D x_t

    Ring initialisation (Sec. 3.3): ``|lambda|`` uniform on the ring ``[r_min, r_max]``
    (uniform in area), phase uniform in ``[0, max_phase]``; ``gamma_log`` is initialised
    to ``log sqrt(1 - |lambda|^2)`` and then learned. ``B``, ``C`` are complex Glorot-like
    normal (``1/sqrt(2 F)`` and ``1/sqrt(N)`` per real/imaginary part).

    Deviation: the paper's ``D`` is diagonal (input size = output size); here ``D`` is a
    real dense ``[F, H]`` matrix so that ``in_features`` and ``hidden_size`` may differ.

    Args:
        in_features: F; hidden_size: H (output size).
        state_size: N, complex state size (default H).
        r_min, r_max: ring radii of the eigenvalue initialisation, ``0 <= r_min < r_max <= 1``.
        max_phase: largest initial eigenvalue phase, rad (default 2 pi).
        scan: ``"fused"`` (default: a time loop with a hand-written reverse-recurrence
            backward pass, state as float32 (re, im) pairs; fastest on CPU),
            ``"associative"`` (parallel in time, for accelerators) or ``"sequential"``
            (the ``lax.scan`` reference); all compute the same function.
        rngs: ``nnx.Rngs``.

    Carry: ``h`` ``[B, N]`` complex64; output ``y``: ``[B, T, H]`` float32.
    """

    def __init__(
        self,
        in_features: int,
        hidden_size: int,
        *,
        state_size: int | None = None,
        r_min: float = 0.0,
        r_max: float = 1.0,
        max_phase: float = 2 * math.pi,
        scan: str = "fused",
        rngs: nnx.Rngs,
    ):
        self.in_features = check_positive_int("LRU", "in_features", in_features)
        self.scan = check_scan_method("LRU", scan)
        self.hidden_size = check_positive_int("LRU", "hidden_size", hidden_size)
        self.state_size = check_positive_int(
            "LRU", "state_size", hidden_size if state_size is None else state_size
        )
        self.out_features = self.hidden_size
        if not (0.0 <= float(r_min) < float(r_max) <= 1.0):
            raise ValueError(
                f"LRU.r_min, LRU.r_max must satisfy 0 <= r_min < r_max <= 1, got "
                f"r_min={r_min!r}, r_max={r_max!r}"
            )
        if not (float(max_phase) > 0.0):
            raise ValueError(f"LRU.max_phase must be > 0 (rad), got {max_phase!r}")
        f, h, n = self.in_features, self.hidden_size, self.state_size
        k = jax.random.split(rngs.params(), 7)
        u1 = jax.random.uniform(k[0], (n,))
        u2 = jax.random.uniform(k[1], (n,))
        # |lambda|^2 uniform on [r_min^2, r_max^2]; nu = -log|lambda|, kept > 0.
        nu = -0.5 * jnp.log(u1 * (r_max**2 - r_min**2) + r_min**2)
        nu = jnp.maximum(nu, 1e-7)
        theta = jnp.maximum(max_phase * u2, 1e-7)
        self.nu_log = nnx.Param(jnp.log(nu))
        self.theta_log = nnx.Param(jnp.log(theta))
        mod = jnp.exp(-nu)
        self.gamma_log = nnx.Param(jnp.log(jnp.sqrt(jnp.maximum(1.0 - mod**2, 1e-12))))
        self.B_re = nnx.Param(jax.random.normal(k[2], (f, n)) / math.sqrt(2 * f))
        self.B_im = nnx.Param(jax.random.normal(k[3], (f, n)) / math.sqrt(2 * f))
        self.C_re = nnx.Param(jax.random.normal(k[4], (n, h)) / math.sqrt(n))
        self.C_im = nnx.Param(jax.random.normal(k[5], (n, h)) / math.sqrt(n))
        self.D = nnx.Param(jax.random.normal(k[6], (f, h)) / math.sqrt(f))

    def initialize_carry(self, batch_shape: tuple[int, ...]) -> Array:
        shape = check_batch_shape("LRU", batch_shape) + (self.state_size,)
        return jnp.zeros(shape, jnp.complex64)

    def eigenvalues(self) -> Array:
        """The diagonal recurrence ``lambda`` [N], complex64, ``|lambda| < 1``."""
        return jnp.exp(-jnp.exp(self.nu_log[...]) + 1j * jnp.exp(self.theta_log[...]))

    def __call__(self, x: Array, starts: Array, carry=None):
        starts = check_inputs("LRU", x, starts, self.in_features)
        if carry is None:
            carry = self.initialize_carry(x.shape[:1])
        gamma = jnp.exp(self.gamma_log[...])
        if self.scan == "fused":
            # the same function with the state packed as real [re | im] halves: one
            # matmul in (gamma folded into B), the recurrence in float32, one matmul out
            mod = jnp.exp(-jnp.exp(self.nu_log[...]))
            phase = jnp.exp(self.theta_log[...])
            lam = jnp.concatenate([mod * jnp.cos(phase), mod * jnp.sin(phase)])
            w_in = jnp.concatenate([self.B_re[...], self.B_im[...]], axis=1)
            w_out = jnp.concatenate([self.C_re[...], -self.C_im[...]], axis=0)
            carry = jnp.asarray(carry, jnp.complex64)
            h0 = jnp.concatenate([carry.real, carry.imag], axis=-1)
            h = linear_scan_fused_packed(lam, x @ (w_in * jnp.tile(gamma, 2)), starts, h0)
            y = h @ w_out + x @ self.D[...]
            n = self.state_size
            return jax.lax.complex(h[:, -1, :n], h[:, -1, n:]), y
        bx = (x @ self.B_re[...]) + 1j * (x @ self.B_im[...])  # [B, T, N]
        h = scan_function(self.scan)(self.eigenvalues(), gamma * bx, starts, carry)
        y = h.real @ self.C_re[...] - h.imag @ self.C_im[...] + x @ self.D[...]
        return h[:, -1], y
