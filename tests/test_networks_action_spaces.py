"""Action-space bijectors: log-det vs a numerical Jacobian, inverses, entropy estimates."""

from __future__ import annotations

import math

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from larvax.networks.action_spaces import (
    Box,
    Free,
    MaxNorm,
    SquashedPolicy,
    make_action_space,
)

SPACES = [
    Free(),
    Box(-1.0, 1.0),
    Box([-2.0, 0.0, 1.0], [1.0, 5.0, 1.5]),
    MaxNorm(1.0),
    MaxNorm(2.5),
]
POINTS = np.array(
    [[0.3, -1.2, 0.7], [2.0, 0.1, -0.4], [1e-3, -2e-3, 5e-4], [-0.9, 0.0, 1.3]], np.float32
)


@pytest.mark.parametrize("space", SPACES, ids=lambda s: str(s.config()))
def test_log_det_equals_numerical_jacobian(space):
    for x in POINTS:
        x = jnp.asarray(x)
        jac = jax.jacfwd(space.forward)(x)
        _, expected = jnp.linalg.slogdet(jac)
        _, log_det = space.forward_and_log_det(x)
        np.testing.assert_allclose(log_det, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("space", SPACES, ids=lambda s: str(s.config()))
def test_inverse_round_trip(space):
    x = jnp.asarray(POINTS)
    y, log_det = space.forward_and_log_det(x)
    x2, inv_log_det = space.inverse_and_log_det(y)
    np.testing.assert_allclose(x2, x, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(inv_log_det, -log_det, rtol=1e-3, atol=1e-4)


def test_ranges():
    x = 5.0 * jax.random.normal(jax.random.key(0), (1000, 3))
    y = MaxNorm(2.0).forward(x)
    assert float(jnp.linalg.norm(y, axis=-1).max()) <= 2.0 * (1 + 1e-6)
    # the direction is kept
    cos = jnp.sum(x * y, -1) / (jnp.linalg.norm(x, axis=-1) * jnp.linalg.norm(y, axis=-1))
    np.testing.assert_allclose(cos, 1.0, atol=1e-5)
    yb = Box([-2.0, 0.0, 1.0], [1.0, 5.0, 1.5]).forward(x)
    assert bool(jnp.all(yb >= jnp.array([-2.0, 0.0, 1.0])))
    assert bool(jnp.all(yb <= jnp.array([1.0, 5.0, 1.5])))


def test_box_entropy_matches_numerical_integration():
    """H(Y) for Y = c + h tanh(X), X ~ N(mu, s): integrate -p log p over y on a fine grid."""
    low, high, mu, s = -1.0, 3.0, 0.4, 0.8
    c, h = (high + low) / 2, (high - low) / 2
    u = np.linspace(-1 + 1e-12, 1 - 1e-12, 400_001)
    x = np.arctanh(u)
    p_x = np.exp(-0.5 * ((x - mu) / s) ** 2) / (s * math.sqrt(2 * math.pi))
    p_y = p_x / (h * (1 - u**2))  # density of y = c + h u
    y = c + h * u
    integrand = np.where(p_y > 0, -p_y * np.log(np.where(p_y > 0, p_y, 1.0)), 0.0)
    expected = np.trapezoid(integrand, y)
    dist = SquashedPolicy(
        distrax.MultivariateNormalDiag(jnp.array([mu]), jnp.array([s])), Box(low, high)
    )
    np.testing.assert_allclose(dist.entropy(), expected, atol=1e-4)


def test_max_norm_entropy_matches_sample_estimate():
    """-E[log p(Y)] over many samples equals H(X) + E[log|det J|] (the deterministic estimate)."""
    loc = jnp.array([[0.5, -0.3], [0.0, 0.0]])
    scale = jnp.array([[0.7, 1.2], [0.2, 0.2]])

    @jax.jit
    def estimates(key):
        dist = SquashedPolicy(distrax.MultivariateNormalDiag(loc, scale), MaxNorm(1.5))
        y, log_p = dist.sample_and_log_prob(seed=key, sample_shape=(100_000,))
        return (
            dist.entropy(),
            -jnp.mean(log_p, axis=0),
            dist.entropy(seed=jax.random.key(3), num_samples=20_000),
            dist.log_prob(y[:100]),
            log_p[:100],
        )

    exact, mc, mc_entropy, log_p_inverse, log_p = estimates(jax.random.key(1))
    np.testing.assert_allclose(exact, mc, atol=0.02)
    np.testing.assert_allclose(mc_entropy, mc, atol=0.05)
    # log_prob of the sampled actions (via the inverse) equals the one from sampling
    np.testing.assert_allclose(log_p_inverse, log_p, rtol=1e-3, atol=1e-3)


def test_free_entropy_is_gaussian_entropy():
    base = distrax.MultivariateNormalDiag(jnp.zeros(3), jnp.array([0.5, 1.0, 2.0]))
    dist = SquashedPolicy(base, Free())
    expected = 1.5 * math.log(2 * math.pi * math.e) + math.log(0.5 * 1.0 * 2.0)
    np.testing.assert_allclose(dist.entropy(), expected, rtol=1e-6)


def test_mode_and_indexing():
    loc = jnp.array([[0.2, 0.1], [3.0, -2.0]])
    dist = SquashedPolicy(distrax.MultivariateNormalDiag(loc, jnp.ones((2, 2))), Box(-1, 1))
    np.testing.assert_allclose(dist.mode(), jnp.tanh(loc), rtol=1e-6)
    sub = dist[1]
    assert isinstance(sub, SquashedPolicy) and sub.batch_shape == ()
    np.testing.assert_allclose(sub.mode(), jnp.tanh(loc[1]), rtol=1e-6)


def test_make_action_space_and_config_round_trip():
    for space in SPACES:
        again = make_action_space(space.config())
        x = jnp.asarray(POINTS)
        np.testing.assert_allclose(again.forward(x), space.forward(x))
    assert isinstance(make_action_space(None), Free)
    assert isinstance(make_action_space("box"), Box)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("sphere", "sphere"),
        ({"low": 0}, "name"),
        ({"name": "box", "low": 1.0, "high": 1.0}, "low < high"),
        ({"name": "box", "low": [0, 0], "high": [1, 1, 1]}, "broadcast"),
        ({"name": "box", "low": float("inf")}, "finite"),
        ({"name": "max_norm", "max_norm": -1.0}, "max_norm"),
        ({"name": "max_norm", "radius": 1.0}, "bad arguments"),
    ],
)
def test_bad_action_spaces(spec, match):
    with pytest.raises(ValueError, match=match):
        make_action_space(spec)


@settings(max_examples=8, deadline=None, derandomize=True)
@given(
    x=st.lists(st.floats(-2.5, 2.5, width=32), min_size=1, max_size=4),  # |x| <= 5: float32 ok
    max_norm=st.floats(0.1, 10.0),
)
def test_max_norm_log_det_property(x, max_norm):
    space = MaxNorm(max_norm)
    x = jnp.asarray(x, jnp.float32)
    _, expected = jnp.linalg.slogdet(jax.jacfwd(space.forward)(x))
    _, log_det = space.forward_and_log_det(x)
    np.testing.assert_allclose(log_det, expected, rtol=1e-3, atol=2e-3)
    assert float(jnp.linalg.norm(space.forward(x))) <= max_norm * (1 + 1e-5)
