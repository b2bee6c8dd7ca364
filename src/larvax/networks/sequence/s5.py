"""S5: simplified structured state-space layer (Smith et al. 2023), reset-aware."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from larvax.networks.sequence.base import (
    check_batch_shape,
    check_inputs,
    check_positive_float,
    check_positive_int,
)
from larvax.networks.sequence.scan import (
    check_scan_method,
    linear_scan_fused_packed,
    scan_function,
)

Array = jax.Array


def hippo_legs(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """HiPPO-LegS matrices (Gu et al. 2020): ``A [n, n]``, low-rank ``P [n]``, ``B [n]``.

    ``A[i, j] = -sqrt(2i+1) sqrt(2j+1)`` for ``i > j``, ``-(i+1)`` for ``i = j``, 0 above;
    ``P[i] = sqrt(i + 1/2)``, ``B[i] = sqrt(2i+1)``. ``A + P P^T`` is normal (HiPPO-N).
    """
    q = np.sqrt(2.0 * np.arange(n) + 1.0)
    a = -np.tril(np.outer(q, q), -1) - np.diag(np.arange(n) + 1.0)
    p = np.sqrt(np.arange(n) + 0.5)
    return a, p, q


def hippo_n_eigendecomposition(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues ``Lambda [n]`` and unitary eigenvectors ``V [n, n]`` of HiPPO-N.

    ``S = A + P P^T = -1/2 I + K`` with ``K`` skew-symmetric, so
    ``Lambda = -1/2 + i w`` where ``w, V = eigh(-i K)`` (Smith et al. 2023, Sec. 4.1);
    eigenvalues come in conjugate pairs, ``w`` ascending.
    """
    a, p, _ = hippo_legs(n)
    s = a + np.outer(p, p)
    k = s - np.diag(np.diag(s))
    w, v = np.linalg.eigh(-1j * k)
    lam = np.mean(np.diag(s)) + 1j * w
    return lam, v


class S5(nnx.Module):
    """S5 layer: a MIMO diagonal complex SSM, ZOH-discretised with a learned step.

    Smith, Warrington & Linderman 2023, "Simplified State Space Layers for Sequence
    Modeling". Continuous system ``x' = Lambda x + B~ u``, ``y = C~ x + D u`` with
    ``Lambda`` the HiPPO-N eigenvalues (diagonalised HiPPO-LegS), ``B~ = V^-1 B``,
    ``C~ = C V``. Zero-order hold with per-state step ``Delta = exp(log_step)``::

        Lambda_bar = exp(Lambda Delta),   B_bar = (Lambda_bar - 1) / Lambda * B~
        h_t = Lambda_bar * h_{t-1} + B_bar u_t
        y_t = 2 Re(C~ h_t) + D u_t

    Conjugate symmetry (paper App. C.1): of the ``2N`` HiPPO-N eigenvalues, the ``N`` with
    negative imaginary part are kept and the read-out doubles the real part.
    ``Re(Lambda)`` is clipped to ``<= -1e-4`` for stability; ``log_step`` is initialised
    uniformly in ``[log dt_min, log dt_max]``; ``B``, ``C`` lecun-normal real matrices
    projected onto the eigenbasis.

    Deviation: ``D`` is a dense real ``[F, H]`` matrix (the paper's is diagonal with
    ``F = H``), so input and output sizes may differ.

    Args:
        in_features: F; hidden_size: H (output size).
        state_size: N, complex states kept (HiPPO order 2N); default H.
        dt_min, dt_max: range of the initial discretisation step (dimensionless,
            ``0 < dt_min <= dt_max``).
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
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        scan: str = "fused",
        rngs: nnx.Rngs,
    ):
        self.in_features = check_positive_int("S5", "in_features", in_features)
        self.scan = check_scan_method("S5", scan)
        self.hidden_size = check_positive_int("S5", "hidden_size", hidden_size)
        self.state_size = check_positive_int(
            "S5", "state_size", hidden_size if state_size is None else state_size
        )
        self.out_features = self.hidden_size
        dt_min = check_positive_float("S5", "dt_min", dt_min)
        dt_max = check_positive_float("S5", "dt_max", dt_max)
        if dt_min > dt_max:
            raise ValueError(f"S5.dt_min must be <= S5.dt_max, got {dt_min!r} > {dt_max!r}")
        f, h, n = self.in_features, self.hidden_size, self.state_size
        lam, v = hippo_n_eigendecomposition(2 * n)
        lam, v = lam[:n], v[:, :n]  # conjugate symmetry: keep one of each pair
        k = jax.random.split(rngs.params(), 4)
        b = np.asarray(jax.random.normal(k[0], (2 * n, f)), np.float64) / math.sqrt(f)
        c = np.asarray(jax.random.normal(k[1], (h, 2 * n)), np.float64) / math.sqrt(2 * n)
        b_tilde = (v.conj().T @ b).T  # [F, N]
        c_tilde = (c @ v).T  # [N, H]
        self.Lambda_re = nnx.Param(jnp.asarray(lam.real, jnp.float32))
        self.Lambda_im = nnx.Param(jnp.asarray(lam.imag, jnp.float32))
        self.B_re = nnx.Param(jnp.asarray(b_tilde.real, jnp.float32))
        self.B_im = nnx.Param(jnp.asarray(b_tilde.imag, jnp.float32))
        self.C_re = nnx.Param(jnp.asarray(c_tilde.real, jnp.float32))
        self.C_im = nnx.Param(jnp.asarray(c_tilde.imag, jnp.float32))
        self.D = nnx.Param(jax.random.normal(k[2], (f, h)) / math.sqrt(f))
        u = jax.random.uniform(k[3], (n,))
        self.log_step = nnx.Param(math.log(dt_min) + u * (math.log(dt_max) - math.log(dt_min)))

    def initialize_carry(self, batch_shape: tuple[int, ...]) -> Array:
        shape = check_batch_shape("S5", batch_shape) + (self.state_size,)
        return jnp.zeros(shape, jnp.complex64)

    def discretize(self) -> tuple[Array, Array]:
        """Zero-order hold: ``Lambda_bar [N]`` and ``B_bar [F, N]`` (complex64)."""
        lam = jnp.minimum(self.Lambda_re[...], -1e-4) + 1j * self.Lambda_im[...]
        step = jnp.exp(self.log_step[...])
        lam_bar = jnp.exp(lam * step)
        b_bar = ((lam_bar - 1.0) / lam) * (self.B_re[...] + 1j * self.B_im[...])
        return lam_bar, b_bar

    def __call__(self, x: Array, starts: Array, carry=None):
        starts = check_inputs("S5", x, starts, self.in_features)
        if carry is None:
            carry = self.initialize_carry(x.shape[:1])
        lam_bar, b_bar = self.discretize()
        if self.scan == "fused":
            # the same function with the state packed as real [re | im] halves
            carry = jnp.asarray(carry, jnp.complex64)
            h = linear_scan_fused_packed(
                jnp.concatenate([lam_bar.real, lam_bar.imag]),
                x @ jnp.concatenate([b_bar.real, b_bar.imag], axis=1),
                starts,
                jnp.concatenate([carry.real, carry.imag], axis=-1),
            )
            w_out = 2.0 * jnp.concatenate([self.C_re[...], -self.C_im[...]], axis=0)
            y = h @ w_out + x @ self.D[...]
            n = self.state_size
            return jax.lax.complex(h[:, -1, :n], h[:, -1, n:]), y
        bu = x @ b_bar.real + 1j * (x @ b_bar.imag)  # [B, T, N]
        h = scan_function(self.scan)(lam_bar, bu, starts, carry)
        y = 2.0 * (h.real @ self.C_re[...] - h.imag @ self.C_im[...]) + x @ self.D[...]
        return h[:, -1], y
