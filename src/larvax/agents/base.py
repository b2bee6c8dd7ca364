"""The agent contract shared by R2D2, PPO and the training loop, and where agents meet
environments.

An agent is built by ``make_agent(name, env, env_params, network: dict, config: dict)``
(below; each agent module has its own ``make_agent``) and offers:

- ``config``: a frozen, validated dataclass (``larvax.validation``).
- ``env_steps_per_update``: environment steps (summed over parallel envs) one update
  consumes; the loop turns a budget of env steps into a number of updates.
- ``init(key) -> TrainState``: a pytree of arrays only (network/optimiser state,
  env states, replay, RNG keys, counters); it is what a checkpoint stores.
- ``train(state, num_updates) -> (state, metrics)``: jit-compiled, one ``lax.scan``
  over updates; ``metrics`` is a dict of float32 arrays of shape ``[num_updates]``.
  Keys every agent reports: ``env_steps`` (cumulative, after the update),
  ``episode_return`` and ``episode_length`` (mean over episodes that ended during the
  update, NaN if none ended), ``episodes`` (how many ended), ``loss``, and every metric
  the environment declares in ``env.episode_metrics`` (same averaging). Agents add their
  own (R2D2: ``q_mean``, ``td_abs``, ...; PPO: ``entropy``, ``approx_kl``, ...).
- ``act(state, observation, carry, key, greedy=True) -> (carry, action)``: one step
  for evaluation, batch-major.

Agents and environments meet here: ``network_kwargs`` / ``build_network`` fill a network's
constructor arguments (observation shape, action count or size) from the env's spaces.
"""

from __future__ import annotations

from typing import Any, Protocol

import jax
import numpy as np

from larvax.envs.core import Box, Dict, Discrete

PyTree = Any


class Agent(Protocol):
    config: Any
    env_steps_per_update: int

    def init(self, key: jax.Array) -> PyTree: ...

    def train(self, state: PyTree, num_updates: int) -> tuple[PyTree, dict]: ...

    def act(
        self, state: PyTree, observation: PyTree, carry: PyTree, key: jax.Array, greedy: bool = True
    ) -> tuple[PyTree, jax.Array]: ...


_BUILTIN = {"r2d2": "larvax.agents.r2d2", "ppo": "larvax.agents.ppo"}
_EXTRA: dict = {}


def register_agent(name: str, factory) -> None:
    """Register ``factory(env, env_params, network, config) -> Agent`` (plug-ins, tests)."""
    _EXTRA[name] = factory


def agent_names() -> list[str]:
    return sorted(set(_BUILTIN) | set(_EXTRA))


def make_agent(name: str, env, env_params, network: dict, config: dict):
    """Build the agent registered as ``name`` ("r2d2", "ppo" or a registered plug-in)."""
    if name in _EXTRA:
        factory = _EXTRA[name]
    elif name in _BUILTIN:
        import importlib

        factory = importlib.import_module(_BUILTIN[name]).make_agent
    else:
        raise ValueError(f"agent: unknown agent {name!r}; allowed: {', '.join(agent_names())}")
    agent = factory(env, env_params, network, config)
    _check_act_observations(agent, env, env_params, name)
    return agent


def check_observation(space, observation, where: str) -> None:
    """Raise a one-line ValueError when a batch-major observation ``[B, ...]`` does not have
    the space's shape in each row (``Dict``: the same keys, each checked). Shapes are static,
    so this works on tracers under ``jit`` too."""
    if isinstance(space, Dict):
        keys = sorted(observation) if isinstance(observation, dict) else None
        if keys != sorted(space.spaces):
            raise ValueError(
                f"{where}: observation keys {keys}; the environment's are {sorted(space.spaces)}"
            )
        for key, sub in space.spaces.items():
            check_observation(sub, observation[key], f"{where}: observation[{key!r}]")
        return
    shape, expected = tuple(np.shape(observation)), tuple(space.shape)
    if len(shape) != len(expected) + 1 or shape[1:] != expected:
        raise ValueError(
            f"{where}: observation of shape {shape}; expected (batch, {', '.join(map(str, expected))})"
            " (batch-major, one row per environment)"
        )


def _check_act_observations(agent, env, env_params, name: str) -> None:
    """Make ``agent.act`` refuse observations of another shape than the environment's, with
    a one-line error (instead of a failure deep inside the network)."""
    import functools

    act = getattr(agent, "act", None)
    params = env.default_params if env_params is None else env_params
    try:
        space = env.observation_space(params)
    except NotImplementedError:  # an environment without a declared observation space
        return
    if act is None:
        return

    @functools.wraps(act)
    def checked(state, observation, *args, **kwargs):
        check_observation(space, observation, f"{name}.act")
        return act(state, observation, *args, **kwargs)

    try:
        agent.act = checked
    except AttributeError:  # a frozen agent: left as it is
        pass


# ----------------------------------------------------------------------------- networks


def space_shape(space) -> Any:
    """The shape of a space as lists (a dict of them for a ``Dict`` space): what networks take
    as ``obs_shape``."""
    if isinstance(space, Dict):
        return {k: space_shape(v) for k, v in space.spaces.items()}
    if isinstance(space, Box | Discrete):
        return list(space.shape)
    raise ValueError(f"observation space {type(space).__name__} has no shape")


def network_kwargs(env, env_params, network: dict) -> dict:
    """The registry constructor arguments of a network dict ``{"name": ..., **kwargs}``
    (without ``name`` and ``seed``), filled from the environment's spaces where the model's
    constructor takes them and the dict does not set them: ``obs_shape`` (unless ``obs_dim``
    is set) from the observation space, ``num_actions`` from a Discrete action space or
    ``action_dim`` (flattened size) from a Box one. Values the dict sets itself must agree
    with the environment (:func:`check_network_fits`): a mismatch is a one-line ValueError."""
    import inspect

    from larvax.networks import registry

    if not isinstance(network, dict) or "name" not in network:
        raise ValueError(
            f"network must be a dict {{'name': registry name, **kwargs}} or an nnx.Module, "
            f"got {network!r}"
        )
    kwargs = {k: v for k, v in network.items() if k not in ("name", "seed")}
    accepted = inspect.signature(registry.get_class(network["name"]).__init__).parameters
    params = env.default_params if env_params is None else env_params
    act_space = env.action_space(params)
    filled: dict[str, Any] = {}
    if "obs_dim" not in kwargs:
        filled["obs_shape"] = space_shape(env.observation_space(params))
    if "num_actions" not in kwargs and "action_dim" not in kwargs:
        if isinstance(act_space, Discrete):
            filled["num_actions"] = int(act_space.n)
        else:
            filled["action_dim"] = int(np.prod(act_space.shape))
    check_network_fits(kwargs, env.observation_space(params), act_space)
    for k, v in filled.items():
        if k in accepted:
            kwargs.setdefault(k, v)
    return kwargs


def check_network_fits(kwargs: dict, obs_space, act_space) -> None:
    """Raise a one-line ValueError when a network's own ``num_actions``, ``action_dim``,
    ``obs_shape`` or ``obs_dim`` disagrees with the environment's spaces (a network with
    another action count would train to the end on actions the environment does not have)."""

    def mismatch(key, expected, what):
        return ValueError(
            f"network.{key}={kwargs[key]!r} does not match the environment: {what}; remove "
            f"network.{key} (it is filled from the environment) or set it to {expected!r}"
        )

    if kwargs.get("num_actions") is not None:
        if not isinstance(act_space, Discrete):
            raise mismatch("num_actions", None, f"its actions are continuous ({act_space})")
        if kwargs["num_actions"] != int(act_space.n):
            n = int(act_space.n)
            raise mismatch("num_actions", n, f"its action space has {n} actions")
    if kwargs.get("action_dim") is not None:
        if isinstance(act_space, Discrete):
            raise mismatch("action_dim", None, f"its actions are discrete ({act_space.n})")
        size = int(np.prod(act_space.shape))
        if kwargs["action_dim"] != size:
            raise mismatch("action_dim", size, f"its actions have {size} dimensions")
    if isinstance(obs_space, Dict):
        return
    shape = space_shape(obs_space)
    if kwargs.get("obs_shape") is not None and list(kwargs["obs_shape"]) != shape:
        raise mismatch("obs_shape", shape, f"its observations have shape {shape}")
    if kwargs.get("obs_dim") is not None and kwargs["obs_dim"] != int(np.prod(shape)):
        size = int(np.prod(shape))
        raise mismatch("obs_dim", size, f"its observations have {size} values")


def build_network(env, env_params, network, rngs=None):
    """The network of an agent: an ``nnx.Module`` as is, or a registry dict built with
    :func:`network_kwargs` (seeded by ``network["seed"]``, default 0, or by ``rngs``).

    Returns ``(module, spec)``; ``spec`` is ``{"name": ..., **kwargs}`` (None for a module),
    what rebuilds the same architecture with other parameters (``rebuild_network``)."""
    from flax import nnx

    from larvax.networks import registry

    if isinstance(network, nnx.Module):
        return network, None
    kwargs = network_kwargs(env, env_params, network)
    spec = {"name": network["name"], **kwargs}
    if rngs is None:
        return registry.create(network["name"], seed=int(network.get("seed", 0)), **kwargs), spec
    return registry.create(network["name"], rngs=rngs, **kwargs), spec


def rebuild_network(spec: dict, key):
    """The network of ``spec`` (from :func:`build_network`) with parameters drawn from the
    JAX ``key`` (works under ``jax.eval_shape`` and ``jit``)."""
    from flax import nnx

    from larvax.networks import registry

    kwargs = {k: v for k, v in spec.items() if k != "name"}
    return registry.create(spec["name"], rngs=nnx.Rngs(key), **kwargs)
