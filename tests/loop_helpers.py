"""A tiny agent and environment for testing the training loop (agent-agnostic mechanics).

``python tests/loop_helpers.py train ...`` runs the real CLI with them registered, so the
crash/resume test can SIGKILL a real process.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from larvax.agents.base import register_agent
from larvax.envs import Discrete, Environment, register_env


class CountEnv(Environment):
    """Observation = step count; episodes of fixed length; reward 1 per step."""

    def __init__(self, length: int = 5):
        self.length = length

    @property
    def default_params(self):
        return None

    def action_space(self, params=None):
        return Discrete(2)


@dataclass(frozen=True)
class DummyConfig:
    num_envs: int = 4
    steps_per_update: int = 8
    nan_at_update: int = -1
    sleep_s: float = 0.0


class DummyAgent:
    """Deterministic random-walk "learning": metrics depend only on the seed and update."""

    def __init__(self, config: DummyConfig):
        self.config = config
        self.env_steps_per_update = config.num_envs * config.steps_per_update
        self._train = jax.jit(self._train_impl, static_argnums=1)

    def init(self, key):
        return {"key": key, "w": jnp.zeros((3,)), "update": jnp.int32(0)}

    def _train_impl(self, state, num_updates):
        def one(state, _):
            key, k1, k2 = jax.random.split(state["key"], 3)
            w = state["w"] + 0.1 * jax.random.normal(k1, (3,))
            update = state["update"] + 1
            loss = jnp.sum(w**2)
            loss = jnp.where(update == self.config.nan_at_update, jnp.nan, loss)
            episodes = jax.random.randint(k2, (), 0, 3).astype(jnp.float32)
            metrics = {
                "env_steps": (update * self.env_steps_per_update).astype(jnp.float32),
                "episode_return": jnp.where(episodes > 0, w[0], jnp.nan),
                "episode_length": jnp.where(episodes > 0, 5.0, jnp.nan),
                "episodes": episodes,
                "loss": loss,
            }
            return {"key": key, "w": w, "update": update}, metrics

        return jax.lax.scan(one, state, None, length=num_updates)

    def train(self, state, num_updates):
        if self.config.sleep_s:
            time.sleep(self.config.sleep_s)
        return self._train(state, num_updates)

    def act(self, state, observation, carry, key, greedy=True):
        return carry, jnp.zeros(observation.shape[:1], jnp.int32)


def make_dummy(env, env_params, network, config):
    allowed = set(DummyConfig.__dataclass_fields__)
    for k in config:
        if k not in allowed:
            raise ValueError(
                f"agent_config.{k}: unknown field; allowed: {', '.join(sorted(allowed))}"
            )
    return DummyAgent(DummyConfig(**config))


register_agent("dummy", make_dummy)
register_env("count", lambda length=5: (CountEnv(length), None))


def dummy_config(**overrides) -> dict:
    cfg = {
        "name": "dummy",
        "agent": "dummy",
        "env": {"name": "count"},
        "network": {"name": "none"},
        "agent_config": {},
        "total_env_steps": 32 * 12,
        "seed": 0,
        "chunk_updates": 2,
        "checkpoint_every_seconds": 0,
        "keep_checkpoints": 2,
    }
    cfg.update(overrides)
    return cfg


if __name__ == "__main__":
    from larvax.cli import main

    sys.exit(main(sys.argv[1:]))
