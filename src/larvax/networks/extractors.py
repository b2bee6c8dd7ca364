"""Feature extractors: modules that embed observations, previous actions and rewards.

Every extractor is applied over any number of leading (batch) dimensions: an input
``[B, T, ...]`` gives ``[B, T, D]``. ``FeatureExtractor`` embeds whatever it is given
(observation, previous action, previous reward, start flag) and concatenates the
embeddings along the last axis, the "OAR" embedding of R2D2 (Kapturowski et al.
2019) when all three are used.

- ``FlattenObservation``: flattens an array or a dict of arrays (leaves in sorted key
  order) into one feature vector.
- ``OneHotAction``, ``ContinuousAction``, ``TanhReward``, ``StartFlag``: the embeddings of
  the previous action, previous reward and start flag.
- ``supports_mirror``: whether a module computes mirror-image features in one pass.

Observation embeddings are built from ``larvax.networks.layers`` (``MLP``, ``CNN``,
``Sequential``) or ``larvax.networks.simfish`` (``Retina``, ``SimfishEmbedding``).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from larvax.networks.layers import int_tuple, positive_int

Array = jax.Array


def _leaf_sizes(shape_spec: Any) -> int:
    """Total flattened size of an observation shape spec (int, shape, or dict of those)."""
    if isinstance(shape_spec, dict):
        if not shape_spec:
            raise ValueError("obs_shape must not be an empty dict")
        return sum(_leaf_sizes(v) for v in shape_spec.values())
    if isinstance(shape_spec, int) and not isinstance(shape_spec, bool):
        return positive_int("obs_shape", shape_spec)
    shape = int_tuple("obs_shape", shape_spec)
    return math.prod(shape)


def observation_size(obs_shape: Any) -> int:
    """Flattened feature size of an observation: ``obs_shape`` is an int (a vector size), a
    shape list/tuple, or a dict mapping names to either (dict observations)."""
    return _leaf_sizes(obs_shape)


class FlattenObservation(nnx.Module):
    """Flatten an observation pytree to ``[*lead, D]``.

    Each leaf ``[*lead, ...]`` (``lead`` = the first ``num_leading`` axes, 2 for
    ``[B, T, ...]``) is flattened to ``[*lead, d_i]`` and cast to float32; the leaves are
    concatenated in ``jax.tree`` order (dict keys sorted).
    """

    def __init__(self, num_leading: int = 2):
        self.num_leading = int(num_leading)

    def __call__(self, observation: Any) -> Array:
        leaves = jax.tree.leaves(observation)
        if not leaves:
            raise ValueError("FlattenObservation: the observation has no arrays")
        k = self.num_leading
        lead = leaves[0].shape[:k]
        flat = []
        for leaf in leaves:
            leaf = jnp.asarray(leaf)
            if leaf.shape[:k] != lead:
                raise ValueError(
                    f"observation leaves disagree on the leading {k} axes: {leaf.shape} vs {lead}"
                )
            flat.append(leaf.reshape((*lead, -1)).astype(jnp.float32))
        return jnp.concatenate(flat, axis=-1)


class OneHotAction(nnx.Module):
    """Previous discrete action ``[...]`` int -> one-hot ``[..., num_actions]``.

    ``-1`` ("no previous action", e.g. the first step of an episode) gives the neutral
    all-zero vector.
    """

    def __init__(self, num_actions: int):
        self.num_actions = positive_int("num_actions", num_actions)
        self.out_features = self.num_actions

    def __call__(self, action: Array) -> Array:
        action = jnp.asarray(action)
        if jnp.issubdtype(action.dtype, jnp.floating):
            raise ValueError(
                f"OneHotAction expects integer actions, got dtype {action.dtype}; "
                "use ContinuousAction for continuous actions"
            )
        return jax.nn.one_hot(action, self.num_actions, dtype=jnp.float32)  # -1 -> zeros


class ContinuousAction(nnx.Module):
    """Previous continuous action ``[..., action_dim]`` float, passed through (float32)."""

    def __init__(self, action_dim: int):
        self.action_dim = positive_int("action_dim", action_dim)
        self.out_features = self.action_dim

    def __call__(self, action: Array) -> Array:
        action = jnp.asarray(action, jnp.float32)
        if action.shape[-1:] != (self.action_dim,):
            raise ValueError(
                f"ContinuousAction expects [..., {self.action_dim}], got shape {action.shape}"
            )
        return action


class TanhReward(nnx.Module):
    """Previous reward ``[...]`` -> ``tanh(r)[..., None]`` (R2D2's OAR squashing)."""

    out_features = 1

    def __call__(self, reward: Array) -> Array:
        return jnp.tanh(jnp.asarray(reward, jnp.float32))[..., None]


class StartFlag(nnx.Module):
    """Start flag ``[...]`` bool -> ``[..., 1]`` float (1.0 on the first step)."""

    out_features = 1

    def __call__(self, start: Array) -> Array:
        return jnp.asarray(start, jnp.float32)[..., None]


# ----------------------------------------------------------------------------- FeatureExtractor


def supports_mirror(module: Any) -> bool:
    """Whether ``module(observation, with_mirror=True)`` gives the features of the observation
    followed by those of its mirror image (Simfish's ``reflect_observation``) for one
    computation of the shared part: a module declares it with ``mirror_features = True``; a
    ``FeatureExtractor`` or ``Network`` supports it when its observation module does.
    R2D2 uses it for mirror augmentation and checks it numerically against the environment's
    own reflection before relying on it."""
    if isinstance(module, FeatureExtractor):
        return module.observation is not None and supports_mirror(module.observation)
    inner = getattr(module, "feature_extractor", None)
    if inner is not None:
        return supports_mirror(inner)
    return bool(getattr(module, "mirror_features", False))


class FeatureExtractor(nnx.Module):
    """Embed any of (observation, previous action, previous reward, start) and concatenate.

    Each argument is a module (or None to ignore that input). Called as
    ``fe(observation, action=None, reward=None, start=None) -> [..., out_features]`` where
    ``out_features`` is the sum of the embeddings' ``out_features``. An input whose module
    is None is ignored even when given; a module whose input is missing is an error.
    The concatenation order is observation, action, reward, start.
    """

    def __init__(
        self,
        observation: nnx.Module | None = None,
        action: nnx.Module | None = None,
        reward: nnx.Module | None = None,
        start: nnx.Module | None = None,
        *,
        observation_features: int | None = None,
    ):
        if observation is None and action is None and reward is None and start is None:
            raise ValueError(
                "FeatureExtractor needs at least one of observation/action/reward/start"
            )
        self.observation = observation
        self.action = action
        self.reward = reward
        self.start = start
        total = 0
        for name, module in (
            ("observation", observation),
            ("action", action),
            ("reward", reward),
            ("start", start),
        ):
            if module is None:
                continue
            size = getattr(module, "out_features", None)
            if name == "observation" and observation_features is not None:
                size = positive_int("observation_features", observation_features)
            if size is None:
                raise ValueError(
                    f"FeatureExtractor: the {name} module {type(module).__name__} has no "
                    "out_features; pass observation_features= for the observation"
                )
            total += int(size)
        self.out_features = total

    def __call__(
        self, observation=None, action=None, reward=None, start=None, *, with_mirror: bool = False
    ) -> Array:
        """With ``with_mirror`` the observation ``[B, ...]`` stands for ``[B, ...]`` followed by
        its mirror image: the observation module (which must support it, see
        ``supports_mirror``) returns ``[2B, ...]`` features, and action, reward and start are
        given for all ``2B`` rows (the mirrored rows with mirrored actions)."""
        if with_mirror and not supports_mirror(self):
            raise ValueError(
                f"with_mirror=True needs an observation module with mirror_features, got "
                f"{type(self.observation).__name__}"
            )
        parts = []
        for name, module, value in (
            ("observation", self.observation, observation),
            ("action", self.action, action),
            ("reward", self.reward, reward),
            ("start", self.start, start),
        ):
            if module is None:
                continue
            if value is None:
                raise ValueError(f"FeatureExtractor has a {name} embedding but {name}=None")
            if name == "observation" and with_mirror:
                parts.append(module(value, with_mirror=True))
            else:
                parts.append(module(value))
        return jnp.concatenate(parts, axis=-1)


__all__ = [
    "ContinuousAction",
    "FeatureExtractor",
    "FlattenObservation",
    "OneHotAction",
    "StartFlag",
    "TanhReward",
    "observation_size",
    "supports_mirror",
]
