"""A network inside an agent's training state: read it out, write it in, as arrays by path.

Each agent lists the ``TrainState`` fields that hold its network in ``network_fields``
(field -> ``"params"`` or ``"rest"``). Warm starts (``warm_start.py``) and pretrained models
(``larvax.pretrained``) move networks through the flat layout of :func:`flat_network`:
``{"params/a/b/kernel": array, "rest/...": array}``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from larvax.training.config import ConfigError

__all__ = ["check_fit", "fill_network", "flat_network", "network_parts", "with_network"]


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


def check_fit(want: dict, flat: dict, source: str) -> None:
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
    check_fit(flat_network(template), flat, source)
    parts = {}
    for part, tree in template.items():
        paths, treedef = jax.tree_util.tree_flatten_with_path(tree)
        leaves = [jnp.asarray(flat[_path_name(part, path)], dtype=ref.dtype) for path, ref in paths]
        parts[part] = jax.tree.unflatten(treedef, leaves)
    return with_network(agent, state, parts)
