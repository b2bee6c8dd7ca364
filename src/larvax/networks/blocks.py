"""Composable blocks that follow the sequence-model contract.

Every block, like every torso in :mod:`larvax.networks.sequence`, is called as
``carry, y = block(x [B, T, F], starts [B, T], carry)`` with
``carry = block.initialize_carry((B,))``, so blocks nest freely and the reset/step
equivalence of their parts carries over to the whole.

Order of normalisation and residual: ``PreNorm(f)(x) = f(LayerNorm(x))`` and
``Residual(f)(x) = x + f(x)``. The standard pre-LN transformer sub-layer
(Xiong et al. 2020, "On Layer Normalization in the Transformer Architecture") is therefore
``Residual(PreNorm(f))``: ``x + f(LN(x))``, the residual stream itself is never normalised.
``PreNorm(Residual(f))`` is also valid but different: ``LN(x) + f(LN(x))`` (the skip path
carries the normalised input). :func:`transformer` builds the standard stack::

    Stack(Residual(PreNorm(SelfAttention)), Residual(PreNorm(FFN)), ...)
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from larvax.networks.sequence.attention import SelfAttention
from larvax.networks.sequence.base import check_batch_shape, check_positive_int

Array = jax.Array


def _check_layer(owner: str, layer: Any) -> None:
    if not (callable(layer) and hasattr(layer, "initialize_carry")):
        raise ValueError(
            f"{owner}: layer must follow the sequence-model contract (initialize_carry and "
            f"__call__(x, starts, carry)), got {type(layer).__name__}; wrap stateless modules "
            f"in SequenceModelWrapper"
        )


class Stack(nnx.Module):
    """Apply layers in order; the carry is the tuple of the layers' carries."""

    def __init__(self, *layers: Any):
        if not layers:
            raise ValueError("Stack.layers must hold at least one layer, got none")
        for layer in layers:
            _check_layer("Stack", layer)
        self.layers = nnx.List(layers)
        self.in_features = getattr(layers[0], "in_features", None)
        self.out_features = getattr(layers[-1], "out_features", None)

    def initialize_carry(self, batch_shape: tuple[int, ...]) -> tuple:
        return tuple(layer.initialize_carry(batch_shape) for layer in self.layers)

    def __call__(self, x: Array, starts: Array, carry: tuple | None = None):
        if carry is None:
            carry = self.initialize_carry(x.shape[:1])
        if len(carry) != len(self.layers):
            raise ValueError(
                f"Stack: carry must be a tuple of {len(self.layers)} carries, got {len(carry)}"
            )
        new = []
        for layer, c in zip(self.layers, carry, strict=True):
            c, x = layer(x, starts, c)
            new.append(c)
        return tuple(new), x


class PreNorm(nnx.Module):
    """``layer(LayerNorm(x))``: layer normalisation (Ba et al. 2016) over the last axis first.

    Args:
        layer: a sequence model (contract above).
        features: size of the last axis of ``x``.
        rngs: optional ``nnx.Rngs`` (LayerNorm's initialisation is deterministic).
    """

    def __init__(self, layer: Any, features: int, *, rngs: nnx.Rngs | None = None):
        _check_layer("PreNorm", layer)
        self.features = check_positive_int("PreNorm", "features", features)
        self.layer = layer
        self.norm = nnx.LayerNorm(self.features, rngs=rngs if rngs is not None else nnx.Rngs(0))
        self.in_features = self.features
        self.out_features = getattr(layer, "out_features", None)

    def initialize_carry(self, batch_shape: tuple[int, ...]) -> Any:
        return self.layer.initialize_carry(batch_shape)

    def __call__(self, x: Array, starts: Array, carry: Any = None):
        if x.shape[-1] != self.features:
            raise ValueError(
                f"PreNorm: x has {x.shape[-1]} features, expected features={self.features}"
            )
        if carry is None:
            carry = self.initialize_carry(x.shape[:1])
        return self.layer(self.norm(x), starts, carry)


class Residual(nnx.Module):
    """``x + layer(x)``; the layer must keep the feature size."""

    def __init__(self, layer: Any):
        _check_layer("Residual", layer)
        self.layer = layer
        self.in_features = self.out_features = getattr(layer, "in_features", None)

    def initialize_carry(self, batch_shape: tuple[int, ...]) -> Any:
        return self.layer.initialize_carry(batch_shape)

    def __call__(self, x: Array, starts: Array, carry: Any = None):
        if carry is None:
            carry = self.initialize_carry(x.shape[:1])
        carry, y = self.layer(x, starts, carry)
        if y.shape != x.shape:
            raise ValueError(
                f"Residual: the layer maps x of shape {tuple(x.shape)} to {tuple(y.shape)}; "
                f"a residual needs equal shapes"
            )
        return carry, x + y


class FFN(nnx.Module):
    """Position-wise feed-forward network ``W2 gelu(W1 x + b1) + b2`` (stateless).

    Args:
        features: input and output size D. hidden: inner size. rngs: ``nnx.Rngs``.

    Carry: ``()``; output ``[B, T, D]``.
    """

    def __init__(self, features: int, hidden: int, *, rngs: nnx.Rngs):
        self.features = check_positive_int("FFN", "features", features)
        self.hidden = check_positive_int("FFN", "hidden", hidden)
        self.in_features = self.out_features = self.features
        self.up = nnx.Linear(self.features, self.hidden, rngs=rngs)
        self.down = nnx.Linear(self.hidden, self.features, rngs=rngs)

    def initialize_carry(self, batch_shape: tuple[int, ...]) -> tuple:
        check_batch_shape("FFN", batch_shape)
        return ()

    def __call__(self, x: Array, starts: Array, carry: tuple = ()):
        if x.shape[-1] != self.features:
            raise ValueError(
                f"FFN: x has {x.shape[-1]} features, expected features={self.features}"
            )
        return (), self.down(jax.nn.gelu(self.up(x)))


def transformer(
    features: int,
    num_heads: int,
    cache_size: int,
    *,
    num_layers: int = 1,
    ffn_hidden: int | None = None,
    rngs: nnx.Rngs,
) -> Stack:
    """A pre-LN transformer torso with a sliding-window attention cache, plus a final LN.

    ``num_layers`` times ``Residual(PreNorm(SelfAttention))``, ``Residual(PreNorm(FFN))``,
    then a final LayerNorm (as in GPT-2). ``ffn_hidden`` defaults to ``4 * features``.
    Input and output ``[B, T, features]``; the carry is a tuple of ``2 * num_layers + 1``
    entries (attention caches, ``()`` for the stateless layers).
    """
    check_positive_int("transformer", "num_layers", num_layers)
    hidden = 4 * features if ffn_hidden is None else ffn_hidden
    layers: list[Any] = []
    for _ in range(num_layers):
        attn = SelfAttention(features, num_heads, cache_size, rngs=rngs)
        layers.append(Residual(PreNorm(attn, features, rngs=rngs)))
        layers.append(Residual(PreNorm(FFN(features, hidden, rngs=rngs), features, rngs=rngs)))
    layers.append(_FinalNorm(features, rngs=rngs))
    return Stack(*layers)


class _FinalNorm(nnx.Module):
    """LayerNorm as a stateless layer (the last layer of :func:`transformer`)."""

    def __init__(self, features: int, *, rngs: nnx.Rngs):
        self.in_features = self.out_features = features
        self.norm = nnx.LayerNorm(features, rngs=rngs)

    def initialize_carry(self, batch_shape: tuple[int, ...]) -> tuple:
        return ()

    def __call__(self, x: Array, starts: Array, carry: tuple = ()):
        return (), self.norm(x)


__all__ = ["FFN", "PreNorm", "Residual", "Stack", "transformer"]
