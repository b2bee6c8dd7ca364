"""What PPO carries between updates (:class:`TrainState`) and what one rollout holds
(:class:`Rollout`): pytrees of arrays."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax

Array = jax.Array
PyTree = Any


class TrainState(NamedTuple):
    """Everything PPO carries between updates: a pytree of arrays (a checkpoint).

    params: the network's ``nnx.Param`` state; ``model_state``: its other state.
    opt_state: optax state. env_state: batched environment state ``[B, ...]``.
    observation: the current observation ``[B, ...]``; carry: the network carry ``[B,
    ...]`` before reading it; prev_action ``[B]`` int32 or ``[B, act_dim]`` float32;
    prev_reward ``[B]`` float32; starts ``[B]`` bool (the current observation begins an
    episode). key: PRNG key. update_count, env_steps: int32 counters.
    """

    params: PyTree
    model_state: PyTree
    opt_state: PyTree
    env_state: PyTree
    observation: PyTree
    carry: PyTree
    prev_action: Array
    prev_reward: Array
    starts: Array
    key: Array
    update_count: Array
    env_steps: Array


class Rollout(NamedTuple):
    """One rollout, batch-major ``[B, T, ...]`` (what a minibatch replays).

    ``episode_done``, ``episode_return``, ``episode_length`` and ``episode_metrics`` (the
    environment's declared metrics by name) describe the episode that ended at a step;
    they are valid where ``episode_done``.
    """

    observation: PyTree
    prev_action: Array
    prev_reward: Array
    starts: Array
    action: Array
    log_prob: Array
    value: Array
    reward: Array
    terminated: Array
    truncated: Array
    truncation_value: Array
    episode_done: Array
    episode_return: Array
    episode_length: Array
    episode_metrics: dict
