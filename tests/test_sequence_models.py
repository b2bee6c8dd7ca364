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
        # linear models take scan="fused" (default) | "associative" | "sequential";
        # Mamba "associative" | "sequential" (default)
        "MinGRU": lambda scan="fused": seq.MinGRU(F, H, scan=scan, rngs=r(4)),
        "LRU": lambda scan="fused": seq.LRU(F, H, state_size=5, r_min=0.5, scan=scan, rngs=r(5)),
        "S5": lambda scan="fused": seq.S5(
            F, H, state_size=3, dt_min=0.1, dt_max=1.0, scan=scan, rngs=r(6)
        ),
        # chunk_size 3 < T: several chunks and a padded last chunk
        "Mamba": lambda scan="sequential": seq.Mamba(
            F, H, state_size=3, conv_size=3, chunk_size=3, scan=scan, rngs=r(7)
        ),
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


_RUNNERS: dict = {}


def get_runner(name: str) -> Runner:
    """One model and compiled apply per name for the whole module (shared by tests)."""
    if name not in _RUNNERS:
        _RUNNERS[name] = Runner(FACTORIES[name]())
    return _RUNNERS[name]


@pytest.fixture(scope="module", params=sorted(FACTORIES))
def runner(request):
    return request.param, get_runner(request.param)


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
    _, y = Runner(model)(x, jnp.zeros((1, 2), bool))
    np.testing.assert_allclose(y[0], jnp.concatenate(outs), atol=ATOL)
    np.testing.assert_allclose(bx[H : 2 * H], 1.0)  # forget-gate bias


def _gru_reference(params, x, starts, h):
    """The GRU recurrence written out step by step (plain autodiff, no custom VJP)."""
    wx, bx, wh, bhn = params
    outs = []
    for t in range(x.shape[1]):
        h = jnp.where(starts[:, t, None], 0.0, h)
        gx, gh = x[:, t] @ wx + bx, h @ wh
        r = 1 / (1 + jnp.exp(-(gx[:, :H] + gh[:, :H])))
        z = 1 / (1 + jnp.exp(-(gx[:, H : 2 * H] + gh[:, H : 2 * H])))
        n = jnp.tanh(gx[:, 2 * H :] + r * (gh[:, 2 * H :] + bhn))
        h = (1 - z) * n + z * h
        outs.append(h)
    return h, jnp.stack(outs, axis=1)


def test_gru_values_and_custom_vjp_gradients_match_plain_autodiff():
    # GRU's backward pass is hand-written (jax.custom_vjp); compare with jax.grad of the
    # step-by-step definition, with a non-zero initial carry and resets inside the batch.
    model = seq.GRU(F, H, rngs=nnx.Rngs(4))
    keys = jax.random.split(jax.random.key(3), 5)
    model.input_proj.bias[...] = 0.1 * jax.random.normal(keys[0], (3 * H,))
    model.recurrent_bias[...] = 0.1 * jax.random.normal(keys[1], (H,))
    n_steps = 6
    x = jax.random.normal(keys[2], (B, n_steps, F))
    h0 = 0.5 * jax.random.normal(keys[3], (B, H))
    starts = jnp.zeros((B, n_steps), bool).at[0, 2].set(True).at[1, 0].set(True)
    w_y = jax.random.normal(keys[4], (B, n_steps, H))
    w_c = jnp.linspace(-1.0, 1.0, H)
    graphdef, state = nnx.split(model)

    def gru(state, x, h0):
        return nnx.merge(graphdef, state)(x, starts, h0)

    def reference(state, x, h0):
        params = (
            state["input_proj"]["kernel"][...],
            state["input_proj"]["bias"][...],
            state["recurrent_kernel"][...],
            state["recurrent_bias"][...],
        )
        return _gru_reference(params, x, starts, h0)

    def loss(fn):
        def f(state, x, h0):
            carry, y = fn(state, x, h0)
            return jnp.sum(jnp.sin(y) * w_y) + jnp.sum(carry * w_c)

        return f

    want_carry, want_y = reference(state, x, h0)
    carry, y = gru(state, x, h0)
    np.testing.assert_allclose(y, want_y, atol=ATOL)
    np.testing.assert_allclose(carry, want_carry, atol=ATOL)
    got = jax.grad(loss(gru), argnums=(0, 1, 2))(state, x, h0)
    want = jax.grad(loss(reference), argnums=(0, 1, 2))(state, x, h0)
    got, want = jax.tree.leaves(got), jax.tree.leaves(want)
    assert len(got) == len(want) == 6  # 4 parameters, x, h0
    for g, w in zip(got, want, strict=True):
        assert float(jnp.abs(w).max()) > 0
        np.testing.assert_allclose(g, w, atol=ATOL, rtol=1e-5)
    # the initial carry of sequence 1 is reset at its first step: no gradient reaches it
    np.testing.assert_array_equal(got[-1][1], 0.0)


def _lstm_reference(params, x, starts, carry):
    """The LSTM's equations one step at a time in a Python loop (plain autodiff)."""
    w_x, b_x, w_h = params
    c, h = carry
    ys = []
    for t in range(x.shape[1]):
        keep = ~starts[:, t, None]
        c, h = jnp.where(keep, c, 0.0), jnp.where(keep, h, 0.0)
        i, f, g, o = jnp.split(x[:, t] @ w_x + b_x + h @ w_h, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        ys.append(h)
    return (c, h), jnp.stack(ys, axis=1)


def test_lstm_values_and_custom_vjp_gradients_match_plain_autodiff():
    # LSTM's backward pass is hand-written (jax.custom_vjp); compare with jax.grad of the
    # step-by-step definition, with a non-zero initial carry and resets inside the batch.
    model = seq.LSTM(F, H, rngs=nnx.Rngs(5))
    keys = jax.random.split(jax.random.key(7), 5)
    model.input_proj.bias[...] = 0.1 * jax.random.normal(keys[0], (4 * H,))
    n_steps = 6
    x = jax.random.normal(keys[1], (B, n_steps, F))
    c0 = 0.5 * jax.random.normal(keys[2], (B, H))
    h0 = 0.5 * jax.random.normal(keys[3], (B, H))
    starts = jnp.zeros((B, n_steps), bool).at[0, 3].set(True).at[1, 0].set(True)
    w_y = jax.random.normal(keys[4], (B, n_steps, H))
    w_c = jnp.linspace(-1.0, 1.0, H)
    graphdef, state = nnx.split(model)

    def lstm(state, x, c0, h0):
        return nnx.merge(graphdef, state)(x, starts, (c0, h0))

    def reference(state, x, c0, h0):
        params = (
            state["input_proj"]["kernel"][...],
            state["input_proj"]["bias"][...],
            state["recurrent_kernel"][...],
        )
        return _lstm_reference(params, x, starts, (c0, h0))

    def loss(fn):
        def f(state, x, c0, h0):
            (c, h), y = fn(state, x, c0, h0)
            return jnp.sum(jnp.sin(y) * w_y) + jnp.sum(c * w_c) + jnp.sum(h**2)

        return f

    (want_c, want_h), want_y = reference(state, x, c0, h0)
    (c, h), y = lstm(state, x, c0, h0)
    np.testing.assert_allclose(y, want_y, atol=ATOL)
    np.testing.assert_allclose(c, want_c, atol=ATOL)
    np.testing.assert_allclose(h, want_h, atol=ATOL)
    got = jax.grad(loss(lstm), argnums=(0, 1, 2, 3))(state, x, c0, h0)
    want = jax.grad(loss(reference), argnums=(0, 1, 2, 3))(state, x, c0, h0)
    got, want = jax.tree.leaves(got), jax.tree.leaves(want)
    assert len(got) == len(want) == 6  # 3 parameters, x, c0, h0
    for g, w in zip(got, want, strict=True):
        assert float(jnp.abs(w).max()) > 0
        np.testing.assert_allclose(g, w, atol=ATOL, rtol=1e-5)
    # sequence 1 is reset at its first step: no gradient reaches its initial carry
    np.testing.assert_array_equal(got[-2][1], 0.0)
    np.testing.assert_array_equal(got[-1][1], 0.0)


def test_rnn_wrapper_matches_cell_loop():
    cell = nnx.GRUCell(F, H, rngs=nnx.Rngs(6))
    x = jax.random.normal(jax.random.key(1), (B, 3, F))
    graphdef, state = nnx.split(cell)

    @jax.jit
    def loop(state, x):
        cell = nnx.merge(graphdef, state)
        carry, outs = jnp.zeros((B, H)), []
        for t in range(3):
            carry, y_t = cell(carry, x[:, t])
            outs.append(y_t)
        return jnp.stack(outs, axis=1)

    _, y = Runner(seq.RNN(cell))(x, jnp.zeros((B, 3), bool))
    np.testing.assert_allclose(y, loop(state, x), atol=ATOL)


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


# ----------------------------------------------------------------------------- scan


def _scan_inputs(dtype, seed):
    rng = np.random.default_rng(seed)
    shape = (3, 11, 2)
    a = rng.uniform(-1.0, 1.0, shape)
    b = rng.normal(size=shape)
    h0 = rng.normal(size=(3, 2))
    if dtype == np.complex64:
        a = a * np.exp(1j * rng.uniform(0, 6.3, shape))
        b = b + 1j * rng.normal(size=shape)
        h0 = h0 + 1j * rng.normal(size=(3, 2))
    starts = rng.random((3, 11)) < 0.25
    starts[0, 0] = True
    cast = lambda z: jnp.asarray(z.astype(dtype))  # noqa: E731
    return cast(a), cast(b), jnp.asarray(starts), cast(h0)


@pytest.mark.parametrize("dtype", [np.float32, np.complex64])
def test_parallel_scan_equals_sequential_definition(dtype):
    a, b, starts, h0 = _scan_inputs(dtype, 0)
    h_par = jax.jit(seq.linear_scan)(a, b, starts, h0)
    h_seq = jax.jit(seq.linear_scan_sequential)(a, b, starts, h0)
    np.testing.assert_allclose(h_par, h_seq, atol=ATOL)
    # and the sequential definition itself, as a plain Python loop
    a, b, s, h = map(np.asarray, (a, b, starts, h0))
    for t in range(a.shape[1]):
        h = np.where(s[:, t, None], 0, h)
        h = a[:, t] * h + b[:, t]
        np.testing.assert_allclose(h_seq[:, t], h, atol=ATOL)


def test_scan_hand_computed():
    # h_t = 0.5 h_{t-1} + 1 from h0 = 2, reset before t = 2: 2, 2, 1, 1.5
    a = jnp.full((1, 4, 1), 0.5)
    b = jnp.ones((1, 4, 1))
    starts = jnp.array([[False, False, True, False]])
    h = seq.linear_scan(a, b, starts, jnp.full((1, 1), 2.0))
    np.testing.assert_allclose(h[0, :, 0], [2.0, 2.0, 1.0, 1.5], atol=1e-7)
    # a broadcast over time and batch (time-invariant decay, as LRU and S5 use)
    h2 = seq.linear_scan(jnp.float32(0.5), b, starts, jnp.full((1, 1), 2.0))
    np.testing.assert_allclose(h2, h, atol=1e-7)
    h3 = seq.linear_scan_sequential(jnp.float32(0.5), b, starts, jnp.full((1, 1), 2.0))
    np.testing.assert_allclose(h3, h, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.complex64])
@pytest.mark.parametrize("constant", [False, True])
def test_fused_scan_equals_sequential_definition(dtype, constant):
    a, b, starts, h0 = _scan_inputs(dtype, 1)
    if constant:  # a time-invariant [N] decay, as LRU and S5 use
        a = a[0, 0]
    w = jnp.asarray(np.random.default_rng(2).normal(size=b.shape).astype(np.float32))

    def loss(scan):
        def f(a, b, h0):
            h = scan(a, b, starts, h0)
            return jnp.sum(jnp.real(h) * w) + jnp.sum(jnp.imag(h) ** 2)

        return jax.jit(jax.grad(f, argnums=(0, 1, 2)))

    h_fused = jax.jit(seq.linear_scan_fused)(a, b, starts, h0)
    h_seq = jax.jit(seq.linear_scan_sequential)(a, b, starts, h0)
    np.testing.assert_allclose(h_fused, h_seq, atol=ATOL)
    grads_fused = loss(seq.linear_scan_fused)(a, b, h0)
    grads_seq = loss(seq.linear_scan_sequential)(a, b, h0)
    for g1, g2 in zip(grads_fused, grads_seq, strict=True):
        assert g1.shape == g2.shape and g1.dtype == g2.dtype
        np.testing.assert_allclose(g1, g2, atol=1e-4 if constant else ATOL)
    if dtype == np.complex64:  # the same recurrence packed as real [re | im] halves

        def pack(z):
            return jnp.concatenate([jnp.real(z), jnp.imag(z)], axis=-1)

        def packed_loss(a, b, h0):
            h = seq.linear_scan_fused_packed(a, b, starts, h0)
            n = h.shape[-1] // 2
            return jnp.sum(h[..., :n] * w) + jnp.sum(h[..., n:] ** 2)

        h_packed = jax.jit(seq.linear_scan_fused_packed)(pack(a), pack(b), starts, pack(h0))
        np.testing.assert_allclose(h_packed, pack(h_seq), atol=ATOL)
        grads_packed = jax.jit(jax.grad(packed_loss, argnums=(0, 1, 2)))(pack(a), pack(b), pack(h0))
        # JAX's gradient of a real loss in a complex z is conj(dL/dre + i dL/dim)
        for g1, g2 in zip(grads_packed, grads_seq, strict=True):
            np.testing.assert_allclose(g1, pack(jnp.conj(g2)), atol=1e-4 if constant else ATOL)


@pytest.mark.parametrize(
    "name, methods",
    [
        ("MinGRU", ("associative", "sequential")),
        ("LRU", ("associative", "sequential")),
        ("S5", ("associative", "sequential")),
        ("Mamba", ("associative",)),
    ],
)
def test_scan_options_compute_the_same_function(name, methods):
    default = get_runner(name)
    x, starts = _data(8, F)
    carry, _ = default(x * 0.5, starts)  # a non-initial carry
    c_def, y_def = default(x, starts, carry)
    for method in methods:
        other = Runner(FACTORIES[name](scan=method))  # same seed: same parameters
        c_other, y_other = other(x, starts, carry)
        np.testing.assert_allclose(y_other, y_def, atol=ATOL)
        for a, b in zip(jax.tree.leaves(c_other), jax.tree.leaves(c_def), strict=True):
            assert a.dtype == b.dtype
            np.testing.assert_allclose(a, b, atol=ATOL)


@pytest.mark.parametrize("name", ["MinGRU", "LRU", "S5"])
def test_fused_scan_gradients_equal_sequential(name):
    x, starts = _data(8, F)

    def grads(model):
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        carry = model.initialize_carry((x.shape[0],))

        def loss(params):
            _, y = nnx.merge(graphdef, params, rest)(x, starts, carry)
            return jnp.sum(jnp.sin(y))

        return jax.jit(jax.grad(loss))(params)

    g_fused = grads(FACTORIES[name]())
    g_seq = grads(FACTORIES[name](scan="sequential"))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-4), g_fused, g_seq)


# ----------------------------------------------------------------------------- references


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _silu(z):
    return z * _sigmoid(z)


def _softplus(z):
    return np.log1p(np.exp(z))


def _np(v):
    return np.asarray(v[...], np.float64)


@pytest.fixture(scope="module")
def ref_data():
    x, starts = _data(3, F)  # NB rows (shares the compiled T=8 call); rows 0, 1 checked
    return np.asarray(x, np.float64), np.asarray(starts)


def test_mingru_matches_paper_recurrence(ref_data):
    x, starts = ref_data
    run = get_runner("MinGRU")
    model, (_, y) = run.model, run(jnp.asarray(x, jnp.float32), jnp.asarray(starts))
    w, bias = _np(model.proj.kernel), _np(model.proj.bias)
    for b in range(2):
        h = np.zeros(H)
        for t in range(T):
            if starts[b, t]:
                h = np.zeros(H)
            k, h_tilde = np.split(x[b, t] @ w + bias, 2)
            z = _sigmoid(k)
            h = (1 - z) * h + z * h_tilde
            np.testing.assert_allclose(y[b, t], h, atol=ATOL)


def test_lru_matches_definition(ref_data):
    x, starts = ref_data
    run = get_runner("LRU")  # state_size 5
    model, (_, y) = run.model, run(jnp.asarray(x, jnp.float32), jnp.asarray(starts))
    lam = np.exp(-np.exp(_np(model.nu_log)) + 1j * np.exp(_np(model.theta_log)))
    assert np.all(np.abs(lam) < 1.0)
    # gamma initialised to the normalisation sqrt(1 - |lambda|^2)
    np.testing.assert_allclose(np.exp(_np(model.gamma_log)), np.sqrt(1 - np.abs(lam) ** 2), 1e-5)
    bm = _np(model.B_re) + 1j * _np(model.B_im)
    cm = _np(model.C_re) + 1j * _np(model.C_im)
    gamma = np.exp(_np(model.gamma_log))
    for b in range(2):
        h = np.zeros(5, complex)
        for t in range(T):
            if starts[b, t]:
                h = np.zeros(5, complex)
            h = lam * h + gamma * (x[b, t] @ bm)
            np.testing.assert_allclose(y[b, t], (h @ cm).real + x[b, t] @ _np(model.D), atol=ATOL)


def test_lru_ring_initialisation():
    model = seq.LRU(F, 64, r_min=0.4, r_max=0.9, max_phase=0.5, rngs=nnx.Rngs(22))
    lam = np.asarray(model.eigenvalues())
    assert np.all((np.abs(lam) >= 0.4 - 1e-6) & (np.abs(lam) <= 0.9 + 1e-6))
    assert np.all((np.angle(lam) >= 0) & (np.angle(lam) <= 0.5 + 1e-6))


def test_hippo_legs_and_its_normal_eigendecomposition():
    from larvax.networks.sequence.s5 import hippo_legs, hippo_n_eigendecomposition

    a, p, b = hippo_legs(3)
    s3, s5, s15 = np.sqrt(3), np.sqrt(5), np.sqrt(15)
    np.testing.assert_allclose(a, [[-1, 0, 0], [-s3, -2, 0], [-s5, -s15, -3]], atol=1e-12)
    np.testing.assert_allclose(b, [1, s3, s5], atol=1e-12)
    n = 8
    lam, v = hippo_n_eigendecomposition(n)
    a, p, _ = hippo_legs(n)
    np.testing.assert_allclose(v @ np.diag(lam) @ v.conj().T, a + np.outer(p, p), atol=1e-10)
    np.testing.assert_allclose(v.conj().T @ v, np.eye(n), atol=1e-10)
    np.testing.assert_allclose(lam.real, -0.5)
    np.testing.assert_allclose(np.sort(lam.imag), np.sort(-lam.imag), atol=1e-10)  # pairs


def test_s5_matches_zoh_definition(ref_data):
    x, starts = ref_data
    run = get_runner("S5")  # state_size 3, dt in [0.1, 1]
    model, (_, y) = run.model, run(jnp.asarray(x, jnp.float32), jnp.asarray(starts))
    lam = np.minimum(_np(model.Lambda_re), -1e-4) + 1j * _np(model.Lambda_im)
    step = np.exp(_np(model.log_step))
    assert np.all((step >= 0.1 - 1e-7) & (step <= 1.0 + 1e-7))
    lam_bar = np.exp(lam * step)
    b_bar = (lam_bar - 1) / lam * (_np(model.B_re) + 1j * _np(model.B_im))
    cm = _np(model.C_re) + 1j * _np(model.C_im)
    for b in range(2):
        h = np.zeros(3, complex)
        for t in range(T):
            if starts[b, t]:
                h = np.zeros(3, complex)
            h = lam_bar * h + x[b, t] @ b_bar
            ref = 2 * (h @ cm).real + x[b, t] @ _np(model.D)
            np.testing.assert_allclose(y[b, t], ref, atol=ATOL)


def test_mamba_matches_sequential_definition(ref_data):
    """Step-by-step Mamba (conv history restarted at each start) in numpy."""
    x, starts = ref_data
    n, k = 3, 3
    run = get_runner("Mamba")  # state_size 3, conv_size 3, chunk_size 3
    model, (_, y) = run.model, run(jnp.asarray(x, jnp.float32), jnp.asarray(starts))
    e, r = model.inner_size, model.dt_rank
    a_mat = -np.exp(_np(model.A_log))
    np.testing.assert_allclose(a_mat[0], -np.arange(1, n + 1), atol=1e-6)  # S4D-real init
    for b in range(2):
        hist, h = [], np.zeros((e, n))
        for t in range(T):
            if starts[b, t]:
                hist, h = [], np.zeros((e, n))
            u, z = np.split(x[b, t] @ _np(model.in_proj.kernel), 2)
            hist.append(u)
            conv = _np(model.conv_bias) + sum(
                _np(model.conv_kernel)[j] * hist[-1 - j] for j in range(min(k, len(hist)))
            )
            u = _silu(conv)
            dbc = u @ _np(model.x_proj.kernel)
            delta = _softplus(dbc[:r] @ _np(model.dt_proj.kernel) + _np(model.dt_proj.bias))
            bv, cv = dbc[r : r + n], dbc[r + n :]
            h = np.exp(delta[:, None] * a_mat) * h + (delta * u)[:, None] * bv[None, :]
            out = (h @ cv + _np(model.D) * u) * _silu(z)
            np.testing.assert_allclose(y[b, t], out @ _np(model.out_proj.kernel), atol=ATOL)


def _rotary_np(z, pos):
    d = z.shape[-1]
    freqs = 10000.0 ** (-np.arange(0, d, 2) / d)
    ang = pos[:, None, None] * freqs  # [L, 1, d/2]
    out = np.empty_like(z)
    out[..., 0::2] = z[..., 0::2] * np.cos(ang) - z[..., 1::2] * np.sin(ang)
    out[..., 1::2] = z[..., 0::2] * np.sin(ang) + z[..., 1::2] * np.cos(ang)
    return out


@pytest.mark.parametrize("name", ["SelfAttention(S=3)", "SelfAttention(S=16,norope)"])
def test_attention_matches_windowed_definition(name):
    x, starts = _data(4, D)
    run = get_runner(name)
    model, (_, y) = run.model, run(x, starts)
    x, starts = np.asarray(x, np.float64), np.asarray(starts)
    cache_size = model.cache_size
    for b in range(2):
        q, k, v = (z.reshape(T, 2, 4) for z in np.split(x[b] @ _np(model.qkv.kernel), 3, -1))
        if model.rope:
            q, k = _rotary_np(q, np.arange(T)), _rotary_np(k, np.arange(T))
        episode = np.cumsum(starts[b])
        for t in range(T):
            js = [j for j in range(max(0, t - cache_size), t + 1) if episode[j] == episode[t]]
            heads = []
            for hd in range(2):
                sc = np.array([q[t, hd] @ k[j, hd] for j in js]) / 2.0  # sqrt(head_dim = 4)
                w = np.exp(sc - sc.max())
                heads.append((w / w.sum()) @ v[js, hd])
            ref = np.concatenate(heads) @ _np(model.out.kernel) + _np(model.out.bias)
            np.testing.assert_allclose(y[b, t], ref, atol=ATOL)


def test_attention_never_sees_across_a_start():
    run = get_runner("SelfAttention(S=16,norope)")
    x, starts = _data(5, D)
    starts = starts.at[:, 4].set(True)
    x_pert = x.at[:, :4].add(3.0)
    _, y = run(x, starts)
    _, y_pert = run(x_pert, starts)
    np.testing.assert_allclose(y_pert[:, 4:], y[:, 4:], atol=ATOL)
    assert not np.allclose(y_pert[:, :4], y[:, :4], atol=1e-3)  # the perturbation is seen
    # the same through the cache: the start is the first step of the second chunk
    carry, _ = run(x[:, :4], starts[:, :4])
    carry_pert, _ = run(x_pert[:, :4], starts[:, :4])
    _, y2 = run(x[:, 4:], starts[:, 4:], carry)
    _, y2_pert = run(x[:, 4:], starts[:, 4:], carry_pert)
    np.testing.assert_allclose(y2_pert, y2, atol=ATOL)
    np.testing.assert_allclose(y2, y[:, 4:], atol=ATOL)
    # without the start, the second chunk does see the first
    _, y3 = run(x[:, 4:], jnp.zeros_like(starts[:, 4:]), carry)
    _, y3_pert = run(x[:, 4:], jnp.zeros_like(starts[:, 4:]), carry_pert)
    assert not np.allclose(y3, y3_pert, atol=1e-3)


def test_attention_window_is_cache_size():
    run = get_runner("SelfAttention(S=3)")
    x, _ = _data(6, D)
    starts = jnp.zeros((NB, T), bool)
    _, y = run(x, starts)
    _, y_pert = run(x.at[:, 0].add(3.0), starts)
    # step t sees steps t-3..t: a change at step 0 reaches steps 0..3 only
    assert not np.allclose(y_pert[:, 3], y[:, 3], atol=1e-3)
    np.testing.assert_allclose(y_pert[:, 4:], y[:, 4:], atol=ATOL)


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: seq.MinGRU(3, 0, rngs=nnx.Rngs(0)), r"MinGRU\.hidden_size.*0"),
        (lambda: seq.LRU(3, 4, r_min=0.9, r_max=0.5, rngs=nnx.Rngs(0)), r"LRU\.r_min.*0\.9"),
        (lambda: seq.LRU(3, 4, state_size=0, rngs=nnx.Rngs(0)), r"LRU\.state_size.*0"),
        (lambda: seq.LRU(3, 4, max_phase=0.0, rngs=nnx.Rngs(0)), r"LRU\.max_phase"),
        (lambda: seq.S5(3, 4, dt_min=-1.0, rngs=nnx.Rngs(0)), r"S5\.dt_min.*-1\.0"),
        (lambda: seq.S5(3, 4, dt_min=0.5, dt_max=0.1, rngs=nnx.Rngs(0)), r"S5\.dt_min.*<="),
        (lambda: seq.Mamba(3, 4, conv_size=0, rngs=nnx.Rngs(0)), r"Mamba\.conv_size.*0"),
        (lambda: seq.Mamba(3, 4, expand="2", rngs=nnx.Rngs(0)), r"Mamba\.expand.*'2'"),
        (lambda: seq.Mamba(3, 4, chunk_size=0, rngs=nnx.Rngs(0)), r"Mamba\.chunk_size"),
        (lambda: seq.Mamba(3, 4, scan="fast", rngs=nnx.Rngs(0)), r"Mamba\.scan.*'fast'"),
        (lambda: seq.LRU(3, 4, scan="parallel", rngs=nnx.Rngs(0)), r"LRU\.scan.*associative"),
        (lambda: seq.SelfAttention(6, 4, 8, rngs=nnx.Rngs(0)), r"features.*divisible.*num_heads"),
        (lambda: seq.SelfAttention(6, 2, 8, rngs=nnx.Rngs(0)), r"even head size.*3"),
        (lambda: seq.SelfAttention(8, 2, 0, rngs=nnx.Rngs(0)), r"SelfAttention\.cache_size"),
    ],
)
def test_bad_constructor_arguments_linear_and_attention(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_numeric_starts_are_accepted():
    """A float done-flag as ``starts`` (nonzero = start) gives the same as the bool flags."""
    run = get_runner("MinGRU")
    x, starts = _data(9, F)
    _, y_bool = run(x, starts)
    _, y_float = run(x, starts.astype(jnp.float32))
    np.testing.assert_allclose(y_float, y_bool, atol=0)
