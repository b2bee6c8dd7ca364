"""Ready-made models: R2D2 and PPO Simfish parameter counts and call contracts, actor-critic
options."""

from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from larvax.networks import models
from larvax.networks.action_spaces import SquashedPolicy

B, T = 2, 3


def _simfish_obs(seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    return {
        "visual": jnp.floor(jax.random.uniform(k1, (B, T, 139, 3, 2), maxval=40.0)),
        "internal": jax.random.uniform(k2, (B, T, 3)),
    }


@pytest.fixture(scope="module")
def r2d2():
    return models.R2D2SimfishNetwork(rngs=nnx.Rngs(0))


def test_r2d2_simfish_parameter_count_by_hand(r2d2):
    retina = (3 * 3 * 8 + 8) + 2 * (5 * 8 * 8 + 8)  # Conv1D 3->8 k3, 8->8 k5 twice
    mlp = (2 * 35 * 8) * 32 + 32  # both eyes' 35 positions x 8 channels -> 32
    lstm_in = 32 + 3 + 21 + 1  # MLP, internal state, one-hot previous action, tanh reward
    lstm = 4 * 64 * (lstm_in + 64) + 4 * 64
    duelling = (64 * 64 + 64 + 64 * 1 + 1) + (64 * 64 + 64 + 64 * 21 + 21)
    assert retina + mlp + lstm + duelling == 59_670
    assert models.count_parameters(r2d2) == retina + mlp + lstm + duelling


def test_r2d2_simfish_call_contract(r2d2):
    obs = _simfish_obs()
    carry = r2d2.initialize_carry((B,))
    prev_a = jnp.array([[-1, 3, 20], [-1, 0, 7]], jnp.int32)
    prev_r = jnp.array([[0.0, 1.0, -2.0], [0.0, 0.5, 0.0]], jnp.float32)
    starts = jnp.array([[True, False, False], [True, False, False]])
    carry, q = r2d2(obs, prev_a, prev_r, starts, carry)
    assert q.shape == (B, T, 21)
    assert jax.tree.map(jnp.shape, carry) == ((B, 64), (B, 64))
    assert bool(jnp.all(jnp.isfinite(q)))
    # the embedding is [MLP 32, internal 3, one-hot 21, tanh r 1]; -1 -> zero one-hot
    x = r2d2.features(obs, prev_a, prev_r, starts)
    assert x.shape == (B, T, 57)
    np.testing.assert_array_equal(x[:, 0, 35:56], 0.0)
    assert float(x[0, 1, 35 + 3]) == 1.0
    np.testing.assert_allclose(x[..., 56], jnp.tanh(prev_r), rtol=1e-6)
    np.testing.assert_allclose(x[..., 32:35], obs["internal"], rtol=1e-6)


def test_r2d2_simfish_rejects_wrong_observation(r2d2):
    obs = _simfish_obs()
    with pytest.raises(ValueError, match="'visual' and 'internal'"):
        r2d2({"vision": obs["visual"]}, jnp.zeros((B, T), jnp.int32), jnp.zeros((B, T)))


def test_ppo_simfish_parameter_count_by_hand():
    model = models.PPOSimfishNetwork(rngs=nnx.Rngs(0))
    embedding = (3 * 3 * 8 + 8) + 2 * (5 * 8 * 8 + 8) + (2 * 35 * 8) * 32 + 32
    lstm = 4 * 64 * (57 + 64) + 4 * 64
    actor = (64 * 64 + 64) + (64 * 21 + 21)
    critic = (64 * 64 + 64) + (64 + 1)
    # the same size as the R2D2 network: its duelling head has the same two 64-unit layers
    assert models.count_parameters(model) == embedding + lstm + actor + critic == 59_670


def test_ppo_simfish_contract_and_reset_at_episode_starts():
    model = models.PPOSimfishNetwork(visual_scale=0.03, rngs=nnx.Rngs(3))
    obs = _simfish_obs(4)
    prev_a = jnp.array([[-1, 3, -1], [-1, 0, 7]], jnp.int32)
    prev_r = jnp.array([[0.0, 3.0, 0.0], [0.0, 0.5, 0.0]], jnp.float32)
    starts = jnp.array([[True, False, True], [True, False, False]])
    carry0 = model.initialize_carry((B,))
    _, (dist, value) = model(obs, prev_a, prev_r, starts, carry0)
    assert isinstance(dist, distrax.Categorical)
    assert dist.logits.shape == (B, T, 21) and value.shape == (B, T)
    # a fresh start: the policy at t = 2 of episode 0 equals a new sequence that begins there
    one = jax.tree.map(lambda x: x[:, 2:], obs)
    _, (d2, v2) = model(one, prev_a[:, 2:], prev_r[:, 2:], starts[:, 2:], carry0)
    np.testing.assert_allclose(dist.logits[0, 2], d2.logits[0, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(value[0, 2], v2[0, 0], rtol=1e-5, atol=1e-6)
    # without a start the carry matters: environment 1 differs from a fresh sequence
    assert not np.allclose(dist.logits[1, 2], d2.logits[1, 0], atol=1e-6)
    # the small output gain: the initial policy is close to uniform over the 21 bouts
    np.testing.assert_allclose(jax.nn.softmax(dist.logits), 1 / 21, atol=0.01)


# ----------------------------------------------------------------------------- actor-critics


@pytest.fixture(scope="module")
def lstm_ac():
    return models.LSTMActorCritic(
        obs_dim=4, num_actions=3, hidden=(8,), hidden_size=8, use_prev_action=True,
        use_prev_reward=True, rngs=nnx.Rngs(1),
    )  # fmt: skip


def test_lstm_actor_critic_step_equals_sequence(lstm_ac):
    obs = jax.random.normal(jax.random.key(2), (B, 5, 4))
    prev_a = jnp.array([[-1, 0, 2, 1, -1], [1, 1, 0, 2, 2]], jnp.int32)
    prev_r = jax.random.normal(jax.random.key(3), (B, 5))
    starts = jnp.zeros((B, 5), bool).at[0, 4].set(True).at[1, 2].set(True)
    carry0 = jax.tree.map(
        lambda c: jax.random.normal(jax.random.key(4), c.shape), lstm_ac.initialize_carry((B,))
    )
    carry_seq, (dist, value) = lstm_ac(obs, prev_a, prev_r, starts, carry0)
    assert isinstance(dist, distrax.Categorical) and dist.batch_shape == (B, 5)
    assert value.shape == (B, 5)
    carry, logits, values = carry0, [], []
    for t in range(5):
        carry, (d, v) = lstm_ac.step(obs[:, t], prev_a[:, t], prev_r[:, t], starts[:, t], carry)
        logits.append(d.logits)
        values.append(v)
    np.testing.assert_allclose(jnp.stack(values, 1), value, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(jnp.stack(logits, 1), dist.logits, rtol=1e-5, atol=1e-5)
    for a, b in zip(jax.tree.leaves(carry), jax.tree.leaves(carry_seq), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_orthogonal_init_scales(lstm_ac):
    k = np.asarray(lstm_ac.head.actor.logits.kernel[...])  # [8, 3]
    np.testing.assert_allclose(k.T @ k, 0.01**2 * np.eye(3), atol=1e-7)
    kv = np.asarray(lstm_ac.head.critic.out.kernel[...])  # [8, 1]
    np.testing.assert_allclose(kv.T @ kv, [[1.0]], rtol=1e-5)
    k0 = np.asarray(lstm_ac.feature_extractor.observation.layers[1].layers[0].kernel[...])
    np.testing.assert_allclose(k0 @ k0.T, 2.0 * np.eye(4), atol=1e-5)  # [4, 8]: orthonormal rows


def test_continuous_box_policy_and_ignored_inputs():
    model = models.SharedActorCritic(
        obs_shape={"pos": [2], "img": [2, 2]}, action_dim=2, hidden=(8,), torso="gru",
        hidden_size=8, action_space={"name": "box", "low": [-1.0, 0.0], "high": [1.0, 2.0]},
        state_dependent_std=True, rngs=nnx.Rngs(2),
    )  # fmt: skip
    obs = {"pos": jnp.ones((B, T, 2)), "img": jnp.ones((B, T, 2, 2))}
    carry = model.initialize_carry((B,))
    _, (dist, value) = model(obs, jnp.zeros((B, T, 2)), jnp.zeros((B, T)), None, carry)
    _, (dist2, value2) = model(obs, jnp.ones((B, T, 2)), jnp.ones((B, T)), None, carry)
    assert isinstance(dist, SquashedPolicy) and dist.batch_shape == (B, T)
    a = dist.sample(seed=jax.random.key(0))
    assert a.shape == (B, T, 2)
    assert bool(jnp.all((a >= jnp.array([-1.0, 0.0])) & (a <= jnp.array([1.0, 2.0]))))
    assert dist.entropy().shape == (B, T)
    # use_prev_action / use_prev_reward default to False: those inputs are ignored
    np.testing.assert_array_equal(value, value2)


def test_separate_actor_critic_shares_nothing():
    model = models.ActorCritic(
        obs_dim=3, num_actions=2, hidden=(4,), torso="lstm", hidden_size=4, rngs=nnx.Rngs(3)
    )
    obs = jax.random.normal(jax.random.key(0), (B, T, 3))
    carry = model.initialize_carry((B,))
    assert set(carry) == {"actor", "critic"}

    def value_sum(m):
        _, (_, v) = m(obs, None, None, None, carry)
        return v.sum()

    grads = nnx.grad(value_sum)(model)
    actor_norm = sum(float(jnp.abs(g).sum()) for g in jax.tree.leaves(grads["actor"]))
    critic_norm = sum(float(jnp.abs(g).sum()) for g in jax.tree.leaves(grads["critic"]))
    assert actor_norm == 0.0 and critic_norm > 0.0


def test_mlp_torso_actor_critic_and_mingru():
    ff = models.SharedActorCritic(obs_dim=3, num_actions=2, hidden=(4,), rngs=nnx.Rngs(4))
    assert ff.initialize_carry((B,)) == ()
    carry, (dist, v) = ff(jnp.ones((B, T, 3)), None, None, None, ())
    assert carry == () and v.shape == (B, T) and dist.batch_shape == (B, T)
    mg = models.MinGRUActorCritic(
        obs_dim=3, action_dim=1, hidden=(4,), hidden_size=4, rngs=nnx.Rngs(5)
    )
    _, (dist, v) = mg(jnp.ones((B, T, 3)), None, None, None, mg.initialize_carry((B,)))
    assert isinstance(dist, distrax.MultivariateNormalDiag) and dist.event_shape == (1,)


def test_recurrent_q_with_dict_observation():
    model = models.RecurrentQNetwork(
        num_actions=4, obs_shape={"a": [3], "b": [2, 2]}, torso="mingru", hidden_size=8,
        mlp_hidden=(8,), head_hidden=(8,), rngs=nnx.Rngs(6),
    )  # fmt: skip
    obs = {"a": jnp.ones((B, T, 3)), "b": jnp.ones((B, T, 2, 2))}
    carry, q = model(
        obs, jnp.full((B, T), -1), jnp.zeros((B, T)), None, model.initialize_carry((B,))
    )
    assert q.shape == (B, T, 4)
    # the duelling identity holds through the whole model
    v = model.head.value(
        model.torso(
            model.features(obs, jnp.full((B, T), -1), jnp.zeros((B, T)), jnp.zeros((B, T), bool)),
            jnp.zeros((B, T), bool),
            model.initialize_carry((B,)),
        )[1]
    )
    np.testing.assert_allclose(q.mean(-1), v, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(obs_dim=3, obs_shape=[3], num_actions=2), "exactly one of obs_shape"),
        (dict(num_actions=2), "exactly one of obs_shape"),
        (dict(obs_dim=3, num_actions=2, action_dim=1), "exactly one of num_actions"),
        (dict(obs_dim=3), "exactly one of num_actions"),
        (dict(obs_dim=3, num_actions=2, action_space="box"), "needs action_dim"),
        (dict(obs_dim=3, num_actions=2, torso="tcn"), "torso='tcn'"),
        (dict(obs_dim=3, num_actions=2, use_prev_action=1), "use_prev_action"),
        (dict(obs_shape=[3, 0], num_actions=2), r"obs_shape\[1\]"),
        (dict(obs_dim=3, num_actions=0), "num_actions"),
        (
            dict(obs_dim=3, action_dim=2, action_space={"name": "max_norm", "max_norm": 0}),
            "max_norm",
        ),
    ],
)
def test_bad_actor_critic_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        models.SharedActorCritic(**kwargs, rngs=nnx.Rngs(0))


def test_bad_r2d2_arguments():
    with pytest.raises(ValueError, match="num_actions"):
        models.R2D2SimfishNetwork(num_actions=0, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="input_scale"):
        models.R2D2SimfishNetwork(visual_scale="big", rngs=nnx.Rngs(0))
