"""The files of the pretrained models shipped in the package (reading only; no training).

Each model is a folder ``larvax/pretrained/<name>/``:

- ``network.npz``: the network's arrays by path (``params/...``, ``rest/...``: the layout of
  :func:`larvax.training.warm_start.flat_network`);
- ``config.yaml``: the run config its agent and environment are rebuilt from (the trained
  world's settings; a curriculum run's last stage);
- ``card.json``: the model card's facts (preset, seed, env steps, wall time, commit, measured
  prey per episode) and the sha256 of ``network.npz``, checked on every read;
- ``MODEL_CARD.md``: the same for people.
"""

from __future__ import annotations

import hashlib
import io
import json
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

__all__ = ["card", "config", "folder", "names", "read_network"]

NETWORK_FILE = "network.npz"


class PretrainedError(ValueError):
    """An unknown or damaged pretrained model (one-line message)."""


def _root():
    return resources.files("larvax.pretrained")


def names() -> list[str]:
    """The shipped pretrained models."""
    return sorted(e.name for e in _root().iterdir() if e.is_dir() and (e / NETWORK_FILE).is_file())


def folder(name: str) -> Path:
    """The folder of pretrained model ``name`` (its config.yaml, network.npz, cards)."""
    return Path(str(_folder(name)))


def _folder(name: str):
    if name not in names():
        raise PretrainedError(
            f"pretrained model {name!r} is not allowed; allowed: {', '.join(names()) or 'none'}"
        )
    return _root() / name


def card(name: str) -> dict:
    return json.loads((_folder(name) / "card.json").read_text())


def config(name: str) -> dict:
    return yaml.safe_load((_folder(name) / "config.yaml").read_text())


def read_network(name: str) -> dict[str, np.ndarray]:
    """The network's arrays by path, after checking their sha256 against the card."""
    data = (_folder(name) / NETWORK_FILE).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    expected = card(name).get("network_sha256")
    if digest != expected:
        raise PretrainedError(
            f"pretrained model {name!r}: {NETWORK_FILE} has sha256 {digest[:12]}..., its card "
            f"says {str(expected)[:12]}...: the file is damaged; reinstall larvax"
        )
    with np.load(io.BytesIO(data)) as npz:
        return {k: npz[k] for k in npz.files}
