"""The agent contract shared by R2D2, PPO and the training loop.

An agent is built by ``make_agent(env, env_params, network: dict, config: dict)``
in its module (``larvax.agents.r2d2``, ``larvax.agents.ppo``) and offers:

- ``config``: a frozen, validated dataclass.
- ``env_steps_per_update``: environment steps (summed over parallel envs) one update
  consumes; the loop turns a budget of env steps into a number of updates.
- ``init(key) -> TrainState``: a pytree of arrays only (network/optimiser state,
  env states, replay, RNG keys, counters); it is what a checkpoint stores.
- ``train(state, num_updates) -> (state, metrics)``: jit-compiled, one ``lax.scan``
  over updates; ``metrics`` is a dict of float32 arrays of shape ``[num_updates]``.
  Keys every agent reports: ``env_steps`` (cumulative, after the update),
  ``episode_return`` and ``episode_length`` (mean over episodes that ended during the
  update, NaN if none ended), ``episodes`` (how many ended), ``loss``. Agents add their
  own (``q_loss``, ``prey_caught``, ``entropy``, ...).
- ``act(state, observation, carry, key, greedy=True) -> (carry, action)``: one step
  for evaluation, batch-major.
"""

from __future__ import annotations

from typing import Any, Protocol

import jax

PyTree = Any


class Agent(Protocol):
    config: Any
    env_steps_per_update: int

    def init(self, key: jax.Array) -> PyTree: ...

    def train(self, state: PyTree, num_updates: int) -> tuple[PyTree, dict]: ...

    def act(self, state: PyTree, observation: PyTree, carry: PyTree, key: jax.Array,
            greedy: bool = True) -> tuple[PyTree, jax.Array]: ...


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
    return factory(env, env_params, network, config)
