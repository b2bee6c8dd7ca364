"""Model registry: build models by name, describe them as JSON, save and load them.

- ``@register(name)`` on a model class records, on every instance, the registered name and
  the constructor's keyword arguments (defaults included) so that ``metadata(model)``
  can describe it as JSON and ``create`` can rebuild it.
- ``create(name, seed=0, **kwargs)`` (or ``rngs=nnx.Rngs(...)``) builds a model.
- ``metadata(model) -> {"name": ..., "kwargs": {...}}``: JSON-serialisable; callables
  (activations) are stored by import path (``"jax.nn.relu"``), action spaces by their
  config dict, tuples as lists.
- ``save_model(model, directory)`` writes ``metadata.json`` and an orbax checkpoint of the
  model's ``nnx.State`` (RNG state excluded) under ``directory/state``;
  ``load_model(directory)`` rebuilds the model from the directory alone. A missing,
  partial (no state / no metadata) or mismatched (other shapes or parameter names)
  checkpoint raises a ``ValueError`` (or ``FileNotFoundError`` for a missing
  directory) saying what is wrong.
- ``list_models() -> {name: {"class", "signature", "parameters", "doc"}}`` for
  ``larvax models``.

State is stored as a flat dict ``{"path/to/param": array}`` (paths joined with "/"), which
makes mismatches easy to report parameter by parameter.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

_REGISTRY: dict[str, type] = {}
METADATA_FILE = "metadata.json"
STATE_DIR = "state"
FORMAT_VERSION = 1


# ----------------------------------------------------------------------------- JSON conversion


def to_json(value: Any, field: str = "kwargs") -> Any:
    """Convert a constructor argument to JSON-serialisable data (or raise ValueError)."""
    from larvax.networks.action_spaces import ActionSpace
    from larvax.networks.extractors import callable_path

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


def _load_builtin() -> None:
    import larvax.networks.models  # noqa: F401  (registers the ready-made models)


def registered_models() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def get_class(name: str) -> type:
    _load_builtin()
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
    _load_builtin()
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


# ----------------------------------------------------------------------------- save / load


def _flat_state(model: nnx.Module) -> dict[str, Any]:
    state = nnx.state(model, nnx.Not(nnx.RngState))
    flat = {}
    for path, value in nnx.to_flat_state(state):
        key = "/".join(str(p) for p in path)
        flat[key] = value.get_value() if hasattr(value, "get_value") else value.value
    return flat


def _checkpointer():
    import orbax.checkpoint as ocp

    return ocp.PyTreeCheckpointer()


def save_model(model: nnx.Module, directory: str | Path, *, overwrite: bool = False) -> Path:
    """Save ``model`` to ``directory`` (``metadata.json`` + orbax ``state/``); returns the path.

    Refuses to replace an existing non-empty directory unless ``overwrite``.
    """
    meta = metadata(model)
    directory = Path(directory).absolute()
    if directory.exists() and any(directory.iterdir()):
        if not overwrite:
            raise ValueError(f"save_model: {directory} exists and is not empty (overwrite=True)")
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    flat = _flat_state(model)
    arrays = {k: np.asarray(v) for k, v in flat.items()}
    from larvax import __version__

    record = {
        "format": FORMAT_VERSION,
        "larvax_version": __version__,
        "name": meta["name"],
        "kwargs": meta["kwargs"],
        "parameters": {
            k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in arrays.items()
        },
    }
    _checkpointer().save(directory / STATE_DIR, arrays)
    # metadata last: a directory with metadata.json is a finished save.
    (directory / METADATA_FILE).write_text(json.dumps(record, indent=2, sort_keys=True))
    return directory


def read_metadata(directory: str | Path) -> dict:
    """Read and validate ``directory/metadata.json``."""
    directory = Path(directory).absolute()
    if not directory.is_dir():
        raise FileNotFoundError(f"model directory {directory} does not exist")
    path = directory / METADATA_FILE
    if not path.is_file():
        raise ValueError(
            f"{directory} is not a complete larvax model: {METADATA_FILE} is missing "
            "(an interrupted save, or not a model directory)"
        )
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is corrupted: not valid JSON ({err})") from err
    for key in ("name", "kwargs", "parameters"):
        if not isinstance(record, dict) or key not in record:
            raise ValueError(f"{path} is corrupted: field {key!r} is missing")
    if record.get("format") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format {record.get('format')!r} is not supported (expected {FORMAT_VERSION})"
        )
    return record


def load_model(directory: str | Path) -> nnx.Module:
    """Rebuild the model saved in ``directory`` by ``save_model``, parameters restored."""
    directory = Path(directory).absolute()
    record = read_metadata(directory)
    state_dir = directory / STATE_DIR
    if not state_dir.is_dir() or not any(state_dir.iterdir()):
        raise ValueError(
            f"{directory} is a partial checkpoint: the parameter state {state_dir} is missing"
        )
    try:
        model = create(record["name"], seed=0, **record["kwargs"])
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"{directory}: cannot rebuild model {record['name']!r} from its metadata kwargs ({err})"
        ) from err
    expected = _flat_state(model)
    saved_meta = record["parameters"]
    missing = sorted(set(expected) - set(saved_meta))
    extra = sorted(set(saved_meta) - set(expected))
    wrong = sorted(
        k
        for k in set(expected) & set(saved_meta)
        if list(np.shape(expected[k])) != list(saved_meta[k]["shape"])
    )
    if missing or extra or wrong:
        details = []
        if missing:
            details.append(f"missing parameters {missing[:5]}")
        if extra:
            details.append(f"unexpected parameters {extra[:5]}")
        for k in wrong[:5]:
            details.append(
                f"{k}: saved shape {tuple(saved_meta[k]['shape'])}, model expects "
                f"{tuple(np.shape(expected[k]))}"
            )
        raise ValueError(
            f"{directory}: the checkpoint does not match model {record['name']!r}: "
            + "; ".join(details)
        )
    try:
        restored = _checkpointer().restore(state_dir)
    except Exception as err:  # orbax raises many types for unreadable data
        raise ValueError(
            f"{directory}: the parameter state cannot be read ({type(err).__name__}: {err})"
        ) from err
    if not isinstance(restored, dict) or set(restored) != set(expected):
        got = sorted(restored) if isinstance(restored, dict) else type(restored).__name__
        raise ValueError(
            f"{directory}: the parameter state does not match its metadata "
            f"(state holds {got!s:.200})"
        )
    for k, v in restored.items():
        if tuple(np.shape(v)) != tuple(np.shape(expected[k])):
            raise ValueError(
                f"{directory}: parameter {k} has shape {np.shape(v)} in the state, "
                f"model expects {np.shape(expected[k])}"
            )
    state = nnx.state(model, nnx.Not(nnx.RngState))
    new_flat = []
    for path, var in nnx.to_flat_state(state):
        key = "/".join(str(p) for p in path)
        old = var.get_value() if hasattr(var, "get_value") else var.value
        new_flat.append((path, var.replace(jnp.asarray(restored[key], dtype=old.dtype))))
    nnx.update(model, nnx.from_flat_state(new_flat))
    return model


__all__ = [
    "create",
    "get_class",
    "list_models",
    "load_model",
    "metadata",
    "read_metadata",
    "register",
    "registered_models",
    "save_model",
    "to_json",
]
