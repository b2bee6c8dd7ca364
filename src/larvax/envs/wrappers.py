"""Environment wrappers: auto-reset, episode statistics, previous action/reward, mirror.

Every wrapper follows the environment contract of :mod:`larvax.envs.core`: it is a pure
function of explicit state and keys, so ``jax.jit(wrapped.step)`` and
``jax.vmap(wrapped.step, (0, 0, 0, None))`` work. There is no Python branching on array
values: episode ends are handled with ``jnp.where`` over pytrees.

Recommended stack for training (outermost first)::

    env = EpisodeStatistics(PreviousActionReward(AutoReset(base)))

or simply ``env = wrap(base, oar=True)``. The statistics layer reports the environment's
declared episode metrics (e.g. Simfish's ``prey_caught``) beside return and length.

- ``AutoReset`` sits innermost, so every wrapper above it sees the transition that ended
  an episode (reward, terminated, truncated of the old episode) together with the first
  observation of the new one, plus ``info["final_observation"]`` for bootstrapping.
- ``EpisodeStatistics`` works on either side of ``AutoReset``: outside it (recommended)
  it restarts its running sums after a step with ``done``; inside it, ``AutoReset``
  replaces its state with a freshly reset one (sums at zero) while keeping the info of
  the ending step. Both orders give identical statistics (tested).
- ``PreviousActionReward`` outside ``AutoReset`` detects auto-resetting by the presence of
  ``info["final_observation"]``: on a step with ``done`` the returned (new-episode)
  observation gets ``prev_action = -1, prev_reward = 0`` and ``final_observation`` is
  converted to the same dict format, carrying the action and reward that ended the episode.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from larvax.envs.core import (
    Box,
    Dict,
    Discrete,
    Environment,
    EpisodeMetric,
    Space,
    TimeStep,
    accumulate_episode_metrics,
    init_episode_metrics,
)

Array = jax.Array
PyTree = Any


def _select(pred: Array, on_true: PyTree, on_false: PyTree) -> PyTree:
    """Pytree-wise ``jnp.where(pred, on_true, on_false)`` for a scalar (or batch) ``pred``."""

    def sel(a, b):
        a = jnp.asarray(a)
        b = jnp.asarray(b)
        p = jnp.reshape(pred, jnp.shape(pred) + (1,) * (a.ndim - jnp.ndim(pred)))
        return jnp.where(p, a, b)

    return jax.tree_util.tree_map(sel, on_true, on_false)


class Wrapper(Environment):
    """Base wrapper: forwards everything to the wrapped environment ``env``.

    ``default_params``, the spaces, ``mirror_actions``, ``reflect_observation`` and any
    other attribute (e.g. a task's ``reset_with``) are forwarded unless overridden.
    """

    def __init__(self, env: Environment):
        if not isinstance(env, Environment):
            raise ValueError(
                f"env must be a larvax Environment, got {type(env).__name__}; "
                "allowed: an instance of larvax.envs.core.Environment"
            )
        self._env = env

    @property
    def env(self) -> Environment:
        return self._env

    @property
    def unwrapped(self) -> Environment:
        env = self._env
        while isinstance(env, Wrapper):
            env = env.env
        return env

    def __getattr__(self, name):
        # Only called for attributes not found on the wrapper itself.
        if name.startswith("__") or name == "_env":
            raise AttributeError(name)
        return getattr(self._env, name)

    @property
    def default_params(self) -> PyTree:
        return self._env.default_params

    def _params(self, params):
        return self.default_params if params is None else params

    def reset(self, key, params=None):
        return self._env.reset(key, self._params(params))

    def step(self, key, state, action, params=None):
        return self._env.step(key, state, action, self._params(params))

    def observation_space(self, params=None) -> Space:
        return self._env.observation_space(self._params(params))

    def action_space(self, params=None) -> Space:
        return self._env.action_space(self._params(params))

    @property
    def mirror_actions(self):  # type: ignore[override]
        return self._env.mirror_actions

    def reflect_observation(self, observation):
        return self._env.reflect_observation(observation)

    @property
    def episode_metrics(self):  # type: ignore[override]
        return self._env.episode_metrics

    @property
    def name(self) -> str:
        return self._env.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._env!r})"


# ----------------------------------------------------------------------------- auto-reset


class AutoReset(Wrapper):
    """Reset the environment in the same step that ends an episode.

    ``step(key, ...)`` splits ``key`` into a step key and a reset key. When the step ends
    the episode (``terminated or truncated``) the returned state is the reset state and
    the returned TimeStep carries the new episode's first observation, but the reward,
    terminated, truncated and info of the transition that ended the old episode.
    ``info["final_observation"]`` is always present: the observation the step produced
    before any reset (the last observation of the ended episode when done, equal to
    ``observation`` otherwise), so a truncated episode can bootstrap from it.
    """

    def reset(self, key, params=None):
        state, ts = self._env.reset(key, self._params(params))
        info = dict(ts.info)
        info["final_observation"] = ts.observation
        return state, ts._replace(info=info)

    def step(self, key, state, action, params=None):
        params = self._params(params)
        key_step, key_reset = jax.random.split(key)
        state_step, ts_step = self._env.step(key_step, state, action, params)
        state_reset, ts_reset = self._env.reset(key_reset, params)
        done = ts_step.done
        new_state = _select(done, state_reset, state_step)
        observation = _select(done, ts_reset.observation, ts_step.observation)
        info = dict(ts_step.info)
        info["final_observation"] = ts_step.observation
        return new_state, ts_step._replace(observation=observation, info=info)

    def reflect_observation(self, observation):
        return self._env.reflect_observation(observation)


# ----------------------------------------------------------------------------- statistics


class EpisodeStatistics(Wrapper):
    """Adds per-episode return, length and the declared episode metrics to ``info``.

    info gains (all scalars per environment):

    - ``episode_done`` (bool): this step ended an episode (``terminated or truncated``).
    - ``episode_return`` (float32), ``episode_length`` (int32): of the episode that just
      ended; valid where ``episode_done`` (average them over those steps). Elsewhere they
      hold the last completed episode's values in the recommended order (0 before any
      episode ended, and always 0 when ``AutoReset`` wraps this wrapper).
    - ``episode_<name>`` (float32) for each of ``metrics`` (default: the environment's
      declared ``episode_metrics``, accumulated with
      :func:`larvax.envs.core.accumulate_episode_metrics`), and for each info field named
      in ``sum_info``: that field summed over the same episode.

    Running values live in the wrapper state ``(inner_state, stats)``. Works with
    ``AutoReset`` on either side (see the module docstring); the recommended order is
    ``EpisodeStatistics(AutoReset(env))``.
    """

    def __init__(
        self,
        env: Environment,
        sum_info: tuple[str, ...] | list[str] = (),
        metrics: tuple[EpisodeMetric, ...] | None = None,
    ):
        super().__init__(env)
        if isinstance(sum_info, str):
            sum_info = (sum_info,)
        for field in sum_info:
            if not isinstance(field, str) or not field:
                raise ValueError(
                    f"sum_info entries must be non-empty strings naming info fields, got {field!r}"
                )
        metrics = tuple(env.episode_metrics if metrics is None else metrics)
        names = [m.name for m in metrics]
        self.metrics = metrics + tuple(EpisodeMetric(f, f) for f in sum_info if f not in names)
        self.sum_info = tuple(sum_info)

    def _check_info(self, info: dict) -> None:
        for m in self.metrics:
            if m.info_key not in info:
                raise ValueError(
                    f"episode metric {m.name!r} reads the info field {m.info_key!r}, which is "
                    f"not in the environment's info; allowed: {sorted(info)}"
                )

    def _zeros(self):
        return {
            "return": jnp.float32(0.0),
            "length": jnp.int32(0),
            "metrics": init_episode_metrics(self.metrics),
        }

    def _info(self, info, done, last):
        info = dict(info)
        info["episode_done"] = jnp.asarray(done, bool)
        info["episode_return"] = last["return"]
        info["episode_length"] = last["length"]
        for m in self.metrics:
            info[f"episode_{m.name}"] = last["metrics"][m.name]
        return info

    def reset(self, key, params=None):
        inner, ts = self._env.reset(key, self._params(params))
        self._check_info(ts.info)
        stats = {"running": self._zeros(), "last": self._zeros()}
        return (inner, stats), ts._replace(info=self._info(ts.info, False, stats["last"]))

    def step(self, key, state, action, params=None):
        inner, stats = state
        inner, ts = self._env.step(key, inner, action, self._params(params))
        self._check_info(ts.info)
        run = stats["running"]
        total = {
            "return": run["return"] + jnp.asarray(ts.reward, jnp.float32),
            "length": run["length"] + jnp.int32(1),
            "metrics": accumulate_episode_metrics(self.metrics, run["metrics"], ts.info, True),
        }
        done = ts.done
        last = _select(done, total, stats["last"])
        running = _select(done, self._zeros(), total)
        new_stats = {"running": running, "last": last}
        return (inner, new_stats), ts._replace(info=self._info(ts.info, done, last))


# ----------------------------------------------------------------------------- OAR


class PreviousActionReward(Wrapper):
    """Observation becomes ``{"observation", "prev_action", "prev_reward"}`` (OAR).

    ``prev_action`` is int32, ``-1`` at an episode's first step; ``prev_reward`` is float32,
    ``0`` at an episode's first step. Needs a ``Discrete`` action space.

    Wrapped around ``AutoReset`` (recommended), a step with ``done`` returns the new
    episode's first observation, so it gets ``-1``/``0``; ``info["final_observation"]`` is
    converted to the dict format with the action and reward that ended the episode.
    """

    def __init__(self, env: Environment):
        super().__init__(env)
        space = env.action_space(env.default_params)
        if not isinstance(space, Discrete):
            raise ValueError(
                f"PreviousActionReward needs a Discrete action space, got "
                f"{type(space).__name__}; allowed: Discrete"
            )

    def observation_space(self, params=None) -> Space:
        params = self._params(params)
        n = self._env.action_space(params).n
        return Dict(
            {
                "observation": self._env.observation_space(params),
                "prev_action": Box(-1, n - 1, (), jnp.int32),
                "prev_reward": Box(-jnp.inf, jnp.inf, (), jnp.float32),
            }
        )

    @staticmethod
    def _obs(observation, action, reward):
        return {
            "observation": observation,
            "prev_action": jnp.asarray(action, jnp.int32),
            "prev_reward": jnp.asarray(reward, jnp.float32),
        }

    def reset(self, key, params=None):
        state, ts = self._env.reset(key, self._params(params))
        obs = self._obs(ts.observation, -1, 0.0)
        info = dict(ts.info)
        if "final_observation" in info:
            info["final_observation"] = obs
        return state, ts._replace(observation=obs, info=info)

    def step(self, key, state, action, params=None):
        state, ts = self._env.step(key, state, action, self._params(params))
        action = jnp.asarray(action, jnp.int32)
        reward = jnp.asarray(ts.reward, jnp.float32)
        info = dict(ts.info)
        if "final_observation" in info:  # the inner env auto-resets
            done = ts.done
            obs = self._obs(
                ts.observation,
                jnp.where(done, -1, action),
                jnp.where(done, 0.0, reward),
            )
            info["final_observation"] = self._obs(info["final_observation"], action, reward)
        else:
            obs = self._obs(ts.observation, action, reward)
        return state, ts._replace(observation=obs, info=info)

    def reflect_observation(self, observation):
        mirror = self.mirror_actions
        if mirror is None:
            raise NotImplementedError(f"{self.name} declares no mirror symmetry")
        prev = observation["prev_action"]
        mirrored = jnp.where(prev >= 0, jnp.asarray(mirror)[jnp.maximum(prev, 0)], prev)
        return {
            "observation": self._env.reflect_observation(observation["observation"]),
            "prev_action": mirrored.astype(jnp.int32),
            "prev_reward": observation["prev_reward"],
        }


# ----------------------------------------------------------------------------- mirror


class Mirror(Wrapper):
    """Act in the mirror world of a left/right symmetric environment.

    The agent's action ``a`` is executed as ``mirror_actions[a]`` (an ``a`` outside the
    table is passed on unchanged: the environment refuses it); every observation
    (and ``info["final_observation"]`` if present) is passed through
    ``reflect_observation``. Since mirroring is an involution,
    ``Mirror(Mirror(env))`` behaves exactly like ``env``.
    """

    def __init__(self, env: Environment):
        super().__init__(env)
        if env.mirror_actions is None:
            raise ValueError(
                f"Mirror needs an environment declaring mirror_actions and "
                f"reflect_observation; {env.name} has mirror_actions=None"
            )

    def _reflect_ts(self, ts: TimeStep) -> TimeStep:
        info = dict(ts.info)
        if "final_observation" in info:
            info["final_observation"] = self._env.reflect_observation(info["final_observation"])
        return ts._replace(observation=self._env.reflect_observation(ts.observation), info=info)

    def reset(self, key, params=None):
        state, ts = self._env.reset(key, self._params(params))
        return state, self._reflect_ts(ts)

    def step(self, key, state, action, params=None):
        # an action outside the table passes through unchanged, so the environment's own
        # rule for invalid actions applies (indexing would clamp it to a valid one)
        table = jnp.asarray(self._env.mirror_actions)
        action = jnp.asarray(action)
        inside = (action >= 0) & (action < table.shape[0])
        mirrored = jnp.where(inside, table[jnp.clip(action, 0, table.shape[0] - 1)], action)
        state, ts = self._env.step(key, state, mirrored, self._params(params))
        return state, self._reflect_ts(ts)


# ----------------------------------------------------------------------------- helper


def wrap(
    env: Environment,
    *,
    auto_reset: bool = True,
    oar: bool = False,
    mirror: bool = False,
    statistics: bool = True,
    sum_info: tuple[str, ...] = (),
) -> Environment:
    """The recommended stack: ``EpisodeStatistics(PreviousActionReward(AutoReset(Mirror(env))))``.

    Each layer is optional; the statistics layer accumulates the environment's declared
    episode metrics, and ``sum_info`` names further info fields to sum per episode.
    """
    if mirror:
        env = Mirror(env)
    if auto_reset:
        env = AutoReset(env)
    if oar:
        env = PreviousActionReward(env)
    if statistics:
        env = EpisodeStatistics(env, sum_info=sum_info)
    return env


__all__ = [
    "AutoReset",
    "EpisodeStatistics",
    "Mirror",
    "PreviousActionReward",
    "Wrapper",
    "wrap",
]
