"""Crash-safe checkpoints of a whole training state (orbax).

A checkpoint holds the agent's ``TrainState`` pytree (network and optimiser state,
replay, environment states, RNG keys, counters) and a small JSON record (update count,
env steps, metric rows written). Orbax writes each step into a temporary directory and
renames it when complete, so a SIGKILL during a save leaves the earlier checkpoints intact
and the partial one invisible (it is cleaned up on the next start).

Typed PRNG keys (``jax.random.key``) are stored as their raw ``key_data`` and re-wrapped on
restore, using the abstract state of a fresh ``agent.init`` as the template.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
    """A missing, partial or mismatched checkpoint."""


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_storable(tree):
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def _abstract_storable(abstract_tree):
    def conv(x):
        if _is_key(x):
            return jax.eval_shape(jax.random.key_data, x)
        return x

    return jax.tree.map(conv, abstract_tree)


def _from_storable(tree, abstract_tree):
    def conv(x, ref):
        if _is_key(ref):
            impl = jax.random.key_impl(ref) if not isinstance(ref, jax.ShapeDtypeStruct) else None
            return jax.random.wrap_key_data(x, impl=impl) if impl else jax.random.wrap_key_data(x)
        return x

    return jax.tree.map(conv, tree, abstract_tree)


class Checkpointer:
    """Periodic checkpoints of one run under ``directory`` (keeps the newest ``keep``)."""

    def __init__(self, directory: str | Path, keep: int = 3):
        self.directory = Path(directory).absolute()
        self.directory.mkdir(parents=True, exist_ok=True)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, enable_async_checkpointing=False, create=True
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def save(self, step: int, state: Any, record: dict) -> None:
        """Save ``state`` and the JSON ``record`` as checkpoint ``step`` (blocks until done)."""
        if step in self._manager.all_steps():
            return
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(_to_storable(state)),
            record=ocp.args.JsonSave(record),
        )
        self._manager.save(step, args=args, force=True)
        self._manager.wait_until_finished()

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict]:
        """Restore checkpoint ``step`` (default: the newest) shaped like ``abstract_state``."""
        steps = self.all_steps()
        if not steps:
            raise CheckpointError(f"no checkpoint found in {self.directory}")
        step = max(steps) if step is None else step
        if step not in steps:
            raise CheckpointError(f"checkpoint {step} not in {self.directory}; available: {steps}")
        target = _abstract_storable(abstract_state)
        try:
            restored = self._manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(target), record=ocp.args.JsonRestore()
                ),
            )
        except Exception as err:  # orbax raises many types for damaged/mismatched data
            raise CheckpointError(
                f"checkpoint {step} in {self.directory} is damaged or does not match this "
                f"run's agent/config: {type(err).__name__}: {str(err).splitlines()[0][:300]}"
            ) from err
        state = _check_shapes(restored["state"], target, self.directory, step)
        return _from_storable(state, abstract_state), dict(restored["record"])

    def close(self) -> None:
        self._manager.close()


def _check_shapes(tree, target, directory, step):
    leaves, treedef = jax.tree.flatten(tree)
    ref_leaves, ref_def = jax.tree.flatten(target)
    if treedef != ref_def or len(leaves) != len(ref_leaves):
        raise CheckpointError(f"checkpoint {step} in {directory} has a different structure")
    for i, (a, b) in enumerate(zip(leaves, ref_leaves, strict=True)):
        if tuple(np.shape(a)) != tuple(b.shape):
            raise CheckpointError(
                f"checkpoint {step} in {directory}: leaf {i} has shape {np.shape(a)}, "
                f"this run expects {tuple(b.shape)} (config changed?)"
            )
    return tree
