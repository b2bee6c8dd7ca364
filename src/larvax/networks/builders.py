"""Argument checks and the feature extractor shared by the generic models.

The generic models (``RecurrentQNetwork`` and the actor-critics) take the observation as
``obs_shape`` or ``obs_dim`` and the actions as ``num_actions`` (discrete) or
``action_dim`` (continuous), and embed ``flatten -> MLP -> [previous action] ->
[tanh previous reward]`` with ``feature_extractor``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flax import nnx

from larvax.networks.extractors import (
    ContinuousAction,
    FeatureExtractor,
    FlattenObservation,
    OneHotAction,
    TanhReward,
    observation_size,
)
from larvax.networks.layers import MLP, Sequential, positive_int


def obs_size(obs_shape: Any, obs_dim: Any) -> int:
    """The flattened observation size from exactly one of ``obs_shape`` and ``obs_dim``."""
    if (obs_shape is None) == (obs_dim is None):
        raise ValueError(
            f"give exactly one of obs_shape (a shape list or a dict of them) or obs_dim (an int); "
            f"got obs_shape={obs_shape!r}, obs_dim={obs_dim!r}"
        )
    if obs_dim is not None:
        return positive_int("obs_dim", obs_dim)
    return observation_size(obs_shape)


def check_actor_critic_args(
    obs_shape, obs_dim, num_actions, action_dim, action_space, **flags
) -> tuple[int, str, int]:
    """Shared argument checks of the actor-critics: ``(obs size, action kind, n actions)``."""
    size = obs_size(obs_shape, obs_dim)
    kind, n_act = action_kind(num_actions, action_dim)
    for name, value in flags.items():
        check_bool(name, value)
    if kind == "discrete" and action_space not in (None, "free", {"name": "free"}):
        raise ValueError(f"action_space={action_space!r} needs action_dim (continuous actions)")
    return size, kind, n_act


def action_kind(num_actions: Any, action_dim: Any) -> tuple[str, int]:
    """``("discrete", num_actions)`` or ``("continuous", action_dim)``: exactly one is given."""
    if (num_actions is None) == (action_dim is None):
        raise ValueError(
            "give exactly one of num_actions (discrete) or action_dim (continuous); got "
            f"num_actions={num_actions!r}, action_dim={action_dim!r}"
        )
    if num_actions is not None:
        return "discrete", positive_int("num_actions", num_actions)
    return "continuous", positive_int("action_dim", action_dim)


def feature_extractor(
    size: int,
    hidden: Sequence[int],
    activation,
    kind: str,
    n_act: int,
    use_prev_action: bool,
    use_prev_reward: bool,
    scale: float | None,
    rngs: nnx.Rngs,
) -> FeatureExtractor:
    """Flatten (``size`` features) -> MLP(hidden, activated) [-> previous action embedding]
    [-> tanh reward]."""
    flatten = FlattenObservation(num_leading=2)
    hidden = tuple(hidden)
    if hidden:
        mlp = MLP(size, hidden, activation, activate_final=True, scale=scale, rngs=rngs)
        obs = Sequential(flatten, mlp, out_features=mlp.out_features)
    else:
        obs = Sequential(flatten, out_features=size)
    action = None
    if use_prev_action:
        action = OneHotAction(n_act) if kind == "discrete" else ContinuousAction(n_act)
    reward = TanhReward() if use_prev_reward else None
    return FeatureExtractor(observation=obs, action=action, reward=reward)


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is a bool, else a ValueError naming ``name``."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


__all__ = ["action_kind", "check_actor_critic_args", "check_bool", "feature_extractor", "obs_size"]
