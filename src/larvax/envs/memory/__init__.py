"""POPGym memory tasks in JAX (Morad et al., ICLR 2023), faithful to popgym 1.0.7.

Registered names (``larvax.envs.make(name, **overrides)``), each Easy/Medium/Hard:
``RepeatPrevious*``, ``RepeatFirst*``, ``CountRecall*``, ``Autoencode*``,
``StatelessCartPole*`` (popgym's PositionOnlyCartPole, also registered under that
name) and ``NoisyStatelessCartPole*`` (NoisyPositionOnlyCartPole). ``overrides`` replace
the variant's constructor arguments (e.g. ``make("RepeatPreviousEasy", k=2)``).

Every task: flat float32 observations (one-hot for card games), ``Discrete`` actions,
returns in ``[-1, 1]``, 1.0 for an optimal policy. ``reset_with(...)`` injects the hidden
state (deal orders, or the cart-pole's physical state) for tests and comparisons.
"""

from __future__ import annotations

import inspect

from larvax.envs import register_env
from larvax.envs.memory.cards import (
    CARD_VARIANTS,
    Autoencode,
    CardParams,
    CountRecall,
    RepeatFirst,
    RepeatPrevious,
    color,
    rank,
    suit,
)
from larvax.envs.memory.cartpole import (
    CARTPOLE_VARIANTS,
    CartPoleParams,
    NoisyStatelessCartPole,
    StatelessCartPole,
)

VARIANTS = {**CARD_VARIANTS, **CARTPOLE_VARIANTS}
"""name -> (class, constructor arguments), for every registered memory task."""


def make_memory_env(name: str, **overrides):
    """Build the memory task ``name`` (a key of ``VARIANTS``); returns ``(env, params)``."""
    if name not in VARIANTS:
        raise ValueError(f"unknown memory task {name!r}; allowed: {sorted(VARIANTS)}")
    cls, kwargs = VARIANTS[name]
    allowed = [p for p in inspect.signature(cls).parameters if p not in ("self", "args", "kwargs")]
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise ValueError(
            f"{name}: unknown argument {unknown[0]!r} (value {overrides[unknown[0]]!r}); "
            f"allowed: {', '.join(allowed)}"
        )
    env = cls(**{**kwargs, **overrides})
    env.variant_name = name
    return env, env.default_params


def _factory(name):
    def factory(**overrides):
        return make_memory_env(name, **overrides)

    factory.__name__ = f"make_{name}"
    return factory


for _name in VARIANTS:
    register_env(_name, _factory(_name))
    if "StatelessCartPole" in _name:  # popgym's own names as aliases
        register_env(_name.replace("StatelessCartPole", "PositionOnlyCartPole"), _factory(_name))

__all__ = [
    "Autoencode",
    "CardParams",
    "CartPoleParams",
    "CountRecall",
    "NoisyStatelessCartPole",
    "RepeatFirst",
    "RepeatPrevious",
    "StatelessCartPole",
    "VARIANTS",
    "color",
    "make_memory_env",
    "rank",
    "suit",
]
