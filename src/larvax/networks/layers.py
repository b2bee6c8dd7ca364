"""Building-block layers: argument checks, ``linear``, ``MLP``, ``CNN`` and ``Sequential``.

Every layer is applied over any number of leading (batch) dimensions: an input
``[B, T, ...]`` gives ``[B, T, D]``. Activations may be given as callables, names
(``"relu"``, ``"tanh"``, ...) or import paths (``"jax.nn.relu"``); see
``larvax.networks.activations.resolve_activation``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from larvax.networks.activations import resolve_activation

Array = jax.Array


def positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | jnp.integer) or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def int_tuple(name: str, value: Any, allow_empty: bool = True) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise ValueError(f"{name} must be a sequence of positive integers, got {value!r}")
    out = tuple(positive_int(f"{name}[{i}]", v) for i, v in enumerate(value))
    if not out and not allow_empty:
        raise ValueError(f"{name} must not be empty, got {value!r}")
    return out


def orthogonal(scale: float) -> Callable:
    """Orthogonal kernel initialiser with gain ``scale`` (PPO's usual init)."""
    return nnx.initializers.orthogonal(scale)


def linear(
    in_features: int, out_features: int, *, rngs: nnx.Rngs, scale: float | None = None
) -> nnx.Linear:
    """``nnx.Linear`` with an orthogonal(scale) kernel and zero bias, or Flax defaults."""
    if scale is None:
        return nnx.Linear(in_features, out_features, rngs=rngs)
    return nnx.Linear(
        in_features,
        out_features,
        kernel_init=orthogonal(scale),
        bias_init=nnx.initializers.zeros_init(),
        rngs=rngs,
    )


class MLP(nnx.Module):
    """Multi-layer perceptron ``[..., in_features] -> [..., hidden[-1]]``.

    Each layer is ``Linear`` followed by ``activation``; the last layer is activated
    only if ``activate_final``. An empty ``hidden`` gives the identity
    (``out_features = in_features``). ``scale``: orthogonal-init gain of every kernel
    (None: Flax's default LeCun-normal init).
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        activation: str | Callable = "relu",
        activate_final: bool = False,
        *,
        scale: float | None = None,
        rngs: nnx.Rngs,
    ):
        in_features = positive_int("MLP.in_features", in_features)
        hidden = int_tuple("MLP.hidden", hidden)
        self.activation = resolve_activation(activation)
        self.activate_final = bool(activate_final)
        sizes = (in_features, *hidden)
        self.layers = nnx.List(
            [
                linear(a, b, rngs=rngs, scale=scale)
                for a, b in zip(sizes[:-1], sizes[1:], strict=True)
            ]
        )
        self.in_features = in_features
        self.out_features = sizes[-1]

    def __call__(self, x: Array) -> Array:
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"MLP input has {x.shape[-1]} features on its last axis (shape {x.shape}), "
                f"expected in_features={self.in_features}"
            )
        n = len(self.layers)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < n - 1 or self.activate_final:
                x = self.activation(x)
        return x


class CNN(nnx.Module):
    """2-D convolution stack ``[..., H, W, C] -> [..., D]`` (flattened, activated).

    ``features[i]`` output channels, ``kernel_sizes[i]`` square kernels and ``strides[i]``
    strides per layer, ``padding`` "SAME" or "VALID"; every layer is followed by
    ``activation``. ``out_features`` is computed from ``input_shape = (H, W, C)``.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        features: Sequence[int] = (16, 32),
        kernel_sizes: Sequence[int] = (3, 3),
        strides: Sequence[int] = (1, 1),
        padding: str = "SAME",
        activation: str | Callable = "relu",
        *,
        rngs: nnx.Rngs,
    ):
        input_shape = int_tuple("CNN.input_shape", input_shape)
        if len(input_shape) != 3:
            raise ValueError(f"CNN.input_shape must be (H, W, C), got {input_shape!r}")
        features = int_tuple("CNN.features", features, allow_empty=False)
        kernel_sizes = int_tuple("CNN.kernel_sizes", kernel_sizes)
        strides = int_tuple("CNN.strides", strides)
        if not len(features) == len(kernel_sizes) == len(strides):
            raise ValueError(
                "CNN.features, kernel_sizes and strides must have the same length, got "
                f"{len(features)}, {len(kernel_sizes)}, {len(strides)}"
            )
        if padding not in ("SAME", "VALID"):
            raise ValueError(f"CNN.padding must be 'SAME' or 'VALID', got {padding!r}")
        self.activation = resolve_activation(activation)
        self.input_shape = input_shape
        h, w, c = input_shape
        convs = []
        for f, k, s in zip(features, kernel_sizes, strides, strict=True):
            convs.append(
                nnx.Conv(c, f, kernel_size=(k, k), strides=(s, s), padding=padding, rngs=rngs)
            )
            if padding == "SAME":
                h, w = math.ceil(h / s), math.ceil(w / s)
            else:
                h, w = (h - k) // s + 1, (w - k) // s + 1
            if h < 1 or w < 1:
                raise ValueError(f"CNN: input_shape {input_shape} is too small for the layers")
            c = f
        self.convs = nnx.List(convs)
        self.out_features = h * w * c

    def __call__(self, x: Array) -> Array:
        lead = x.shape[:-3]
        x = x.reshape((-1, *x.shape[-3:]))
        for conv in self.convs:
            x = self.activation(conv(x))
        return x.reshape((*lead, -1))


class Sequential(nnx.Module):
    """Apply modules (or plain callables) one after the other; ``out_features`` of the last."""

    def __init__(self, *layers, out_features: int | None = None):
        self.layers = nnx.List(list(layers))
        if out_features is None:
            for layer in reversed(layers):
                if hasattr(layer, "out_features"):
                    out_features = layer.out_features
                    break
        self.out_features = out_features

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


__all__ = ["CNN", "MLP", "Sequential", "int_tuple", "linear", "orthogonal", "positive_int"]
