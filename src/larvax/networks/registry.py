"""Model registry: build models by name and describe them as JSON.

- ``@register(name)`` on a model class records, on every instance, the registered name and
  the constructor's keyword arguments (defaults included) so that ``metadata(model)``
  can describe it as JSON and ``create`` can rebuild it.
- ``create(name, seed=0, **kwargs)`` (or ``rngs=nnx.Rngs(...)``) builds a model.
- ``metadata(model) -> {"name": ..., "kwargs": {...}}``: JSON-serialisable; callables
  (activations) are stored by import path (``"jax.nn.relu"``), action spaces by their
  config dict, tuples as lists.
- ``list_models() -> {name: {"class", "signature", "parameters", "doc"}}`` for
  ``larvax models``.

The registry imports no model: models register themselves when their module is imported,
and ``import larvax.networks`` imports all ready-made ones (``larvax.networks.models``).
Saving and loading are in ``larvax.networks.serialization``.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from flax import nnx

from larvax.networks.action_spaces import ActionSpace
from larvax.networks.activations import callable_path

_REGISTRY: dict[str, type] = {}


# ----------------------------------------------------------------------------- JSON conversion


def to_json(value: Any, field: str = "kwargs") -> Any:
    """Convert a constructor argument to JSON-serialisable data (or raise ValueError)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        v = float(value)
        if not math.isfinite(v):
            raise ValueError(f"{field}={value!r} is not a finite number")
        return v
    if isinstance(value, ActionSpace):
        return value.config()
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{field} has a non-string key {k!r}")
            out[k] = to_json(v, f"{field}.{k}")
        return out
    if isinstance(value, list | tuple):
        return [to_json(v, f"{field}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.ndarray | jax.Array) and np.ndim(value) <= 1:
        return to_json(np.asarray(value).tolist(), field)
    if callable(value):
        return callable_path(value)
    raise ValueError(
        f"{field}={value!r} of type {type(value).__name__} is not JSON-serialisable; use "
        "numbers, strings, lists, dicts, or importable callables"
    )


# ----------------------------------------------------------------------------- registration


def register(name: str) -> Callable[[type], type]:
    """Class decorator: register ``cls`` as ``name`` and record its constructor kwargs.

    The constructor must take ``rngs`` as a keyword argument; every other argument must
    be JSON-serialisable (see ``to_json``).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"register: name must be a non-empty string, got {name!r}")

    def decorator(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model name {name!r} is already registered to {_REGISTRY[name]}")
        original = cls.__init__
        signature = inspect.signature(original)
        if "rngs" not in signature.parameters:
            raise ValueError(f"register({name!r}): {cls.__name__}.__init__ must take rngs=")

        @functools.wraps(original)
        def __init__(self, *args, **kwargs):
            try:
                bound = signature.bind(self, *args, **kwargs)
            except TypeError as err:
                raise ValueError(f"{name} ({cls.__name__}): bad arguments: {err}") from err
            bound.apply_defaults()
            config = {
                k: v
                for k, v in bound.arguments.items()
                if k not in ("self", "rngs")
                and signature.parameters[k].kind
                not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
            }
            encoded = json.dumps(to_json(config, f"{name} kwargs"))  # fail before building
            original(self, *args, **kwargs)
            if type(self) is cls:  # the most derived registered class records itself
                self._registry_name = name
                self._registry_kwargs = encoded

        cls.__init__ = __init__
        cls._registry_name_of_class = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def registered_models() -> list[str]:
    return sorted(_REGISTRY)


def get_class(name: str) -> type:
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; allowed: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def create(name: str, *, seed: int | None = None, rngs: nnx.Rngs | None = None, **kwargs):
    """Build the model registered as ``name`` with ``kwargs`` and ``rngs`` (or ``seed``;
    default seed 0)."""
    cls = get_class(name)
    if rngs is not None and seed is not None:
        raise ValueError("create: give seed= or rngs=, not both")
    if rngs is None:
        seed = 0 if seed is None else seed
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
            raise ValueError(f"create: seed must be an int, got {seed!r}")
        rngs = nnx.Rngs(int(seed))
    return cls(**kwargs, rngs=rngs)


def metadata(model: nnx.Module) -> dict:
    """``{"name": registered name, "kwargs": constructor kwargs}`` (JSON-serialisable)."""
    name = getattr(model, "_registry_name", None)
    if name is None:
        raise ValueError(
            f"{type(model).__name__} was not built by a registered class; register it with "
            "@larvax.networks.registry.register(name)"
        )
    return {"name": name, "kwargs": json.loads(model._registry_kwargs)}


def _plain_signature(sig: inspect.Signature) -> inspect.Signature:
    """The constructor signature without ``self`` and without type annotations."""
    params = [
        p.replace(annotation=inspect.Parameter.empty) for p in list(sig.parameters.values())[1:]
    ]
    return sig.replace(parameters=params, return_annotation=inspect.Signature.empty)


def list_models() -> dict[str, dict]:
    """Registered models: ``{name: {"class", "signature", "parameters", "doc"}}``.

    ``parameters`` maps each constructor argument (except ``rngs``) to its default
    (JSON form, or ``"<required>"``).
    """
    out = {}
    for name in sorted(_REGISTRY):
        cls = _REGISTRY[name]
        sig = inspect.signature(cls.__init__)
        params = {}
        for p in list(sig.parameters.values())[1:]:
            if p.name == "rngs" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            if p.default is inspect.Parameter.empty:
                params[p.name] = "<required>"
            else:
                try:
                    params[p.name] = to_json(p.default, p.name)
                except ValueError:
                    params[p.name] = repr(p.default)
        doc = (inspect.getdoc(cls) or "").strip().splitlines()
        out[name] = {
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "signature": cls.__name__ + str(_plain_signature(sig)),
            "parameters": params,
            "doc": doc[0] if doc else "",
        }
    return out


__all__ = [
    "create",
    "get_class",
    "list_models",
    "metadata",
    "register",
    "registered_models",
    "to_json",
]
