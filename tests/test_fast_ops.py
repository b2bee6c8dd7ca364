"""Hand-written fast ops: each computes the same values and gradients as its plain form."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from larvax.networks import fast_ops


def test_transposed_matmul_sums_over_all_leading_axes():
    a = jax.random.normal(jax.random.key(0), (3, 4, 5))
    b = jax.random.normal(jax.random.key(1), (3, 4, 6))
    got = fast_ops.transposed_matmul(a, b)
    assert got.shape == (5, 6)
    np.testing.assert_allclose(got, jnp.einsum("tbm,tbn->mn", a, b), atol=1e-5, rtol=1e-5)


def test_dense_matmul_values_and_gradients_equal_plain_autodiff():
    x = jax.random.normal(jax.random.key(0), (2, 3, 4))
    w = jax.random.normal(jax.random.key(1), (4, 5))
    dy = jax.random.normal(jax.random.key(2), (2, 3, 5))

    def loss(f, x, w):
        return jnp.sum(dy * f(x, w))

    np.testing.assert_array_equal(fast_ops.dense_matmul(x, w), x @ w)
    got = jax.grad(loss, argnums=(1, 2))(fast_ops.dense_matmul, x, w)
    want = jax.grad(loss, argnums=(1, 2))(jnp.matmul, x, w)
    for g, v in zip(got, want, strict=True):
        np.testing.assert_allclose(g, v, atol=1e-5, rtol=1e-5)


def test_dense_dot_general_falls_back_for_other_contractions():
    x = jax.random.normal(jax.random.key(0), (2, 3, 4))
    w = jax.random.normal(jax.random.key(1), (4, 5))
    plain = (((2,), (0,)), ((), ()))
    np.testing.assert_array_equal(
        fast_ops.dense_dot_general(x, w, plain), jax.lax.dot_general(x, w, plain)
    )
    batched = (((2,), (2,)), ((0,), (0,)))
    y = jax.random.normal(jax.random.key(2), (2, 5, 4))
    np.testing.assert_array_equal(
        fast_ops.dense_dot_general(x, y, batched), jax.lax.dot_general(x, y, batched)
    )


def test_use_fast_dense_swaps_every_plain_linear():
    mlp = nnx.Sequential(nnx.Linear(3, 4, rngs=nnx.Rngs(0)), nnx.Linear(4, 2, rngs=nnx.Rngs(1)))
    x = jax.random.normal(jax.random.key(0), (5, 3))
    before = mlp(x)
    fast_ops.use_fast_dense(mlp)
    assert all(layer.dot_general is fast_ops.dense_dot_general for layer in mlp.layers)
    np.testing.assert_array_equal(mlp(x), before)


@pytest.mark.parametrize(
    "length, kernel, stride", [(139, 3, 1), (139, 5, 2), (70, 5, 2), (8, 4, 3)]
)
def test_conv1d_same_equals_nnx_conv(length, kernel, stride):
    conv = nnx.Conv(
        3, 4, kernel_size=(kernel,), strides=(stride,), padding="SAME", rngs=nnx.Rngs(0)
    )
    x = jax.random.normal(jax.random.key(1), (2, length, 3))
    got = fast_ops.conv1d_same(x, conv.kernel[...], stride) + conv.bias[...]
    assert got.shape == (2, -(-length // stride), 4)
    np.testing.assert_allclose(got, conv(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["actor_critic", "shared_actor_critic"])
def test_actor_critic_dense_gradients_match_plain_autodiff(name):
    """The actor-critics' Linear layers use a hand-written matmul backward pass; their
    gradients equal jax.grad through plain lax.dot_general ([B, T, F] inputs, OAR)."""
    from larvax.networks import registry

    net = registry.create(
        name, obs_dim=3, num_actions=2, hidden=[5], hidden_size=4, torso="gru",
        use_prev_action=True, use_prev_reward=True, seed=0,
    )  # fmt: skip
    linears = [m for _, m in nnx.iter_graph(net) if isinstance(m, nnx.Linear)]
    assert linears and all(m.dot_general is fast_ops.dense_dot_general for m in linears)
    keys = jax.random.split(jax.random.key(1), 4)
    obs = jax.random.normal(keys[0], (2, 3, 3))
    prev_action = jax.random.randint(keys[1], (2, 3), -1, 2)
    prev_reward = jax.random.normal(keys[2], (2, 3))
    starts = jnp.zeros((2, 3), bool).at[:, 0].set(True)
    weights = jax.random.normal(keys[3], (2, 3))

    def grads(model):
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)

        def loss(params):
            _, (dist, value) = nnx.merge(graphdef, params, rest)(
                obs, prev_action, prev_reward, starts, None
            )
            return jnp.sum(weights * (dist.log_prob(jnp.ones((2, 3), jnp.int32)) + value))

        return jax.tree.leaves(jax.grad(loss)(params))

    got = grads(net)
    for m in linears:
        m.dot_general = jax.lax.dot_general
    want = grads(net)
    assert len(got) == len(want) > 0
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-6, rtol=1e-5)
    assert any(float(jnp.abs(w).max()) > 0 for w in want)
