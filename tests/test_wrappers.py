"""Wrappers: auto-reset semantics, episode statistics, OAR, mirror involution."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from larvax.envs.core import Box, Dict, Discrete, Environment, TimeStep
from larvax.envs.wrappers import (
    AutoReset,
    EpisodeStatistics,
    Mirror,
    PreviousActionReward,
    wrap,
)


class Walk(Environment):
    """A toy 1-D walk with a left/right symmetry.

    Actions 0, 1, 2 move by -1, 0, +1 (mirror: 0 <-> 2). The start position is drawn
    from {-1, 0, 1} with the reset key. Observation [position, side] with side = +1
    to the right... reflected as [-position, -side]. Reward = 1 + move + position after
    the move (asymmetric so the mirror matters). Terminated at |position| >= 3,
    truncated after ``max_steps`` steps. info["hit"] = 1.0 when terminated, "steps" = t.
    """

    mirror_actions = jnp.array([2, 1, 0], jnp.int32)

    @property
    def default_params(self):
        return {"max_steps": 4}

    def _obs(self, pos):
        return jnp.stack([pos, jnp.sign(pos)]).astype(jnp.float32)

    def reset(self, key, params=None):
        pos = jax.random.randint(key, (), -1, 2).astype(jnp.float32)
        state = {"pos": pos, "t": jnp.int32(0)}
        info = {"hit": jnp.float32(0.0), "steps": jnp.int32(0)}
        return state, TimeStep(
            self._obs(pos), jnp.float32(0.0), jnp.bool_(False), jnp.bool_(False), info
        )

    def step(self, key, state, action, params=None):
        params = self.default_params if params is None else params
        move = jnp.asarray(action, jnp.float32) - 1.0
        pos = state["pos"] + move
        t = state["t"] + 1
        terminated = jnp.abs(pos) >= 3
        truncated = jnp.logical_and(t >= params["max_steps"], ~terminated)
        reward = (1.0 + move + pos).astype(jnp.float32)
        info = {"hit": terminated.astype(jnp.float32), "steps": t}
        return {"pos": pos, "t": t}, TimeStep(self._obs(pos), reward, terminated, truncated, info)

    def observation_space(self, params=None):
        return Box(-4.0, 4.0, (2,))

    def action_space(self, params=None):
        return Discrete(3)

    def reflect_observation(self, observation):
        return -observation


@pytest.fixture(scope="module")
def keys():
    return jax.random.split(jax.random.key(0), 64)


def rollout(env, actions, key, params=None):
    """Python loop of jitted steps; returns list of TimeSteps (reset first)."""
    reset = jax.jit(env.reset)
    step = jax.jit(env.step)
    k0, key = jax.random.split(key)
    state, ts = reset(k0, params)
    out = [ts]
    for a in actions:
        key, k = jax.random.split(key)
        state, ts = step(k, state, jnp.int32(a), params)
        out.append(ts)
    return out


def test_autoreset_truncation_carries_final_observation():
    env = AutoReset(Walk())
    # start in {-1,0,1}; action 1 (stay) never terminates -> truncation after 4 steps
    traj = rollout(env, [1] * 9, jax.random.key(3))
    for i, ts in enumerate(traj):
        np.testing.assert_array_equal(ts.info["final_observation"].shape, (2,))
        if i in (4, 8):
            assert bool(ts.truncated) and not bool(ts.terminated)
            # final observation: position unchanged by "stay" = observation before
            np.testing.assert_array_equal(ts.info["final_observation"], traj[i - 1].observation)
            assert int(ts.info["steps"]) == 4  # info of the ending transition
        else:
            assert not bool(ts.done)
            np.testing.assert_array_equal(ts.info["final_observation"], ts.observation)
        if i > 0:
            # reward of the transition: 1 + 0 + position after move
            assert float(ts.reward) == 1.0 + float(ts.info["final_observation"][0])


def test_autoreset_termination_resets_state():
    env = AutoReset(Walk())
    # always +1: from start p0 in {-1,0,1} terminates after 3 - p0 steps
    traj = rollout(env, [2] * 12, jax.random.key(5))
    p0 = float(traj[0].observation[0])
    end = int(3 - p0)
    ts = traj[end]
    assert bool(ts.terminated) and not bool(ts.truncated)
    assert float(ts.info["final_observation"][0]) == 3.0
    assert float(ts.reward) == 1.0 + 1.0 + 3.0
    assert float(ts.info["hit"]) == 1.0
    new_p = float(ts.observation[0])
    assert new_p in (-1.0, 0.0, 1.0)
    # the next step starts from the new episode: position new_p + 1
    assert float(traj[end + 1].info["final_observation"][0]) == new_p + 1.0


def test_autoreset_vmaps_and_jits():
    env = AutoReset(Walk())
    n = 8
    state, ts = jax.vmap(env.reset, (0, None))(jax.random.split(jax.random.key(1), n), None)
    step = jax.jit(jax.vmap(env.step, (0, 0, 0, None)))
    actions = jnp.full((n,), 2, jnp.int32)
    key = jax.random.key(2)
    for _ in range(6):
        key, k = jax.random.split(key)
        state, ts = step(jax.random.split(k, n), state, actions, None)
        # wherever done, final observation is at |pos| = 3; the new obs is a start position
        done = np.asarray(ts.done)
        fin = np.asarray(ts.info["final_observation"][:, 0])
        obs = np.asarray(ts.observation[:, 0])
        assert np.all(fin[done] == 3.0)
        assert np.all(np.abs(obs[done]) <= 1.0)
        np.testing.assert_array_equal(fin[~done], obs[~done])


def _hand_episodes(traj):
    """Hand-sum rewards of the raw trajectory between episode ends."""
    episodes, ret, length, hits = [], 0.0, 0, 0.0
    for ts in traj[1:]:
        ret += float(ts.reward)
        length += 1
        hits += float(ts.info["hit"])
        if bool(ts.done):
            episodes.append((ret, length, hits))
            ret, length, hits = 0.0, 0, 0.0
    return episodes


@pytest.mark.parametrize("order", ["stats_outside", "stats_inside"])
def test_episode_statistics_equal_hand_sums(order):
    base = Walk()
    if order == "stats_outside":
        env = EpisodeStatistics(AutoReset(base), sum_info=("hit",))
    else:
        env = AutoReset(EpisodeStatistics(base, sum_info=("hit",)))
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 3, size=40)
    traj = rollout(env, actions, jax.random.key(7))
    expected = _hand_episodes(traj)
    assert len(expected) >= 5
    got = [
        (
            float(ts.info["episode_return"]),
            int(ts.info["episode_length"]),
            float(ts.info["episode_hit"]),
        )
        for ts in traj[1:]
        if bool(ts.info["episode_done"])
    ]
    assert len(got) == len(expected)
    np.testing.assert_allclose(np.array(got, dtype=np.float64), np.array(expected), rtol=1e-6)
    assert traj[0].info["episode_done"].dtype == jnp.bool_


def test_episode_statistics_bad_field():
    env = EpisodeStatistics(AutoReset(Walk()), sum_info=("prey_caught",))
    with pytest.raises(ValueError, match="prey_caught"):
        env.reset(jax.random.key(0))


def test_oar_first_step_and_autoreset():
    env = PreviousActionReward(AutoReset(Walk()))
    space = env.observation_space()
    assert isinstance(space, Dict) and set(space.spaces) == {
        "observation",
        "prev_action",
        "prev_reward",
    }
    traj = rollout(env, [2] * 8, jax.random.key(5))
    first = traj[0].observation
    assert int(first["prev_action"]) == -1 and float(first["prev_reward"]) == 0.0
    assert first["prev_action"].dtype == jnp.int32
    assert first["prev_reward"].dtype == jnp.float32
    for ts in traj[1:]:
        obs = ts.observation
        fin = ts.info["final_observation"]
        assert int(fin["prev_action"]) == 2
        assert float(fin["prev_reward"]) == float(ts.reward)
        if bool(ts.done):
            assert int(obs["prev_action"]) == -1 and float(obs["prev_reward"]) == 0.0
        else:
            assert int(obs["prev_action"]) == 2
            assert float(obs["prev_reward"]) == float(ts.reward)
    assert any(bool(ts.done) for ts in traj)


def test_oar_inside_autoreset_same_first_step():
    env = AutoReset(PreviousActionReward(Walk()))
    traj = rollout(env, [2] * 8, jax.random.key(5))
    for ts in traj[1:]:
        if bool(ts.done):
            assert int(ts.observation["prev_action"]) == -1
            assert int(ts.info["final_observation"]["prev_action"]) == 2


def test_mirror_acts_in_mirror_world():
    base = Walk()
    env = Mirror(base)
    key = jax.random.key(11)
    s0, ts0 = env.reset(key)
    b0, bts0 = base.reset(key)
    np.testing.assert_array_equal(ts0.observation, -bts0.observation)
    # action 0 in the mirror world is +1 in the base world
    s1, ts1 = env.step(key, s0, jnp.int32(0))
    assert float(s1["pos"]) == float(b0["pos"]) + 1.0
    np.testing.assert_array_equal(ts1.observation, -base._obs(b0["pos"] + 1.0))


def test_mirror_involution():
    base = AutoReset(Walk())
    twice = Mirror(Mirror(base))
    rng = np.random.default_rng(1)
    actions = rng.integers(0, 3, size=15)
    a = rollout(base, actions, jax.random.key(4))
    b = rollout(twice, actions, jax.random.key(4))
    for x, y in zip(a, b, strict=True):
        jax.tree_util.tree_map(np.testing.assert_array_equal, x, y)
    # forwarding of spaces, params and the symmetry
    assert twice.default_params == base.default_params
    assert twice.action_space() == Discrete(3)
    np.testing.assert_array_equal(twice.mirror_actions, [2, 1, 0])


def test_mirror_requires_symmetry():
    class NoSym(Walk):
        mirror_actions = None

    with pytest.raises(ValueError, match="mirror_actions"):
        Mirror(NoSym())


def test_oar_reflect_observation_maps_prev_action():
    env = PreviousActionReward(Walk())
    obs = {
        "observation": jnp.array([1.0, 1.0]),
        "prev_action": jnp.int32(0),
        "prev_reward": jnp.float32(2.0),
    }
    r = env.reflect_observation(obs)
    assert int(r["prev_action"]) == 2
    np.testing.assert_array_equal(r["observation"], [-1.0, -1.0])
    obs["prev_action"] = jnp.int32(-1)
    assert int(env.reflect_observation(obs)["prev_action"]) == -1


def test_wrap_stack_forwards():
    env = wrap(Walk(), oar=True, mirror=True, sum_info=("hit",))
    assert env.default_params == {"max_steps": 4}
    assert env.action_space() == Discrete(3)
    np.testing.assert_array_equal(env.mirror_actions, [2, 1, 0])
    state, ts = jax.jit(env.reset)(jax.random.key(0))
    assert set(ts.info) >= {"final_observation", "episode_return", "episode_hit"}
    assert env.unwrapped.__class__ is Walk
