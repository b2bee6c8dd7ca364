"""Feature extractors: modules that embed observations, previous actions and rewards.

Every extractor is applied over any number of leading (batch) dimensions: an input
``[B, T, ...]`` gives ``[B, T, D]``. ``FeatureExtractor`` embeds whatever it is given
(observation, previous action, previous reward, start flag) and concatenates the
embeddings along the last axis, the "OAR" embedding of R2D2 (Kapturowski et al.
2019) when all three are used.

- ``MLP``: a stack of ``nnx.Linear`` layers.
- ``CNN``: a 2-D convolution stack over ``[..., H, W, C]`` images, flattened.
- ``Retina``: the binocular Conv1D torso of the Simfish R2D2 agent (``simfish_rl``).
- ``FlattenObservation``: flattens an array or a dict of arrays (leaves in sorted key
  order) into one feature vector.
- ``OneHotAction``, ``ContinuousAction``, ``TanhReward``, ``StartFlag``: the embeddings of
  the previous action, previous reward and start flag.

Activations may be given as callables or as names (``"relu"``, ``"tanh"``, ...) or
import paths (``"jax.nn.relu"``); see ``resolve_activation``.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

Array = jax.Array

# ----------------------------------------------------------------------------- activations

_ACTIVATIONS: dict[str, Callable] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "gelu": jax.nn.gelu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "elu": jax.nn.elu,
    "leaky_relu": jax.nn.leaky_relu,
    "sigmoid": jax.nn.sigmoid,
    "softplus": jax.nn.softplus,
    "identity": lambda x: x,
    "linear": lambda x: x,
}

# Public modules searched (in order) to give a callable a stable import path.
_PUBLIC_MODULES = ("jax.nn", "jax.numpy", "jax.lax", "flax.nnx")


def resolve_activation(spec: str | Callable | None) -> Callable:
    """Turn an activation spec into a callable.

    ``spec`` is a callable (returned as is), a short name (one of ``relu, tanh, gelu,
    silu, swish, elu, leaky_relu, sigmoid, softplus, identity, linear``), an import path
    such as ``"jax.nn.relu"``, or None (identity).
    """
    if spec is None:
        return _ACTIVATIONS["identity"]
    if callable(spec):
        return spec
    if not isinstance(spec, str):
        raise ValueError(
            f"activation must be a callable or a string, got {spec!r} of type {type(spec).__name__}"
        )
    if spec in _ACTIVATIONS:
        return _ACTIVATIONS[spec]
    if "." in spec:
        return import_callable(spec, field="activation")
    raise ValueError(
        f"activation={spec!r} is unknown; allowed: {', '.join(sorted(_ACTIVATIONS))} "
        "or an import path such as 'jax.nn.relu'"
    )


def import_callable(path: str, field: str = "callable") -> Callable:
    """Import ``"package.module.name"`` and return the callable it names."""
    module_name, _, attr = path.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(f"{field}={path!r} is not an importable callable ({err})") from err
    if not callable(obj):
        raise ValueError(f"{field}={path!r} names {type(obj).__name__}, not a callable")
    return obj


def callable_path(fn: Callable) -> str:
    """A stable, importable path for ``fn`` (``jax.nn.relu`` rather than ``jax._src...``).

    Short names of ``resolve_activation`` are returned for the identity. Raises
    ValueError for callables that cannot be re-imported (lambdas, closures).
    """
    for name in ("identity", "linear"):
        if _ACTIVATIONS[name] is fn:
            return name
    for module_name in _PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for attr in dir(module):
            if not attr.startswith("_") and getattr(module, attr, None) is fn:
                return f"{module_name}.{attr}"
    module_name = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", "")
    if module_name and qualname and "<" not in qualname:
        path = f"{module_name}.{qualname}"
        try:
            if import_callable(path) is fn:
                return path
        except ValueError:
            pass
    raise ValueError(
        f"callable {fn!r} has no importable path; use a module-level function or a name "
        f"such as {sorted(_ACTIVATIONS)}"
    )


# ----------------------------------------------------------------------------- helpers


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | jnp.integer) or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _int_tuple(name: str, value: Any, allow_empty: bool = True) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise ValueError(f"{name} must be a sequence of positive integers, got {value!r}")
    out = tuple(_positive_int(f"{name}[{i}]", v) for i, v in enumerate(value))
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


# ----------------------------------------------------------------------------- MLP


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
        in_features = _positive_int("MLP.in_features", in_features)
        hidden = _int_tuple("MLP.hidden", hidden)
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


# ----------------------------------------------------------------------------- CNN


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
        input_shape = _int_tuple("CNN.input_shape", input_shape)
        if len(input_shape) != 3:
            raise ValueError(f"CNN.input_shape must be (H, W, C), got {input_shape!r}")
        features = _int_tuple("CNN.features", features, allow_empty=False)
        kernel_sizes = _int_tuple("CNN.kernel_sizes", kernel_sizes)
        strides = _int_tuple("CNN.strides", strides)
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


# ----------------------------------------------------------------------------- Retina


class Retina(nnx.Module):
    """The Simfish binocular retina torso: a shared Conv1D stack applied to each eye.

    Input ``[..., P, C, 2]``: P = 139 positions, C = 3 channels (UV, red50, red75), the
    last axis is the eye (0 = left, 1 = right), values are photon counts 0..255.
    Per eye: Conv1D(8, k3, s1) - ReLU - Conv1D(8, k5, s2) - ReLU - Conv1D(8, k5, s2) -
    ReLU, SAME padding, over the position axis with the channels as input features.
    Both eyes use the **same** weights; the right eye is reversed along the position axis
    first, so both are read in the same (nasal/temporal) order and a left/right mirror
    image of the scene swaps the two eyes' features exactly.

    Output ``[..., 2 * P' * 8]`` with ``P' = ceil(ceil(P / 2) / 2)`` = 35 for P = 139,
    i.e. ``[..., 560]``: the
    flattened (position-major) left-eye features followed by the right-eye features
    (not yet activated again: the reference applies one more ReLU, a no-op after the
    last ReLU, before its MLP).

    Input scaling: ``input_scale`` multiplies the input. The reference network
    (``simfish_rl``, ``DeepSimfishTorso``) feeds the raw float photon counts, so the
    default is 1.0 (faithful); ``input_scale=1/255`` maps the readings to [0, 1].
    """

    def __init__(
        self,
        num_positions: int = 139,
        num_channels: int = 3,
        features: Sequence[int] = (8, 8, 8),
        kernel_sizes: Sequence[int] = (3, 5, 5),
        strides: Sequence[int] = (1, 2, 2),
        input_scale: float = 1.0,
        *,
        rngs: nnx.Rngs,
    ):
        self.num_positions = _positive_int("Retina.num_positions", num_positions)
        self.num_channels = _positive_int("Retina.num_channels", num_channels)
        features = _int_tuple("Retina.features", features, allow_empty=False)
        kernel_sizes = _int_tuple("Retina.kernel_sizes", kernel_sizes)
        strides = _int_tuple("Retina.strides", strides)
        if not len(features) == len(kernel_sizes) == len(strides):
            raise ValueError(
                "Retina.features, kernel_sizes and strides must have the same length, got "
                f"{len(features)}, {len(kernel_sizes)}, {len(strides)}"
            )
        if not (isinstance(input_scale, int | float) and math.isfinite(input_scale)):
            raise ValueError(f"Retina.input_scale must be a finite number, got {input_scale!r}")
        self.input_scale = float(input_scale)
        convs = []
        c, p = self.num_channels, self.num_positions
        for f, k, s in zip(features, kernel_sizes, strides, strict=True):
            convs.append(nnx.Conv(c, f, kernel_size=(k,), strides=(s,), padding="SAME", rngs=rngs))
            c, p = f, math.ceil(p / s)
        self.convs = nnx.List(convs)
        self.features_per_eye = p * c
        self.out_features = 2 * self.features_per_eye

    def eye(self, x: Array) -> Array:
        """One eye ``[N, P, C] -> [N, P' * C']`` (no reversal).

        Each Conv1D runs as im2col: the ``k`` strided slices of the SAME-padded input are
        concatenated and multiplied by the kernel reshaped to ``[k * C, C']`` -- the same
        function as ``nnx.Conv`` (tested against a numpy convolution), but on XLA:CPU the
        gradient of ``lax.conv`` inside ``lax.scan``/``lax.cond`` (where R2D2's learner runs)
        is ~10x slower than this matmul form (measured: whole R2D2 training 79 -> 833 env
        steps/s on a busy 2-core CPU).
        """
        for conv in self.convs:
            (k,) = conv.kernel_size
            s = conv.strides[0] if isinstance(conv.strides, tuple | list) else int(conv.strides)
            w = conv.kernel[...]
            c_in, c_out = w.shape[1], w.shape[2]
            length = x.shape[1]
            out = -(-length // s)
            pad = max((out - 1) * s + k - length, 0)
            xp = jnp.pad(x, ((0, 0), (pad // 2, pad - pad // 2), (0, 0)))
            cols = [jax.lax.slice_in_dim(xp, j, j + (out - 1) * s + 1, s, axis=1) for j in range(k)]
            y = jnp.concatenate(cols, axis=-1) @ w.reshape(k * c_in, c_out)
            x = jax.nn.relu(y + conv.bias[...])
        return x.reshape((x.shape[0], -1))

    #: ``with_mirror=True`` is supported: see ``__call__`` and ``supports_mirror``.
    mirror_features = True

    def __call__(self, visual: Array, *, with_mirror: bool = False) -> Array:
        """``[..., P, C, 2] -> [..., 560]``; with ``with_mirror``, ``[B, ...] -> [2B, ...]``:
        the features of ``visual`` followed by those of its mirror image
        ``visual[..., ::-1, :, ::-1]`` (positions reversed, eyes swapped; Simfish's
        ``reflect_observation``). Because the right eye is read reversed with the left eye's
        weights, the mirror image's features are the two eyes' feature blocks swapped: they
        cost no second convolution and are bit-identical to convolving the reflected input.
        """
        expected = (self.num_positions, self.num_channels, 2)
        if visual.shape[-3:] != expected:
            raise ValueError(
                f"Retina input must have trailing shape {expected} (positions, channels, eyes), "
                f"got {visual.shape}"
            )
        lead = visual.shape[:-3]
        x = visual.astype(jnp.float32).reshape((-1, *expected)) * self.input_scale
        left = x[..., 0]
        right = x[:, ::-1, :, 1]  # reverse positions: read the right eye like the left
        n = x.shape[0]
        both = self.eye(jnp.concatenate([left, right], axis=0))  # one conv pass, shared weights
        out = jnp.concatenate([both[:n], both[n:]], axis=-1)
        if not with_mirror:
            return out.reshape((*lead, self.out_features))
        if not lead:
            raise ValueError(
                "Retina(with_mirror=True) needs a leading batch axis, got an unbatched input"
            )
        mirrored = jnp.concatenate([both[n:], both[:n]], axis=-1)
        shape = (*lead, self.out_features)
        return jnp.concatenate([out.reshape(shape), mirrored.reshape(shape)], axis=0)


# ----------------------------------------------------------------------------- simple embeddings


def _leaf_sizes(shape_spec: Any) -> int:
    """Total flattened size of an observation shape spec (int, shape, or dict of those)."""
    if isinstance(shape_spec, dict):
        if not shape_spec:
            raise ValueError("obs_shape must not be an empty dict")
        return sum(_leaf_sizes(v) for v in shape_spec.values())
    if isinstance(shape_spec, int) and not isinstance(shape_spec, bool):
        return _positive_int("obs_shape", shape_spec)
    shape = _int_tuple("obs_shape", shape_spec)
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
        self.num_actions = _positive_int("num_actions", num_actions)
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
        self.action_dim = _positive_int("action_dim", action_dim)
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
                size = _positive_int("observation_features", observation_features)
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


__all__ = [
    "CNN",
    "MLP",
    "ContinuousAction",
    "FeatureExtractor",
    "FlattenObservation",
    "OneHotAction",
    "Retina",
    "Sequential",
    "StartFlag",
    "TanhReward",
    "callable_path",
    "import_callable",
    "observation_size",
    "orthogonal",
    "resolve_activation",
    "supports_mirror",
]
