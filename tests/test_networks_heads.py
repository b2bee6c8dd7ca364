"""Heads: closed-form log-probs and entropies, duelling identities, shapes, errors."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from larvax.networks import heads
from larvax.networks.action_spaces import SquashedPolicy

X = jax.random.normal(jax.random.key(0), (2, 3, 5))  # [B, T, F]


def test_categorical_log_prob_and_entropy_closed_form():
    head = heads.Categorical(5, 4, hidden=(6,), rngs=nnx.Rngs(0))
    dist = head(X)
    assert dist.batch_shape == (2, 3)
    logits = np.asarray(head.logits(head.body(X)), np.float64)
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    np.testing.assert_allclose(dist.entropy(), -(p * np.log(p)).sum(-1), rtol=1e-5)
    a = jnp.array([[0, 1, 3], [2, 2, 0]])
    expected = np.log(np.take_along_axis(p, np.asarray(a)[..., None], -1))[..., 0]
    np.testing.assert_allclose(dist.log_prob(a), expected, rtol=1e-5)


def test_categorical_uniform_entropy_at_zero_scale():
    head = heads.Categorical(5, 4, scale=0.0, rngs=nnx.Rngs(0))  # zero kernel: uniform policy
    np.testing.assert_allclose(head(X).entropy(), np.full((2, 3), math.log(4)), rtol=1e-6)


def test_gaussian_log_prob_and_entropy_by_formula():
    head = heads.Gaussian(5, 2, hidden=(4,), init_log_std=-0.5, rngs=nnx.Rngs(1))
    head.log_std[...] = jnp.array([-0.5, 0.3])
    dist = head(X)
    assert dist.batch_shape == (2, 3) and dist.event_shape == (2,)
    mu = np.asarray(head.mean(head.body(X)), np.float64)
    sigma = np.exp(np.array([-0.5, 0.3]))
    a = np.asarray(jax.random.normal(jax.random.key(2), (2, 3, 2)), np.float64)
    expected = (
        -0.5 * (((a - mu) / sigma) ** 2).sum(-1) - np.log(sigma).sum() - math.log(2 * math.pi)
    )
    np.testing.assert_allclose(dist.log_prob(jnp.asarray(a, jnp.float32)), expected, rtol=1e-5)
    h = 0.5 * 2 * math.log(2 * math.pi * math.e) + np.log(sigma).sum()
    np.testing.assert_allclose(dist.entropy(), np.full((2, 3), h), rtol=1e-5)


def test_gaussian_state_dependent_std_and_clipping():
    head = heads.Gaussian(5, 3, state_dependent_std=True, max_log_std=0.1, rngs=nnx.Rngs(2))
    mu, std = head.mean_and_std(100.0 * X)
    assert std.shape == (2, 3, 3)
    assert float(std.max()) <= math.exp(0.1) + 1e-6
    assert float(jnp.std(std)) > 0  # depends on the state
    with pytest.raises(ValueError, match="min_log_std < max_log_std"):
        heads.Gaussian(5, 3, min_log_std=1.0, max_log_std=0.0, rngs=nnx.Rngs(0))


def test_squashed_gaussian_in_bounds():
    head = heads.SquashedGaussian(5, 2, low=[-1.0, 0.0], high=[1.0, 3.0], rngs=nnx.Rngs(3))
    dist = head(X)
    assert isinstance(dist, SquashedPolicy)
    a = dist.sample(seed=jax.random.key(0), sample_shape=(200,))
    assert a.shape == (200, 2, 3, 2)
    # closed bounds: tanh saturates to +-1 in float32 for large samples
    assert float(a[..., 0].min()) >= -1 and float(a[..., 0].max()) <= 1
    assert float(a[..., 1].min()) >= 0 and float(a[..., 1].max()) <= 3
    assert float(a[..., 1].max() - a[..., 1].min()) > 1.0  # really spread over [0, 3]
    assert bool(jnp.all(jnp.isfinite(dist.log_prob(a))))


def test_duelling_identities():
    head = heads.DuellingQ(5, 4, hidden=(8,), rngs=nnx.Rngs(4))
    q = head(X)
    v, a = head.value(X), head.advantages(X)
    assert q.shape == (2, 3, 4) and v.shape == (2, 3)
    # mean over actions of Q equals V (the advantages are mean-centred)
    np.testing.assert_allclose(q.mean(-1), v, rtol=1e-5, atol=1e-6)
    # Q - mean Q = A - mean A
    np.testing.assert_allclose(
        q - q.mean(-1, keepdims=True), a - a.mean(-1, keepdims=True), rtol=1e-5, atol=1e-6
    )
    # the two streams have their own hidden layers: 2 * (5*8+8) + (8*1+1) + (8*4+4)
    n = sum(x.size for x in jax.tree.leaves(nnx.state(head, nnx.Param)))
    assert n == 2 * 48 + 9 + 36


def test_value_and_continuous_q_shapes_and_values():
    v = heads.V(5, rngs=nnx.Rngs(5))
    v.out.kernel[...] = jnp.ones((5, 1))
    v.out.bias[...] = jnp.array([1.0])
    np.testing.assert_allclose(v(X), X.sum(-1) + 1.0, rtol=1e-5)
    cq = heads.ContinuousQ(5, 2, hidden=(4,), rngs=nnx.Rngs(6))
    assert cq(X, jnp.zeros((2, 3, 2))).shape == (2, 3)
    with pytest.raises(ValueError, match="action"):
        cq(X, jnp.zeros((2, 3, 3)))
    dq = heads.DiscreteQ(5, 3, rngs=nnx.Rngs(7))
    assert dq(X).shape == (2, 3, 3)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: heads.Categorical(5, 0, rngs=nnx.Rngs(0)), "num_actions"),
        (lambda: heads.DuellingQ(0, 3, rngs=nnx.Rngs(0)), "in_features"),
        (lambda: heads.DuellingQ(4, 3, hidden=[0], rngs=nnx.Rngs(0)), "hidden"),
        (lambda: heads.Gaussian(4, 2, action_space="cube", rngs=nnx.Rngs(0)), "cube"),
        (lambda: heads.SquashedGaussian(4, 2, low=1.0, high=0.0, rngs=nnx.Rngs(0)), "low < high"),
    ],
)
def test_bad_arguments(build, match):
    with pytest.raises(ValueError, match=match):
        build()
