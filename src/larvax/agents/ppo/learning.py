"""PPO's learning step: advantages, the loss of a minibatch of whole sequences, the epochs x
minibatches of Adam steps, and the update's metrics.

Minibatches are whole sequences: the environments are shuffled and split into
``num_minibatches`` groups; each group is replayed over all ``rollout_length`` steps from
the stored rollout-start carry (gradient stopped) with the stored start flags, so before
the first step the replay reproduces the rollout's log-probs and values exactly.

On ``D`` devices (inside ``jax.shard_map``, :mod:`larvax.agents.ppo.agent`) each device
holds ``num_envs / D`` environments; the rollout is gathered (``all_gather``) so that every
minibatch holds the environments one device would pick, each device computes the gradient of
its ``1 / D`` of the minibatch and the gradients are averaged (``pmean``): the mean loss of
the whole minibatch, with advantages normalised over the whole minibatch.

The functions take the agent (:class:`larvax.agents.ppo.agent.PPOAgent`) first: its
config, network, optimiser and learning-rate schedule.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from larvax.agents.losses import (
    clipped_surrogate_loss,
    clipped_value_loss,
    generalized_advantages,
    normalize_advantages,
)
from larvax.agents.ppo.config import AXIS
from larvax.agents.ppo.rollout import _is_categorical, rollout
from larvax.agents.ppo.state import Rollout, TrainState

Array = jax.Array
PyTree = Any


def log_prob_and_entropy(dist, action: Array) -> tuple[Array, Array]:
    """``(dist.log_prob(action), dist.entropy())``, from one log-softmax for a categorical.

    ``distrax.Categorical`` stores normalised logits (log-probabilities); its ``log_prob``
    gathers them with a one-hot product and its ``entropy`` applies ``log_softmax`` again.
    The same values (``-inf`` outside the action range, ``0 log 0 = 0``) with one gather
    and no second normalisation; any other distribution uses its own methods.
    """
    if _is_categorical(dist):
        log_p = dist.logits  # log-softmax of the network's logits
        n = log_p.shape[-1]
        index = jnp.clip(action, 0, n - 1).astype(jnp.int32)
        picked = jnp.take_along_axis(log_p, index[..., None], axis=-1)[..., 0]
        log_prob = jnp.where((action < 0) | (action > n - 1), -jnp.inf, picked)
        p = jnp.exp(log_p)
        entropy = -jnp.sum(jnp.where(p == 0, 0.0, p * log_p), axis=-1)
        return log_prob, entropy
    return dist.log_prob(action), dist.entropy()


def evaluate(agent, params, model_state, traj: Rollout, start_carry: PyTree):
    """Replay whole sequences ``[b, T]`` from ``start_carry`` (gradient stopped).

    Returns ``(log_prob [b, T], value [b, T], entropy [b, T])`` under ``params``.
    """
    model = agent.network(params, model_state)
    _, (dist, value) = model(
        traj.observation,
        traj.prev_action,
        traj.prev_reward,
        traj.starts,
        jax.lax.stop_gradient(start_carry),
    )
    log_prob, entropy = log_prob_and_entropy(dist, traj.action)
    return log_prob, value, entropy


def loss(agent, params, model_state, traj: Rollout, start_carry, advantages, returns):
    """PPO loss of one minibatch of whole sequences; returns ``(loss, aux metrics)``.

    ``L = L^CLIP + vf_coef * L^V - ent_coef * mean(entropy)`` (see
    :mod:`larvax.agents.losses`).
    """
    c = agent.config
    log_prob, value, entropy = evaluate(agent, params, model_state, traj, start_carry)
    if c.normalize_advantages:
        advantages = _normalize_over_devices(agent, advantages)
    policy_loss, aux = clipped_surrogate_loss(log_prob, traj.log_prob, advantages, c.clip_eps)
    value_loss = clipped_value_loss(value, traj.value, returns, c.vf_clip)
    entropy = entropy.mean()
    total = policy_loss + c.vf_coef * value_loss - c.ent_coef * entropy
    aux = dict(aux, policy_loss=policy_loss, value_loss=value_loss, entropy=entropy)
    return total, aux


def _mean_over_devices(agent, tree: PyTree) -> PyTree:
    """``tree`` averaged over the devices (equal shares: the mean of the whole batch), as
    one flat vector: one all-reduce instead of one per leaf (each costs ~4 ms between CPU
    processes over gloo, measured)."""
    if agent.num_devices == 1:
        return tree
    flat, unravel = ravel_pytree(tree)
    return unravel(jax.lax.pmean(flat, AXIS))


def _normalize_over_devices(agent, advantages: Array, eps: float = 1e-8) -> Array:
    """:func:`normalize_advantages` with the mean and std of the minibatch over all devices."""
    if agent.num_devices == 1:
        return normalize_advantages(advantages, eps)
    mean = jax.lax.pmean(advantages.mean(), AXIS)
    var = jax.lax.pmean(jnp.square(advantages - mean).mean(), AXIS)
    return (advantages - mean) / (jnp.sqrt(var) + eps)


def _all_devices(agent, tree: PyTree) -> PyTree:
    """Every device's environments along axis 0, in global order (``all_gather``)."""
    if agent.num_devices == 1:
        return tree
    return jax.tree_util.tree_map(lambda x: jax.lax.all_gather(x, AXIS, axis=0, tiled=True), tree)


def _my_share(agent, rows: Array) -> Array:
    """This device's ``1 / D`` of each minibatch's rows ``[M, mb] -> [M, mb / D]``."""
    if agent.num_devices == 1:
        return rows
    n = rows.shape[1] // agent.num_devices
    return jax.lax.dynamic_slice_in_dim(rows, jax.lax.axis_index(AXIS) * n, n, 1)


def advantages_and_returns(config, traj: Rollout, last_value: Array) -> tuple[Array, Array]:
    """GAE per environment (vmapped :func:`larvax.agents.losses.generalized_advantages`):
    terminated steps do not bootstrap, truncated ones bootstrap from ``truncation_value``.
    Returns ``(advantages [B, T], returns [B, T])``."""
    gae = partial(generalized_advantages, gamma=config.discount, gae_lambda=config.gae_lambda)
    return jax.vmap(gae)(
        traj.reward,
        traj.value,
        last_value,
        traj.terminated,
        traj.truncated,
        traj.truncation_value,
    )


def optimise(agent, state: TrainState, traj, start_carry, advantages, returns):
    """``num_epochs`` x ``num_minibatches`` Adam steps on whole sequences, split along the
    environments by a fresh permutation per epoch. Returns ``(state, aux [E, M])``.

    On several devices the permutation is the same on all of them; each takes its share of
    every minibatch from the gathered rollout and the gradients are averaged."""
    c = agent.config
    grad_fn = jax.value_and_grad(partial(loss, agent), has_aux=True)
    data = _all_devices(agent, (traj, start_carry, advantages, returns))

    def minibatch_step(carry, batch):
        params, opt_state = carry
        mb_traj, mb_carry, mb_adv, mb_ret = batch
        (total, aux), grads = grad_fn(params, state.model_state, mb_traj, mb_carry, mb_adv, mb_ret)
        grads, total, aux = _mean_over_devices(agent, (grads, total, aux))
        updates, opt_state = agent.optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        aux = dict(aux, loss=total, grad_norm=optax.tree.norm(grads))
        return (params, opt_state), aux

    def epoch(carry, key):
        perm = jax.random.permutation(key, c.num_envs).reshape(c.num_minibatches, c.minibatch_size)
        rows = _my_share(agent, perm)
        batches = jax.tree_util.tree_map(lambda x: x[rows], data)
        return jax.lax.scan(minibatch_step, carry, batches)

    key, epoch_key = jax.random.split(state.key)
    (params, opt_state), aux = jax.lax.scan(
        epoch, (state.params, state.opt_state), jax.random.split(epoch_key, c.num_epochs)
    )
    state = state._replace(
        params=params, opt_state=opt_state, key=key, update_count=state.update_count + 1
    )
    return state, aux


def _nanmean_where(agent, values: Array, mask: Array) -> tuple[Array, Array]:
    count = mask.sum().astype(jnp.float32)
    total = jnp.where(mask, values, 0).astype(jnp.float32).sum()
    if agent.num_devices > 1:
        count, total = jax.lax.psum((count, total), AXIS)
    return jnp.where(count > 0, total / jnp.maximum(count, 1.0), jnp.nan), count


def update_metrics(agent, state: TrainState, traj: Rollout, advantages, aux) -> dict:
    """The update's float32 scalar metrics: episode statistics (means over the episodes
    that ended, NaN if none; the environment's declared metrics under their names), the
    loss terms averaged over the gradient steps, and the learning rate in use."""
    c = agent.config
    episode_return, episodes = _nanmean_where(agent, traj.episode_return, traj.episode_done)
    episode_length, _ = _nanmean_where(agent, traj.episode_length, traj.episode_done)
    grad_steps = state.update_count * c.grad_steps_per_update
    schedule = agent.learning_rate_schedule
    lr = schedule(grad_steps) if callable(schedule) else schedule
    metrics = {k: v.mean().astype(jnp.float32) for k, v in aux.items()}
    metrics.update(
        env_steps=state.env_steps.astype(jnp.float32),
        episode_return=episode_return,
        episode_length=episode_length,
        episodes=episodes,
        value_mean=_mean_over_devices(agent, traj.value.mean()),
        advantage_mean=_mean_over_devices(agent, advantages.mean()),
        learning_rate=jnp.asarray(lr, jnp.float32),
    )
    for name, values in traj.episode_metrics.items():
        metrics[name] = _nanmean_where(agent, values, traj.episode_done)[0]
    return metrics


def update(agent, state: TrainState, _=None) -> tuple[TrainState, dict]:
    """One PPO iteration, top to bottom: rollout, GAE, epochs x minibatches of Adam steps."""
    state, traj, start_carry, last_value = rollout(agent, state)
    advantages, returns = advantages_and_returns(agent.config, traj, last_value)
    state, aux = optimise(agent, state, traj, start_carry, advantages, returns)
    return state, update_metrics(agent, state, traj, advantages, aux)
