"""Simfish: a larval zebrafish hunting paramecia with two 1-D retinas, in pure JAX.

``make("simfish", preset="normal", **overrides) -> (env, params)``; see ``env.py`` for the
API and docs/simfish.md for the presets, approximations and conformance numbers.
"""

from larvax.envs import register_env
from larvax.envs.simfish.bouts import MIRROR_ACTIONS, NUM_ACTIONS
from larvax.envs.simfish.config import PRESETS, SimfishParams
from larvax.envs.simfish.env import END_CAUSES, REWARD_COMPONENTS, Simfish, physics_step
from larvax.envs.simfish.state import SimfishState, make_state


def _make_simfish(preset: str = "normal", **overrides):
    env = Simfish.preset(preset, **overrides)
    return env, env.default_params


register_env("simfish", _make_simfish)

__all__ = [
    "END_CAUSES",
    "MIRROR_ACTIONS",
    "NUM_ACTIONS",
    "PRESETS",
    "REWARD_COMPONENTS",
    "Simfish",
    "SimfishParams",
    "SimfishState",
    "make_state",
    "physics_step",
]
