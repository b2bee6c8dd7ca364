"""Sequence-model contract: reset, step and chunk equivalence for every torso.

Reset equivalence uses causality: each episode piece is run on its own (from the initial
carry, start flag at its first step) as one row of a batch padded to the same length T;
the first ``len(piece)`` outputs of that row are the piece's outputs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from larvax.networks import sequence as seq

B, T, F, H = 2, 8, 3, 4
ATOL = 1e-5


def _factories():
    return {
        "LSTM": lambda: seq.LSTM(F, H, rngs=nnx.Rngs(0)),
        "GRU": lambda: seq.GRU(F, H, rngs=nnx.Rngs(1)),
        "RNN(LSTMCell)": lambda: seq.RNN(nnx.LSTMCell(F, H, rngs=nnx.Rngs(2))),
        "RNN(GRUCell)": lambda: seq.RNN(nnx.GRUCell(F, H, rngs=nnx.Rngs(3))),
    }


FACTORIES = _factories()


class Runner:
    """A model with one jitted apply function (re-traced once per input shape)."""

    def __init__(self, model):
        self.model = model
        graphdef, state = nnx.split(model)
        self.state = state

        @jax.jit
        def apply(state, x, starts, carry):
            return nnx.merge(graphdef, state)(x, starts, carry)

        self._apply = apply

    def __call__(self, x, starts, carry=None):
        if carry is None:
            carry = self.model.initialize_carry((x.shape[0],))
        return self._apply(self.state, x, starts, carry)


@pytest.fixture(scope="module", params=sorted(FACTORIES))
def runner(request):
    return request.param, Runner(FACTORIES[request.param]())


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, T, F)).astype(np.float32)
    starts = rng.random((B, T)) < 0.3
    starts[0, 0] = False  # a row that does not begin with a start flag
    starts[0, 4] = True  # guarantee at least one start in the middle
    return jnp.asarray(x), jnp.asarray(starts)


def _pieces(starts_row):
    """Split [0, T) at start flags: list of (begin, end)."""
    cuts = [0] + [t for t in range(1, T) if starts_row[t]] + [T]
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a]


def test_reset_equivalence(runner):
    name, run = runner
    x, starts = _data()
    _, y = run(x, starts)
    rows, spans = [], []
    junk = jnp.full((T, F), 7.0)
    for b in range(B):
        for a, e in _pieces(np.asarray(starts[b])):
            rows.append(junk.at[: e - a].set(x[b, a:e]))
            spans.append((b, a, e))
    xp = jnp.stack(rows)
    sp = jnp.zeros((len(rows), T), bool).at[:, 0].set(True)
    _, yp = run(xp, sp)
    for i, (b, a, e) in enumerate(spans):
        np.testing.assert_allclose(y[b, a:e], yp[i, : e - a], atol=ATOL, err_msg=name)
    # and the pieces really differ from running through (the reset did something)
    _, y_noreset = run(x, jnp.zeros_like(starts))
    assert not np.allclose(y[0, 4:], y_noreset[0, 4:], atol=1e-4), name


def test_step_equivalence(runner):
    name, run = runner
    x, starts = _data(1)
    carry_full, y = run(x, starts)
    carry = run.model.initialize_carry((B,))
    ys = []
    for t in range(T):
        carry, y_t = run(x[:, t : t + 1], starts[:, t : t + 1], carry)
        ys.append(y_t)
    np.testing.assert_allclose(jnp.concatenate(ys, axis=1), y, atol=ATOL, err_msg=name)
    for a, b in zip(jax.tree.leaves(carry), jax.tree.leaves(carry_full), strict=True):
        np.testing.assert_allclose(a, b, atol=ATOL, err_msg=name)


def test_chunk_equivalence(runner):
    name, run = runner
    x, starts = _data(2)
    starts = starts.at[:, 5].set(False)  # the second chunk does not begin with a reset
    _, y = run(x, starts)
    carry, y1 = run(x[:, :5], starts[:, :5])
    carry, y2 = run(x[:, 5:], starts[:, 5:], carry)
    np.testing.assert_allclose(jnp.concatenate([y1, y2], axis=1), y, atol=ATOL, err_msg=name)
    # the carry matters: continuing from the initial carry gives something else
    _, y2_init = run(x[:, 5:], starts[:, 5:])
    assert not np.allclose(y2, y2_init, atol=1e-4), name


def test_output_shapes(runner):
    name, run = runner
    x, starts = _data()
    carry, y = run(x, starts)
    assert y.shape == (B, T, run.model.out_features), name
    assert y.dtype == jnp.float32
    init = run.model.initialize_carry((B,))
    assert jax.tree.structure(carry) == jax.tree.structure(init)
    for leaf in jax.tree.leaves(init):
        assert leaf.shape[0] == B
        np.testing.assert_array_equal(leaf, 0)


# ----------------------------------------------------------------------------- references


def test_lstm_matches_hand_written_step():
    model = seq.LSTM(F, H, rngs=nnx.Rngs(5))
    x = jax.random.normal(jax.random.key(0), (1, 2, F))
    wx, bx = model.input_proj.kernel[...], model.input_proj.bias[...]
    wh = model.recurrent_kernel[...]
    c = h = jnp.zeros((1, H))
    outs = []
    for t in range(2):
        z = x[:, t] @ wx + bx + h @ wh
        i, f, g, o = z[:, :H], z[:, H : 2 * H], z[:, 2 * H : 3 * H], z[:, 3 * H :]
        c = 1 / (1 + jnp.exp(-f)) * c + 1 / (1 + jnp.exp(-i)) * jnp.tanh(g)
        h = 1 / (1 + jnp.exp(-o)) * jnp.tanh(c)
        outs.append(h)
    _, y = model(x, jnp.zeros((1, 2), bool))
    np.testing.assert_allclose(y[0], jnp.concatenate(outs), atol=ATOL)
    np.testing.assert_allclose(bx[H : 2 * H], 1.0)  # forget-gate bias


def test_rnn_wrapper_matches_cell_loop():
    cell = nnx.GRUCell(F, H, rngs=nnx.Rngs(6))
    x = jax.random.normal(jax.random.key(1), (B, 3, F))
    carry = jnp.zeros((B, H))
    outs = []
    for t in range(3):
        carry, y_t = cell(carry, x[:, t])
        outs.append(y_t)
    _, y = seq.RNN(cell)(x, jnp.zeros((B, 3), bool))
    np.testing.assert_allclose(y, jnp.stack(outs, axis=1), atol=ATOL)


def test_sequence_model_wrapper_is_per_step():
    lin = nnx.Linear(F, H, rngs=nnx.Rngs(7))
    model = seq.SequenceModelWrapper(lin)
    x, starts = _data()
    carry, y = model(x, starts, model.initialize_carry((B,)))
    assert carry == ()
    np.testing.assert_allclose(y, x @ lin.kernel[...] + lin.bias[...], atol=ATOL)
    assert model.out_features == H


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: seq.LSTM(0, 4, rngs=nnx.Rngs(0)), r"LSTM\.in_features.*positive int.*0"),
        (lambda: seq.LSTM(3, -2, rngs=nnx.Rngs(0)), r"LSTM\.hidden_size.*-2"),
        (lambda: seq.GRU(3, 2.5, rngs=nnx.Rngs(0)), r"GRU\.hidden_size.*2\.5"),
        (lambda: seq.RNN("lstm"), r"RNN\.cell.*str"),
        (lambda: seq.SequenceModelWrapper(3), r"SequenceModelWrapper\.module.*int"),
    ],
)
def test_bad_constructor_arguments(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_bad_input_shapes():
    model = seq.LSTM(F, H, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"in_features=3"):
        model(jnp.zeros((B, T, F + 1)), jnp.zeros((B, T), bool))
    with pytest.raises(ValueError, match=r"starts must have shape \[B, T\]"):
        model(jnp.zeros((B, T, F)), jnp.zeros((B, T + 1), bool))
    with pytest.raises(ValueError, match=r"\[B, T, F\]"):
        model(jnp.zeros((T, F)), jnp.zeros((B, T), bool))
    with pytest.raises(ValueError, match=r"batch_shape"):
        model.initialize_carry((0,))
