"""Recurrent PPO (PureJaxRL style): one jitted function per training iteration.

One update, top to bottom (``PPOAgent._update``):

1. **Rollout**: ``lax.scan`` over ``rollout_length`` steps of ``num_envs`` vmapped,
   auto-resetting environments. The network's recurrent carry at the *start* of the
   rollout is stored; every step stores ``(observation, prev_action, prev_reward, starts,
   action, log_prob, value, reward, terminated, truncated, truncation_value)``.
   ``starts[t]`` is True when step ``t`` is the first of an episode (the network resets
   its carry before reading it); at an episode's first step ``prev_action = -1`` (discrete)
   or zeros (continuous) and ``prev_reward = 0``.
2. **Advantages**: GAE per environment (:func:`larvax.agents.losses.generalized_advantages`,
   vmapped): terminated steps do not bootstrap, truncated steps bootstrap from the value of
   ``info["final_observation"]`` (computed during the rollout with the ending episode's
   carry, only when some environment truncates: a real ``lax.cond`` on the batch).
3. **Optimisation**: ``num_epochs`` x ``num_minibatches`` Adam steps. Minibatches are
   whole sequences: the environments are shuffled and split into ``num_minibatches``
   groups; each group is replayed over all ``rollout_length`` steps from the stored
   rollout-start carry (gradient stopped) with the stored start flags, so before the
   first step the replay reproduces the rollout's log-probs and values exactly. Loss =
   clipped surrogate + ``vf_coef`` x clipped value loss - ``ent_coef`` x entropy, with
   advantages normalised per minibatch, global-norm gradient clipping and an optionally
   linearly annealed learning rate.

``train(state, num_updates)`` is a single ``lax.scan`` over updates inside one ``jit``: no
host synchronisation between updates. Its metrics (float32 ``[num_updates]``):
``env_steps``, ``episode_return``, ``episode_length`` (means over episodes that ended in
the update, NaN if none), ``episodes``, ``loss``, ``policy_loss``, ``value_loss``,
``entropy``, ``approx_kl``, ``clip_fraction``, ``grad_norm`` (means over the update's
gradient steps), ``value_mean``, ``advantage_mean``, ``learning_rate``.

Acting for evaluation: ``act(state, observation, carry, key, greedy=True, prev_action=...,
prev_reward=..., starts=...)``; networks built with ``use_prev_action`` /
``use_prev_reward`` need the previous action and reward passed (-1 / 0 on an episode's
first step, with ``starts=True``), exactly as the rollout feeds them.

The network is any Flax NNX module with the larvax actor-critic call signature::

    carry = net.initialize_carry(batch_shape)
    carry, (dist, value) = net(observation, prev_action, prev_reward, starts, carry)

(observation ``[B, T, ...]``, prev_action int32 ``[B, T]`` (-1 = none) or float32
``[B, T, act_dim]``, prev_reward float32 ``[B, T]``, starts bool ``[B, T]``; ``dist`` a
distrax distribution over ``[B, T]`` actions, value ``[B, T]``). A shared torso
(``SharedActorCritic``, ``LSTMActorCritic``) or separate actor and critic
(``ActorCritic``) is a choice of network, not of the agent.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from larvax.agents.losses import (
    clipped_surrogate_loss,
    clipped_value_loss,
    generalized_advantages,
    normalize_advantages,
)
from larvax.envs.core import Box, Dict, Discrete

Array = jax.Array
PyTree = Any


# ----------------------------------------------------------------------------- config


@dataclass(frozen=True)
class PPOConfig:
    """Hyperparameters of recurrent PPO (validated on construction).

    num_envs: parallel environments (B).
    rollout_length: environment steps per environment and update (T).
    num_epochs: passes over each rollout.
    num_minibatches: minibatches per epoch; they split the environments, so
        ``num_envs % num_minibatches == 0`` (each minibatch is ``num_envs /
        num_minibatches`` whole sequences of length T).
    gamma: discount per step, in [0, 1].
    gae_lambda: GAE lambda, in [0, 1].
    clip_eps: PPO ratio clipping epsilon (> 0).
    vf_clip: value clipping range (PPO2); 0 disables clipping of the value loss.
    vf_coef, ent_coef: weights of the value loss and of the entropy bonus (>= 0).
    lr: Adam learning rate (> 0); ``adam_eps`` its epsilon.
    anneal_lr: anneal the learning rate linearly to 0 over ``total_env_steps``.
    max_grad_norm: global-norm gradient clipping (> 0).
    normalize_advantages: normalise advantages per minibatch (zero mean, unit std).
    total_env_steps: the run's budget in environment steps; used only by the annealing
        schedule (the training loop decides how many updates to run).
    bootstrap_truncated: bootstrap truncated episodes from the value of the final
        observation (False treats truncation like termination; slightly cheaper).
    """

    num_envs: int = 8
    rollout_length: int = 128
    num_epochs: int = 4
    num_minibatches: int = 4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    vf_clip: float = 0.2
    vf_coef: float = 0.5
    ent_coef: float = 0.01
    lr: float = 3e-4
    anneal_lr: bool = True
    max_grad_norm: float = 0.5
    normalize_advantages: bool = True
    total_env_steps: int = 1_000_000
    adam_eps: float = 1e-5
    bootstrap_truncated: bool = True

    def __post_init__(self):
        ints_positive = (
            "num_envs",
            "rollout_length",
            "num_epochs",
            "num_minibatches",
            "total_env_steps",
        )
        for name in ints_positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"PPOConfig.{name} must be an integer >= 1, got {value!r}")
        for name in ("anneal_lr", "normalize_advantages", "bootstrap_truncated"):
            value = getattr(self, name)
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"PPOConfig.{name} must be a bool, got {value!r}")
        floats = {
            "gamma": (0.0, 1.0, True),
            "gae_lambda": (0.0, 1.0, True),
            "clip_eps": (0.0, math.inf, False),
            "vf_clip": (0.0, math.inf, True),
            "vf_coef": (0.0, math.inf, True),
            "ent_coef": (0.0, math.inf, True),
            "lr": (0.0, math.inf, False),
            "max_grad_norm": (0.0, math.inf, False),
            "adam_eps": (0.0, math.inf, False),
        }
        for name, (low, high, low_inclusive) in floats.items():
            value = getattr(self, name)
            ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(
                value, bool
            )
            if ok:
                value = float(value)
                ok = math.isfinite(value) and value <= high
                ok = ok and (value >= low if low_inclusive else value > low)
            if not ok:
                bound = f">= {low}" if low_inclusive else f"> {low}"
                upper = f" and <= {high}" if math.isfinite(high) else ""
                raise ValueError(
                    f"PPOConfig.{name} must be a finite number {bound}{upper}, got {value!r}"
                )
        if self.num_envs % self.num_minibatches != 0:
            raise ValueError(
                f"PPOConfig.num_minibatches={self.num_minibatches} must divide "
                f"num_envs={self.num_envs} (minibatches are groups of whole environment "
                "sequences); allowed: a divisor of num_envs"
            )

    @property
    def env_steps_per_update(self) -> int:
        return self.num_envs * self.rollout_length

    @property
    def total_updates(self) -> int:
        """Updates the annealing schedule spans: ceil(total_env_steps / steps per update)."""
        return max(1, -(-self.total_env_steps // self.env_steps_per_update))

    @classmethod
    def from_dict(cls, config: dict | PPOConfig | None) -> PPOConfig:
        """Build from a mapping; unknown keys raise a ValueError listing the allowed ones."""
        if config is None:
            return cls()
        if isinstance(config, cls):
            return config
        if not isinstance(config, dict):
            raise ValueError(f"PPO config must be a dict, got {type(config).__name__}")
        allowed = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(config) - set(allowed))
        if unknown:
            raise ValueError(f"unknown PPOConfig field(s) {unknown}; allowed: {', '.join(allowed)}")
        return cls(**config)


# ----------------------------------------------------------------------------- state


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
    """One rollout, batch-major ``[B, T, ...]`` (what a minibatch replays)."""

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


# ----------------------------------------------------------------------------- agent


def _add_time(tree: PyTree) -> PyTree:
    return jax.tree_util.tree_map(lambda x: x[:, None], tree)


def _time_major_to_batch_major(tree: PyTree) -> PyTree:
    return jax.tree_util.tree_map(lambda x: jnp.swapaxes(x, 0, 1), tree)


def _nanmean_where(values: Array, mask: Array) -> tuple[Array, Array]:
    count = mask.sum().astype(jnp.float32)
    total = jnp.where(mask, values, 0).astype(jnp.float32).sum()
    return jnp.where(count > 0, total / jnp.maximum(count, 1.0), jnp.nan), count


def _log_prob_and_entropy(dist, action: Array) -> tuple[Array, Array]:
    """``(dist.log_prob(action), dist.entropy())``, from one log-softmax for a categorical.

    ``distrax.Categorical`` stores normalised logits (log-probabilities); its ``log_prob``
    gathers them with a one-hot product and its ``entropy`` applies ``log_softmax`` again.
    The same values (``-inf`` outside the action range, ``0 log 0 = 0``) with one gather
    and no second normalisation; any other distribution uses its own methods.
    """
    if type(dist) is distrax.Categorical and dist._logits is not None:
        log_p = dist.logits  # log-softmax of the network's logits
        n = log_p.shape[-1]
        index = jnp.clip(action, 0, n - 1).astype(jnp.int32)
        picked = jnp.take_along_axis(log_p, index[..., None], axis=-1)[..., 0]
        log_prob = jnp.where((action < 0) | (action > n - 1), -jnp.inf, picked)
        p = jnp.exp(log_p)
        entropy = -jnp.sum(jnp.where(p == 0, 0.0, p * log_p), axis=-1)
        return log_prob, entropy
    return dist.log_prob(action), dist.entropy()


class PPOAgent:
    """Recurrent PPO on a larvax environment (see the module docstring).

    Build with :func:`make_agent`. Attributes: ``config`` (:class:`PPOConfig`), ``env``
    (the auto-resetting, statistics-recording wrapped env), ``env_params``, ``model``
    (the network template), ``env_steps_per_update``, ``discrete`` (action space kind).
    """

    def __init__(self, env, env_params, model: nnx.Module, config: PPOConfig):
        from larvax.envs.wrappers import wrap

        self.config = config
        self.base_env = env
        self.env = wrap(env, auto_reset=True, oar=False, statistics=True)
        self.env_params = env.default_params if env_params is None else env_params
        self.model = model
        self.graphdef, params, model_state = nnx.split(model, nnx.Param, ...)
        self._init_params = params
        self._init_model_state = model_state
        space = env.action_space(self.env_params)
        if isinstance(space, Discrete):
            self.discrete = True
            self.action_shape: tuple[int, ...] = ()
        elif isinstance(space, Box):
            self.discrete = False
            self.action_shape = tuple(space.shape)
            self._action_low = jnp.broadcast_to(jnp.asarray(space.low, jnp.float32), space.shape)
            self._action_high = jnp.broadcast_to(jnp.asarray(space.high, jnp.float32), space.shape)
        else:
            raise ValueError(
                f"PPO action space must be Discrete or Box, got {type(space).__name__}"
            )
        self.env_steps_per_update = config.env_steps_per_update
        c = config
        grad_steps = c.total_updates * c.num_epochs * c.num_minibatches
        lr = optax.linear_schedule(c.lr, 0.0, grad_steps) if c.anneal_lr else c.lr
        self.optimizer = optax.chain(
            optax.clip_by_global_norm(c.max_grad_norm),
            optax.adam(lr, eps=c.adam_eps),
        )
        self._lr = lr
        self.train = jax.jit(self._train, static_argnums=1)
        self._act_jit = jax.jit(self._act, static_argnames=("greedy",))

    # ------------------------------------------------------------------ helpers

    def _model(self, params, model_state) -> nnx.Module:
        return nnx.merge(self.graphdef, params, model_state)

    def _no_action(self, batch_shape: tuple[int, ...]) -> Array:
        if self.discrete:
            return jnp.full(batch_shape, -1, jnp.int32)
        return jnp.zeros(batch_shape + self.action_shape, jnp.float32)

    def _env_action(self, action: Array) -> Array:
        if self.discrete:
            return action
        return jnp.clip(action, self._action_low, self._action_high)

    def initial_carry(self, batch_size: int) -> PyTree:
        """The network carry for ``batch_size`` environments (for :meth:`act`)."""
        return self.model.initialize_carry((batch_size,))

    # ------------------------------------------------------------------ init

    def init(self, key: Array) -> TrainState:
        """Reset ``num_envs`` environments and the optimiser; returns a :class:`TrainState`.

        The network parameters are those of the network the agent was built with (its
        ``seed``); ``key`` drives the environments and the actions.
        """
        c = self.config
        key, env_key = jax.random.split(key)
        env_state, ts = jax.vmap(self.env.reset, (0, None))(
            jax.random.split(env_key, c.num_envs), self.env_params
        )
        params = jax.tree_util.tree_map(jnp.asarray, self._init_params)
        return TrainState(
            params=params,
            model_state=jax.tree_util.tree_map(jnp.asarray, self._init_model_state),
            opt_state=self.optimizer.init(params),
            env_state=env_state,
            observation=ts.observation,
            carry=self.model.initialize_carry((c.num_envs,)),
            prev_action=self._no_action((c.num_envs,)),
            prev_reward=jnp.zeros((c.num_envs,), jnp.float32),
            starts=jnp.ones((c.num_envs,), bool),
            key=key,
            update_count=jnp.int32(0),
            env_steps=jnp.int32(0),
        )

    # ------------------------------------------------------------------ rollout

    def rollout(self, state: TrainState) -> tuple[TrainState, Rollout, PyTree, Array]:
        """Collect ``rollout_length`` steps of ``num_envs`` environments.

        Returns ``(state, rollout, start_carry, last_value)``: ``rollout`` batch-major
        ``[B, T, ...]``, ``start_carry`` the carry at the rollout start ``[B, ...]``,
        ``last_value [B]`` the value of the observation after the rollout.
        """
        c = self.config
        model = self._model(state.params, state.model_state)
        env_step = jax.vmap(self.env.step, (0, 0, 0, None))

        def step(runner, keys):
            env_state, obs, carry, prev_action, prev_reward, starts = runner
            key_action, keys_env, noise = keys
            carry, (dist, value) = model(
                _add_time(obs),
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
            action, log_prob, value = action[:, 0], log_prob[:, 0], value[:, 0]
            env_state, ts = env_step(
                keys_env,
                env_state,
                self._env_action(action),
                self.env_params,
            )
            reward = jnp.asarray(ts.reward, jnp.float32)
            terminated = jnp.asarray(ts.terminated, bool)
            truncated = jnp.asarray(ts.truncated, bool)
            done = jnp.logical_or(terminated, truncated)
            if c.bootstrap_truncated:
                # V(final observation) with the ended episode's carry; computed only when
                # an environment truncates (the predicate is a scalar: a real branch).
                def final_value(_):
                    _, (_, v) = model(
                        _add_time(ts.info["final_observation"]),
                        action[:, None],
                        reward[:, None],
                        jnp.zeros((c.num_envs, 1), bool),
                        carry,
                    )
                    return jnp.where(truncated, v[:, 0], 0.0)

                truncation_value = jax.lax.cond(
                    jnp.any(truncated),
                    final_value,
                    lambda _: jnp.zeros((c.num_envs,), jnp.float32),
                    None,
                )
            else:
                truncated = jnp.zeros_like(truncated)
                terminated = done
                truncation_value = jnp.zeros((c.num_envs,), jnp.float32)
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
            )
            bshape = (1,) * (action.ndim - 1)
            next_prev_action = jnp.where(
                done.reshape(done.shape + bshape), self._no_action(done.shape), action
            )
            next_prev_reward = jnp.where(done, 0.0, reward)
            runner = (env_state, ts.observation, carry, next_prev_action, next_prev_reward, done)
            return runner, transition

        key, rollout_key = jax.random.split(state.key)
        runner = (
            state.env_state,
            state.observation,
            state.carry,
            state.prev_action,
            state.prev_reward,
            state.starts,
        )
        runner, traj = jax.lax.scan(step, runner, self._rollout_keys(model, state, rollout_key))
        env_state, obs, carry, prev_action, prev_reward, starts = runner
        _, (_, last_value) = model(
            _add_time(obs), prev_action[:, None], prev_reward[:, None], starts[:, None], carry
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

    def _rollout_keys(self, model, state: TrainState, rollout_key: Array):
        """Every step's random keys (and Gumbel noise), drawn before the rollout loop.

        Step ``t`` uses ``key_action, key_env = split(split(rollout_key, T)[t])``; the
        environments get ``split(key_env, num_envs)``. A categorical policy (a
        ``distrax.Categorical``) samples by Gumbel-max with the noise
        ``gumbel(key_action, (1, B, 1, A))`` of ``jax.random.categorical``: the same draws
        as ``dist.sample(seed=key_action)``. Drawing them in one batched call per kind
        replaces several small threefry loops per step (slow on CPU); other
        distributions sample inside the loop. Returns ``(key_action [T], keys_env [T, B],
        noise [T, 1, B, 1, A] or None)``.
        """
        c = self.config
        step_keys = jax.vmap(jax.random.split)(jax.random.split(rollout_key, c.rollout_length))
        key_action, key_env = step_keys[:, 0], step_keys[:, 1]
        keys_env = jax.vmap(lambda k: jax.random.split(k, c.num_envs))(key_env)
        # the policy's type and shape (a trace only: the values are unused)
        _, (dist, _) = jax.eval_shape(
            lambda: model(
                _add_time(state.observation),
                state.prev_action[:, None],
                state.prev_reward[:, None],
                state.starts[:, None],
                state.carry,
            )
        )
        noise = None
        if type(dist) is distrax.Categorical and dist._logits is not None:
            shape, dtype = (1, *dist.logits.shape), dist.logits.dtype
            noise = jax.vmap(lambda k: jax.random.gumbel(k, shape, dtype))(key_action)
        return key_action, keys_env, noise

    # ------------------------------------------------------------------ loss

    def evaluate(self, params, model_state, rollout: Rollout, start_carry: PyTree):
        """Replay whole sequences ``[b, T]`` from ``start_carry`` (gradient stopped).

        Returns ``(log_prob [b, T], value [b, T], entropy [b, T])`` under ``params``.
        """
        model = self._model(params, model_state)
        _, (dist, value) = model(
            rollout.observation,
            rollout.prev_action,
            rollout.prev_reward,
            rollout.starts,
            jax.lax.stop_gradient(start_carry),
        )
        log_prob, entropy = _log_prob_and_entropy(dist, rollout.action)
        return log_prob, value, entropy

    def loss(self, params, model_state, rollout: Rollout, start_carry, advantages, returns):
        """PPO loss of one minibatch of whole sequences; returns ``(loss, aux metrics)``.

        ``L = L^CLIP + vf_coef * L^V - ent_coef * mean(entropy)`` (see
        :mod:`larvax.agents.losses`).
        """
        c = self.config
        log_prob, value, entropy = self.evaluate(params, model_state, rollout, start_carry)
        if c.normalize_advantages:
            advantages = normalize_advantages(advantages)
        policy_loss, aux = clipped_surrogate_loss(
            log_prob, rollout.log_prob, advantages, c.clip_eps
        )
        value_loss = clipped_value_loss(value, rollout.value, returns, c.vf_clip)
        entropy = entropy.mean()
        total = policy_loss + c.vf_coef * value_loss - c.ent_coef * entropy
        aux = dict(aux, policy_loss=policy_loss, value_loss=value_loss, entropy=entropy)
        return total, aux

    # ------------------------------------------------------------------ update

    def _update(self, state: TrainState, _=None) -> tuple[TrainState, dict]:
        """One PPO iteration: rollout, GAE, epochs x minibatches of Adam steps."""
        c = self.config
        # 1. rollout
        state, traj, start_carry, last_value = self.rollout(state)

        # 2. advantages (per environment)
        gae = partial(generalized_advantages, gamma=c.gamma, gae_lambda=c.gae_lambda)
        advantages, returns = jax.vmap(gae)(
            traj.reward,
            traj.value,
            last_value,
            traj.terminated,
            traj.truncated,
            traj.truncation_value,
        )

        # 3. epochs x minibatches of whole sequences, split along environments
        grad_fn = jax.value_and_grad(self.loss, has_aux=True)
        mb_size = c.num_envs // c.num_minibatches

        def minibatch_step(carry, batch):
            params, opt_state = carry
            mb_traj, mb_carry, mb_adv, mb_ret = batch
            (loss, aux), grads = grad_fn(
                params, state.model_state, mb_traj, mb_carry, mb_adv, mb_ret
            )
            updates, opt_state = self.optimizer.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            aux = dict(aux, loss=loss, grad_norm=optax.tree.norm(grads))
            return (params, opt_state), aux

        def epoch(carry, key):
            perm = jax.random.permutation(key, c.num_envs).reshape(c.num_minibatches, mb_size)
            batches = jax.tree_util.tree_map(
                lambda x: x[perm], (traj, start_carry, advantages, returns)
            )
            return jax.lax.scan(minibatch_step, carry, batches)

        key, epoch_key = jax.random.split(state.key)
        (params, opt_state), aux = jax.lax.scan(
            epoch, (state.params, state.opt_state), jax.random.split(epoch_key, c.num_epochs)
        )
        state = state._replace(
            params=params, opt_state=opt_state, key=key, update_count=state.update_count + 1
        )

        # 4. metrics (float32 scalars)
        episode_return, episodes = _nanmean_where(traj.episode_return, traj.episode_done)
        episode_length, _ = _nanmean_where(traj.episode_length, traj.episode_done)
        grad_steps = state.update_count * c.num_epochs * c.num_minibatches
        lr = self._lr(grad_steps) if callable(self._lr) else self._lr
        metrics = {k: v.mean().astype(jnp.float32) for k, v in aux.items()}
        metrics.update(
            env_steps=state.env_steps.astype(jnp.float32),
            episode_return=episode_return,
            episode_length=episode_length,
            episodes=episodes,
            value_mean=traj.value.mean(),
            advantage_mean=advantages.mean(),
            learning_rate=jnp.asarray(lr, jnp.float32),
        )
        return state, metrics

    def _train(self, state: TrainState, num_updates: int) -> tuple[TrainState, dict]:
        return jax.lax.scan(self._update, state, None, length=num_updates)

    # ------------------------------------------------------------------ act

    def _act(
        self, params, model_state, observation, carry, key, prev_action, prev_reward, starts, greedy
    ):
        model = self._model(params, model_state)
        carry, (dist, _) = model(
            _add_time(observation),
            prev_action[:, None],
            prev_reward[:, None],
            starts[:, None],
            carry,
        )
        if greedy:
            action = dist.mode()
        else:
            action = dist.sample(seed=key)
        return carry, action[:, 0]

    def act(
        self,
        state: TrainState,
        observation: PyTree,
        carry: PyTree,
        key: Array,
        greedy: bool = True,
        prev_action: Array | None = None,
        prev_reward: Array | None = None,
        starts: Array | None = None,
    ):
        """One step for evaluation, batch-major: returns ``(carry, action [B, ...])``.

        ``observation [B, ...]``, ``carry`` from :meth:`initial_carry` or the previous
        call. ``prev_action`` (default: none, -1 / zeros), ``prev_reward`` (default 0) and
        ``starts`` (default False: continue the carry) describe the step as in the
        network signature; pass ``starts=True`` on an episode's first step. ``greedy``
        takes the distribution's mode, otherwise samples with ``key``.
        """
        leaves = jax.tree_util.tree_leaves(observation)
        batch = leaves[0].shape[0]
        if prev_action is None:
            prev_action = self._no_action((batch,))
        if prev_reward is None:
            prev_reward = jnp.zeros((batch,), jnp.float32)
        if starts is None:
            starts = jnp.zeros((batch,), bool)
        return self._act_jit(
            state.params,
            state.model_state,
            observation,
            carry,
            key,
            jnp.asarray(prev_action),
            jnp.asarray(prev_reward, jnp.float32),
            jnp.asarray(starts, bool),
            greedy=greedy,
        )


# ----------------------------------------------------------------------------- factory


def _space_shape(space) -> Any:
    if isinstance(space, Dict):
        return {k: _space_shape(v) for k, v in space.spaces.items()}
    if isinstance(space, (Box, Discrete)):
        return list(space.shape)
    raise ValueError(f"observation space {type(space).__name__} has no shape")


def _space_kwargs(env, env_params) -> dict:
    """Network kwargs filled from the environment's spaces.

    ``obs_shape`` (a shape list, or a dict of them for a Dict observation space) and
    ``num_actions`` (Discrete) or ``action_dim`` (Box, flattened size).
    """
    act_space = env.action_space(env_params)
    kwargs: dict[str, Any] = {"obs_shape": _space_shape(env.observation_space(env_params))}
    if isinstance(act_space, Discrete):
        kwargs["num_actions"] = int(act_space.n)
    else:
        kwargs["action_dim"] = int(np.prod(act_space.shape))
    return kwargs


def build_network(env, env_params, network: dict | nnx.Module) -> nnx.Module:
    """The actor-critic network: an nnx module as is, or ``{"name": ..., **kwargs}``.

    A dict goes to ``larvax.networks.registry.create(name, seed=..., **kwargs)``
    (``seed`` defaults to 0). ``obs_shape`` and ``num_actions`` / ``action_dim`` are filled
    from the environment's spaces when the model's constructor takes them and the dict
    sets neither them nor ``obs_dim``.
    """
    if isinstance(network, nnx.Module):
        return network
    if not isinstance(network, dict) or "name" not in network:
        raise ValueError(
            f"network must be a dict {{'name': registry name, **kwargs}} or an nnx.Module, "
            f"got {network!r}"
        )
    from larvax.networks import registry

    kwargs = dict(network)
    name = kwargs.pop("name")
    seed = kwargs.pop("seed", 0)
    accepted = inspect.signature(registry.get_class(name).__init__).parameters
    filled = _space_kwargs(env, env_params)
    if "obs_dim" in kwargs:
        filled.pop("obs_shape")
    if "num_actions" in kwargs or "action_dim" in kwargs:
        filled.pop("num_actions", None)
        filled.pop("action_dim", None)
    for k, v in filled.items():
        if k in accepted:
            kwargs.setdefault(k, v)
    return registry.create(name, seed=seed, **kwargs)


def make_agent(env, env_params, network: dict | nnx.Module, config: dict | PPOConfig | None):
    """Build a :class:`PPOAgent` (the ``larvax.agents.base`` contract)."""
    cfg = PPOConfig.from_dict(config)
    model = build_network(env, env_params, network)
    return PPOAgent(env, env_params, model, cfg)


__all__ = [
    "PPOAgent",
    "PPOConfig",
    "Rollout",
    "TrainState",
    "build_network",
    "make_agent",
]
