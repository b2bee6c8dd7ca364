"""PPO's rollout: ``rollout_length`` steps of ``num_envs`` vmapped, auto-resetting
environments in one ``lax.scan``, recording what the update replays (:class:`Rollout`).

Every step feeds the network ``(observation, prev_action, prev_reward, starts, carry)``;
at an episode's first step ``prev_action = -1`` (discrete) or zeros (continuous),
``prev_reward = 0`` and ``starts = True``. A truncated episode is bootstrapped from the
value of ``info["final_observation"]`` under the ending episode's carry.

The functions take the agent (:class:`larvax.agents.ppo.agent.PPOAgent`) first: its
config, wrapped environment, network and action helpers.
"""

from __future__ import annotations

from typing import Any

import distrax
import jax
import jax.numpy as jnp

from larvax.agents.ppo.config import AXIS
from larvax.agents.ppo.state import Rollout, TrainState

Array = jax.Array
PyTree = Any


def add_time(tree: PyTree) -> PyTree:
    """``[B, ...] -> [B, 1, ...]`` for every leaf: one step as a sequence of length 1."""
    return jax.tree_util.tree_map(lambda x: x[:, None], tree)


def _time_major_to_batch_major(tree: PyTree) -> PyTree:
    return jax.tree_util.tree_map(lambda x: jnp.swapaxes(x, 0, 1), tree)


def _is_categorical(dist) -> bool:
    """A ``distrax.Categorical`` built from logits (whose ``logits`` are log-probabilities)."""
    return type(dist) is distrax.Categorical and dist._logits is not None


def local_rows(agent, x: Array, axis: int = 0) -> Array:
    """This device's share of a ``num_envs`` axis (inside ``shard_map``; as is on one device).

    Device ``d`` of ``D`` holds environments ``[d * B / D, (d + 1) * B / D)``. Random draws
    are made for all ``B`` environments and sliced, so each environment sees the same keys
    whatever ``D``.
    """
    if agent.num_devices == 1:
        return x
    start = jax.lax.axis_index(AXIS) * agent.local_envs
    return jax.lax.dynamic_slice_in_dim(x, start, agent.local_envs, axis)


def rollout_keys(agent, model, state: TrainState, rollout_key: Array):
    """Every step's random keys (and Gumbel noise), drawn before the rollout loop.

    Step ``t`` uses ``key_action, key_env = split(split(rollout_key, T)[t])``; the
    environments get ``split(key_env, num_envs)``. A categorical policy (a
    ``distrax.Categorical``) samples by Gumbel-max with the noise
    ``gumbel(key_action, (1, B, 1, A))`` of ``jax.random.categorical``: the same draws
    as ``dist.sample(seed=key_action)``. Drawing them in one batched call per kind
    replaces several small threefry loops per step (slow on CPU); other
    distributions sample inside the loop. Returns ``(key_action [T], keys_env [T, B],
    noise [T, 1, B, 1, A] or None)``, ``B`` this device's environments (:func:`local_rows`).
    """
    c = agent.config
    step_keys = jax.vmap(jax.random.split)(jax.random.split(rollout_key, c.rollout_length))
    key_action, key_env = step_keys[:, 0], step_keys[:, 1]
    keys_env = local_rows(agent, jax.vmap(lambda k: jax.random.split(k, c.num_envs))(key_env), 1)
    # the policy's type and shape (a trace only: the values are unused)
    _, (dist, _) = jax.eval_shape(
        lambda: model(
            add_time(state.observation),
            state.prev_action[:, None],
            state.prev_reward[:, None],
            state.starts[:, None],
            state.carry,
        )
    )
    noise = None
    if _is_categorical(dist):
        shape, dtype = (1, c.num_envs, *dist.logits.shape[1:]), dist.logits.dtype
        noise = jax.vmap(lambda k: jax.random.gumbel(k, shape, dtype))(key_action)
        noise = local_rows(agent, noise, 2)
    return key_action, keys_env, noise


def _policy_step(model, obs, prev_action, prev_reward, starts, carry, key_action, noise):
    """One network step on ``[B]`` inputs; returns ``(carry, action, log_prob, value)``."""
    carry, (dist, value) = model(
        add_time(obs),
        prev_action[:, None],
        prev_reward[:, None],
        starts[:, None],
        carry,
    )
    if noise is None:
        action, log_prob = dist.sample_and_log_prob(seed=key_action)
    else:  # Gumbel-max with this step's noise: jax.random.categorical's sample
        log_p = dist.logits
        action = jnp.argmax(noise[0] + log_p, axis=-1)
        log_prob = jnp.take_along_axis(log_p, action[..., None], axis=-1)[..., 0]
    return carry, action[:, 0], log_prob[:, 0], value[:, 0]


def _episode_ends(agent, model, ts, action, reward, carry):
    """``(terminated, truncated, truncation_value)`` of one step, all ``[B]``.

    With ``bootstrap_truncated`` the truncation value is V(final observation) under the
    ended episode's carry, computed only when some environment truncates (the predicate
    is a scalar: a real branch); otherwise truncation counts as termination.
    """
    c = agent.config
    terminated = jnp.asarray(ts.terminated, bool)
    truncated = jnp.asarray(ts.truncated, bool)
    no_value = jnp.zeros((agent.local_envs,), jnp.float32)
    if not c.bootstrap_truncated:
        return jnp.logical_or(terminated, truncated), jnp.zeros_like(truncated), no_value

    def final_value(_):
        _, (_, v) = model(
            add_time(ts.info["final_observation"]),
            action[:, None],
            reward[:, None],
            jnp.zeros((agent.local_envs, 1), bool),
            carry,
        )
        return jnp.where(truncated, v[:, 0], 0.0)

    value = jax.lax.cond(jnp.any(truncated), final_value, lambda _: no_value, None)
    return terminated, truncated, value


def _env_step(agent, model, runner, keys):
    """The ``lax.scan`` body: act, step the environments, record a :class:`Rollout` step."""
    env_state, obs, prev_carry, prev_action, prev_reward, starts = runner
    key_action, keys_env, noise = keys
    carry, action, log_prob, value = _policy_step(
        model, obs, prev_action, prev_reward, starts, prev_carry, key_action, noise
    )
    env_state, ts = jax.vmap(agent.env.step, (0, 0, 0, None))(
        keys_env, env_state, agent.env_action(action), agent.env_params
    )
    reward = jnp.asarray(ts.reward, jnp.float32)
    terminated, truncated, truncation_value = _episode_ends(agent, model, ts, action, reward, carry)
    done = jnp.logical_or(jnp.asarray(ts.terminated, bool), jnp.asarray(ts.truncated, bool))
    transition = Rollout(
        observation=obs,
        prev_action=prev_action,
        prev_reward=prev_reward,
        starts=starts,
        action=action,
        log_prob=log_prob,
        value=value,
        reward=reward,
        terminated=terminated,
        truncated=truncated,
        truncation_value=truncation_value,
        episode_done=jnp.asarray(ts.info["episode_done"], bool),
        episode_return=jnp.asarray(ts.info["episode_return"], jnp.float32),
        episode_length=jnp.asarray(ts.info["episode_length"], jnp.float32),
        episode_metrics={
            m.name: jnp.asarray(ts.info[f"episode_{m.name}"], jnp.float32)
            for m in agent.episode_metrics
        },
    )
    bshape = (1,) * (action.ndim - 1)
    next_prev_action = jnp.where(
        done.reshape(done.shape + bshape), agent.no_action(done.shape), action
    )
    next_prev_reward = jnp.where(done, 0.0, reward)
    return (env_state, ts.observation, carry, next_prev_action, next_prev_reward, done), transition


def rollout(agent, state: TrainState) -> tuple[TrainState, Rollout, PyTree, Array]:
    """Collect ``rollout_length`` steps of ``num_envs`` environments.

    Returns ``(state, rollout, start_carry, last_value)``: ``rollout`` batch-major
    ``[B, T, ...]``, ``start_carry`` the carry at the rollout start ``[B, ...]``,
    ``last_value [B]`` the value of the observation after the rollout.
    """
    c = agent.config
    model = agent.network(state.params, state.model_state)
    key, rollout_key = jax.random.split(state.key)
    runner = (
        state.env_state,
        state.observation,
        state.carry,
        state.prev_action,
        state.prev_reward,
        state.starts,
    )
    runner, traj = jax.lax.scan(
        lambda r, k: _env_step(agent, model, r, k),
        runner,
        rollout_keys(agent, model, state, rollout_key),
    )
    env_state, obs, carry, prev_action, prev_reward, starts = runner
    _, (_, last_value) = model(
        add_time(obs), prev_action[:, None], prev_reward[:, None], starts[:, None], carry
    )
    new_state = state._replace(
        env_state=env_state,
        observation=obs,
        carry=carry,
        prev_action=prev_action,
        prev_reward=prev_reward,
        starts=starts,
        key=key,
        env_steps=state.env_steps + c.env_steps_per_update,
    )
    return new_state, _time_major_to_batch_major(traj), state.carry, last_value[:, 0]
