"""Environment contract: explicit state, explicit keys, termination and truncation apart.

```
params = env.default_params            # static configuration pytree
state, ts = env.reset(key, params)
state, ts = env.step(key, state, action, params)
ts: TimeStep(observation, reward, terminated, truncated, info)
env.observation_space(params), env.action_space(params)
```

Every function is pure, so ``jax.jit(env.step)`` and ``jax.vmap(env.step, (0, 0, 0, None))``
work for every environment.

Actions outside the action space (:func:`check_action`, :func:`end_on_invalid_action`) are
never remapped silently: a concrete action (an eager call) raises
:class:`InvalidActionError`; under ``jit``/``vmap``/``scan``, where nothing can raise, the
step ends the episode (``terminated=True``) with reward 0, and environments with an info
dict of their own (Simfish) set ``info["invalid_action"]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
PyTree = Any


class TimeStep(NamedTuple):
    """What an environment returns from ``reset`` and ``step``.

    observation: pytree of arrays.
    reward: float32 scalar, the reward of the transition just taken (0 after reset).
    terminated: bool, the episode ended in a terminal state (no bootstrap).
    truncated: bool, the episode was cut by a time limit (bootstrap from the value).
    info: dict of arrays (reward components, events, ...), the same structure every step.
    """

    observation: PyTree
    reward: Array
    terminated: Array
    truncated: Array
    info: dict

    @property
    def done(self) -> Array:
        return jnp.logical_or(self.terminated, self.truncated)


# ----------------------------------------------------------------------------- spaces


class Space:
    """Base class of observation and action spaces."""

    def sample(self, key: Array) -> PyTree:  # pragma: no cover - abstract
        raise NotImplementedError

    def contains(self, x: PyTree) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class Discrete(Space):
    """Integers ``0 .. n-1``."""

    n: int
    dtype: Any = jnp.int32

    def __post_init__(self):
        if int(self.n) < 1:
            raise ValueError(f"Discrete.n must be >= 1, got {self.n!r}")

    @property
    def shape(self) -> tuple[int, ...]:
        return ()

    def sample(self, key: Array) -> Array:
        return jax.random.randint(key, (), 0, self.n, dtype=self.dtype)

    def contains(self, x) -> bool:
        x = np.asarray(x)
        return bool(x.shape == () and np.issubdtype(x.dtype, np.integer) and 0 <= x < self.n)

    def describe(self) -> str:
        return f"Discrete({self.n}): an integer 0..{self.n - 1}"


@dataclass(frozen=True)
class Box(Space):
    """A box ``[low, high]`` of the given shape (bounds broadcast to it)."""

    low: Any
    high: Any
    shape: tuple[int, ...]
    dtype: Any = jnp.float32

    def sample(self, key: Array) -> Array:
        low = jnp.broadcast_to(jnp.asarray(self.low, jnp.float32), self.shape)
        high = jnp.broadcast_to(jnp.asarray(self.high, jnp.float32), self.shape)
        finite_low = jnp.where(jnp.isfinite(low), low, -1.0)
        finite_high = jnp.where(jnp.isfinite(high), high, 1.0)
        u = jax.random.uniform(key, self.shape, minval=finite_low, maxval=finite_high)
        if jnp.issubdtype(self.dtype, jnp.integer):
            return jnp.floor(u).astype(self.dtype)
        return u.astype(self.dtype)

    def contains(self, x) -> bool:
        x = np.asarray(x)
        if x.shape != tuple(self.shape):
            return False
        return bool(np.all(x >= np.asarray(self.low)) and np.all(x <= np.asarray(self.high)))


@dataclass(frozen=True)
class Dict(Space):
    """A mapping of named sub-spaces (observations are dicts of arrays)."""

    spaces: dict

    def sample(self, key: Array) -> dict:
        keys = jax.random.split(key, len(self.spaces))
        return {k: s.sample(kk) for (k, s), kk in zip(self.spaces.items(), keys, strict=True)}

    def contains(self, x) -> bool:
        return set(x) == set(self.spaces) and all(s.contains(x[k]) for k, s in self.spaces.items())


# ----------------------------------------------------------------------------- invalid actions


class InvalidActionError(ValueError):
    """An action outside the environment's action space (eager calls, adapters)."""


def _concrete(x) -> np.ndarray | None:
    """``x`` as NumPy when it has a value now (an eager call), None under a JAX transform."""
    try:
        return np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def check_action(space: Space, action, where: str = "env.step") -> Array:
    """Whether ``action`` is outside the ``Discrete`` ``space``: raises InvalidActionError
    for a concrete action (naming it and what is allowed) and returns False; under a JAX
    transform returns the traced flag (bool), for :func:`end_on_invalid_action`."""
    if not isinstance(space, Discrete):
        return jnp.asarray(False)
    value = _concrete(action)
    if value is None:
        a = jnp.asarray(action)
        return (a < 0) | (a >= space.n)
    if not space.contains(value):
        shown = value.tolist() if value.size < 8 else f"an array of shape {value.shape}"
        raise InvalidActionError(
            f"{where}: action {shown!r} is outside the action space; allowed: {space.describe()}"
        )
    return jnp.asarray(False)


def end_on_invalid_action(ts: TimeStep, invalid: Array, flag: bool = False) -> TimeStep:
    """The rule inside ``jit`` for an action outside the space: the episode ends
    (``terminated``, and ``info["terminated"]`` if the env reports it) with reward 0;
    ``flag`` adds ``info["invalid_action"]`` (an env whose info has room for it)."""
    info = dict(ts.info)
    terminated = jnp.logical_or(ts.terminated, invalid)
    if "terminated" in info:
        info["terminated"] = jnp.logical_or(info["terminated"], invalid)
    if flag:
        info["invalid_action"] = jnp.asarray(invalid, bool)
    reward = jnp.where(invalid, jnp.zeros_like(ts.reward), ts.reward)
    return ts._replace(reward=reward, terminated=terminated, info=info)


# ----------------------------------------------------------------------------- episode metrics


class EpisodeMetric(NamedTuple):
    """One number per finished episode, read from the per-step ``info`` of ``env.step``.

    An environment lists them in ``episode_metrics``; agents accumulate them over each
    episode (:func:`init_episode_metrics`, :func:`accumulate_episode_metrics`), the training
    loop averages them over the episodes that ended, and logs and plots show them.

    name: the column in ``metrics.csv``, logs and plots.
    info_key: the ``info`` entry it reads (per step, a scalar).
    reduce: ``"sum"`` over the episode's steps, or ``"last"``: the value on its last step.
    equals: with ``"last"``, 1.0 when the last value equals this and 0.0 otherwise, so the
        average over episodes is the fraction that ended that way (e.g. an end cause).
    label: a short name for progress displays ("" for none: not shown there).
    """

    name: str
    info_key: str
    reduce: str = "sum"
    equals: int | None = None
    label: str = ""


def init_episode_metrics(metrics, batch_shape=()) -> dict:
    """Running values of ``metrics`` (float32 zeros of ``batch_shape``), keyed by name."""
    return {m.name: jnp.zeros(batch_shape, jnp.float32) for m in metrics}


def accumulate_episode_metrics(metrics, running: dict, info: dict, valid: Array) -> dict:
    """The running values after one step with ``info``; steps where ``valid`` is False (no
    action taken) leave them unchanged."""
    out = {}
    for m in metrics:
        x = jnp.asarray(info[m.info_key])
        if m.reduce == "sum":
            new = running[m.name] + x.astype(jnp.float32)
        elif m.equals is not None:
            new = (x == m.equals).astype(jnp.float32)
        else:
            new = x.astype(jnp.float32)
        out[m.name] = jnp.where(valid, new, running[m.name])
    return out


# ----------------------------------------------------------------------------- environment


class Environment:
    """Base class of larvax environments (subclasses implement the four methods).

    Subclasses with a left/right symmetry also define ``mirror_actions`` (an int array
    mapping each action to its mirror image) and ``reflect_observation(obs)``; the
    mirror wrapper and R2D2's mirror augmentation use them.

    ``episode_metrics`` declares what the agents, the training loop, logs and plots report
    per finished episode beyond its return and length (see :class:`EpisodeMetric`).
    """

    episode_metrics: tuple[EpisodeMetric, ...] = ()

    @property
    def default_params(self) -> PyTree:
        raise NotImplementedError

    def reset(self, key: Array, params: PyTree | None = None) -> tuple[PyTree, TimeStep]:
        raise NotImplementedError

    def step(
        self, key: Array, state: PyTree, action: Array, params: PyTree | None = None
    ) -> tuple[PyTree, TimeStep]:
        raise NotImplementedError

    def observation_space(self, params: PyTree | None = None) -> Space:
        raise NotImplementedError

    def action_space(self, params: PyTree | None = None) -> Space:
        raise NotImplementedError

    # Optional mirror symmetry: None when the environment has none.
    mirror_actions: Any = None

    def reflect_observation(self, observation: PyTree) -> PyTree:
        raise NotImplementedError(f"{type(self).__name__} declares no mirror symmetry")

    @property
    def name(self) -> str:
        return type(self).__name__
