"""R2D2's actors: one tick of epsilon-greedy acting, and the step it stores in the replay.

Every tick, each actor runs its observation, previous action, previous reward and start flag
through the online network (T = 1), acts epsilon-greedily (per-actor epsilons log-spaced from
``epsilon_max`` to ``epsilon_min``) and steps its environment. What it writes to the replay is
one :class:`StoredStep` per tick; the learner (``learning.py``) reads exactly that.

With mirror augmentation and ``mirror_carry="exact"`` the actors also run the mirrored stream
(reflected observations, mirrored previous actions) through the online network, so the
mirrored recurrent state stored with every sequence is exact. Networks that derive a mirror
image's features from the unmirrored observation (``mirror_features``, e.g. the Simfish
Retina) are called with ``with_mirror=True`` instead of convolving the reflected observation.

Episode ends follow the dm_env convention, not the auto-reset wrapper: the tick after an
episode's last environment step shows the *final observation* (no action is taken on it,
``has_action`` is False) and the environment resets on the following tick (``start`` True).
Why: the replay stores one observation per tick, and a truncated episode must bootstrap from
its final observation. With auto-reset the tick after the last step already shows the next
episode's first observation, so every stored step would need a second observation array for
the final one: for Simfish 846 more bytes per stored step (uint8 visual 834 + internal 12;
868 -> 1,714 bytes, see ``R2D2Config``), 264 MiB more at the default capacity, to save one
tick without action per episode.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from larvax.agents.r2d2.config import AXIS, R2D2Config
from larvax.envs.core import Box, Dict, accumulate_episode_metrics, init_episode_metrics

Array = jax.Array
PyTree = Any


class StoredStep(NamedTuple):
    """One actor tick as the replay stores it (leaves [...] unbatched, [N, T, ...] stored,
    [B, L, ...] sampled).

    observation: o_t (uint8 for photon-count leaves, see ``compress_observation``).
    prev_action: int32 a_{t-1} (-1 at an episode's start). prev_reward: float32 r_{t-1}.
    start: bool, o_t is an episode's first observation (the recurrent state resets).
    action: int32 a_t (0 where ``has_action`` is False). reward: float32 r_t.
    discount: float32, 0 if the step out of o_t terminated the episode, else 1.
    has_action: bool, False on an episode's final observation (no action, no loss).
    """

    observation: PyTree
    prev_action: Array
    prev_reward: Array
    start: Array
    action: Array
    reward: Array
    discount: Array
    has_action: Array


class ActorState(NamedTuple):
    """Per-actor acting state, every leaf [N, ...].

    observation: the current observation o_t (float pytree). prev_action int32 (-1 none),
    prev_reward float32, start bool (o_t is an episode's first), last bool (o_t is an
    episode's final observation: the next tick resets). carry / carry_mirror: recurrent
    states before o_t. ep_return, ep_length: running episode sums. ep_info: the running
    values of the environment's declared ``episode_metrics``, keyed by name.
    """

    env_state: PyTree
    observation: PyTree
    prev_action: Array
    prev_reward: Array
    start: Array
    last: Array
    carry: PyTree
    carry_mirror: PyTree
    ep_return: Array
    ep_length: Array
    ep_info: dict


class ActCarry(NamedTuple):
    """Carry of ``R2D2Agent.act``: network state, previous action, pending start flag."""

    net: PyTree
    prev_action: Array
    start: Array


# ----------------------------------------------------------------------------- mirror


def mirror_action(action: Array, mirror_actions: Array) -> Array:
    """Actions mapped through ``mirror_actions``; -1 (no action) stays -1."""
    amap = jnp.asarray(mirror_actions, jnp.int32)
    return jnp.where(action >= 0, amap[jnp.maximum(action, 0)], action)


def mirror_batch(batch: StoredStep, reflect, mirror_actions: Array) -> StoredStep:
    """The mirror image of a [B, L] batch: observations reflected, actions and previous actions
    mapped through ``mirror_actions`` (-1 = none stays -1); everything else unchanged."""
    return batch._replace(
        observation=jax.vmap(jax.vmap(reflect))(batch.observation),
        action=mirror_action(batch.action, mirror_actions),
        prev_action=mirror_action(batch.prev_action, mirror_actions),
    )


# ----------------------------------------------------------------------------- observations


def _space_tree(space):
    if isinstance(space, Dict):
        return {k: _space_tree(v) for k, v in space.spaces.items()}
    return space


def _is_counts(space) -> bool:
    return (
        isinstance(space, Box)
        and np.all(np.asarray(space.low) == 0)
        and np.all(np.asarray(space.high) == 255)
    )


def compact_mask(env, env_params, mode) -> PyTree:
    """Pytree of bools (like the observation): leaves stored as uint8 photon counts (those
    whose space is ``Box(0, 255)``; none with ``mode`` False)."""
    _, ts = jax.eval_shape(lambda k: env.reset(k, env_params), jax.random.key(0))
    obs_struct = ts.observation
    if mode is False:
        return jax.tree.map(lambda _: False, obs_struct)
    spaces = _space_tree(env.observation_space(env_params))
    if isinstance(spaces, dict) and isinstance(obs_struct, dict):
        return {
            k: bool(_is_counts(spaces.get(k))) and not isinstance(obs_struct[k], dict)
            for k in obs_struct
        }
    if not isinstance(spaces, dict) and len(jax.tree.leaves(obs_struct)) == 1:
        return jax.tree.map(lambda _: bool(_is_counts(spaces)), obs_struct)
    return jax.tree.map(lambda _: False, obs_struct)


def compress_observation(obs: PyTree, mask: PyTree) -> PyTree:
    """uint8 for the masked leaves (values are integer counts in 0..255, so this is exact)."""
    return jax.tree.map(
        lambda x, m: jnp.clip(jnp.round(x), 0, 255).astype(jnp.uint8) if m else x, obs, mask
    )


def decompress_observation(obs: PyTree) -> PyTree:
    return jax.tree.map(lambda x: x.astype(jnp.float32) if x.dtype == jnp.uint8 else x, obs)


def stored_step_example(env, env_params, mask: PyTree) -> StoredStep:
    """One unbatched zero ``StoredStep`` with the stored dtypes (shapes the replay)."""
    _, ts = jax.eval_shape(lambda k: env.reset(k, env_params), jax.random.key(0))
    obs = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), ts.observation)
    return StoredStep(
        observation=compress_observation(obs, mask),
        prev_action=jnp.int32(0),
        prev_reward=jnp.float32(0),
        start=jnp.bool_(False),
        action=jnp.int32(0),
        reward=jnp.float32(0),
        discount=jnp.float32(0),
        has_action=jnp.bool_(False),
    )


# ----------------------------------------------------------------------------- network


def apply_network(
    graphdef, params, rest, obs, prev_action, prev_reward, starts, carry, with_mirror=False
):
    """carry, q [B, T, A] = net(obs [B, T, ...], prev_action, prev_reward, starts, carry)."""
    net = nnx.merge(graphdef, params, rest)
    if with_mirror:
        return net(obs, prev_action, prev_reward, starts, carry, with_mirror=True)
    return net(obs, prev_action, prev_reward, starts, carry)


def _float(tree):
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), tree)


# ----------------------------------------------------------------------------- actors


class Actor:
    """The actors of one device: ``initial_state``, ``tick`` (inside ``shard_map``) and the
    evaluation step ``act``.

    Random draws are made for all ``num_envs`` actors and sliced to this device's
    ``local_envs`` rows, so an actor's stream does not depend on the number of devices.
    ``mirror_actions`` is None without mirror augmentation; ``exact_mirror``: run the
    mirrored stream too; ``mirror_features``: the network derives its mirrored features.
    """

    def __init__(
        self,
        env,
        env_params,
        graphdef,
        config: R2D2Config,
        *,
        num_actions: int,
        epsilons: np.ndarray,
        local_envs: int,
        mirror_actions: Array | None,
        exact_mirror: bool,
        mirror_features: bool,
        observation_mask: PyTree,
    ):
        self.env, self.env_params, self.graphdef = env, env_params, graphdef
        self.config = config
        self.num_actions = num_actions
        self.epsilons = epsilons
        self.local_envs = local_envs
        self.mirror_actions = mirror_actions
        self.exact_mirror = exact_mirror
        self.mirror_features = mirror_features
        self.observation_mask = observation_mask
        self.metrics = tuple(getattr(env, "episode_metrics", ()))

    def q_step(self, params, rest, obs, prev_action, prev_reward, start, carry, with_mirror=False):
        """One tick for a batch [B]: returns (carry, q [B, A])."""
        ex = jax.tree.map(lambda x: x[:, None], (obs, prev_action, prev_reward, start))
        carry, q = apply_network(self.graphdef, params, rest, *ex, carry, with_mirror)
        return carry, q[:, 0]

    def initial_state(self, key: Array, carry: PyTree) -> ActorState:
        """All ``num_envs`` actors at the start of their first episodes (``key`` resets)."""
        n = self.config.num_envs
        env_keys = jax.random.split(key, n)
        env_state, ts = jax.vmap(lambda k: self.env.reset(k, self.env_params))(env_keys)
        return ActorState(
            env_state=env_state,
            observation=_float(ts.observation),
            prev_action=jnp.full((n,), -1, jnp.int32),
            prev_reward=jnp.zeros((n,), jnp.float32),
            start=jnp.ones((n,), bool),
            last=jnp.zeros((n,), bool),
            carry=carry,
            carry_mirror=carry if self.mirror_actions is not None else None,
            ep_return=jnp.zeros((n,), jnp.float32),
            ep_length=jnp.zeros((n,), jnp.int32),
            ep_info=init_episode_metrics(self.metrics, (n,)),
        )

    def _rows(self, x: Array) -> Array:
        """This device's rows of a per-actor array [num_envs, ...] (inside ``shard_map``)."""
        i = jax.lax.axis_index(AXIS)
        return jax.lax.dynamic_slice_in_dim(x, i * self.local_envs, self.local_envs, 0)

    def _online_q(self, params, rest, actor: ActorState):
        """Q-values [n, A] of the actors' observations, and the carries after them (the
        mirrored stream's too when it is run)."""
        a = actor
        if not self.exact_mirror:
            carry, q = self.q_step(
                params, rest, a.observation, a.prev_action, a.prev_reward, a.start, a.carry
            )
            return q, carry, a.carry_mirror
        n = self.local_envs
        mobs = jax.vmap(self.env.reflect_observation)(a.observation)
        mpa = mirror_action(a.prev_action, self.mirror_actions)
        both = jax.tree.map(
            lambda x, y: jnp.concatenate([x, y]),
            (a.observation, a.prev_action, a.prev_reward, a.start, a.carry),
            (mobs, mpa, a.prev_reward, a.start, a.carry_mirror),
        )
        if self.mirror_features:  # the network derives the mirrored observation's features
            both = (a.observation, *both[1:])
        carry2, q2 = self.q_step(params, rest, *both, with_mirror=self.mirror_features)
        return (
            q2[:n],
            jax.tree.map(lambda x: x[:n], carry2),
            jax.tree.map(lambda x: x[n:], carry2),
        )

    def _env_step(self, actor: ActorState, action: Array, k_env: Array, k_reset: Array):
        """Step every environment; reset those whose observation was an episode's final one.
        Returns (env state, next observation (float), the step's TimeStep)."""
        n = self.config.num_envs
        env_keys = self._rows(jax.random.split(k_env, n))
        s_env, ts = jax.vmap(lambda k, s, a: self.env.step(k, s, a, self.env_params))(
            env_keys, actor.env_state, action
        )
        reset_keys = self._rows(jax.random.split(k_reset, n))

        def do_reset(_):
            return jax.vmap(lambda k: self.env.reset(k, self.env_params))(reset_keys)

        r_env, r_ts = jax.lax.cond(jnp.any(actor.last), do_reset, lambda _: (s_env, ts), None)

        def sel(a, b):
            m = jnp.reshape(actor.last, actor.last.shape + (1,) * (a.ndim - 1))
            return jnp.where(m, a, b)

        env_state = jax.tree.map(sel, r_env, s_env)
        obs = jax.tree.map(sel, _float(r_ts.observation), _float(ts.observation))
        return env_state, obs, ts

    def tick(self, params, rest, actor: ActorState, key: Array):
        """One tick of this device's actors. Returns (new actor state, StoredStep [n],
        per-actor stats: ``ended`` and the episode sums after this tick)."""
        c = self.config
        k_eps, k_rand, k_env, k_reset = jax.random.split(key, 4)
        q, carry, carry_m = self._online_q(params, rest, actor)
        greedy = jnp.argmax(q, axis=-1).astype(jnp.int32)
        rand = self._rows(jax.random.randint(k_rand, (c.num_envs,), 0, self.num_actions, jnp.int32))
        explore = self._rows(jax.random.uniform(k_eps, (c.num_envs,))) < self._rows(
            jnp.asarray(self.epsilons)
        )
        has_action = ~actor.last
        action = jnp.where(has_action, jnp.where(explore, rand, greedy), 0)
        env_state, obs, ts = self._env_step(actor, action, k_env, k_reset)
        reward = jnp.where(has_action, ts.reward.astype(jnp.float32), 0.0)
        terminated = has_action & ts.terminated
        ended = has_action & (ts.terminated | ts.truncated)
        step = StoredStep(
            observation=compress_observation(actor.observation, self.observation_mask),
            prev_action=actor.prev_action,
            prev_reward=actor.prev_reward,
            start=actor.start,
            action=action,
            reward=reward,
            discount=1.0 - terminated.astype(jnp.float32),
            has_action=has_action,
        )
        ep_return = actor.ep_return + reward
        ep_length = actor.ep_length + has_action.astype(jnp.int32)
        ep_info = accumulate_episode_metrics(self.metrics, actor.ep_info, ts.info, has_action)
        stats = dict(ended=ended, ep_return=ep_return, ep_length=ep_length, **ep_info)
        zero_f = jnp.zeros_like(ep_return)
        new = ActorState(
            env_state=env_state,
            observation=obs,
            prev_action=jnp.where(actor.last, -1, action),
            prev_reward=reward,
            start=actor.last,
            last=ended,
            carry=carry,
            carry_mirror=carry_m,
            ep_return=jnp.where(ended, zero_f, ep_return),
            ep_length=jnp.where(ended, 0, ep_length),
            ep_info={k: jnp.where(ended, zero_f, v) for k, v in ep_info.items()},
        )
        return new, step, stats

    def act(self, params, rest, observation, carry: ActCarry, key, prev_reward, start, greedy):
        """One evaluation step for a batch [B] (see ``R2D2Agent.act``): (carry, action [B])."""
        b = carry.prev_action.shape[0]
        st = carry.start if start is None else jnp.asarray(start, bool)
        pr = (
            jnp.zeros((b,), jnp.float32)
            if prev_reward is None
            else jnp.asarray(prev_reward, jnp.float32)
        )
        obs = _float(observation)
        pa = jnp.where(st, -1, carry.prev_action)
        net, q = self.q_step(params, rest, obs, pa, pr, st, carry.net)
        action = jnp.argmax(q, axis=-1).astype(jnp.int32)
        if not greedy:
            k1, k2 = jax.random.split(key)
            rand = jax.random.randint(k1, (b,), 0, self.num_actions, jnp.int32)
            eps = self.config.epsilon_min
            action = jnp.where(jax.random.uniform(k2, (b,)) < eps, rand, action)
        return ActCarry(net, action, jnp.zeros((b,), bool)), action
