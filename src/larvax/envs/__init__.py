"""Environments: the contract (``core``), wrappers, Simfish, memory tasks and adapters.

``make(name, **kwargs) -> (env, params)`` builds any registered environment by name:
``make("simfish", preset="stage1")``, ``make("RepeatPreviousEasy")``,
``make("gymnax:CartPole-v1")``.
"""

from __future__ import annotations

from collections.abc import Callable

from larvax.envs.core import Box, Dict, Discrete, Environment, Space, TimeStep

_REGISTRY: dict[str, Callable] = {}


def register_env(name: str, factory: Callable) -> None:
    """Register ``factory(**kwargs) -> (env, params)`` under ``name``."""
    _REGISTRY[name] = factory


def _load_builtin() -> None:
    # Importing the subpackages registers their environments.
    import importlib

    for module in ("larvax.envs.simfish", "larvax.envs.memory", "larvax.envs.adapters"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:  # a subpackage not built yet
            if err.name is None or not err.name.startswith(module):
                raise


def make(name: str, **kwargs):
    """Build the environment registered as ``name``; returns ``(env, params)``."""
    _load_builtin()
    if not isinstance(name, str):
        raise ValueError(f"make: name={name!r} is not allowed; allowed: a registered name (str)")
    if name.startswith("gymnax:"):
        from larvax.envs.adapters import make_gymnax

        return make_gymnax(name.split(":", 1)[1], **kwargs)
    if name not in _REGISTRY:
        allowed = ", ".join(sorted(_REGISTRY)) + ", gymnax:<name>"
        raise ValueError(f"unknown environment {name!r}; allowed: {allowed}")
    return _REGISTRY[name](**kwargs)


def to_gymnasium(env, params=None, seed=None):
    """``env`` as a ``gymnasium.Env``; see :func:`larvax.envs.adapters.to_gymnasium`."""
    from larvax.envs.adapters import to_gymnasium as _to_gymnasium

    return _to_gymnasium(env, params, seed)


def registered_envs() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


__all__ = [
    "Box",
    "Dict",
    "Discrete",
    "Environment",
    "Space",
    "TimeStep",
    "make",
    "register_env",
    "registered_envs",
    "to_gymnasium",
]
