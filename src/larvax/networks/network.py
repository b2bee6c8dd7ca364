"""``Network = FeatureExtractor -> torso (sequence model) -> head``, and torsos by name.

Call signature (the one every ready-made model in ``larvax.networks.models`` shares)::

    carry = net.initialize_carry(batch_shape)               # batch_shape = (B,)
    carry, out = net(observation, prev_action, prev_reward, starts, carry)

- ``observation``: pytree of ``[B, T, ...]`` arrays.
- ``prev_action``: int32 ``[B, T]`` (``-1`` = no previous action, embedded as zeros) or
  float32 ``[B, T, action_dim]`` for continuous actions; may be None when unused.
- ``prev_reward``: float32 ``[B, T]``; may be None when unused.
- ``starts``: bool ``[B, T]``, True on the first step of an episode: the torso's carry is
  reset to its initial value before that step is read. None means no starts.
- ``carry``: the torso's carry; None means ``initialize_carry((B,))``.
- ``out``: whatever the head returns for ``[B, T, F]`` torso outputs: Q-values
  ``[B, T, A]``, a distrax distribution with batch shape ``[B, T]``, or a tuple
  ``(distribution, value [B, T])`` for ``ActorCriticHead``.

Acting is the same call with ``T = 1`` (``net.step`` does the reshaping for ``[B, ...]``
inputs). Torsos follow the sequence-model contract of ``larvax.networks.sequence``;
``make_torso(name, in_features, hidden_size, rngs=...)`` builds one by name, and
``"mlp"`` gives a feed-forward torso with the empty carry ``()``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from larvax.networks import sequence
from larvax.networks.extractors import FeatureExtractor, supports_mirror
from larvax.networks.layers import MLP, positive_int

Array = jax.Array
PyTree = Any

# torso name -> class name in larvax.networks.sequence
TORSOS: dict[str, str] = {
    "lstm": "LSTM",
    "gru": "GRU",
    "mingru": "MinGRU",
    "lru": "LRU",
    "s5": "S5",
    "mamba": "Mamba",
    "attention": "SelfAttention",
    "mlp": "SequenceModelWrapper",
}


def make_torso(
    name: str,
    in_features: int,
    hidden_size: int,
    *,
    rngs: nnx.Rngs,
    activation: str | Callable = "relu",
    scale: float | None = None,
    **kwargs,
) -> nnx.Module:
    """Build the sequence model ``name`` (one of ``TORSOS``) ``[B, T, in] -> [B, T, hidden]``.

    ``"mlp"`` is one activated Linear layer per step wrapped with an empty carry
    (``activation`` and the orthogonal-init gain ``scale`` apply to it only);
    ``"attention"`` is ``Linear(in_features, hidden_size)`` followed by
    ``SelfAttention(hidden_size, num_heads=4, cache_size=32, **kwargs)``; the others are
    ``larvax.networks.sequence.<Class>(in_features, hidden_size, rngs=rngs, **kwargs)``.
    """
    if name not in TORSOS:
        raise ValueError(f"torso={name!r} is unknown; allowed: {', '.join(TORSOS)}")
    in_features = positive_int("in_features", in_features)
    hidden_size = positive_int("hidden_size", hidden_size)
    if name == "mlp":
        if kwargs:
            raise ValueError(f"torso='mlp' takes no torso_kwargs, got {sorted(kwargs)}")
        mlp = MLP(
            in_features, [hidden_size], activation, activate_final=True, scale=scale, rngs=rngs
        )
        return sequence.SequenceModelWrapper(mlp, out_features=hidden_size)
    if name == "attention":
        options = {"num_heads": 4, "cache_size": 32, **kwargs}
        proj = nnx.Linear(in_features, hidden_size, rngs=rngs)
        try:
            attention = sequence.SelfAttention(hidden_size, rngs=rngs, **options)
        except TypeError as err:
            raise ValueError(f"torso='attention': bad torso_kwargs {kwargs!r} ({err})") from err
        return Projected(proj, attention)
    cls = getattr(sequence, TORSOS[name])
    try:
        return cls(in_features, hidden_size, rngs=rngs, **kwargs)
    except TypeError as err:
        raise ValueError(f"torso={name!r}: bad torso_kwargs {kwargs!r} ({err})") from err


def _torso_out_features(torso: nnx.Module) -> int:
    out = getattr(torso, "out_features", None)
    if out is None:
        raise ValueError(f"torso {type(torso).__name__} has no out_features")
    return int(out)


def _starts_like(observation: PyTree, starts: Array | None) -> Array:
    if starts is not None:
        return jnp.asarray(starts, bool)
    leaf = jax.tree.leaves(observation)[0]
    return jnp.zeros(leaf.shape[:2], bool)


def add_time_axis(tree: PyTree) -> PyTree:
    """``[B, ...] -> [B, 1, ...]`` for every leaf (None stays None)."""
    return jax.tree.map(lambda x: jnp.asarray(x)[:, None], tree)


def remove_time_axis(tree: PyTree) -> PyTree:
    """``[B, 1, ...] -> [B, ...]`` for arrays; distrax distributions are indexed too."""
    import distrax

    def is_dist(x):
        return isinstance(x, distrax.Distribution)

    return jax.tree.map(lambda x: x[:, 0], tree, is_leaf=is_dist)


class StepMixin:
    """``step``: one acting step with ``[B, ...]`` inputs (adds and removes ``T = 1``)."""

    def step(self, observation, prev_action, prev_reward, start, carry):
        """One step: inputs ``[B, ...]`` (``start`` bool ``[B]``) -> ``(carry, out [B, ...])``.

        Equivalent to ``self(...)`` on ``[B, 1, ...]`` inputs; the carry is reset where
        ``start`` is True (the masked reset of a rollout).
        """
        obs = add_time_axis(observation)
        pa = None if prev_action is None else add_time_axis(prev_action)
        pr = None if prev_reward is None else add_time_axis(prev_reward)
        st = None if start is None else add_time_axis(start)
        carry, out = self(obs, pa, pr, st, carry)
        return carry, remove_time_axis(out)


class Projected(nnx.Module):
    """A per-step projection followed by a sequence model: ``seq(proj(x), starts, carry)``."""

    def __init__(self, projection: nnx.Module, sequence_model: nnx.Module):
        self.projection = projection
        self.sequence_model = sequence_model
        self.in_features = getattr(projection, "in_features", None)
        self.out_features = _torso_out_features(sequence_model)

    def initialize_carry(self, batch_shape: Sequence[int]) -> PyTree:
        return self.sequence_model.initialize_carry(tuple(batch_shape))

    def __call__(self, x: Array, starts: Array, carry=None):
        return self.sequence_model(self.projection(x), starts, carry)


class Network(StepMixin, nnx.Module):
    """``feature_extractor -> torso -> head`` with one carry (the torso's).

    ``feature_extractor``: a ``FeatureExtractor`` (called with observation, action,
    reward, start) or any module called with the observation alone; ``torso``: a
    sequence model (``initialize_carry``, ``__call__(x, starts, carry)``); ``head``: a
    module applied to the torso output ``[B, T, F]``. See the module docstring.
    """

    def __init__(self, feature_extractor: nnx.Module, torso: nnx.Module, head: nnx.Module):
        for name, value in (
            ("feature_extractor", feature_extractor),
            ("torso", torso),
            ("head", head),
        ):
            if not callable(value):
                raise ValueError(f"Network.{name} must be a module, got {value!r}")
        if not hasattr(torso, "initialize_carry"):
            raise ValueError(
                f"Network.torso must be a sequence model with initialize_carry, got "
                f"{type(torso).__name__}"
            )
        self.feature_extractor = feature_extractor
        self.torso = torso
        self.head = head

    def initialize_carry(self, batch_shape: Sequence[int]) -> PyTree:
        return self.torso.initialize_carry(tuple(batch_shape))

    def features(
        self, observation, prev_action=None, prev_reward=None, starts=None, *, with_mirror=False
    ) -> Array:
        """The feature extractor's output ``[B, T, D]`` (``[2B, T, D]`` with ``with_mirror``)."""
        if isinstance(self.feature_extractor, FeatureExtractor):
            return self.feature_extractor(
                observation, prev_action, prev_reward, starts, with_mirror=with_mirror
            )
        if with_mirror:
            if not supports_mirror(self.feature_extractor):
                raise ValueError(
                    "with_mirror=True needs a feature extractor with mirror_features, got "
                    f"{type(self.feature_extractor).__name__}"
                )
            return self.feature_extractor(observation, with_mirror=True)
        return self.feature_extractor(observation)

    def __call__(
        self,
        observation,
        prev_action=None,
        prev_reward=None,
        starts=None,
        carry=None,
        *,
        with_mirror: bool = False,
    ):
        """See the module docstring. ``with_mirror=True`` (networks whose observation module
        declares ``mirror_features``, see ``larvax.networks.extractors.supports_mirror``): the
        observation ``[B, T, ...]`` stands for itself followed by its mirror image, and
        prev_action, prev_reward, starts and carry are given for all ``2B`` rows; the output
        has ``2B`` rows. The shared part of the observation module runs once."""
        starts = _starts_like(observation, starts)
        if with_mirror and starts.shape[0] == jax.tree.leaves(observation)[0].shape[0]:
            starts = jnp.concatenate([starts, starts], axis=0)
        x = self.features(observation, prev_action, prev_reward, starts, with_mirror=with_mirror)
        if carry is None:
            carry = self.initialize_carry(x.shape[:1])
        carry, y = self.torso(x, starts, carry)
        return carry, self.head(y)


class ActorCriticHead(nnx.Module):
    """Apply an actor head and a critic head to the same features: ``(distribution, value)``."""

    def __init__(self, actor: nnx.Module, critic: nnx.Module):
        self.actor = actor
        self.critic = critic

    def __call__(self, x: Array):
        return self.actor(x), self.critic(x)


__all__ = [
    "TORSOS",
    "ActorCriticHead",
    "Network",
    "Projected",
    "StepMixin",
    "add_time_axis",
    "make_torso",
    "remove_time_axis",
]
