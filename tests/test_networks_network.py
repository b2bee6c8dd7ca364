"""Network = feature extractor -> torso -> head; torsos by name; step vs sequence mode."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from larvax.networks import extractors as ex
from larvax.networks import heads, layers
from larvax.networks.network import TORSOS, Network, make_torso

B, T, F = 2, 4, 3


def _inputs(seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    obs = jax.random.normal(k1, (B, T, F))
    actions = jax.random.randint(k2, (B, T), -1, 3)
    rewards = jnp.linspace(-1.0, 1.0, B * T).reshape(B, T)
    return obs, actions, rewards


def _small_net(torso_name="gru"):
    rngs = nnx.Rngs(0)
    fe = ex.FeatureExtractor(
        observation=layers.MLP(F, [5], activate_final=True, rngs=rngs),
        action=ex.OneHotAction(3),
        reward=ex.TanhReward(),
    )
    torso = make_torso(torso_name, fe.out_features, 6, rngs=rngs)
    return Network(fe, torso, heads.DuellingQ(6, 3, rngs=rngs))


@pytest.fixture(scope="module")
def gru_net():
    return _small_net("gru")


def test_network_output_and_carry_shapes(gru_net):
    obs, act, rew = _inputs()
    carry = gru_net.initialize_carry((B,))
    carry, q = gru_net(obs, act, rew, jnp.zeros((B, T), bool), carry)
    assert q.shape == (B, T, 3)
    assert carry.shape == (B, 6)


def test_step_mode_equals_sequence_mode_with_mid_start(gru_net):
    obs, act, rew = _inputs(1)
    starts = jnp.zeros((B, T), bool).at[0, 2].set(True).at[1, 0].set(True)
    carry0 = jax.random.normal(jax.random.key(5), (B, 6))
    _, q_seq = gru_net(obs, act, rew, starts, carry0)
    carry = carry0
    outs = []
    for t in range(T):
        carry, q = gru_net.step(obs[:, t], act[:, t], rew[:, t], starts[:, t], carry)
        outs.append(q)
    np.testing.assert_allclose(jnp.stack(outs, 1), q_seq, rtol=1e-5, atol=1e-5)
    # a start in the middle equals a fresh sequence from the zero carry
    _, q_tail = gru_net(obs[:1, 2:], act[:1, 2:], rew[:1, 2:], starts[:1, 2:], None)
    np.testing.assert_allclose(q_seq[0, 2:], q_tail[0], rtol=1e-5, atol=1e-5)


def test_previous_action_changes_output(gru_net):
    obs, act, rew = _inputs(2)
    _, q1 = gru_net(obs, jnp.zeros_like(act), rew, None, None)
    _, q2 = gru_net(obs, jnp.full_like(act, -1), rew, None, None)
    assert float(jnp.abs(q1 - q2).max()) > 1e-4


def test_mlp_torso_has_empty_carry_and_ignores_starts():
    net = _small_net("mlp")
    obs, act, rew = _inputs(3)
    assert net.initialize_carry((B,)) == ()
    carry, q1 = net(obs, act, rew, jnp.zeros((B, T), bool), ())
    _, q2 = net(obs, act, rew, jnp.ones((B, T), bool), ())
    assert carry == ()
    np.testing.assert_allclose(q1, q2)
    # per-step: the output at t depends only on the inputs at t
    _, q_last = net(obs[:, -1:], act[:, -1:], rew[:, -1:], None, ())
    np.testing.assert_allclose(q1[:, -1:], q_last, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(TORSOS))
def test_every_torso_by_name_builds_with_the_contract(name):
    torso = make_torso(name, 5, 8, rngs=nnx.Rngs(1))
    assert torso.out_features == 8
    x = jnp.zeros((B, 3, 5))
    carry = torso.initialize_carry((B,))
    # shapes only (traced, not compiled): [B, T, 5] -> [B, T, 8], carry keeps its shapes
    new_carry, y = jax.eval_shape(lambda x, c: torso(x, jnp.zeros((B, 3), bool), c), x, carry)
    assert y.shape == (B, 3, 8)
    assert jax.tree.map(lambda a: a.shape, new_carry) == jax.tree.map(jnp.shape, carry)


@pytest.mark.parametrize("name", ["lstm", "mingru"])
def test_torso_by_name_resets_at_starts(name):
    torso = make_torso(name, 5, 8, rngs=nnx.Rngs(1))
    x = jax.random.normal(jax.random.key(0), (B, 3, 5))
    zero = torso.initialize_carry((B,))
    _, y_ref = torso(x, jnp.zeros((B, 3), bool), zero)
    # a random carry must be forgotten when the first step is a start
    noisy = jax.tree.map(lambda c: c + jax.random.normal(jax.random.key(1), c.shape), zero)
    starts = jnp.zeros((B, 3), bool).at[:, 0].set(True)
    _, y = torso(x, starts, noisy)
    np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-5)
    _, y_noisy = torso(x, jnp.zeros((B, 3), bool), noisy)
    assert float(jnp.abs(y_noisy - y_ref).max()) > 1e-3  # without a start it is remembered


def test_make_torso_errors():
    with pytest.raises(ValueError, match="torso='transformer' is unknown"):
        make_torso("transformer", 4, 8, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="bad torso_kwargs"):
        make_torso("lstm", 4, 8, rngs=nnx.Rngs(0), depth=3)
    with pytest.raises(ValueError, match="hidden_size"):
        make_torso("gru", 4, 0, rngs=nnx.Rngs(0))


def test_network_rejects_non_sequence_torso():
    rngs = nnx.Rngs(0)
    with pytest.raises(ValueError, match="initialize_carry"):
        Network(layers.MLP(3, [4], rngs=rngs), layers.MLP(4, [4], rngs=rngs), heads.V(4, rngs=rngs))
