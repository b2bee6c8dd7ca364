"""The PPO agent (the ``larvax.agents.base`` contract): environment wrapping, network and
optimiser, ``init``, the compiled ``train`` scan and ``act`` for evaluation.

Data parallelism: ``train`` runs under ``jax.shard_map`` over a mesh of
``PPOConfig.num_devices`` devices (all of ``jax.devices()`` when several processes are joined
by ``jax.distributed``). The per-environment leaves of :class:`TrainState` are split over the
mesh, the network, optimiser state, key and counters replicated.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from larvax.agents import base
from larvax.agents.ppo import learning
from larvax.agents.ppo import rollout as rollout_lib
from larvax.agents.ppo.config import AXIS, PPOConfig
from larvax.agents.ppo.state import Rollout, TrainState
from larvax.distributed import mesh_devices
from larvax.envs.core import Box, Discrete

Array = jax.Array
PyTree = Any


class PPOAgent:
    """Recurrent PPO on a larvax environment (see :mod:`larvax.agents.ppo`).

    Build with :func:`make_agent`. Attributes: ``config`` (:class:`PPOConfig`), ``env``
    (the auto-resetting, statistics-recording wrapped env), ``env_params``, ``model``
    (the network template), ``env_steps_per_update``, ``discrete`` (action space kind),
    ``episode_metrics`` (what the environment declares; reported per update).
    """

    # TrainState fields that belong to the world, not the learner: a curriculum stage
    # (larvax.training.curriculum) starts them afresh in its environment.
    environment_fields = (
        "env_state",
        "observation",
        "carry",
        "prev_action",
        "prev_reward",
        "starts",
    )
    replay_fields = ()
    # TrainState fields holding the network: field -> "params" (nnx.Param) or "rest" (the
    # network's other state); a warm start (larvax.training.warm_start) fills them.
    network_fields = {"params": "params", "model_state": "rest"}

    def __init__(self, env, env_params, model: nnx.Module, config: PPOConfig):
        from larvax.envs.wrappers import wrap

        self.config = config
        self.base_env = env
        # Episode ends: AutoReset restarts an environment within the step that ends it.
        self.env = wrap(env, auto_reset=True, oar=False, statistics=True)
        self.env_params = env.default_params if env_params is None else env_params
        self.episode_metrics = tuple(env.episode_metrics)
        self.model = model
        self.graphdef, self._init_params, self._init_model_state = nnx.split(model, nnx.Param, ...)
        self._set_action_space(env.action_space(self.env_params))
        self.env_steps_per_update = config.env_steps_per_update
        c = config
        self.num_devices = c.resolve_devices(len(jax.devices()))
        self.mesh = Mesh(np.array(mesh_devices(self.num_devices)), (AXIS,))
        self.local_envs = c.num_envs // self.num_devices
        grad_steps = c.total_updates * c.grad_steps_per_update
        lr = c.learning_rate
        self.learning_rate_schedule = (
            optax.linear_schedule(lr, 0.0, grad_steps) if c.anneal_lr else lr
        )
        self.optimizer = optax.chain(
            optax.clip_by_global_norm(c.max_grad_norm),
            optax.adam(self.learning_rate_schedule, eps=c.adam_eps),
        )
        self._train_jit = jax.jit(self._train, static_argnums=1)
        self._act_jit = jax.jit(self._act, static_argnames=("greedy",))

    def _set_action_space(self, space) -> None:
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

    # ------------------------------------------------------------------ helpers

    def network(self, params, model_state) -> nnx.Module:
        """The network with ``params`` and ``model_state`` (inside a trace)."""
        return nnx.merge(self.graphdef, params, model_state)

    def no_action(self, batch_shape: tuple[int, ...]) -> Array:
        """The previous action at an episode's first step: -1 (discrete) or zeros."""
        if self.discrete:
            return jnp.full(batch_shape, -1, jnp.int32)
        return jnp.zeros(batch_shape + self.action_shape, jnp.float32)

    def env_action(self, action: Array) -> Array:
        """The action the environment receives (continuous ones clipped to the space)."""
        if self.discrete:
            return action
        return jnp.clip(action, self._action_low, self._action_high)

    def initial_carry(self, batch_size: int) -> PyTree:
        """The network carry for ``batch_size`` environments (for :meth:`act`)."""
        return self.model.initialize_carry((batch_size,))

    # ------------------------------------------------------------------ init and training

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
            prev_action=self.no_action((c.num_envs,)),
            prev_reward=jnp.zeros((c.num_envs,), jnp.float32),
            starts=jnp.ones((c.num_envs,), bool),
            key=key,
            update_count=jnp.int32(0),
            env_steps=jnp.int32(0),
        )

    def rollout(self, state: TrainState) -> tuple[TrainState, Rollout, PyTree, Array]:
        """See :func:`larvax.agents.ppo.rollout.rollout`."""
        return rollout_lib.rollout(self, state)

    def evaluate(self, params, model_state, rollout: Rollout, start_carry: PyTree):
        """See :func:`larvax.agents.ppo.learning.evaluate`."""
        return learning.evaluate(self, params, model_state, rollout, start_carry)

    def loss(self, params, model_state, rollout: Rollout, start_carry, advantages, returns):
        """See :func:`larvax.agents.ppo.learning.loss`."""
        return learning.loss(self, params, model_state, rollout, start_carry, advantages, returns)

    def _state_specs(self) -> TrainState:
        """PartitionSpecs (a pytree prefix of TrainState): per-environment leaves split over
        the devices; network, optimiser, key and counters replicated."""
        d, r = P(AXIS), P()
        return TrainState(
            params=r,
            model_state=r,
            opt_state=r,
            env_state=d,
            observation=d,
            carry=d,
            prev_action=d,
            prev_reward=d,
            starts=d,
            key=r,
            update_count=r,
            env_steps=r,
        )

    def state_shardings(self, state: TrainState) -> TrainState:
        """A NamedSharding for every leaf of ``state`` (arrays or ShapeDtypeStructs)."""
        return jax.tree_util.tree_map(
            lambda spec, sub: jax.tree_util.tree_map(lambda _: NamedSharding(self.mesh, spec), sub),
            self._state_specs(),
            state,
            is_leaf=lambda x: isinstance(x, P),
        )

    def shard(self, state: TrainState) -> TrainState:
        """``state`` laid out over this agent's devices (every process passes the same state)."""
        from larvax.distributed import put_global

        return put_global(state, self.state_shardings(state))

    def _train(self, state: TrainState, num_updates: int) -> tuple[TrainState, dict]:
        specs = self._state_specs()
        run = jax.shard_map(
            lambda s: jax.lax.scan(
                lambda s, _: learning.update(self, s), s, None, length=num_updates
            ),
            mesh=self.mesh,
            in_specs=(specs,),
            out_specs=(specs, P()),
            check_vma=False,  # replicated outputs are made so by pmean/psum (tested)
        )
        return run(state)

    def train(self, state: TrainState, num_updates: int) -> tuple[TrainState, dict]:
        """``num_updates`` updates in one compiled scan over the agent's devices. Returns
        ``(state, metrics)``: metrics a dict of float32 ``[num_updates]``, replicated."""
        if isinstance(num_updates, bool) or not isinstance(num_updates, int) or num_updates < 1:
            raise ValueError(f"train: num_updates must be an int >= 1, got {num_updates!r}")
        return self._train_jit(self.shard(state), num_updates)

    # ------------------------------------------------------------------ act

    def _act(
        self, params, model_state, observation, carry, key, prev_action, prev_reward, starts, greedy
    ):
        model = self.network(params, model_state)
        carry, (dist, _) = model(
            rollout_lib.add_time(observation),
            prev_action[:, None],
            prev_reward[:, None],
            starts[:, None],
            carry,
        )
        action = dist.mode() if greedy else dist.sample(seed=key)
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

        ``observation [B, ...]``, ``carry`` from :meth:`initial_carry` (None: that) or the
        previous call. ``prev_action`` (default: none, -1 / zeros), ``prev_reward`` (default 0) and
        ``starts`` (default False: continue the carry) describe the step as in the
        network signature; pass ``starts=True`` on an episode's first step. ``greedy``
        takes the distribution's mode, otherwise samples with ``key``.
        """
        batch = jax.tree_util.tree_leaves(observation)[0].shape[0]
        if carry is None:
            carry = self.initial_carry(batch)
        if prev_action is None:
            prev_action = self.no_action((batch,))
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


def build_network(env, env_params, network: dict | nnx.Module) -> nnx.Module:
    """The actor-critic network: an nnx module as is, or ``{"name": ..., **kwargs}`` built by
    :func:`larvax.agents.base.build_network` (spaces fill ``obs_shape`` and
    ``num_actions`` / ``action_dim``; ``seed`` defaults to 0)."""
    return base.build_network(env, env_params, network)[0]


def make_agent(env, env_params, network: dict | nnx.Module, config: dict | PPOConfig | None):
    """Build a :class:`PPOAgent` (the ``larvax.agents.base`` contract)."""
    cfg = PPOConfig.from_dict(config)
    model = build_network(env, env_params, network)
    return PPOAgent(env, env_params, model, cfg)
