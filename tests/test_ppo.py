"""Recurrent PPO: losses and GAE against hand-computed values, replay, gradients, training."""

from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from larvax.agents.losses import (
    clipped_surrogate_loss,
    clipped_value_loss,
    generalized_advantages,
    normalize_advantages,
)
from larvax.agents.ppo import PPOConfig, make_agent
from larvax.envs.core import Box, Discrete, Environment, EpisodeMetric, TimeStep

# ----------------------------------------------------------------------------- test doubles


class CueEnv(Environment):
    """A 2-action memory task: a cue bit is shown on the first step only; every step pays
    1 if the action equals the cue. Ends with probability 0.3 per step (terminated) or at
    step 5 (truncated), so rollouts hold both kinds of episode ends."""

    @property
    def default_params(self):
        return {"max_steps": 5, "p_end": 0.3}

    def _obs(self, cue, t):
        first = (t == 0).astype(jnp.float32)
        return jnp.stack([first * (2.0 * cue - 1.0), t.astype(jnp.float32) / 5.0])

    def reset(self, key, params=None):
        cue = jax.random.bernoulli(key).astype(jnp.int32)
        t = jnp.int32(0)
        ts = TimeStep(self._obs(cue, t), jnp.float32(0), jnp.bool_(False), jnp.bool_(False), {})
        return (cue, t), ts

    def step(self, key, state, action, params=None):
        params = self.default_params if params is None else params
        cue, t = state
        reward = (action == cue).astype(jnp.float32)
        t = t + 1
        terminated = jax.random.bernoulli(key, params["p_end"])
        truncated = jnp.logical_and(t >= params["max_steps"], jnp.logical_not(terminated))
        return (cue, t), TimeStep(self._obs(cue, t), reward, terminated, truncated, {})

    def observation_space(self, params=None):
        return Box(-1.0, 1.0, (2,))

    def action_space(self, params=None):
        return Discrete(2)


class PointEnv(CueEnv):
    """Continuous variant: the action is a 1-D float, reward = -(action - cue)^2."""

    def step(self, key, state, action, params=None):
        (cue, t), ts = super().step(key, state, jnp.int32(0), params)
        reward = -jnp.square(action[0] - (2.0 * cue - 1.0))
        return (cue, t), ts._replace(reward=reward)

    def action_space(self, params=None):
        return Box(-1.0, 1.0, (1,))


class TinyGRUActorCritic(nnx.Module):
    """A GRU actor-critic with the larvax network call signature (shared torso)."""

    def __init__(self, obs_dim, num_actions=None, action_dim=None, hidden=8, *, rngs):
        self.num_actions = num_actions
        self.action_dim = action_dim
        self.hidden = hidden
        act_in = num_actions if num_actions is not None else action_dim
        self.embed = nnx.Linear(obs_dim + act_in + 1, hidden, rngs=rngs)
        self.gates_x = nnx.Linear(hidden, 3 * hidden, rngs=rngs)
        self.gates_h = nnx.Linear(hidden, 3 * hidden, rngs=rngs)
        out = num_actions if num_actions is not None else action_dim
        self.policy = nnx.Linear(hidden, out, rngs=rngs)
        self.value = nnx.Linear(hidden, 1, rngs=rngs)
        if action_dim is not None:
            self.log_std = nnx.Param(jnp.zeros((action_dim,)))

    def initialize_carry(self, batch_shape):
        return jnp.zeros(tuple(batch_shape) + (self.hidden,))

    def __call__(self, observation, prev_action, prev_reward, starts, carry):
        if self.num_actions is not None:
            a = jax.nn.one_hot(prev_action, self.num_actions)  # -1 -> all zeros
        else:
            a = prev_action
        x = jnp.concatenate([observation, a, prev_reward[..., None]], axis=-1)
        xg = self.gates_x(jax.nn.relu(self.embed(x)))  # [B, T, 3H]

        def cell(h, inp):
            xg_t, s_t = inp
            h = jnp.where(s_t[:, None], 0.0, h)
            hg = self.gates_h(h)
            r = jax.nn.sigmoid(xg_t[:, : self.hidden] + hg[:, : self.hidden])
            z = jax.nn.sigmoid(
                xg_t[:, self.hidden : 2 * self.hidden] + hg[:, self.hidden : 2 * self.hidden]
            )
            n = jnp.tanh(xg_t[:, 2 * self.hidden :] + r * hg[:, 2 * self.hidden :])
            h = (1 - z) * n + z * h
            return h, h

        carry, ys = jax.lax.scan(cell, carry, (jnp.swapaxes(xg, 0, 1), starts.T))
        ys = jnp.swapaxes(ys, 0, 1)
        value = self.value(ys)[..., 0]
        if self.num_actions is not None:
            dist = distrax.Categorical(logits=self.policy(ys))
        else:
            dist = distrax.MultivariateNormalDiag(self.policy(ys), jnp.exp(self.log_std[...]))
        return carry, (dist, value)


CONFIG = {
    "num_envs": 4,
    "rollout_length": 12,
    "num_epochs": 2,
    "num_minibatches": 2,
    "total_env_steps": 480,
}


@pytest.fixture(scope="module")
def agent():
    net = TinyGRUActorCritic(2, num_actions=2, rngs=nnx.Rngs(0))
    return make_agent(CueEnv(), None, net, CONFIG)


@pytest.fixture(scope="module")
def rollout_data(agent):
    state = agent.init(jax.random.key(1))
    new_state, traj, start_carry, last_value = jax.jit(agent.rollout)(state)
    return state, new_state, traj, start_carry, last_value


# ----------------------------------------------------------------------------- GAE


def test_gae_hand_computed_with_termination_and_truncation():
    # gamma 0.9, lambda 0.8; step 1 terminates, step 2 is truncated (bootstrap from 10).
    rewards = jnp.array([1.0, 2.0, 3.0, 4.0])
    values = jnp.array([0.5, 1.0, 1.5, 2.0])
    terminated = jnp.array([False, True, False, False])
    truncated = jnp.array([False, False, True, False])
    trunc_values = jnp.array([100.0, 100.0, 10.0, 100.0])  # only index 2 may be used
    adv, ret = generalized_advantages(
        rewards, values, jnp.float32(3.0), terminated, truncated, trunc_values, 0.9, 0.8
    )
    # t=3: 4 + .9*3 - 2 = 4.7
    # t=2: 3 + .9*10 - 1.5 = 10.5 (truncated: bootstrap final obs, trace cut)
    # t=1: 2 - 1 = 1.0 (terminated: no bootstrap)
    # t=0: 1 + .9*1 - .5 = 1.4; A0 = 1.4 + .9*.8*1.0 = 2.12
    np.testing.assert_allclose(adv, [2.12, 1.0, 10.5, 4.7], rtol=1e-6)
    np.testing.assert_allclose(ret, [2.62, 2.0, 12.0, 6.7], rtol=1e-6)


def test_gae_terminated_and_truncated_does_not_bootstrap():
    adv, _ = generalized_advantages(
        jnp.array([1.0]),
        jnp.array([0.0]),
        jnp.float32(5.0),
        jnp.array([True]),
        jnp.array([True]),
        jnp.array([7.0]),
        0.5,
        1.0,
    )
    np.testing.assert_allclose(adv, [1.0])


def test_gae_lambda_one_no_done_is_discounted_return():
    # lambda = 1 and no episode end: A_t = sum_k gamma^k r_{t+k} + gamma^(T-t) V_T - V_t.
    r = jnp.array([1.0, 0.0, 2.0])
    v = jnp.array([0.3, -0.2, 0.1])
    f = jnp.zeros(3, bool)
    adv, _ = generalized_advantages(r, v, jnp.float32(4.0), f, f, jnp.zeros(3), 0.5, 1.0)
    expected = [1 + 0.25 * 2 + 0.125 * 4 - 0.3, 0.5 * 2 + 0.25 * 4 + 0.2, 2 + 0.5 * 4 - 0.1]
    np.testing.assert_allclose(adv, expected, rtol=1e-6)


# ----------------------------------------------------------------------------- losses


def test_clipped_surrogate_hand_computed():
    ratios = jnp.array([1.5, 0.5, 1.0, 1.1, 0.5])
    adv = jnp.array([1.0, 1.0, -2.0, -1.0, -1.0])
    old = jnp.array([-0.7, -1.2, -0.3, -2.0, -0.1])
    loss, aux = clipped_surrogate_loss(old + jnp.log(ratios), old, adv, 0.2)
    # min(r A, clip(r) A): 1.2, 0.5, -2.0, -1.1, -0.8 -> mean -0.44
    np.testing.assert_allclose(loss, 0.44, rtol=1e-5)
    np.testing.assert_allclose(aux["clip_fraction"], 0.6, rtol=1e-6)
    kl = np.mean((np.array(ratios) - 1) - np.log(np.array(ratios)))
    np.testing.assert_allclose(aux["approx_kl"], kl, rtol=1e-5)


def test_clipped_value_loss_hand_computed():
    old = jnp.array([1.0, 1.0, 1.0])
    values = jnp.array([1.5, 0.9, 2.0])
    returns = jnp.array([2.0, 0.0, 1.0])
    # clipped values 1.2, 0.9, 1.2 -> max(0.25, 0.64), 0.81, max(1.0, 0.04)
    np.testing.assert_allclose(
        clipped_value_loss(values, old, returns, 0.2), 0.5 * (0.64 + 0.81 + 1.0) / 3, rtol=1e-6
    )
    np.testing.assert_allclose(
        clipped_value_loss(values, old, returns, 0.0), 0.5 * (0.25 + 0.81 + 1.0) / 3, rtol=1e-6
    )


def test_normalize_advantages():
    a = normalize_advantages(jnp.array([1.0, 2.0, 3.0, 6.0]))
    np.testing.assert_allclose(a, (np.array([1, 2, 3, 6]) - 3.0) / np.sqrt(3.5), rtol=1e-5)


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "bad, field",
    [
        ({"num_envs": 6, "num_minibatches": 4}, "num_minibatches"),
        ({"discount": 1.5}, "discount"),
        ({"clip_eps": 0.0}, "clip_eps"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"num_epochs": 0}, "num_epochs"),
        ({"anneal_lr": "yes"}, "anneal_lr"),
        ({"lr": 1e-3}, "lr"),
    ],
)
def test_config_validation_names_field(bad, field):
    with pytest.raises(ValueError, match=field):
        PPOConfig.from_dict(bad)


def test_config_frozen_and_steps():
    c = PPOConfig(num_envs=8, rollout_length=16, total_env_steps=1000)
    assert c.env_steps_per_update == 128
    assert c.total_updates == 8  # ceil(1000 / 128)
    with pytest.raises(AttributeError):
        c.learning_rate = 1.0  # type: ignore[misc]


# ----------------------------------------------------------------------------- rollout/replay


def test_rollout_has_episode_starts_and_bookkeeping(agent, rollout_data):
    state, new_state, traj, start_carry, last_value = rollout_data
    B, T = CONFIG["num_envs"], CONFIG["rollout_length"]
    assert traj.action.shape == (B, T) and traj.value.shape == (B, T)
    assert bool(traj.starts[:, 0].all())  # the first rollout starts fresh episodes
    done = np.asarray(traj.terminated | traj.truncated)
    starts = np.asarray(traj.starts)
    # starts[t+1] == done[t]; prev action/reward reset at starts
    np.testing.assert_array_equal(starts[:, 1:], done[:, :-1])
    np.testing.assert_array_equal(np.asarray(new_state.starts), done[:, -1])
    assert done.any() and np.asarray(traj.truncated).any()
    pa, pr = np.asarray(traj.prev_action), np.asarray(traj.prev_reward)
    np.testing.assert_array_equal(pa[starts], -1)
    np.testing.assert_array_equal(pr[starts], 0.0)
    np.testing.assert_array_equal(
        pa[:, 1:][~starts[:, 1:]], np.asarray(traj.action)[:, :-1][~starts[:, 1:]]
    )
    # truncation values only where truncated
    tv, tr = np.asarray(traj.truncation_value), np.asarray(traj.truncated)
    assert np.all(tv[~tr] == 0.0) and np.all(tv[tr] != 0.0)
    assert int(new_state.env_steps) == B * T
    assert last_value.shape == (B,)


def test_replay_from_stored_carry_reproduces_rollout(agent, rollout_data):
    state, _, traj, start_carry, _ = rollout_data
    idx = jnp.array([2, 0])  # a minibatch of whole sequences, split along environments
    mb = jax.tree_util.tree_map(lambda x: x[idx], traj)
    log_prob, value, _ = jax.jit(agent.evaluate)(
        state.params, state.model_state, mb, start_carry[idx]
    )
    assert bool(mb.starts[:, 1:].any())  # episodes start inside the replayed sequences
    np.testing.assert_allclose(log_prob, mb.log_prob, atol=1e-5)
    np.testing.assert_allclose(value, mb.value, atol=1e-5)


def test_replay_from_stored_carry_second_rollout(agent, rollout_data):
    # The second rollout starts mid-episode from a non-zero carry.
    _, state, _, _, _ = rollout_data
    _, traj, start_carry, _ = jax.jit(agent.rollout)(state)
    assert float(jnp.abs(start_carry).max()) > 0
    log_prob, value, _ = jax.jit(agent.evaluate)(state.params, state.model_state, traj, start_carry)
    np.testing.assert_allclose(log_prob, traj.log_prob, atol=1e-5)
    np.testing.assert_allclose(value, traj.value, atol=1e-5)


def test_no_gradient_through_stored_carry(agent, rollout_data):
    _, state, _, _, _ = rollout_data
    _, traj, start_carry, last_value = jax.jit(agent.rollout)(state)
    adv = jnp.ones_like(traj.value) * jnp.arange(traj.value.shape[1])
    ret = traj.value + 1.0

    def loss(params, carry):
        return agent.loss(params, state.model_state, traj, carry, adv, ret)[0]

    g_params, g_carry = jax.jit(jax.grad(loss, argnums=(0, 1)))(state.params, start_carry)
    assert float(jnp.abs(start_carry).max()) > 0
    np.testing.assert_array_equal(np.asarray(g_carry), 0.0)
    total = sum(float(jnp.abs(g).sum()) for g in jax.tree_util.tree_leaves(g_params))
    assert total > 0.0


# ----------------------------------------------------------------------------- training


def test_short_train_runs_and_metrics_finite(agent):
    state = agent.init(jax.random.key(3))
    new_state, metrics = agent.train(state, 3)
    steps = CONFIG["num_envs"] * CONFIG["rollout_length"]
    for key in (
        "env_steps",
        "episode_return",
        "episode_length",
        "episodes",
        "loss",
        "entropy",
        "policy_loss",
        "value_loss",
        "approx_kl",
        "clip_fraction",
    ):
        assert metrics[key].shape == (3,), key
        assert metrics[key].dtype == jnp.float32, key
        assert np.all(np.isfinite(np.asarray(metrics[key]))), key
    np.testing.assert_array_equal(metrics["env_steps"], [steps, 2 * steps, 3 * steps])
    assert np.all(np.asarray(metrics["episodes"]) > 0)
    # each episode lasts 1..5 steps and pays at most 1 per step
    assert np.all(
        (np.asarray(metrics["episode_length"]) >= 1) & (np.asarray(metrics["episode_length"]) <= 5)
    )
    assert np.all(
        np.asarray(metrics["episode_return"]) <= np.asarray(metrics["episode_length"]) + 1e-6
    )
    assert int(new_state.update_count) == 3
    changed = jax.tree_util.tree_map(
        lambda a, b: float(jnp.abs(a - b).max()), state.params, new_state.params
    )
    assert max(jax.tree_util.tree_leaves(changed)) > 0
    # annealed learning rate decreases linearly
    lr = np.asarray(metrics["learning_rate"])
    assert lr[0] > lr[1] > lr[2] >= 0


def test_act_greedy_and_sampled(agent):
    state = agent.init(jax.random.key(4))
    carry = agent.initial_carry(3)
    obs = jnp.array([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0]])
    c1, a1 = agent.act(state, obs, carry, jax.random.key(0), greedy=True, starts=jnp.ones(3, bool))
    c2, a2 = agent.act(state, obs, carry, jax.random.key(9), greedy=True, starts=jnp.ones(3, bool))
    assert a1.shape == (3,) and a1.dtype == jnp.int32
    np.testing.assert_array_equal(a1, a2)
    assert a1[0] == a1[2]  # same observation, same greedy action
    assert c1.shape == (3, 8)
    _, a3 = agent.act(state, obs, carry, jax.random.key(0), greedy=False)
    assert set(np.asarray(a3).tolist()) <= {0, 1}


def test_continuous_actions_train():
    net = TinyGRUActorCritic(2, action_dim=1, rngs=nnx.Rngs(0))
    agent = make_agent(PointEnv(), None, net, dict(CONFIG, ent_coef=0.0))
    assert not agent.discrete
    state = agent.init(jax.random.key(0))
    _, traj, start_carry, _ = jax.jit(agent.rollout)(state)
    assert traj.action.shape == (4, 12, 1) and traj.prev_action.shape == (4, 12, 1)
    np.testing.assert_array_equal(np.asarray(traj.prev_action)[np.asarray(traj.starts)], 0.0)
    log_prob, value, _ = jax.jit(agent.evaluate)(state.params, state.model_state, traj, start_carry)
    np.testing.assert_allclose(log_prob, traj.log_prob, atol=1e-5)
    _, metrics = agent.train(state, 2)
    assert np.all(np.isfinite(np.asarray(metrics["loss"])))
    assert np.all(np.asarray(metrics["episode_return"]) <= 0.0)


def test_make_agent_rejects_bad_network():
    with pytest.raises(ValueError, match="network"):
        make_agent(CueEnv(), None, {"torso": "gru"}, CONFIG)


def test_categorical_log_prob_and_entropy_hand_computed():
    from larvax.agents.ppo.learning import log_prob_and_entropy as _log_prob_and_entropy

    # row 0: p = (0.2, 0.8); row 1: p = (0.5, 0.5, 0) (a masked action, logit -inf)
    logits = jnp.array([[np.log(0.2), np.log(0.8), 0.0], [0.0, 0.0, -jnp.inf]])
    logits = logits.at[0, 2].set(-jnp.inf)
    dist = distrax.Categorical(logits=logits)
    log_prob, entropy = _log_prob_and_entropy(dist, jnp.array([1, 0]))
    np.testing.assert_allclose(log_prob, [np.log(0.8), np.log(0.5)], rtol=1e-6)
    want = [-(0.2 * np.log(0.2) + 0.8 * np.log(0.8)), np.log(2.0)]
    np.testing.assert_allclose(entropy, want, rtol=1e-6)
    log_prob, _ = _log_prob_and_entropy(dist, jnp.array([-1, 3]))  # outside the actions
    assert np.all(np.asarray(log_prob) == -np.inf)


# ----------------------------------------------------------------------------- library network


def test_library_network_replay_on_memory_task():
    """A registry network (shared GRU torso, OAR inputs) on POPGym RepeatPreviousEasy:
    two rollouts (the second from a carried-over, non-zero carry, episodes of 52 steps
    starting inside it); replaying from the stored carry reproduces both exactly."""
    from larvax.envs import make

    env, params = make("RepeatPreviousEasy")
    network = {
        "name": "shared_actor_critic", "torso": "gru", "hidden": [8], "hidden_size": 8,
        "use_prev_action": True, "use_prev_reward": True,
    }  # fmt: skip
    agent = make_agent(
        env,
        params,
        network,
        {"num_envs": 2, "rollout_length": 40, "num_epochs": 1, "num_minibatches": 1},
    )
    assert agent.model.action_kind == "discrete"
    rollout, evaluate = jax.jit(agent.rollout), jax.jit(agent.evaluate)
    state = agent.init(jax.random.key(0))
    for _ in range(2):
        new_state, traj, start_carry, _ = rollout(state)
        log_prob, value, _ = evaluate(state.params, state.model_state, traj, start_carry)
        np.testing.assert_allclose(log_prob, traj.log_prob, atol=1e-5)
        np.testing.assert_allclose(value, traj.value, atol=1e-5)
        state = new_state
    assert bool(traj.starts[:, 1:].any())  # an episode (52 steps) began inside rollout 2
    assert float(jnp.abs(start_carry).max()) > 0


def test_truncation_value_is_value_of_final_observation(agent, rollout_data):
    """truncation_value[b, t] = V(final observation) with the ended episode's carry: the
    value of a replayed sequence continued by one step on CueEnv's final observation
    ([0, 1.0] at step 5), prev action/reward = the last ones, no start."""
    state, _, traj, start_carry, _ = rollout_data
    tr = np.asarray(traj.truncated)
    b, t = (int(i) for i in np.argwhere(tr)[0])

    def cat(x, last):
        return jnp.concatenate([x[b : b + 1, : t + 1], last], axis=1)

    seq = traj._replace(
        observation=cat(traj.observation, jnp.array([[[0.0, 1.0]]])),
        prev_action=cat(traj.prev_action, traj.action[b : b + 1, t : t + 1]),
        prev_reward=cat(traj.prev_reward, traj.reward[b : b + 1, t : t + 1]),
        starts=cat(traj.starts, jnp.zeros((1, 1), bool)),
        action=cat(traj.action, jnp.zeros((1, 1), jnp.int32)),
    )
    _, value, _ = agent.evaluate(state.params, state.model_state, seq, start_carry[b : b + 1])
    np.testing.assert_allclose(value[0, -1], traj.truncation_value[b, t], atol=1e-5)


class ScoredCueEnv(CueEnv):
    """CueEnv declaring two episode metrics: correct answers (summed) and whether the
    episode ended by the time limit (its last step)."""

    episode_metrics = (
        EpisodeMetric("correct", "correct", label="correct"),
        EpisodeMetric("ended_by_time", "truncated", "last", 1),
    )

    def reset(self, key, params=None):
        state, ts = super().reset(key, params)
        return state, ts._replace(info={"correct": jnp.float32(0), "truncated": jnp.int32(0)})

    def step(self, key, state, action, params=None):
        state, ts = super().step(key, state, action, params)
        info = {"correct": ts.reward, "truncated": ts.truncated.astype(jnp.int32)}
        return state, ts._replace(info=info)


def test_declared_episode_metrics_are_reported():
    net = TinyGRUActorCritic(2, num_actions=2, rngs=nnx.Rngs(0))
    agent = make_agent(ScoredCueEnv(), None, net, CONFIG)
    state = agent.init(jax.random.key(2))
    _, traj, _, _ = jax.jit(agent.rollout)(state)
    done = np.asarray(traj.episode_done)
    ended = np.asarray(traj.episode_metrics["ended_by_time"])[done]
    np.testing.assert_array_equal(ended, np.asarray(traj.truncated)[done])
    assert 0 < ended.sum() < done.sum()
    _, metrics = agent.train(state, 2)
    # one point per correct step: the summed metric is the episode return
    np.testing.assert_array_equal(metrics["correct"], metrics["episode_return"])
    assert np.all((np.asarray(metrics["ended_by_time"]) >= 0) & (metrics["ended_by_time"] <= 1))


@pytest.mark.slow
def test_ppo_gru_learns_repeat_previous_easy():
    """Learning check (pytest -m slow, ~1-3 min on 2 cores): the ppo-repeat-previous-easy
    preset reaches a mean return >= 0.9 (of 1.0; random play scores about -0.5) within
    800k environment steps."""
    from larvax.envs import make
    from larvax.training.config import load_preset

    cfg = load_preset("ppo-repeat-previous-easy")
    env, params = make(cfg["env"]["name"])
    agent = make_agent(env, params, cfg["network"], cfg["agent_config"])
    state = agent.init(jax.random.key(0))
    returns = []
    for _ in range(800_000 // (10 * agent.env_steps_per_update)):
        state, metrics = agent.train(state, 10)
        returns.append(float(np.nanmean(np.asarray(metrics["episode_return"]))))
        if np.mean(returns[-3:]) >= 0.9:
            break
    assert np.mean(returns[-3:]) >= 0.9, returns
