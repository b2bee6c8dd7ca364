"""Blocks: PreNorm, Residual, Stack, FFN and the transformer builder (values and errors).

Reset/step/chunk equivalence of composed stacks is in test_sequence_models.py.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from larvax.networks import blocks
from larvax.networks import sequence as seq

B, T, D = 2, 3, 4
ATOL = 1e-5


def _x(seed=0, features=D):
    return jax.random.normal(jax.random.key(seed), (B, T, features)) * 2.0 + 0.5


def _starts():
    return jnp.zeros((B, T), bool).at[0, 1].set(True)


def _jit(model):
    """``model(x, starts, carry)`` compiled once (eager dispatch of scans is slow)."""
    graphdef, state = nnx.split(model)
    apply = jax.jit(lambda state, x, s, c: nnx.merge(graphdef, state)(x, s, c))
    return lambda x, s, c: apply(state, x, s, c)


def _layer_norm(x):
    x = np.asarray(x, np.float64)
    mu = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-6)


def _gelu_tanh(z):
    return 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z**3)))


@pytest.fixture(scope="module")
def linear():
    lin = nnx.Linear(D, D, rngs=nnx.Rngs(0))
    w, b = np.asarray(lin.kernel[...], np.float64), np.asarray(lin.bias[...], np.float64)
    return seq.SequenceModelWrapper(lin), (lambda z: np.asarray(z, np.float64) @ w + b)


def test_prenorm_is_layer_of_layernorm(linear):
    layer, f = linear
    x = _x()
    carry, y = blocks.PreNorm(layer, D)(x, _starts(), ())
    assert carry == ()
    np.testing.assert_allclose(y, f(_layer_norm(x)), atol=ATOL)


def test_residual_adds_input(linear):
    layer, f = linear
    x = _x(1)
    _, y = blocks.Residual(layer)(x, _starts(), ())
    np.testing.assert_allclose(y, np.asarray(x) + f(x), atol=ATOL)


def test_both_orders_of_prenorm_and_residual(linear):
    layer, f = linear
    x = _x(2)
    _, pre_ln = blocks.Residual(blocks.PreNorm(layer, D))(x, _starts(), ())
    np.testing.assert_allclose(pre_ln, np.asarray(x) + f(_layer_norm(x)), atol=ATOL)
    _, ln_res = blocks.PreNorm(blocks.Residual(layer), D)(x, _starts(), ())
    np.testing.assert_allclose(ln_res, _layer_norm(x) + f(_layer_norm(x)), atol=ATOL)


def test_ffn_values():
    ffn = blocks.FFN(D, 6, rngs=nnx.Rngs(1))
    x = _x(3)
    carry, y = ffn(x, _starts(), ffn.initialize_carry((B,)))
    assert carry == ()
    w1, b1 = np.asarray(ffn.up.kernel[...]), np.asarray(ffn.up.bias[...])
    w2, b2 = np.asarray(ffn.down.kernel[...]), np.asarray(ffn.down.bias[...])
    ref = _gelu_tanh(np.asarray(x) @ w1 + b1) @ w2 + b2
    np.testing.assert_allclose(y, ref, atol=ATOL)


def test_stack_threads_a_tuple_of_carries():
    gru = seq.GRU(3, D, rngs=nnx.Rngs(2))
    ffn = blocks.FFN(D, 5, rngs=nnx.Rngs(3))
    mingru = seq.MinGRU(D, 2, rngs=nnx.Rngs(4))
    stack = blocks.Stack(gru, ffn, mingru)
    assert (stack.in_features, stack.out_features) == (3, 2)
    carry0 = stack.initialize_carry((B,))
    assert isinstance(carry0, tuple) and len(carry0) == 3 and carry0[1] == ()
    x = _x(4, 3)
    carry, y = _jit(stack)(x, _starts(), carry0)
    c1, h1 = _jit(gru)(x, _starts(), gru.initialize_carry((B,)))
    _, h2 = _jit(ffn)(h1, _starts(), ())
    c3, h3 = _jit(mingru)(h2, _starts(), mingru.initialize_carry((B,)))
    np.testing.assert_allclose(y, h3, atol=ATOL)
    np.testing.assert_allclose(carry[0], c1, atol=ATOL)
    np.testing.assert_allclose(carry[2], c3, atol=ATOL)
    assert carry[1] == ()


def test_transformer_layout():
    model = blocks.transformer(8, 2, 5, num_layers=2, ffn_hidden=12, rngs=nnx.Rngs(5))
    carry = model.initialize_carry((B,))
    assert len(carry) == 5  # 2 x (attention, ffn) + final norm
    assert isinstance(carry[0], seq.AttentionCache) and carry[0].keys.shape == (B, 5, 2, 4)
    assert carry[1] == () and carry[4] == ()
    assert model.layers[1].layer.layer.hidden == 12
    _, y = _jit(model)(_x(5, 8), _starts(), carry)
    # final LayerNorm: zero mean, unit variance over features
    np.testing.assert_allclose(np.asarray(y).mean(-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(y).var(-1), 1.0, atol=1e-3)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: blocks.Stack(), r"Stack\.layers.*at least one"),
        (lambda: blocks.Stack(nnx.Linear(2, 2, rngs=nnx.Rngs(0))), r"Stack.*Linear.*Wrapper"),
        (lambda: blocks.Residual("x"), r"Residual.*str"),
        (lambda: blocks.PreNorm(blocks.FFN(4, 4, rngs=nnx.Rngs(0)), 0), r"PreNorm\.features.*0"),
        (lambda: blocks.FFN(4, -1, rngs=nnx.Rngs(0)), r"FFN\.hidden.*-1"),
        (lambda: blocks.transformer(8, 2, 4, num_layers=0, rngs=nnx.Rngs(0)), r"num_layers.*0"),
    ],
)
def test_bad_constructor_arguments(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_residual_needs_equal_shapes():
    res = blocks.Residual(seq.GRU(D, D + 1, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match=r"Residual.*equal shapes"):
        res(_x(), _starts(), res.initialize_carry((B,)))


def test_stack_rejects_a_wrong_carry():
    stack = blocks.Stack(blocks.FFN(D, 4, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match=r"tuple of 1 carries, got 2"):
        stack(_x(), _starts(), ((), ()))
