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

from larvax.networks import blocks
from larvax.networks import sequence as seq

B, T, F, H = 2, 8, 3, 4
D = 8  # attention / transformer width (2 heads of 4)
ATOL = 1e-5


def _factories():
    def r(i):
        return nnx.Rngs(i)

    return {
        "LSTM": lambda: seq.LSTM(F, H, rngs=r(0)),
        "GRU": lambda: seq.GRU(F, H, rngs=r(1)),
        "RNN(LSTMCell)": lambda: seq.RNN(nnx.LSTMCell(F, H, rngs=r(2))),
        "RNN(GRUCell)": lambda: seq.RNN(nnx.GRUCell(F, H, rngs=r(3))),
        "MinGRU": lambda: seq.MinGRU(F, H, rngs=r(4)),
        "LRU": lambda: seq.LRU(F, H, state_size=5, r_min=0.5, rngs=r(5)),
        "S5": lambda: seq.S5(F, H, state_size=3, dt_min=0.1, dt_max=1.0, rngs=r(6)),
        # chunk_size 3 < T: several chunks and a padded last chunk
        "Mamba": lambda: seq.Mamba(F, H, state_size=3, conv_size=3, chunk_size=3, rngs=r(7)),
        # cache_size 3 < T: the whole-sequence call takes the blocked path
        "SelfAttention(S=3)": lambda: seq.SelfAttention(D, 2, 3, rngs=r(8)),
        "SelfAttention(S=16,norope)": lambda: seq.SelfAttention(D, 2, 16, rope=False, rngs=r(9)),
        "transformer": lambda: blocks.transformer(D, 2, 3, num_layers=2, rngs=r(10)),
        "Stack(PreNorm(Residual))": lambda: blocks.Stack(
            blocks.PreNorm(blocks.Residual(seq.SelfAttention(D, 2, 4, rngs=r(11))), D),
            blocks.PreNorm(blocks.Residual(blocks.FFN(D, 16, rngs=r(12))), D),
        ),
        "Stack(LSTM,MinGRU,FFN)": lambda: blocks.Stack(
            seq.LSTM(F, D, rngs=r(13)),
            blocks.Residual(blocks.PreNorm(seq.MinGRU(D, D, rngs=r(14)), D)),
            blocks.Residual(blocks.PreNorm(blocks.FFN(D, 16, rngs=r(15)), D)),
        ),
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


NB = 16  # rows of every jitted call, so each model compiles only for T = 8, 4 and 1


def _data(seed=0, features=F, rows=NB):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, T, features)).astype(np.float32)
    starts = rng.random((rows, T)) < 0.3
    starts[0, 0] = False  # a row that does not begin with a start flag
    starts[0, 4] = True  # guarantee at least one start in the middle
    return jnp.asarray(x), jnp.asarray(starts)


def _pieces(starts_row):
    """Split [0, T) at start flags: list of (begin, end)."""
    cuts = [0] + [t for t in range(1, T) if starts_row[t]] + [T]
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a]


def test_reset_equivalence(runner):
    name, run = runner
    x, starts = _data(features=run.model.in_features, rows=2)
    # rows 0-1: the sequences with starts; rows 2..: each episode piece on its own,
    # starting from the initial carry, padded with junk (causality) to T steps.
    rows, row_starts, spans = list(x), list(starts), []
    junk = jnp.full((T, x.shape[-1]), 7.0)
    first = jnp.zeros((T,), bool).at[0].set(True)
    for b in range(2):
        for a, e in _pieces(np.asarray(starts[b])):
            spans.append((b, a, e, len(rows)))
            rows.append(junk.at[: e - a].set(x[b, a:e]))
            row_starts.append(first)
    assert len(rows) <= NB
    while len(rows) < NB:
        rows.append(junk)
        row_starts.append(first)
    xs, ss = jnp.stack(rows), jnp.stack(row_starts)
    _, y = run(xs, ss)
    for b, a, e, row in spans:
        np.testing.assert_allclose(y[b, a:e], y[row, : e - a], atol=ATOL, err_msg=name)
    # and the reset did something: without it the steps after t=4 differ
    _, y_noreset = run(xs, ss.at[0].set(False))
    assert not np.allclose(y[0, 4:], y_noreset[0, 4:], atol=1e-4), name


def test_step_equivalence(runner):
    name, run = runner
    x, starts = _data(1, run.model.in_features)
    carry_full, y = run(x, starts)
    carry = run.model.initialize_carry((NB,))
    ys = []
    for t in range(T):
        carry, y_t = run(x[:, t : t + 1], starts[:, t : t + 1], carry)
        ys.append(y_t)
    np.testing.assert_allclose(jnp.concatenate(ys, axis=1), y, atol=ATOL, err_msg=name)
    for a, b in zip(jax.tree.leaves(carry), jax.tree.leaves(carry_full), strict=True):
        np.testing.assert_allclose(a, b, atol=ATOL, err_msg=name)


def test_chunk_equivalence(runner):
    name, run = runner
    x, starts = _data(2, run.model.in_features)
    starts = starts.at[:, 4].set(False)  # the second chunk does not begin with a reset
    _, y = run(x, starts)
    carry, y1 = run(x[:, :4], starts[:, :4])
    carry, y2 = run(x[:, 4:], starts[:, 4:], carry)
    np.testing.assert_allclose(jnp.concatenate([y1, y2], axis=1), y, atol=ATOL, err_msg=name)
    # the carry matters: continuing from the initial carry gives something else
    _, y2_init = run(x[:, 4:], starts[:, 4:])
    assert not np.allclose(y2, y2_init, atol=1e-4), name


def test_output_shapes(runner):
    name, run = runner
    x, starts = _data(features=run.model.in_features)
    carry, y = run(x, starts)
    assert y.shape == (NB, T, run.model.out_features), name
    assert y.dtype == jnp.float32
    init = run.model.initialize_carry((NB,))
    assert jax.tree.structure(carry) == jax.tree.structure(init)
    for leaf in jax.tree.leaves(init):
        assert leaf.shape[0] == NB
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
