"""Shared fixtures. Golden Simfish data are read from ../shared/simfish (or $LARVAX_SHARED)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
