"""Warm starts: a new run whose network starts from a trained one
(``larvax train --init-from RUN_DIR|PRETRAINED_NAME``, config key ``init_from``).

The source is a run directory of ``larvax train`` (its newest good checkpoint) or the name
of a pretrained model shipped in :mod:`larvax.pretrained`. Only the network moves: every
TrainState field an agent lists in ``network_fields`` (R2D2: online and target parameters
and the network's other state; PPO: parameters and model state) is filled from the source;
the optimiser, replay, environments and counters start fresh. The source network must have
the same parameter names and shapes as the run's (same registry network and arguments, the
same action count and observation shape); otherwise the run stops before training with a
one-line error naming the first parameter that differs.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from larvax.training.config import ConfigError
from larvax.training.network_state import (
    check_fit,
    fill_network,
    flat_network,
    network_parts,
    with_network,
)

__all__ = ["check_init_from", "flat_network", "network_parts", "warm_start", "with_network"]


def check_init_from(agent, source: str) -> None:
    """Raise the one-line ConfigError of :func:`fill_network` before anything is allocated
    (the agent's state shapes from ``jax.eval_shape``)."""
    flat = source_network(source)
    if not hasattr(agent, "network_fields"):
        raise ConfigError(
            f"--init-from {source}: agent {type(agent).__name__} declares no network_fields "
            "to fill; allowed: agents with a network (r2d2, ppo)"
        )
    abstract = jax.eval_shape(agent.init, jax.random.key(0))
    check_fit(flat_network(network_parts(agent, abstract)), flat, source)


def source_network(source: str) -> dict[str, np.ndarray]:
    """The flat network of a run directory or pretrained model name."""
    path = Path(source)
    if (path / "config.yaml").is_file():
        from larvax.training.runs import load_run

        _, _, _, agent, state, _ = load_run(path)
        return flat_network(network_parts(agent, state))
    from larvax.pretrained import store

    if source in store.names():
        return store.read_network(source)
    raise ConfigError(
        f"--init-from {source!r} is not allowed; allowed: a larvax run directory (with "
        f"config.yaml and checkpoints) or a pretrained model: {', '.join(store.names())}"
    )


def warm_start(agent, state, source: str, report=print):
    """``state`` (a fresh ``agent.init``) with the network of ``source``."""
    flat = source_network(source)
    state = fill_network(agent, state, flat, source)
    report(f"network initialised from {source} (optimiser, replay and environments start fresh)")
    return state
