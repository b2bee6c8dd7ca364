"""R2D2Agent: the actors, the replay and the learner wired into one compiled ``train``.

One update, on every device's share of actors and replay rows (``jax.shard_map``):
``period`` acting ticks (``acting.Actor.tick``), then those steps and the recurrent state(s)
held before them go into ``SequenceReplay`` (``larvax.agents.replay``: one item of
``burn_in + trace_length + 1`` steps starts every ``period`` steps), then, once
``min_replay_size`` sequences are sampleable, ``learner_steps_per_update`` learner steps
(``learning.Learner.step``; the number fixed by ``samples_per_insert``).
``train(state, num_updates)`` is one ``jax.jit`` of one ``lax.scan`` over updates.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from larvax.agents.base import build_network, rebuild_network
from larvax.agents.losses import importance_weights
from larvax.agents.r2d2.acting import (
    ActCarry,
    Actor,
    apply_network,
    compact_mask,
    stored_step_example,
)
from larvax.agents.r2d2.config import AXIS, R2D2Config, actor_epsilons, resolve_num_devices
from larvax.agents.r2d2.learning import Learner, TrainState, sample_batch
from larvax.agents.replay import ReplayState, SequenceReplay
from larvax.distributed import mesh_devices
from larvax.envs.core import Discrete
from larvax.networks.extractors import supports_mirror

Array = jax.Array


def _mirror_features_match(env, env_params, network, atol: float = 1e-4) -> bool:
    """Whether ``network.features(obs, ..., with_mirror=True)`` equals the features of
    ``obs`` and ``env.reflect_observation(obs)`` computed separately, on random observations
    (``observation_space.sample``), with the initial and with random parameters (the initial
    ones may hide a wrong mirror in dead units). Checked once at start-up, eagerly on a tiny
    batch, so that a mirror that does not match this environment is never used."""
    space = env.observation_space(env_params)
    samples = [space.sample(k) for k in jax.random.split(jax.random.key(1234), 2)]
    obs = jax.tree.map(lambda *x: jnp.stack(x).astype(jnp.float32)[:, None], *samples)
    mobs = jax.vmap(jax.vmap(env.reflect_observation))(obs)
    both = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), obs, mobs)
    pa = jnp.zeros((4, 1), jnp.int32)
    pr = jnp.zeros((4, 1), jnp.float32)
    st = jnp.ones((4, 1), bool)
    graphdef, params, rest = nnx.split(network, nnx.Param, ...)
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(4321), len(leaves))
    noisy = [
        jax.random.normal(k, x.shape, x.dtype) * 0.5 for k, x in zip(keys, leaves, strict=True)
    ]
    for net in (network, nnx.merge(graphdef, jax.tree.unflatten(treedef, noisy), rest)):
        try:
            fast = net.features(obs, pa, pr, st, with_mirror=True)
        except (ValueError, TypeError):
            return False
        slow = net.features(both, pa, pr, st)
        scale = 1.0 + float(jnp.max(jnp.abs(slow)))
        if fast.shape != slow.shape or not bool(
            jnp.allclose(fast, slow, rtol=1e-5, atol=atol * scale)
        ):
            return False
    return True


class R2D2Agent:
    """R2D2 (Kapturowski et al., ICLR 2019) with prioritised sequence replay and mirror
    augmentation. Built by ``make_agent``; ``init(key)``, ``train(state, num_updates)``,
    ``act(...)``. See ``acting`` (the actors), ``learning`` (the learner) and
    ``larvax.agents.losses`` (the TD maths)."""

    # TrainState fields that belong to the world, not the learner: a curriculum stage
    # (larvax.training.curriculum) starts them afresh in its environment.
    environment_fields = ("actor",)
    replay_fields = ("replay",)
    # TrainState fields holding the network: field -> "params" (nnx.Param) or "rest" (the
    # network's other state); a warm start (larvax.training.warm_start) fills them.
    network_fields = {"params": "params", "target_params": "params", "rest": "rest"}

    def __init__(self, env, env_params, network, config: R2D2Config, network_spec=None):
        self.env = env
        self.env_params = env_params if env_params is not None else env.default_params
        self.config = c = config
        self.network_spec = network_spec
        space = env.action_space(self.env_params)
        if not isinstance(space, Discrete):
            raise ValueError(f"R2D2 needs a Discrete action space, got {space!r}")
        self.num_actions = int(space.n)
        self._setup_mirror(network)
        self.graphdef, self._params0, self._rest0 = nnx.split(network, nnx.Param, ...)
        self._net0 = network
        # Data parallelism: D devices, each with num_envs / D actors, their replay rows and
        # batch_size / D sequences per learner step; ``train`` runs under ``jax.shard_map``.
        self.num_devices = resolve_num_devices(c, len(jax.devices()))
        self.mesh = Mesh(np.array(mesh_devices(self.num_devices)), (AXIS,))
        self.local_envs = c.num_envs // self.num_devices
        self.local_batch = c.batch_size // self.num_devices
        # The whole buffer (for inspection outside ``train``) and one device's rows.
        self.replay = SequenceReplay(c.num_envs, c.slots_per_env, c.period, c.sequence_length)
        local_replay = SequenceReplay(self.local_envs, c.slots_per_env, c.period, c.sequence_length)
        tx = [optax.adam(c.learning_rate, eps=c.adam_eps)]
        if c.max_grad_norm is not None:
            tx.insert(0, optax.clip_by_global_norm(c.max_grad_norm))
        self.optimizer = optax.chain(*tx)
        self.epsilons = actor_epsilons(c.num_envs, c.epsilon_max, c.epsilon_min)
        self.compact_mask = compact_mask(env, self.env_params, c.compact_observations)
        self.actor = Actor(
            env,
            self.env_params,
            self.graphdef,
            c,
            num_actions=self.num_actions,
            epsilons=self.epsilons,
            local_envs=self.local_envs,
            mirror_actions=self.mirror_actions,
            exact_mirror=self.mirror and c.mirror_carry == "exact",
            mirror_features=self.mirror_features,
            observation_mask=self.compact_mask,
        )
        self.learner = Learner(
            self.graphdef,
            c,
            self.optimizer,
            local_replay,
            local_batch=self.local_batch,
            mirror_actions=self.mirror_actions,
            reflect=env.reflect_observation if self.mirror else None,
            mirror_features=self.mirror_features,
        )
        self.metric_names = tuple(m.name for m in self.actor.metrics)
        self._train = jax.jit(self._train_impl, static_argnums=1, donate_argnums=0)
        self._learner_step = jax.shard_map(
            self.learner.step,
            mesh=self.mesh,
            in_specs=(self._state_specs(), P()),
            out_specs=(self._state_specs(), P()),
            check_vma=False,
        )
        self._act = jax.jit(self._act_impl, static_argnames=("greedy",))

    def _setup_mirror(self, network) -> None:
        """``mirror`` (augment with the environment's mirror map), ``mirror_actions`` and
        ``mirror_features`` (the network derives mirrored features, checked to match)."""
        c, env = self.config, self.env
        has_mirror = getattr(env, "mirror_actions", None) is not None
        if c.mirror is True and not has_mirror:
            raise ValueError(
                f"R2D2Config.mirror=True but environment {env.name} declares no "
                "mirror_actions; allowed: 'auto' or False"
            )
        self.mirror = bool(has_mirror and c.mirror in ("auto", True))
        self.mirror_actions = (
            jnp.asarray(np.asarray(env.mirror_actions), jnp.int32) if self.mirror else None
        )
        self.mirror_features = bool(
            self.mirror
            and c.mirror_features == "auto"
            and supports_mirror(network)
            and _mirror_features_match(env, self.env_params, network)
        )

    # -------------------------------------------------------------------- sizes, network

    @property
    def env_steps_per_update(self) -> int:
        """Actor ticks per update summed over actors (a reset tick counts as a step)."""
        return self.config.num_envs * self.config.period

    def replay_nbytes(self) -> int:
        """Bytes of this agent's replay buffer (see ``larvax.agents.replay``)."""
        return self.replay.nbytes(*self._replay_examples())

    def apply(self, params, rest, obs, prev_action, prev_reward, starts, carry, with_mirror=False):
        """carry, q [B, T, A] = net(obs [B, T, ...], prev_action, prev_reward, starts, carry)
        (``with_mirror``: see ``Network``)."""
        return apply_network(
            self.graphdef, params, rest, obs, prev_action, prev_reward, starts, carry, with_mirror
        )

    def _q_step(self, params, rest, obs, prev_action, prev_reward, start, carry, with_mirror=False):
        """One tick for a batch [B]: returns (carry, q [B, A])."""
        return self.actor.q_step(
            params, rest, obs, prev_action, prev_reward, start, carry, with_mirror
        )

    def initialize_carry(self, batch_size: int):
        return self._net0.initialize_carry((batch_size,))

    def _replay_examples(self):
        """(one unbatched StoredStep, one item's extras: the recurrent state(s) at its start)."""
        step = stored_step_example(self.env, self.env_params, self.compact_mask)
        carry = jax.tree.map(lambda x: x[0], self.initialize_carry(1))
        extras = dict(carry=carry)
        if self.mirror and self.config.mirror_carry == "exact":
            extras["carry_mirror"] = carry
        return step, extras

    # -------------------------------------------------------------------- init, devices

    def _params_for_key(self, key):
        if self.network_spec is None:
            return self._params0, self._rest0
        _, params, rest = nnx.split(rebuild_network(self.network_spec, key), nnx.Param, ...)
        return params, rest

    def init(self, key: Array) -> TrainState:
        """A fresh TrainState: network from ``key`` (registry networks), envs reset."""
        k_net, k_env, k_run = jax.random.split(key, 3)
        params, rest = self._params_for_key(k_net)
        params = jax.tree.map(jnp.asarray, params)
        rest = jax.tree.map(jnp.asarray, rest)
        actor = self.actor.initial_state(k_env, self.initialize_carry(self.config.num_envs))
        state = TrainState(
            params=params,
            target_params=jax.tree.map(jnp.copy, params),
            rest=rest,
            opt_state=self.optimizer.init(params),
            replay=self.replay.init(*self._replay_examples()),
            actor=actor,
            key=k_run,
            updates=jnp.zeros((), jnp.int32),
            learner_steps=jnp.zeros((), jnp.int32),
        )
        # Distinct buffers for every leaf: ``train`` donates its input state.
        state = jax.tree.map(lambda x: jnp.array(x, copy=True), state)
        return self.shard(state)

    def _state_specs(self) -> TrainState:
        """PartitionSpecs (a pytree prefix of TrainState): per-actor leaves split over the
        devices, the network, optimiser, RNG key and counters replicated."""
        d, r = P(AXIS), P()
        return TrainState(
            params=r,
            target_params=r,
            rest=r,
            opt_state=r,
            replay=ReplayState(steps=d, extras=d, priorities=d, max_priority=r, num_steps=r),
            actor=d,
            key=r,
            updates=r,
            learner_steps=r,
        )

    def state_shardings(self, state: TrainState) -> TrainState:
        """A NamedSharding for every leaf of ``state`` (arrays or ShapeDtypeStructs)."""
        return jax.tree.map(
            lambda spec, sub: jax.tree.map(lambda _: NamedSharding(self.mesh, spec), sub),
            self._state_specs(),
            state,
            is_leaf=lambda x: isinstance(x, P),
        )

    def shard(self, state: TrainState) -> TrainState:
        """``state`` laid out over this agent's devices (a no-op when it already is); the
        devices may be those of several processes (``larvax.distributed``)."""
        from larvax.distributed import put_global

        return put_global(state, self.state_shardings(state))

    # -------------------------------------------------------------------- learning

    def _loss(self, params, target_params, rest, batch, carry, weights, with_mirror=False):
        return self.learner.loss(params, target_params, rest, batch, carry, weights, with_mirror)

    def _grad_step(
        self, params, target_params, rest, opt_state, batch, carry, weights, with_mirror=False
    ):
        """One Adam step on this device's rows (inside ``shard_map``), see ``Learner``."""
        return self.learner.grad_step(
            params, target_params, rest, opt_state, batch, carry, weights, with_mirror
        )

    def learner_batch(self, ts: TrainState, key: Array):
        """Sample a batch from the whole buffer (outside ``train``): (Sample, StoredStep batch
        with float observations, importance weights)."""
        c = self.config
        sample, batch = sample_batch(self.replay, ts.replay, key, c.batch_size, c.priority_exponent)
        w = importance_weights(sample.probability, sample.num_valid, c.importance_exponent)
        return sample, batch, w

    def learner_step(self, ts: TrainState, key: Array):
        """One learner step on the whole state (all devices): see ``Learner.step``."""
        return self._learner_step(ts, key)

    # -------------------------------------------------------------------- one update

    def _num_valid(self, replay_state) -> Array:
        """Sampleable sequences over all devices (rows advance in lock-step)."""
        return self.learner.replay.num_valid(replay_state) * self.num_devices

    def _episode_metrics(self, stats: dict) -> dict:
        """Means over the episodes that ended in this update (NaN if none), all devices."""
        ended = stats["ended"].astype(jnp.float32)
        n_ended = jax.lax.psum(jnp.sum(ended), AXIS)

        def ep_mean(x):
            total = jax.lax.psum(jnp.sum(x * ended), AXIS)
            return jnp.where(n_ended > 0, total / jnp.maximum(n_ended, 1.0), jnp.float32(jnp.nan))

        out = dict(
            episode_return=ep_mean(stats["ep_return"]),
            episode_length=ep_mean(stats["ep_length"].astype(jnp.float32)),
            episodes=n_ended,
        )
        out.update({name: ep_mean(stats[name]) for name in self.metric_names})
        return out

    def update(self, ts: TrainState, _=None):
        """One update on one device's rows (inside ``shard_map``): ``period`` acting ticks,
        insertion, then the learner steps."""
        c = self.config
        key, k_act, k_learn = jax.random.split(ts.key, 3)
        extras = dict(carry=ts.actor.carry)
        if self.mirror and c.mirror_carry == "exact":
            extras["carry_mirror"] = ts.actor.carry_mirror

        def tick(actor, k):
            new, step, stats = self.actor.tick(ts.params, ts.rest, actor, k)
            return new, (step, stats)

        actor, (steps, stats) = jax.lax.scan(tick, ts.actor, jax.random.split(k_act, c.period))
        steps = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), steps)  # [N / D, period, ...]
        replay = self.learner.replay.add(ts.replay, steps, extras)
        ts = ts._replace(actor=actor, replay=replay, key=key)

        nan = jnp.float32(jnp.nan)
        empty = dict(loss=nan, q_mean=nan, td_abs=nan, priority_mean=nan, priority_max=nan)

        def learn(ts_):
            keys = jax.random.split(k_learn, c.learner_steps_per_update)
            ts_, ms = jax.lax.scan(self.learner.step, ts_, keys)
            return ts_, jax.tree.map(jnp.mean, ms)

        ready = self._num_valid(replay) >= c.min_replay_size
        ts, lm = jax.lax.cond(ready, learn, lambda t: (t, empty), ts)
        ts = ts._replace(updates=ts.updates + 1)
        metrics = dict(
            env_steps=(ts.updates * self.env_steps_per_update).astype(jnp.float32),
            epsilon=jnp.float32(np.mean(self.epsilons)),
            learner_steps=ts.learner_steps.astype(jnp.float32),
            replay_size=self._num_valid(replay).astype(jnp.float32),
            **self._episode_metrics(stats),
            **lm,
        )
        metrics = {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
        return ts, metrics

    def _train_impl(self, ts: TrainState, num_updates: int):
        specs = self._state_specs()
        run = jax.shard_map(
            lambda t: jax.lax.scan(self.update, t, None, length=num_updates),
            mesh=self.mesh,
            in_specs=(specs,),
            out_specs=(specs, P()),
            check_vma=False,  # replicated outputs are made so by pmean/psum/pmax (tested)
        )
        return run(ts)

    def train(self, state: TrainState, num_updates: int):
        """``num_updates`` updates in one compiled scan (one ``shard_map`` over the agent's
        devices). The input state is donated (do not reuse it). Returns (state, metrics:
        dict of float32 [num_updates])."""
        if isinstance(num_updates, bool) or not isinstance(num_updates, int) or num_updates < 1:
            raise ValueError(f"train: num_updates must be an int >= 1, got {num_updates!r}")
        return self._train(self.shard(state), num_updates)

    # -------------------------------------------------------------------- evaluation

    def initial_act_carry(self, batch_size: int) -> ActCarry:
        """Carry for ``act`` at the start of episodes (batch of ``batch_size``)."""
        return ActCarry(
            self.initialize_carry(batch_size),
            jnp.full((batch_size,), -1, jnp.int32),
            jnp.ones((batch_size,), bool),
        )

    def _act_impl(self, state, observation, carry, key, prev_reward, start, greedy):
        return self.actor.act(
            state.params, state.rest, observation, carry, key, prev_reward, start, greedy
        )

    def act(
        self,
        state: TrainState,
        observation,
        carry: ActCarry | None,
        key: Array,
        greedy: bool = True,
        *,
        prev_reward=None,
        start=None,
    ):
        """One evaluation step for a batch [B]: returns (carry, action int32 [B]).

        ``carry`` from ``initial_act_carry(B)`` (or None for that); it remembers the previous
        action. Pass ``prev_reward`` [B] (the reward that came with ``observation``) and
        ``start`` [B] (True where ``observation`` begins a new episode; default: True on the
        first call only). ``greedy=False`` explores with epsilon = ``epsilon_min``.
        """
        if carry is None:
            b = jax.tree.leaves(observation)[0].shape[0]
            carry = self.initial_act_carry(b)
        return self._act(state, observation, carry, key, prev_reward, start, greedy=greedy)


def make_agent(env, env_params, network, config: dict | R2D2Config | None) -> R2D2Agent:
    """Build an R2D2 agent.

    network: ``{"name": registry name, "seed": int (default 0), **kwargs}`` (``num_actions``
        and ``obs_shape`` are filled in from the environment's spaces, see
        ``larvax.agents.base.network_kwargs``), or an already built NNX module following the
        network call signature ``carry, q = net(obs, prev_action, prev_reward, starts, carry)``.
    config: a dict of ``R2D2Config`` fields (or an ``R2D2Config``).

    With a network dict, ``init(key)`` builds fresh parameters from ``key``; with a module,
    ``init`` starts from the module's parameters.
    """
    cfg = R2D2Config.from_dict(config)
    params = env_params if env_params is not None else env.default_params
    space = env.action_space(params)
    if not isinstance(space, Discrete):
        raise ValueError(f"R2D2 needs a Discrete action space, got {space!r}")
    module, spec = build_network(env, params, network)
    return R2D2Agent(env, params, module, cfg, network_spec=spec)
