"""Adapters: gymnax environments behind the larvax contract, larvax envs as gymnasium envs."""

from __future__ import annotations

import warnings

import gymnasium
import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import larvax.envs
from larvax.envs import Box, Dict, Discrete, make, to_gymnasium
from larvax.envs.adapters import GymnaxEnv, make_gymnax, to_gymnasium_space
from larvax.envs.wrappers import AutoReset, PreviousActionReward


def run_check_env(genv):
    """gymnasium's checker; fails on its warnings except the two that do not apply."""
    benign = ("render", "infinity")  # no render modes; OAR's prev_reward box is unbounded
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(genv, skip_render_check=True)
    bad = [str(w.message) for w in caught if not any(b in str(w.message) for b in benign)]
    assert not bad, bad


# ----------------------------------------------------------------------------- gymnax


@pytest.fixture(scope="module")
def cartpole():
    env, params = make("gymnax:CartPole-v1", max_steps_in_episode=20)
    return env, params, jax.jit(env.step)


def test_make_gymnax_builds_and_overrides(cartpole):
    env, params, _ = cartpole
    assert isinstance(env, GymnaxEnv) and env.name == "gymnax:CartPole-v1"
    assert params.max_steps_in_episode == 20
    assert env.action_space(params) == Discrete(2)
    space = env.observation_space(params)
    assert isinstance(space, Box) and space.shape == (4,)
    _, default = make_gymnax("CartPole-v1")
    assert default.max_steps_in_episode == 500
    with pytest.raises(ValueError, match="NoSuchEnv"):
        make("gymnax:NoSuchEnv-v0")


def test_gymnax_transitions_equal_gymnax(cartpole):
    """Same keys, same actions: the same observations and rewards as gymnax's step_env."""
    env, params, step = cartpole
    genv, gparams = gymnax.make("CartPole-v1")
    gparams = gparams.replace(max_steps_in_episode=20)
    key = jax.random.key(0)
    state, ts = env.reset(key, params)
    gobs, gstate = genv.reset_env(key, gparams)
    np.testing.assert_array_equal(ts.observation, gobs)
    for a in [1, 0, 0, 1, 1, 0]:
        key, k = jax.random.split(key)
        state, ts = step(k, state, jnp.int32(a), params)
        gobs, gstate, grew, gterm, _ = genv.step_env(k, gstate, a, gparams)
        np.testing.assert_allclose(ts.observation, gobs, rtol=1e-6, atol=1e-7)
        assert float(ts.reward) == float(grew) == 1.0
        assert bool(ts.terminated) == bool(gterm)


def test_gymnax_cartpole_truncates_at_time_limit(cartpole):
    env, params, step = cartpole
    state, ts = env.reset(jax.random.key(1), params)
    for t in range(1, 21):
        x, x_dot, theta, theta_dot = np.asarray(ts.observation)
        a = int(theta + 0.5 * theta_dot + 0.05 * x_dot > 0)  # balances for 20 steps
        state, ts = step(jax.random.key(t), state, jnp.int32(a), params)
        assert not bool(ts.terminated)
        assert bool(ts.truncated) == (t == 20)


def test_gymnax_cartpole_terminates_when_falling(cartpole):
    env, params, step = cartpole
    state, ts = env.reset(jax.random.key(2), params)
    for t in range(1, 21):  # always push right: the pole falls before 20 steps
        state, ts = step(jax.random.key(t), state, jnp.int32(1), params)
        if bool(ts.done):
            break
    assert bool(ts.terminated) and not bool(ts.truncated) and t < 20
    theta = float(ts.observation[2])
    assert abs(theta) > 12 * 2 * np.pi / 360 or abs(float(ts.observation[0])) > 2.4


# ----------------------------------------------------------------------------- gymnasium


def test_space_conversion():
    g = to_gymnasium_space(
        Dict({"a": Discrete(5), "b": Box(-1.0, 2.0, (3, 2)), "c": Box(-1, 4, (), jnp.int32)})
    )
    assert isinstance(g, gymnasium.spaces.Dict)
    assert g["a"] == gymnasium.spaces.Discrete(5)
    assert g["b"].shape == (3, 2) and g["b"].dtype == np.float32
    np.testing.assert_array_equal(g["b"].low, np.full((3, 2), -1.0, np.float32))
    np.testing.assert_array_equal(g["b"].high, np.full((3, 2), 2.0, np.float32))
    assert g["c"].dtype == np.int32 and g["c"].low == -1 and g["c"].high == 4

    class Odd(larvax.envs.Space):
        pass

    with pytest.raises(ValueError, match="Odd"):
        to_gymnasium_space(Odd())
    with pytest.raises(ValueError, match="larvax Environment"):
        to_gymnasium("CartPole-v1")


def test_check_env_memory_task():
    env, params = make("RepeatPreviousEasy")
    run_check_env(to_gymnasium(env, params, seed=0))


def test_check_env_dict_observation_with_oar():
    env, params = make("AutoencodeEasy")
    run_check_env(to_gymnasium(PreviousActionReward(env), params))


def test_check_env_gymnax_cartpole(cartpole):
    env, params, _ = cartpole
    run_check_env(to_gymnasium(env, params, seed=3))


def test_check_env_simfish():
    env, params = make("simfish")
    genv = to_gymnasium(env, params, seed=0)
    assert set(genv.observation_space.spaces) == {"visual", "internal"}
    assert genv.observation_space["visual"].shape == (139, 3, 2)
    run_check_env(genv)


def test_gymnasium_episode_follows_the_key_stream():
    """reset(seed=s) uses split(key(s)) in order: reset, then one split per step."""
    env, params = make("RepeatFirstEasy")
    genv = to_gymnasium(env, params)
    obs, info = genv.reset(seed=5)
    assert obs.dtype == np.float32 and obs.shape == (4,) and info == {}
    key = jax.random.key(5)
    key, k = jax.random.split(key)
    state, ts = env.reset(k, params)
    np.testing.assert_array_equal(obs, ts.observation)
    first_suit = int(state.cards[0] % 4)
    total, steps = 0.0, 0
    while True:
        obs, reward, terminated, truncated, _ = genv.step(first_suit)  # the oracle
        assert isinstance(reward, float) and isinstance(terminated, bool)
        total += reward
        steps += 1
        if terminated or truncated:
            break
    assert steps == 51 and terminated and not truncated
    assert total == pytest.approx(1.0, abs=1e-5)
    # the same seed gives the same episode
    obs2, _ = genv.reset(seed=5)
    np.testing.assert_array_equal(obs2, ts.observation)


def test_autoreset_info_reaches_gymnasium():
    env, params = make("RepeatPreviousEasy")
    genv = to_gymnasium(AutoReset(env), params, seed=1)
    _, info = genv.reset()
    assert set(info) == {"final_observation"}
    for _ in range(51):
        obs, _, terminated, _, info = genv.step(0)
    assert terminated
    # the episode ended: the returned obs begins a new one, the final one is kept in info
    assert info["final_observation"].shape == (4,)
    assert isinstance(info["final_observation"], np.ndarray)
