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
import jax.numpy as jnp
import numpy as np

from larvax.training.config import ConfigError

__all__ = ["check_init_from", "flat_network", "network_parts", "warm_start", "with_network"]


def network_parts(agent, state) -> dict:
    """``{"params": ..., "rest": ...}`` of ``state`` (the first field of each part)."""
    parts: dict = {}
    for field, part in agent.network_fields.items():
        parts.setdefault(part, getattr(state, field))
    return parts


def with_network(agent, state, parts: dict):
    """``state`` with every network field replaced by a copy of its part in ``parts``."""
    new = {f: jax.tree.map(jnp.array, parts[p]) for f, p in agent.network_fields.items()}
    state = state._replace(**new)
    if hasattr(agent, "shard"):
        state = agent.shard(state)
    return state


def flat_network(parts: dict) -> dict[str, np.ndarray]:
    """``{"params/a/b": array, "rest/c": array}``: the network's leaves by path."""
    out = {}
    for part, tree in parts.items():
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
            keep = isinstance(leaf, jax.ShapeDtypeStruct)  # shapes only (check_init_from)
            out[_path_name(part, path)] = leaf if keep else np.asarray(leaf)
    return out


def _path_name(part: str, path) -> str:
    """``part/a/b/kernel`` (an NNX Variable's trailing ``value`` left out)."""
    names = [_key_name(k) for k in path]
    if len(names) > 1 and names[-1] == "value":
        names = names[:-1]
    return "/".join([part, *names])


def _key_name(k) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def _check_fit(want: dict, flat: dict, source: str) -> None:
    """``flat`` has exactly the parameter names and shapes of ``want`` (one-line error)."""
    missing = [k for k in want if k not in flat]
    extra = [k for k in flat if k not in want]
    if missing or extra:
        what = f"has no parameter {missing[0]!r}" if missing else f"has {extra[0]!r} too"
        raise ConfigError(
            f"--init-from {source}: its network does not fit this run's: it {what} "
            "(another network or network arguments); allowed: a run or pretrained model of "
            "the same network"
        )
    for key, ref in want.items():
        if tuple(flat[key].shape) != tuple(ref.shape):
            raise ConfigError(
                f"--init-from {source}: its network does not fit this run's environment or "
                f"network: {key!r} has shape {tuple(flat[key].shape)} there, this run needs "
                f"{tuple(ref.shape)}"
            )


def fill_network(agent, state, flat: dict[str, np.ndarray], source: str):
    """``state`` with its network taken from ``flat`` (:func:`flat_network`'s layout); a
    missing, extra or differently shaped parameter is a one-line ConfigError."""
    template = network_parts(agent, state)
    _check_fit(flat_network(template), flat, source)
    parts = {}
    for part, tree in template.items():
        paths, treedef = jax.tree_util.tree_flatten_with_path(tree)
        leaves = [jnp.asarray(flat[_path_name(part, path)], dtype=ref.dtype) for path, ref in paths]
        parts[part] = jax.tree.unflatten(treedef, leaves)
    return with_network(agent, state, parts)


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
    _check_fit(flat_network(network_parts(agent, abstract)), flat, source)


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
