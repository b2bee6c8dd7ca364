"""A run's environment and agent from its config (``build``), and a trained run read back
from its directory (``load_run``: evaluation, analysis, warm starts)."""

from __future__ import annotations

from pathlib import Path

import jax
import yaml

from larvax.training.checkpoint import Checkpointer
from larvax.training.config import ConfigError, validate
from larvax.training.curriculum import parse_stages, stage_config
from larvax.training.rundir import RunDirError

__all__ = ["build", "load_run"]


def build(cfg: dict, stage: int = 0):
    """Environment and agent from a resolved config (bad values -> ConfigError); with
    ``stages``, those of stage ``stage`` (its env and agent settings merged in)."""
    from larvax.agents.base import make_agent
    from larvax.envs import make

    if cfg.get("stages"):
        cfg = stage_config(cfg, parse_stages(cfg)[stage])
    env_kwargs = {k: v for k, v in cfg["env"].items() if k != "name"}
    try:
        env, env_params = make(cfg["env"]["name"], **env_kwargs)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"env: {err}") from None
    network = dict(cfg["network"])
    network.setdefault("seed", cfg["seed"])  # the network's init follows the run seed
    agent_config = dict(cfg["agent_config"])
    if cfg["agent"] == "ppo":  # learning-rate annealing runs over the whole budget
        agent_config["total_env_steps"] = cfg["total_env_steps"]
    try:
        agent = make_agent(cfg["agent"], env, env_params, network, agent_config)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{err}") from None
    return env, env_params, agent


def load_run(run_dir: str | Path, step: int | None = None):
    """A run's trained agent: ``(cfg, env, env_params, agent, state, record)`` from its
    ``config.yaml`` and its newest (or ``step``) checkpoint. For evaluation and analysis."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise RunDirError(f"{str(run_dir)!r} is not a larvax run directory (no config.yaml)")
    cfg = validate(yaml.safe_load(cfg_path.read_text()))
    built: dict = {}

    # read back on one device, whatever the run's device count (orbax re-shards)
    one = dict(cfg, agent_config={**cfg["agent_config"], "num_devices": 1})
    one = one if cfg["agent"] in ("r2d2", "ppo") else cfg

    def abstract(record):  # a curriculum's checkpoint names its stage
        stage = int(record.get("stage", 0))
        built.update(zip(("env", "env_params", "agent"), build(one, stage), strict=True))
        built["stage"] = stage
        return jax.eval_shape(built["agent"].init, jax.random.key(cfg["seed"]))

    ckpt = Checkpointer(run_dir / "checkpoints", keep=cfg["keep_checkpoints"])
    try:
        state, record = ckpt.restore(abstract, step)
    finally:
        ckpt.close()
    if cfg.get("stages"):  # the config of the checkpoint's stage, as its agent sees it
        cfg = stage_config(cfg, parse_stages(cfg)[built["stage"]])
    return cfg, built["env"], built["env_params"], built["agent"], state, record
