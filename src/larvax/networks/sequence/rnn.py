"""Nonlinear recurrent torsos: LSTM, GRU, any Flax NNX cell (``RNN``), and stateless modules.

All follow the sequence-model contract of :mod:`larvax.networks.sequence.base`:
``carry, y = model(x [B, T, F], starts [B, T], carry)``; the carry is reset to zeros by
``jnp.where(start, init, carry)`` before the step that starts an episode is read. They run
a sequential ``lax.scan`` over time. LSTM and GRU have hand-written backward passes
(``jax.custom_vjp``): they project all steps with one matmul before the loop, the reverse
loop carries only the state gradients, and the weight gradients are one matmul each after
it (GRU forward + backward ~4x faster for B=2, T=128, F=H=128; LSTM ~1.2x for the R2D2
learner's B=64, T=84, F=57, H=64). ``jax.jvp`` through LSTM or GRU is therefore not
supported. With plain autodiff, projecting all steps first was ~1.5x *slower* on CPU
(it materialises a ``[T, B, 4H]`` array and its gradient), hence ``RNN`` keeps the
projection inside its cell.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from larvax.networks.fast_ops import transposed_matmul
from larvax.networks.sequence.base import (
    check_batch_shape,
    check_inputs,
    check_positive_int,
    reset_where,
    time_major,
)

# Time steps per loop iteration of the autodiff recurrent scans: the same function, less loop
# overhead for small batches on CPU. The hand-written LSTM and GRU loops are not unrolled
# (faster without, in benchmarks/sequence_models.py and PPO).
SCAN_UNROLL = 4
Array = jax.Array


def _orthogonal_gates(key: Array, hidden: int, gates: int) -> Array:
    """Recurrent kernel [H, gates*H]: one orthogonal [H, H] block per gate."""
    keys = jax.random.split(key, gates)
    init = nnx.initializers.orthogonal()
    return jnp.concatenate([init(k, (hidden, hidden), jnp.float32) for k in keys], axis=1)


class LSTM(nnx.Module):
    """Long short-term memory (Hochreiter & Schmidhuber 1997), reset-aware.

    Per step, with gates ``[i, f, g, o] = x_t W_x + h_{t-1} W_h + b``::

        c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)
        h_t = sigmoid(o) * tanh(c_t)

    Args:
        in_features: F, size of the last axis of ``x``.
        hidden_size: H, size of ``c``, ``h`` and of the output ``y``.
        forget_bias: initial bias of the forget gate (1.0, Jozefowicz et al. 2015).
        rngs: ``nnx.Rngs`` for the parameters.

    Carry: ``(c, h)``, each ``[B, H]``; output ``y = h``: ``[B, T, H]``.
    """

    def __init__(
        self, in_features: int, hidden_size: int, *, forget_bias: float = 1.0, rngs: nnx.Rngs
    ):
        self.in_features = check_positive_int("LSTM", "in_features", in_features)
        self.hidden_size = check_positive_int("LSTM", "hidden_size", hidden_size)
        self.out_features = self.hidden_size
        h = self.hidden_size
        self.input_proj = nnx.Linear(self.in_features, 4 * h, rngs=rngs)
        bias = jnp.zeros((4 * h,), jnp.float32).at[h : 2 * h].set(float(forget_bias))
        self.input_proj.bias[...] = bias
        self.recurrent_kernel = nnx.Param(_orthogonal_gates(rngs.params(), h, 4))

    def initialize_carry(self, batch_shape: tuple[int, ...]) -> tuple[Array, Array]:
        shape = check_batch_shape("LSTM", batch_shape) + (self.hidden_size,)
        return jnp.zeros(shape, jnp.float32), jnp.zeros(shape, jnp.float32)

    def __call__(self, x: Array, starts: Array, carry=None):
        starts = check_inputs("LSTM", x, starts, self.in_features)
        if carry is None:
            carry = self.initialize_carry(x.shape[:1])
        w_x, b_x = self.input_proj.kernel[...], self.input_proj.bias[...]
        c0, h0 = carry
        (c, h), ys = _lstm_sequence(
            w_x, b_x, self.recurrent_kernel[...], time_major(x), time_major(starts), c0, h0
        )
        return (c, h), time_major(ys)


# LSTM over a whole sequence with a hand-written backward pass (``jax.custom_vjp``), as for
# the GRU below: the input projection of all steps is one matmul before the loop; the reverse
# loop carries (dL/dc, dL/dh) with one [B, 4H] x [4H, H] matmul per step and stores the gate
# gradients; the weight and input gradients are one matmul each after it. Automatic
# differentiation of the scan accumulated the weight gradients with one outer product per
# step. Gradients are tested against ``jax.grad`` of a step-by-step reference
# (tests/test_sequence_models.py). Forward-mode differentiation (jax.jvp) is not supported.


def _lstm_loop(w_h, gx, starts, c0, h0, save: bool):
    """The recurrence over precomputed input gates ``gx [T, B, 4H]``; ``starts [T, B]``."""
    hidden = h0.shape[-1]

    def step(carry, inputs):
        c, h = carry
        gx_t, start_t = inputs
        keep = ~start_t[:, None]
        cp = jnp.where(keep, c, 0.0)
        hp = jnp.where(keep, h, 0.0)
        z = gx_t + hp @ w_h
        i = jax.nn.sigmoid(z[:, :hidden])
        f = jax.nn.sigmoid(z[:, hidden : 2 * hidden])
        g = jnp.tanh(z[:, 2 * hidden : 3 * hidden])
        o = jax.nn.sigmoid(z[:, 3 * hidden :])
        c = f * cp + i * g
        h = o * jnp.tanh(c)
        return (c, h), ((h, c, i, f, g, o) if save else h)

    return jax.lax.scan(step, (c0, h0), (gx, starts))


@jax.custom_vjp
def _lstm_sequence(w_x, b_x, w_h, x, starts, c0, h0):
    """``((c_T, h_T), ys [T, B, H])`` of the LSTM over time-major ``x [T, B, F]``."""
    return _lstm_loop(w_h, x @ w_x + b_x, starts, c0, h0, save=False)


def _lstm_sequence_fwd(w_x, b_x, w_h, x, starts, c0, h0):
    last, (ys, cs, i, f, g, o) = _lstm_loop(w_h, x @ w_x + b_x, starts, c0, h0, save=True)
    return (last, ys), (w_x, w_h, x, starts, c0, h0, ys, cs, i, f, g, o)


def _lstm_sequence_bwd(residuals, cotangents):
    w_x, w_h, x, starts, c0, h0, ys, cs, i, f, g, o = residuals
    (d_c_last, d_h_last), d_ys = cotangents
    # the state entering each step, after the reset (zero where a step starts)
    reset = starts[..., None]
    h_prev = jnp.where(reset, 0.0, jnp.concatenate([h0[None], ys[:-1]], axis=0))
    c_prev = jnp.where(reset, 0.0, jnp.concatenate([c0[None], cs[:-1]], axis=0))
    w_h_t = w_h.T

    def step(carry, inputs):
        d_c, d_h = carry
        d_y, cp, c_t, i_t, f_t, g_t, o_t, start_t = inputs
        dh = d_y + d_h  # dL/dh_t
        tc = jnp.tanh(c_t)
        d_o = dh * tc * o_t * (1.0 - o_t)
        dc = d_c + dh * o_t * (1.0 - tc * tc)  # dL/dc_t
        d_f = dc * cp * f_t * (1.0 - f_t)
        d_i = dc * g_t * i_t * (1.0 - i_t)
        d_g = dc * i_t * (1.0 - g_t * g_t)
        dz = jnp.concatenate([d_i, d_f, d_g, d_o], axis=-1)  # dL/d(gates) [B, 4H]
        keep = ~start_t[:, None]  # a reset step passes no gradient to the previous state
        return (jnp.where(keep, dc * f_t, 0.0), jnp.where(keep, dz @ w_h_t, 0.0)), dz

    (d_c0, d_h0), dz = jax.lax.scan(
        step,
        (d_c_last, d_h_last),
        (d_ys, c_prev, cs, i, f, g, o, starts),
        reverse=True,
    )
    d_w_h = jnp.einsum("tbh,tbk->hk", h_prev, dz)
    d_w_x = jnp.einsum("tbf,tbk->fk", x, dz)
    return d_w_x, dz.sum(axis=(0, 1)), d_w_h, dz @ w_x.T, None, d_c0, d_h0


_lstm_sequence.defvjp(_lstm_sequence_fwd, _lstm_sequence_bwd)


class GRU(nnx.Module):
    """Gated recurrent unit (Cho et al. 2014, the formulation of PyTorch/Flax), reset-aware.

    Per step::

        r = sigmoid(x W_xr + b_xr + h W_hr)
        z = sigmoid(x W_xz + b_xz + h W_hz)
        n = tanh(x W_xn + b_xn + r * (h W_hn + b_hn))
        h_t = (1 - z) * n + z * h_{t-1}

    Args:
        in_features: F; hidden_size: H; rngs: ``nnx.Rngs``.

    Carry: ``h`` ``[B, H]``; output ``y = h``: ``[B, T, H]``.
    """

    def __init__(self, in_features: int, hidden_size: int, *, rngs: nnx.Rngs):
        self.in_features = check_positive_int("GRU", "in_features", in_features)
        self.hidden_size = check_positive_int("GRU", "hidden_size", hidden_size)
        self.out_features = self.hidden_size
        h = self.hidden_size
        self.input_proj = nnx.Linear(self.in_features, 3 * h, rngs=rngs)
        self.recurrent_kernel = nnx.Param(_orthogonal_gates(rngs.params(), h, 3))
        self.recurrent_bias = nnx.Param(jnp.zeros((h,), jnp.float32))

    def initialize_carry(self, batch_shape: tuple[int, ...]) -> Array:
        shape = check_batch_shape("GRU", batch_shape) + (self.hidden_size,)
        return jnp.zeros(shape, jnp.float32)

    def __call__(self, x: Array, starts: Array, carry=None):
        starts = check_inputs("GRU", x, starts, self.in_features)
        if carry is None:
            carry = self.initialize_carry(x.shape[:1])
        w_x, b_x = self.input_proj.kernel[...], self.input_proj.bias[...]
        carry, ys = _gru_sequence(
            w_x, b_x, self.recurrent_kernel[...], self.recurrent_bias[...],
            time_major(x), time_major(starts), carry,
        )  # fmt: skip
        return carry, time_major(ys)


# GRU over a whole sequence with a hand-written backward pass (``jax.custom_vjp``). The
# forward pass is the recurrence of ``GRU``; the input projection of all steps is one
# matmul before the loop. Automatic differentiation of the scan would accumulate the
# weight gradients with one small outer product per step inside the reverse loop; here
# the reverse loop only carries dL/dh (one [B, 3H] x [3H, H] matmul per step) and stores
# the gate gradients, and the weight and input gradients are one matmul each after it
# (PPO on CartPole, GRU(128), 2 sequences x 128 steps per minibatch: see the README).
# Forward-mode differentiation (jax.jvp) of this function is not supported.


def _gru_loop(w_h, b_hn, gx, starts, h0, save: bool):
    """The recurrence over precomputed input gates ``gx [T, B, 3H]``; ``starts [T, B]``."""
    hidden = h0.shape[-1]

    def step(h, inputs):
        gx_t, start_t = inputs
        hp = jnp.where(start_t[:, None], jnp.zeros_like(h), h)
        hg = hp @ w_h
        r = jax.nn.sigmoid(gx_t[:, :hidden] + hg[:, :hidden])
        z = jax.nn.sigmoid(gx_t[:, hidden : 2 * hidden] + hg[:, hidden : 2 * hidden])
        hn = hg[:, 2 * hidden :] + b_hn
        n = jnp.tanh(gx_t[:, 2 * hidden :] + r * hn)
        h = (1.0 - z) * n + z * hp
        return h, ((h, r, z, n, hn) if save else h)

    return jax.lax.scan(step, h0, (gx, starts))


@jax.custom_vjp
def _gru_sequence(w_x, b_x, w_h, b_hn, x, starts, h0):
    """``(h_T, ys [T, B, H])`` of the GRU over time-major ``x [T, B, F]``, ``starts [T, B]``."""
    return _gru_loop(w_h, b_hn, x @ w_x + b_x, starts, h0, save=False)


def _gru_sequence_fwd(w_x, b_x, w_h, b_hn, x, starts, h0):
    h_last, (ys, r, z, n, hn) = _gru_loop(w_h, b_hn, x @ w_x + b_x, starts, h0, save=True)
    return (h_last, ys), (w_x, w_h, x, starts, h0, ys, r, z, n, hn)


def _gru_sequence_bwd(residuals, cotangents):
    w_x, w_h, x, starts, h0, ys, r, z, n, hn = residuals
    d_h_last, d_ys = cotangents
    # h entering each step, after the reset: h_{t-1} (h0 for t = 0), zero where a step starts
    h_prev = jnp.concatenate([h0[None], ys[:-1]], axis=0)
    h_prev = jnp.where(starts[..., None], jnp.zeros_like(h_prev), h_prev)
    w_h_t = w_h.T

    def step(d_h, inputs):
        d_y, hp, r_t, z_t, n_t, hn_t, start_t = inputs
        g = d_y + d_h  # dL/dh_t
        d_n = g * (1.0 - z_t) * (1.0 - n_t * n_t)  # through tanh
        d_r = d_n * hn_t * r_t * (1.0 - r_t)  # through sigmoid
        d_z = g * (hp - n_t) * z_t * (1.0 - z_t)
        d_hg = jnp.concatenate([d_r, d_z, d_n * r_t], axis=-1)
        d_hp = g * z_t + d_hg @ w_h_t
        d_h = jnp.where(start_t[:, None], jnp.zeros_like(d_hp), d_hp)
        return d_h, (d_r, d_z, d_n)

    d_h0, (d_r, d_z, d_n) = jax.lax.scan(
        step, d_h_last, (d_ys, h_prev, r, z, n, hn, starts), reverse=True
    )
    d_gx = jnp.concatenate([d_r, d_z, d_n], axis=-1)  # dL/d(x W_x + b_x)  [T, B, 3H]
    d_hn = d_n * r
    d_hg = jnp.concatenate([d_r, d_z, d_hn], axis=-1)  # dL/d(h W_h)
    d_w_h = transposed_matmul(h_prev, d_hg)
    d_w_x = transposed_matmul(x, d_gx)
    return (
        d_w_x,
        d_gx.sum(axis=(0, 1)),
        d_w_h,
        d_hn.sum(axis=(0, 1)),
        d_gx @ w_x.T,
        None,
        d_h0,
    )


_gru_sequence.defvjp(_gru_sequence_fwd, _gru_sequence_bwd)


class RNN(nnx.Module):
    """Turn a Flax NNX recurrent cell into a reset-aware torso.

    ``cell`` follows the ``flax.nnx`` cell convention: ``carry, y = cell(carry, x_t)`` with
    ``x_t [B, F]``, and ``cell.initialize_carry(input_shape, rngs)``, as do
    ``nnx.LSTMCell``, ``nnx.OptimizedLSTMCell``, ``nnx.GRUCell`` and ``nnx.SimpleCell``.
    The initial carry is the cell's own ``initialize_carry`` (zeros for the built-in cells;
    it must not depend on the random key, so a fixed key is passed).

    Example: ``RNN(nnx.LSTMCell(64, 128, rngs=nnx.Rngs(0)))``; output ``[B, T, 128]``.
    """

    def __init__(self, cell: nnx.Module):
        if not (callable(cell) and hasattr(cell, "initialize_carry")):
            raise ValueError(
                f"RNN.cell must be a Flax NNX recurrent cell with initialize_carry and "
                f"__call__(carry, x) (e.g. nnx.LSTMCell), got {type(cell).__name__}"
            )
        self.cell = cell
        self.in_features = getattr(cell, "in_features", None)
        self.out_features = getattr(cell, "hidden_features", None)

    def initialize_carry(self, batch_shape: tuple[int, ...]) -> Any:
        shape = check_batch_shape("RNN", batch_shape)
        features = self.in_features if self.in_features is not None else 1
        return self.cell.initialize_carry(shape + (features,), nnx.Rngs(carry=0))

    def __call__(self, x: Array, starts: Array, carry=None):
        starts = check_inputs("RNN", x, starts, self.in_features)
        if carry is None:
            carry = self.initialize_carry(x.shape[:1])
        init = self.initialize_carry(x.shape[:1])
        graphdef, state = nnx.split(self.cell)

        def step(carry, inputs):
            x_t, start_t = inputs
            cell = nnx.merge(graphdef, state)
            carry = reset_where(start_t, init, carry)
            carry, y = cell(carry, x_t)
            return carry, y

        carry, ys = jax.lax.scan(
            step, carry, (time_major(x), time_major(starts)), unroll=SCAN_UNROLL
        )
        return carry, time_major(ys)


class SequenceModelWrapper(nnx.Module):
    """Lift a stateless module applied per step (``nnx.Linear``, an MLP) into a torso.

    ``y[:, t] = module(x[:, t])``; the module is applied once to ``x`` reshaped to
    ``[B*T, ...]`` (so it may expect any per-step shape) and the result reshaped back to
    ``[B, T, ...]``. The carry is the empty tuple ``()``; starts have no effect.
    """

    def __init__(self, module: Any, out_features: int | None = None):
        if not callable(module):
            raise ValueError(
                f"SequenceModelWrapper.module must be callable, got {type(module).__name__}"
            )
        self.module = module
        self.in_features = getattr(module, "in_features", None)
        self.out_features = (
            out_features if out_features is not None else getattr(module, "out_features", None)
        )

    def initialize_carry(self, batch_shape: tuple[int, ...]) -> tuple:
        check_batch_shape("SequenceModelWrapper", batch_shape)
        return ()

    def __call__(self, x: Array, starts: Array, carry=()):
        if x.ndim < 2 or tuple(starts.shape) != tuple(x.shape[:2]):
            raise ValueError(
                f"SequenceModelWrapper: x must be [B, T, ...] and starts [B, T]; got x "
                f"{tuple(x.shape)}, starts {tuple(starts.shape)}"
            )
        b, t = x.shape[:2]
        y = self.module(x.reshape((b * t,) + x.shape[2:]))
        return (), y.reshape((b, t) + y.shape[1:])
