"""Save and load models: ``metadata.json`` (how to rebuild) + an orbax checkpoint (state).

- ``save_model(model, directory)`` writes an orbax checkpoint of the model's ``nnx.State``
  (RNG state excluded) under ``directory/state``, then ``metadata.json``: the registered
  name and constructor kwargs (``larvax.networks.registry.metadata``), the larvax version,
  every parameter's shape and dtype, and the sha256 of every file of ``state/``.
- ``load_model(directory)`` rebuilds the model from the directory alone. A missing,
  partial (no state / no metadata) or mismatched (other shapes or parameter names)
  checkpoint raises a ``ValueError`` (or ``FileNotFoundError`` for a missing directory)
  saying what is wrong; so does a state file that is missing or differs from its sha256
  (damaged or edited data is never loaded).

State is stored as a flat dict ``{"path/to/param": array}`` (paths joined with "/"), which
makes mismatches easy to report parameter by parameter.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from larvax import __version__
from larvax.networks.registry import create, metadata

METADATA_FILE = "metadata.json"
STATE_DIR = "state"
FORMAT_VERSION = 1


def _flat_state(model: nnx.Module) -> dict[str, Any]:
    state = nnx.state(model, nnx.Not(nnx.RngState))
    flat = {}
    for path, value in nnx.to_flat_state(state):
        key = "/".join(str(p) for p in path)
        flat[key] = value.get_value() if hasattr(value, "get_value") else value.value
    return flat


def _state_digests(state_dir: Path) -> dict[str, str]:
    """sha256 of every file below ``state_dir``, keyed by its path relative to it."""
    out = {}
    for path in sorted(p for p in state_dir.rglob("*") if p.is_file()):
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        out[path.relative_to(state_dir).as_posix()] = digest.hexdigest()
    return out


def _checksum_problem(directory: Path, record: dict) -> str | None:
    """What is wrong with the files of ``state/`` listed in the metadata (None: nothing)."""
    expected = record.get("sha256")
    if not expected:  # saved before checksums were recorded
        return None
    actual = _state_digests(directory / STATE_DIR)
    for name, digest in sorted(expected.items()):
        if name not in actual:
            return f"{directory}: {STATE_DIR}/{name} is missing (damaged model)"
        if actual[name] != digest:
            return (
                f"{directory}: {STATE_DIR}/{name} does not match its sha256 in {METADATA_FILE} "
                "(damaged or edited); save the model again or restore it from a backup"
            )
    return None


class _UnreadableState(ValueError):
    """orbax could not read ``state/``."""


def _checkpointer():
    import orbax.checkpoint as ocp  # imported on first use: slow to import

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
    record["sha256"] = _state_digests(directory / STATE_DIR)
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


def _check_matches(directory: Path, record: dict, expected: dict[str, Any]) -> None:
    """Raise if the saved parameter names or shapes (metadata) differ from the model's."""
    saved_meta = record["parameters"]
    missing = sorted(set(expected) - set(saved_meta))
    extra = sorted(set(saved_meta) - set(expected))
    wrong = sorted(
        k
        for k in set(expected) & set(saved_meta)
        if list(np.shape(expected[k])) != list(saved_meta[k]["shape"])
    )
    if not (missing or extra or wrong):
        return
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


def _restore(directory: Path, expected: dict[str, Any]) -> dict[str, Any]:
    """The saved ``{path: array}`` state, checked against the model's names and shapes."""
    try:
        restored = _checkpointer().restore(directory / STATE_DIR)
    except Exception as err:  # orbax raises many types for unreadable data
        raise _UnreadableState(
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
    return restored


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
    _check_matches(directory, record, expected)
    # damaged or edited data is never loaded; a state that reads but has another model's
    # names or shapes gets that more specific message
    problem = _checksum_problem(directory, record)
    try:
        restored = _restore(directory, expected)
    except _UnreadableState:
        if problem is None:
            raise
        raise ValueError(problem) from None
    if problem is not None:
        raise ValueError(problem)
    state = nnx.state(model, nnx.Not(nnx.RngState))
    new_flat = []
    for path, var in nnx.to_flat_state(state):
        key = "/".join(str(p) for p in path)
        old = var.get_value() if hasattr(var, "get_value") else var.value
        new_flat.append((path, var.replace(jnp.asarray(restored[key], dtype=old.dtype))))
    nnx.update(model, nnx.from_flat_state(new_flat))
    return model


__all__ = ["load_model", "read_metadata", "save_model"]
