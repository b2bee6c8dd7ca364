"""Crash-safe checkpoints of a whole training state (orbax).

A checkpoint holds the agent's ``TrainState`` pytree (network and optimiser state,
replay, environment states, RNG keys, counters) and a small JSON record (update count,
env steps, metric rows written). Orbax writes each step into a temporary directory and
renames it when complete, so a SIGKILL during a save leaves the earlier checkpoints intact
and the partial one invisible (it is cleaned up on the next start).

Every finished checkpoint gets a checksum file ``<step>/larvax.sha256`` (the files of its
items ``state/`` and ``record/``, ``sha256sum`` format: ``cd checkpoints/<step> && sha256sum
-c larvax.sha256`` checks it by hand), written atomically once orbax has finished the
step. :meth:`Checkpointer.restore` checks it first: a
checkpoint whose files are missing or differ is *damaged*; training moves it aside to
``damaged_checkpoints/`` and falls back to the previous good one, saying so
(:meth:`Checkpointer.restore_latest_good`). A checkpoint without the file (killed between
the orbax save and the checksum, or written by an older larvax) is restored unverified, with
a note. A checkpoint that verifies but does not fit the agent is a config mismatch: an
error, never a fallback.

Typed PRNG keys (``jax.random.key``) are stored as their raw ``key_data`` and re-wrapped on
restore, using the abstract state of a fresh ``agent.init`` as the template.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from larvax import distributed
from larvax.training import fault_hooks

SUMS_FILE = "larvax.sha256"
DAMAGED_DIR = "damaged_checkpoints"


class CheckpointError(RuntimeError):
    """A missing, partial or mismatched checkpoint."""


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_storable(tree):
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def _abstract_storable(abstract_tree):
    """The restore target: keys as their ``key_data``, and every leaf with a sharding (its
    own, or this process's first device): without one orbax would use the saved sharding,
    which fails for a checkpoint written on another device or process count."""
    default = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

    def conv(x):
        sharding = getattr(x, "sharding", None) or default
        if _is_key(x):
            x = jax.eval_shape(jax.random.key_data, x)
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)

    return jax.tree.map(conv, abstract_tree)


def _from_storable(tree, abstract_tree):
    def conv(x, ref):
        if _is_key(ref):
            impl = jax.random.key_impl(ref) if not isinstance(ref, jax.ShapeDtypeStruct) else None
            return jax.random.wrap_key_data(x, impl=impl) if impl else jax.random.wrap_key_data(x)
        return x

    return jax.tree.map(conv, tree, abstract_tree)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checksums(step_dir: Path) -> Path:
    """Write ``step_dir/larvax.sha256``: the sha256 of every file of its items (``state/``,
    ``record/``; orbax's own step metadata beside them is left out), in ``sha256sum``
    format with sorted paths, atomically (temporary file, fsync, rename)."""
    files = sorted(p for p in step_dir.rglob("*") if p.is_file() and p.parent != step_dir)
    lines = [f"{_sha256(p)}  {p.relative_to(step_dir).as_posix()}\n" for p in files]
    target = step_dir / SUMS_FILE
    tmp = step_dir / (SUMS_FILE + ".tmp")
    with tmp.open("w") as f:
        f.writelines(lines)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    return target


def verify_checksums(step_dir: Path) -> str | None:
    """None if every file listed in ``step_dir/larvax.sha256`` is there with its sha256;
    otherwise what is wrong (one phrase). Raises FileNotFoundError without the file."""
    lines = (step_dir / SUMS_FILE).read_text().splitlines()
    if not lines:
        return f"{SUMS_FILE} is empty"
    for line in lines:
        expected, _, name = line.partition("  ")
        path = step_dir / name
        if not path.is_file():
            return f"file {name} is missing"
        if _sha256(path) != expected:
            return f"file {name} does not match its sha256 in {SUMS_FILE}"
    return None


class _OrphanedFutures(logging.Filter):
    """Drops asyncio's "exception was never retrieved" reports: after orbax fails to read a
    damaged checkpoint, tensorstore futures it no longer awaits would print tracebacks on
    stderr (at garbage collection or exit) after larvax's one-line error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "never retrieved" not in record.getMessage()


class _DropClosedLoopTracebacks:
    """``sys.stderr`` without the "Event loop is closed" tracebacks that tensorstore's threads
    print (at any later moment) when a failed orbax read leaves their callbacks behind.
    Everything else is written through at once."""

    HEADER = "Traceback (most recent call last)"

    def __init__(self, stream):
        self.stream = stream
        self._blocks: dict[int, list[str]] = {}  # per thread: tracebacks may interleave

    def write(self, text: str) -> int:
        thread = threading.get_ident()
        block = self._blocks.get(thread)
        if block is None:
            if not text.startswith(self.HEADER):
                return self.stream.write(text)
            block = self._blocks[thread] = []
        block.append(text)
        joined = "".join(block)
        last = joined.rstrip("\n").rsplit("\n", 1)[-1]
        if joined.endswith("\n") and not last.startswith((" ", self.HEADER)):
            del self._blocks[thread]  # the exception line closes the traceback
            if "Event loop is closed" not in last:
                self.stream.write(joined)
        return len(text)

    def __getattr__(self, name):  # flush, fileno, isatty, encoding, ...
        return getattr(self.stream, name)


class _QuietAsyncio:
    """Around an orbax read: asyncio's orphaned-future reports and tensorstore's closed-loop
    tracebacks are dropped, for the rest of the process once a read has failed."""

    def __enter__(self):
        self._filter = _OrphanedFutures()
        logging.getLogger("asyncio").addFilter(self._filter)
        self._installed = not isinstance(sys.stderr, _DropClosedLoopTracebacks)
        if self._installed:
            sys.stderr = _DropClosedLoopTracebacks(sys.stderr)

    def __exit__(self, exc_type, *exc):
        import gc

        gc.collect()  # report (and drop) the orphaned futures while the filter is on
        if exc_type is None:
            logging.getLogger("asyncio").removeFilter(self._filter)
            if self._installed and isinstance(sys.stderr, _DropClosedLoopTracebacks):
                sys.stderr = sys.stderr.stream


class Checkpointer:
    """Periodic checkpoints of one run under ``directory`` (keeps the newest ``keep``)."""

    def __init__(self, directory: str | Path, keep: int = 3, create: bool = True):
        self.directory = Path(directory).absolute()
        if create:
            self.directory.mkdir(parents=True, exist_ok=True)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, enable_async_checkpointing=False, create=create
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def save(self, step: int, state: Any, record: dict) -> None:
        """Save ``state`` and the JSON ``record`` as checkpoint ``step`` (blocks until done),
        then its checksum file."""
        if step in self._manager.all_steps():
            return
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(_to_storable(state)),
            record=ocp.args.JsonSave(record),
        )
        fault_hooks.arm_orbax_finalize()
        self._manager.save(step, args=args, force=True)
        self._manager.wait_until_finished()
        fault_hooks.maybe_kill("checkpoint-sums")
        if distributed.is_writer():  # one process writes the sums; the others wait for them
            write_checksums(self.directory / str(step))
        distributed.barrier(f"larvax-checkpoint-{step}")

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict]:
        """Restore checkpoint ``step`` (default: the newest) shaped like ``abstract_state``
        (or like ``abstract_state(record)`` when it is a function of the checkpoint's record);
        a damaged or mismatched one raises :class:`CheckpointError` (no fallback)."""
        steps = self.all_steps()
        if not steps:
            raise CheckpointError(f"no checkpoint found in {self.directory}")
        step = max(steps) if step is None else step
        if step not in steps:
            raise CheckpointError(f"checkpoint {step} not in {self.directory}; available: {steps}")
        damage = self._damage(step)
        if damage is not None:
            raise CheckpointError(f"checkpoint {step} in {self.directory} is damaged: {damage}")
        try:
            return self._read(abstract_state, step)
        except _Unreadable as err:
            raise CheckpointError(
                f"checkpoint {step} in {self.directory} is damaged or does not match this "
                f"run's agent/config: {err}"
            ) from None

    def restore_latest_good(
        self, abstract_state: Any, report: Callable[[str], None] = print
    ) -> tuple[Any, dict]:
        """The newest checkpoint that verifies: each damaged one on the way is reported with
        ``report`` (one line) and moved to ``damaged_checkpoints/`` next to ``directory``.
        No good checkpoint left, or one that verifies but does not fit: CheckpointError."""
        damaged: list[int] = []
        steps = sorted(self.all_steps(), reverse=True)
        for i, step in enumerate(steps):
            damage = self._damage(step)
            if damage is None:
                try:
                    state, record = self._read(abstract_state, step)
                except _Unreadable as err:  # unverified and unreadable: damaged too
                    damage = str(err)
                else:
                    if not (self.directory / str(step) / SUMS_FILE).is_file():
                        report(
                            f"checkpoint {step} has no {SUMS_FILE} (saved by an older larvax "
                            "or interrupted right after saving): restored unverified"
                        )
                    if damaged:
                        report(f"resuming from checkpoint {step}, the newest good one")
                    return state, record
            moved = self._move_aside(step)
            then = "falling back to the previous one" if i + 1 < len(steps) else "none is left"
            report(
                f"checkpoint {step} in {self.directory} is damaged ({damage}); "
                f"moved to {moved}, {then}"
            )
            damaged.append(step)
        raise CheckpointError(
            f"no good checkpoint left in {self.directory}: each one is damaged or does not "
            f"match this run (moved to {self.directory.parent / DAMAGED_DIR}: {damaged}); "
            "start a new run, or restore the checkpoints from a backup"
        )

    def _damage(self, step: int) -> str | None:
        step_dir = self.directory / str(step)
        try:
            return verify_checksums(step_dir)
        except FileNotFoundError:
            return None  # no checksum file: restored unverified (see _read)
        except OSError as err:
            return f"cannot read it: {err.strerror or err}"

    def read_record(self, step: int) -> dict:
        """The JSON record of checkpoint ``step`` alone (e.g. the curriculum stage, which
        decides the shapes of the state to restore)."""
        with _QuietAsyncio():
            restored = self._manager.restore(
                step, args=ocp.args.Composite(record=ocp.args.JsonRestore())
            )
        return dict(restored["record"])

    def _read(self, abstract_state: Any, step: int) -> tuple[Any, dict]:
        if callable(abstract_state):  # the shapes depend on the record (curriculum stage)
            try:
                abstract_state = abstract_state(self.read_record(step))
            except CheckpointError:
                raise
            except Exception as err:
                raise _Unreadable(f"its record is unreadable: {type(err).__name__}") from err
        target = _abstract_storable(abstract_state)
        verified = (self.directory / str(step) / SUMS_FILE).is_file()
        try:
            with _QuietAsyncio():
                restored = self._manager.restore(
                    step,
                    args=ocp.args.Composite(
                        state=ocp.args.StandardRestore(target), record=ocp.args.JsonRestore()
                    ),
                )
        except Exception as err:  # orbax raises many types for damaged/mismatched data
            reason = f"{type(err).__name__}: {str(err).splitlines()[0][:300] if str(err) else ''}"
            if not verified:
                raise _Unreadable(f"unreadable and without {SUMS_FILE}: {reason}") from err
            raise CheckpointError(
                f"checkpoint {step} in {self.directory} is damaged or does not match this "
                f"run's agent/config: {reason}"
            ) from err
        state = _check_shapes(restored["state"], target, self.directory, step)
        return _from_storable(state, abstract_state), dict(restored["record"])

    def _move_aside(self, step: int) -> Path:
        """Move a damaged checkpoint out of orbax's directory (kept for inspection)."""
        dest_root = self.directory.parent / DAMAGED_DIR
        dest_root.mkdir(exist_ok=True)
        dest = dest_root / str(step)
        n = 1
        while dest.exists():
            n += 1
            dest = dest_root / f"{step}-{n}"
        shutil.move(str(self.directory / str(step)), str(dest))
        self._manager.reload()
        return dest

    def close(self) -> None:
        self._manager.close()


class _Unreadable(Exception):
    """A checkpoint without a checksum file that orbax cannot read."""


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
