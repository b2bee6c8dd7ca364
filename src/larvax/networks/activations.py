"""Activation functions by name, and callables by stable import path.

``resolve_activation`` turns a name (``"relu"``), an import path (``"jax.nn.relu"``) or a
callable into a callable; ``callable_path`` gives a callable back its importable path, so
model metadata can store activations as JSON strings (see ``larvax.networks.registry``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import jax
import jax.numpy as jnp

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


__all__ = ["callable_path", "import_callable", "resolve_activation"]
