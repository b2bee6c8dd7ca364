"""Adapters between larvax environments and gymnax / gymnasium.

- ``make_gymnax(name, **kwargs) -> (env, params)``: any gymnax environment behind the
  larvax contract (also ``larvax.envs.make("gymnax:CartPole-v1")``). gymnax is an optional
  extra (``pip install larvax[gymnax]``) imported only here, lazily.
- ``to_gymnasium(env, params=None, seed=None) -> gymnasium.Env``: any larvax environment
  as a standard gymnasium environment (jit-compiled reset/step, numpy in and out, spaces
  converted, ``Dict`` observations included). It passes
  ``gymnasium.utils.env_checker.check_env``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from larvax.envs.core import (
    Box,
    Dict,
    Discrete,
    Environment,
    InvalidActionError,
    Space,
    TimeStep,
    check_action,
    end_on_invalid_action,
)

PyTree = Any


# ----------------------------------------------------------------------------- gymnax


def _import_gymnax():
    try:
        import gymnax
    except ModuleNotFoundError as err:  # pragma: no cover - depends on the install
        raise ModuleNotFoundError(
            "gymnax environments need the optional dependency gymnax: "
            "pip install 'larvax[gymnax]' (or pip install gymnax)"
        ) from err
    return gymnax


def _from_gymnax_space(space) -> Space:
    """gymnax space -> larvax space (Discrete, Box, Dict; Tuple is not supported)."""
    from gymnax.environments import spaces as gs

    if isinstance(space, gs.Discrete):
        return Discrete(int(space.n), dtype=space.dtype)
    if isinstance(space, gs.Box):
        return Box(np.asarray(space.low), np.asarray(space.high), tuple(space.shape), space.dtype)
    if isinstance(space, gs.Dict):
        return Dict({k: _from_gymnax_space(v) for k, v in space.spaces.items()})
    raise ValueError(
        f"gymnax space {type(space).__name__} cannot be converted; allowed: Discrete, Box, Dict"
    )


class GymnaxEnv(Environment):
    """A gymnax environment behind the larvax contract (no auto-reset: wrap in AutoReset).

    Uses gymnax's ``reset_env``/``step_env`` (not its auto-resetting ``step``).
    terminated: gymnax's natural termination (``step_env``'s flag, e.g. the pole fell);
    truncated: gymnax's time limit ``is_truncated(state, params)``, i.e.
    ``state.time >= params.max_steps_in_episode`` (CartPole-v1: 500 steps). As in gymnax,
    both can be True on the last step (treat it as terminated). For gymnax versions before
    ``is_truncated`` existed (< 1.0) the step's ``done`` is split by the same time rule.
    ``info`` is empty (gymnax's ``discount`` is ``1 - terminated``).
    """

    def __init__(self, gymnax_env, gymnax_params, env_id: str):
        self._env = gymnax_env
        self._params = gymnax_params
        self.env_id = env_id

    @property
    def gymnax_env(self):
        return self._env

    @property
    def default_params(self):
        return self._params

    @property
    def name(self) -> str:
        return f"gymnax:{self.env_id}"

    def _p(self, params):
        return self._params if params is None else params

    def reset(self, key, params=None):
        obs, state = self._env.reset_env(key, self._p(params))
        ts = TimeStep(obs, jnp.float32(0.0), jnp.bool_(False), jnp.bool_(False), {})
        return state, ts

    def step(self, key, state, action, params=None):
        params = self._p(params)
        invalid = check_action(self.action_space(params), action, f"{self.name}.step")
        obs, state, reward, done, _ = self._env.step_env(key, state, action, params)
        done = jnp.asarray(done, bool)
        if hasattr(self._env, "is_truncated"):
            terminated = done
            truncated = jnp.asarray(self._env.is_truncated(state, params), bool)
        elif hasattr(params, "max_steps_in_episode") and hasattr(state, "time"):
            truncated = done & (state.time >= params.max_steps_in_episode)
            terminated = done & ~truncated
        else:
            terminated, truncated = done, jnp.bool_(False)
        ts = TimeStep(obs, jnp.asarray(reward, jnp.float32), terminated, truncated, {})
        return state, end_on_invalid_action(ts, invalid)

    def observation_space(self, params=None):
        return _from_gymnax_space(self._env.observation_space(self._p(params)))

    def action_space(self, params=None):
        return _from_gymnax_space(self._env.action_space(self._p(params)))


def make_gymnax(name: str, **kwargs):
    """Build the gymnax environment ``name`` (e.g. ``"CartPole-v1"``); returns ``(env, params)``.

    Keyword arguments that are fields of the environment's params (e.g.
    ``max_steps_in_episode=200``) replace them; the others go to the gymnax constructor.
    """
    gymnax = _import_gymnax()
    if name not in gymnax.registered_envs:
        raise ValueError(
            f"unknown gymnax environment {name!r}; allowed: {sorted(gymnax.registered_envs)}"
        )
    env, params = gymnax.make(name)
    fields = (
        {f.name for f in dataclasses.fields(params)} if dataclasses.is_dataclass(params) else set()
    )
    param_kwargs = {k: v for k, v in kwargs.items() if k in fields}
    env_kwargs = {k: v for k, v in kwargs.items() if k not in fields}
    if env_kwargs:
        try:
            env, params = gymnax.make(name, **env_kwargs)
        except TypeError as err:
            raise ValueError(
                f"gymnax {name!r} does not accept {sorted(env_kwargs)}; allowed: its params "
                f"fields {sorted(fields)} or its constructor arguments ({err})"
            ) from err
    if param_kwargs:
        params = params.replace(**param_kwargs)
    return GymnaxEnv(env, params, name), params


# ----------------------------------------------------------------------------- gymnasium


def to_gymnasium_space(space: Space) -> gymnasium.spaces.Space:
    """larvax space -> gymnasium space (Discrete, Box, Dict)."""
    if isinstance(space, Discrete):
        return gymnasium.spaces.Discrete(int(space.n))
    if isinstance(space, Box):
        dtype = np.dtype(space.dtype)
        shape = tuple(int(s) for s in space.shape)
        low = np.broadcast_to(np.asarray(space.low, np.float64), shape)
        high = np.broadcast_to(np.asarray(space.high, np.float64), shape)
        return gymnasium.spaces.Box(
            low=low.astype(dtype), high=high.astype(dtype), shape=shape, dtype=dtype
        )
    if isinstance(space, Dict):
        return gymnasium.spaces.Dict({k: to_gymnasium_space(v) for k, v in space.spaces.items()})
    raise ValueError(
        f"space {type(space).__name__} cannot be converted to gymnasium; allowed: "
        "Discrete, Box, Dict"
    )


def _to_numpy(space: Space, x):
    """A jax value -> the numpy value gymnasium expects for ``space``."""
    if isinstance(space, Discrete):
        return np.int64(np.asarray(x))
    if isinstance(space, Box):
        return np.asarray(x, dtype=np.dtype(space.dtype)).reshape(space.shape)
    if isinstance(space, Dict):
        return {k: _to_numpy(s, x[k]) for k, s in space.spaces.items()}
    raise ValueError(f"space {type(space).__name__} cannot be converted to gymnasium")


class LarvaxGymnasiumEnv(gymnasium.Env):
    """A larvax environment as a ``gymnasium.Env``; build it with :func:`to_gymnasium`."""

    metadata = {"render_modes": []}
    render_mode = None

    def __init__(self, env: Environment, params: PyTree = None, seed: int | None = None):
        if not isinstance(env, Environment):
            raise ValueError(
                f"env must be a larvax Environment, got {type(env).__name__}; allowed: "
                "instances of larvax.envs.core.Environment"
            )
        self.larvax_env = env
        self.params = env.default_params if params is None else params
        self._obs_space = env.observation_space(self.params)
        self._act_space = env.action_space(self.params)
        self.observation_space = to_gymnasium_space(self._obs_space)
        self.action_space = to_gymnasium_space(self._act_space)
        self._reset = jax.jit(env.reset)
        self._step = jax.jit(env.step)
        self._seed = seed
        self._key = None
        self._state = None

    def _next_key(self):
        self._key, key = jax.random.split(self._key)
        return key

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._key = jax.random.key(seed)
        elif self._key is None:
            first = self._seed
            if first is None:
                first = int(self.np_random.integers(0, 2**31 - 1))
            self._key = jax.random.key(first)
        self._state, ts = self._reset(self._next_key(), self.params)
        return _to_numpy(self._obs_space, ts.observation), jax.device_get(ts.info)

    def step(self, action):
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        value = np.asarray(action)
        if isinstance(self._act_space, Discrete) and value.size == 1:
            value = value.reshape(())
        if not self._act_space.contains(value):
            allowed = getattr(self._act_space, "describe", lambda: str(self._act_space))()
            raise InvalidActionError(
                f"{self!r}.step: action {action!r} is outside the action space; allowed: {allowed}"
            )
        if isinstance(self._act_space, Discrete):
            action = jnp.asarray(value, jnp.int32)
        else:
            action = jnp.asarray(action)
        self._state, ts = self._step(self._next_key(), self._state, action, self.params)
        return (
            _to_numpy(self._obs_space, ts.observation),
            float(ts.reward),
            bool(ts.terminated),
            bool(ts.truncated),
            jax.device_get(ts.info),
        )

    def __repr__(self) -> str:
        return f"LarvaxGymnasiumEnv({self.larvax_env.name})"


def to_gymnasium(
    env: Environment, params: PyTree = None, seed: int | None = None
) -> LarvaxGymnasiumEnv:
    """Wrap a larvax environment as a ``gymnasium.Env`` (numpy in/out, jit-compiled).

    ``reset(seed=s)`` restarts the key stream from ``jax.random.key(s)``, so a seed fixes
    the whole episode (reset and steps). Without a seed the first reset uses ``seed`` given
    here, or one drawn from gymnasium's ``np_random``. Apply larvax wrappers first if you
    want them (e.g. ``PreviousActionReward``); ``AutoReset`` is not needed, gymnasium users
    call ``reset``. Observations: ``Box`` -> numpy arrays of the space's dtype, ``Discrete``
    -> ``np.int64``, ``Dict`` -> dicts of those; ``info`` is the env's info as numpy.
    """
    return LarvaxGymnasiumEnv(env, params, seed)


__all__ = [
    "GymnaxEnv",
    "LarvaxGymnasiumEnv",
    "make_gymnax",
    "to_gymnasium",
    "to_gymnasium_space",
]
