"""A tiny agent and environment for testing the training loop (agent-agnostic mechanics).

``python tests/loop_helpers.py train ...`` runs the real CLI with them registered, so the
crash/resume test can SIGKILL a real process.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from larvax.agents.base import register_agent
from larvax.envs import Discrete, Environment, register_env
from larvax.envs.core import EpisodeMetric


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


# ----------------------------------------------------------------------------- curricula


class LevelEnv(CountEnv):
    """A CountEnv whose "prey caught" per episode is ``level`` (a curriculum stage sets it);
    ``width``: the size of each environment's state (a stage may change it)."""

    def __init__(self, length: int = 5, level: float = 0.0, width: int = 2):
        super().__init__(length)
        self.level, self.width = float(level), int(width)

    episode_metrics = (EpisodeMetric("prey_caught", "prey_caught", label="prey"),)


class StagerState(NamedTuple):
    params: dict
    rest: dict
    opt_state: jax.Array
    env_state: jax.Array
    key: jax.Array
    updates: jax.Array


@dataclass(frozen=True)
class StagerConfig:
    num_envs: int = 4
    steps_per_update: int = 8
    width: int = 3  # the "network" size
    sleep_s: float = 0.0


class StagerAgent(DummyAgent):  # train and act: DummyAgent's
    """A deterministic agent with a NamedTuple state for curriculum tests: ``params`` random
    walk ("learning", carried between stages), ``env_state`` the world's (fresh per stage,
    drawn around the env's level), ``prey_caught`` = the env's level per episode."""

    environment_fields = ("env_state",)
    replay_fields = ()
    network_fields = {"params": "params", "rest": "rest"}

    def __init__(self, env, config: StagerConfig):
        self.config = config
        self.level, self.env_width = env.level, env.width
        self.env_steps_per_update = config.num_envs * config.steps_per_update
        self._train = jax.jit(self._train_impl, static_argnums=1)

    def init(self, key):
        k1, k2, k3 = jax.random.split(key, 3)
        c = self.config
        world = self.level + jax.random.uniform(k2, (c.num_envs, self.env_width))
        return StagerState(
            params={"w": jax.random.normal(k1, (c.width,))},
            rest={"b": jnp.zeros((1,))},
            opt_state=jnp.zeros((c.width,)),
            env_state=world,
            key=k3,
            updates=jnp.int32(0),
        )

    def _train_impl(self, state, num_updates):
        def one(s, _):
            key, k1 = jax.random.split(s.key)
            w = s.params["w"] + 0.1 * jax.random.normal(k1, s.params["w"].shape)
            updates = s.updates + 1
            metrics = {
                "env_steps": (updates * self.env_steps_per_update).astype(jnp.float32),
                "episode_return": w[0],
                "episode_length": jnp.float32(5.0),
                "episodes": jnp.float32(2.0),
                "prey_caught": jnp.float32(self.level) + 0.0 * w[0],
                "loss": jnp.sum(w**2),
            }
            new = s._replace(params={"w": w}, opt_state=s.opt_state + w,
                             env_state=s.env_state + 1.0, key=key, updates=updates)  # fmt: skip
            return new, metrics

        return jax.lax.scan(one, state, None, length=num_updates)


register_agent(
    "stager", lambda env, params, network, config: StagerAgent(env, StagerConfig(**config))
)
register_env("level", lambda length=5, level=0.0, width=2: (LevelEnv(length, level, width), None))


def stager_config(**overrides) -> dict:
    """Two stages: ``low`` (level 1, the rule: prey >= 3, else 4 chunks of 2 updates) and
    ``high`` (level 5, a wider world state)."""
    cfg = {
        "name": "stager",
        "agent": "stager",
        "env": {"name": "level"},
        "network": {"name": "none"},
        "agent_config": {},
        "stages": [
            {"name": "low", "env": {"level": 1.0}, "max_env_steps": 4 * 2 * 32,
             "advance": {"metric": "prey_caught", "threshold": 3.0, "episodes": 4}},
            {"name": "high", "env": {"level": 5.0, "width": 3}},
        ],
        "total_env_steps": 32 * 16,
        "seed": 0,
        "chunk_updates": 2,
        "checkpoint_every_seconds": 0,
        "keep_checkpoints": 20,
    }  # fmt: skip
    cfg.update(overrides)
    return cfg


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


def kill_after_rows(proc, run_dir, rows: int, timeout: float = 120.0) -> None:
    """SIGKILL the training process ``proc`` once ``run_dir/metrics.csv`` holds ``rows`` data
    rows (fails the test if it exits or makes no progress first)."""
    import signal

    import pytest

    path = run_dir / "metrics.csv"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and path.read_text().count("\n") >= rows + 1:  # + the header
            break
        if proc.poll() is not None:
            pytest.fail(f"training exited early: {proc.stdout.read().decode()[-2000:]}")
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("training made no progress")
    proc.send_signal(signal.SIGKILL)
    proc.wait()


if __name__ == "__main__":
    from larvax.cli import main

    sys.exit(main(sys.argv[1:]))
