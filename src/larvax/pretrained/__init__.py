"""Pretrained fish shipped with larvax: ``load(NAME)`` rebuilds one ready to act.

::

    from larvax import pretrained
    pretrained.names()                  # e.g. ['hunter-normal']
    fish = pretrained.load("hunter-normal")
    fish.agent.act(fish.state, observation, carry, key)   # the larvax agent contract
    fish.network                        # the Flax NNX network with its trained weights
    fish.card                           # preset, env steps, wall time, seed, measured prey

``larvax eval --pretrained NAME`` logs its episodes; ``larvax train --init-from NAME``
starts a run from its network. ``export(run_dir, name, card)`` writes a run's newest
checkpoint in this format (see :mod:`larvax.pretrained.store` for the files).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np
import yaml

from larvax.pretrained.store import (
    NETWORK_FILE,
    PretrainedError,
    card,
    config,
    names,
    read_network,
)

__all__ = ["Pretrained", "PretrainedError", "card", "config", "export", "load", "names"]


# A loaded model acts; it does not train. An R2D2 agent is rebuilt with one actor and the
# smallest replay (the trained config's 64 actors and 8,192 sequences would allocate ~260 MiB
# for nothing), a PPO agent with one environment; ``larvax train --init-from NAME`` trains
# further with a full config.
ACT_ONLY = {"r2d2": {"num_envs": 1, "batch_size": 1, "replay_capacity": 8, "min_replay_size": 1,
                     "num_devices": 1},
            "ppo": {"num_envs": 1, "num_minibatches": 1, "num_devices": 1}}  # fmt: skip


@dataclass
class Pretrained:
    """A pretrained model rebuilt: its config, environment, agent and agent state."""

    name: str
    cfg: dict
    env: object
    env_params: object
    agent: object
    state: object
    card: dict

    @property
    def network(self):
        """The NNX network with the trained weights."""
        from flax import nnx

        from larvax.training.network_state import network_parts

        parts = network_parts(self.agent, self.state)
        return nnx.merge(self.agent.graphdef, parts["params"], parts["rest"])


def load(name: str) -> Pretrained:
    """Rebuild the pretrained model ``name`` (one of :func:`names`)."""
    from larvax.training.config import validate
    from larvax.training.network_state import fill_network
    from larvax.training.runs import build

    cfg = validate(config(name))
    cfg["agent_config"] = {**cfg["agent_config"], **ACT_ONLY.get(cfg["agent"], {})}
    env, env_params, agent = build(cfg)
    state = agent.init(jax.random.key(cfg["seed"]))
    state = fill_network(agent, state, read_network(name), name)
    return Pretrained(name, cfg, env, env_params, agent, state, card(name))


def export(run_dir: str | Path, name: str, facts: dict, root: str | Path | None = None) -> Path:
    """Write the newest checkpoint of ``run_dir`` as pretrained model ``name`` under
    ``root`` (default: this package's folder): network.npz, config.yaml (the config of the
    checkpoint's stage), card.json (``facts`` and the network's sha256)."""
    from larvax.training.network_state import flat_network, network_parts
    from larvax.training.runs import load_run

    cfg, _, _, agent, state, record = load_run(run_dir)
    cfg = {k: v for k, v in cfg.items() if k not in ("init_from", "stages")}
    folder = Path(root if root is not None else Path(__file__).parent) / name
    folder.mkdir(parents=True, exist_ok=True)
    flat = flat_network(network_parts(agent, state))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{k: v.astype(np.float32) if v.dtype == np.float64 else v
                                   for k, v in flat.items()})  # fmt: skip
    data = buffer.getvalue()
    (folder / NETWORK_FILE).write_bytes(data)
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    facts = {**facts, "env_steps": int(record["env_steps"]),
             "network_sha256": hashlib.sha256(data).hexdigest()}  # fmt: skip
    (folder / "card.json").write_text(json.dumps(facts, indent=2) + "\n")
    return folder
