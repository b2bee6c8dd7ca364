"""Shared fixtures. Golden Simfish data are read from ../shared/simfish (or $LARVAX_SHARED)."""

from __future__ import annotations

import os
from pathlib import Path

import jax
import pytest

# Two CPU devices for the whole session (what `larvax train` gives a 2-core machine), so the
# data-parallel paths run in-process. Agents pick their device count explicitly or by "auto".
jax.config.update("jax_num_cpu_devices", 2)

ROOT = Path(__file__).resolve().parents[1]


def _shared_dir() -> Path:
    env = os.environ.get("LARVAX_SHARED")
    if env:
        return Path(env)
    return ROOT.parent / "shared"


@pytest.fixture(scope="session")
def simfish_data_dir() -> Path:
    """The golden-data folder; tests that need it skip when ../shared is absent."""
    d = _shared_dir() / "simfish"
    if not (d / "observations.npz").exists():
        pytest.skip(f"golden Simfish data not found at {d} (set LARVAX_SHARED)")
    return d
