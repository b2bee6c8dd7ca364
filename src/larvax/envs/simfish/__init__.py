"""Simfish: a larval zebrafish hunting paramecia with two 1-D retinas, in pure JAX."""

from larvax.envs.simfish.config import PRESETS, SimfishParams

__all__ = ["PRESETS", "SimfishParams"]
