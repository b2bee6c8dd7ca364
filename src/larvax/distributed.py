"""Several processes (and machines) as one JAX runtime: ``jax.distributed``.

``initialize`` joins this process to a run of ``num_processes`` processes through JAX's own
coordinator (``jax.distributed.initialize``); afterwards ``jax.devices()`` lists the devices
of every process and an agent's mesh spans them all (the agents split environments over
it). Where the arguments come from, first match wins:

1. flags: ``larvax train --coordinator HOST:PORT --num-processes P --process-id I``;
2. environment variables ``LARVAX_COORDINATOR``, ``LARVAX_NUM_PROCESSES``,
   ``LARVAX_PROCESS_ID`` (all three);
3. JAX's cluster auto-detection when a launcher started several tasks (:func:`launcher`):
   SLURM (``srun``) or Open MPI (``mpirun``).

On CPUs the processes exchange data through gloo (``jax_cpu_collectives_implementation``),
so the same code runs as two processes on one machine (the tests) and on a GPU cluster
(where NCCL is used). Only process 0 writes logs, plots and metrics (:func:`is_writer`);
every process takes part in saving and restoring checkpoints (orbax writes each process's
shards).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

ENV_VARS = ("LARVAX_COORDINATOR", "LARVAX_NUM_PROCESSES", "LARVAX_PROCESS_ID")


class DistributedError(ValueError):
    """Distributed settings that cannot work (one-line message naming the flag)."""


@dataclass(frozen=True)
class Cluster:
    """How to join the run: explicit address and ids, or ``auto`` (JAX's detection)."""

    coordinator: str | None = None
    num_processes: int | None = None
    process_id: int | None = None
    auto: bool = False

    @property
    def explicit(self) -> bool:
        return self.coordinator is not None


def _int_flag(flag: str, value, low: int, high: int | None = None) -> int:
    try:
        out = int(value)
    except (TypeError, ValueError):
        raise DistributedError(f"{flag} {value!r}: not an integer") from None
    if out < low or (high is not None and out > high):
        allowed = f"{low}..{high}" if high is not None else f">= {low}"
        raise DistributedError(f"{flag} {value!r}: allowed {allowed}")
    return out


def resolve(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    auto: bool = False,
    environ: dict | None = None,
) -> Cluster | None:
    """The :class:`Cluster` from flags, else ``LARVAX_*`` variables, else ``auto``; None
    when this is a single-process run. Incomplete or inconsistent settings raise
    :class:`DistributedError`."""
    environ = os.environ if environ is None else environ
    given = (coordinator, num_processes, process_id)
    names = ("--coordinator", "--num-processes", "--process-id")
    if all(v is None for v in given):
        from_env = tuple(environ.get(k) for k in ENV_VARS)
        if any(v is not None for v in from_env):
            given, names = from_env, ENV_VARS
    if all(v is None for v in given):
        return Cluster(auto=True) if auto else None
    missing = [n for n, v in zip(names, given, strict=True) if v is None]
    if missing:
        raise DistributedError(
            f"{', '.join(missing)} missing: a multi-process run needs all of "
            f"{', '.join(names)} (or start the processes with srun / mpirun)"
        )
    address = str(given[0])
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise DistributedError(f"{names[0]} {address!r}: expected HOST:PORT, e.g. 10.0.0.1:1234")
    count = _int_flag(names[1], given[1], 1)
    pid = _int_flag(names[2], given[2], 0, count - 1)
    return Cluster(address, count, pid)


def use_gloo() -> None:
    """CPU collectives across processes through gloo (must precede the CPU backend)."""
    jax.config.update("jax_cpu_collectives_implementation", "gloo")


def initialize(cluster: Cluster | None, timeout_s: int = 300) -> int:
    """Join the run described by ``cluster`` (None: nothing to do). Must be called before
    the first JAX computation. Returns the number of processes."""
    if cluster is None:
        return 1
    use_gloo()
    kwargs: dict[str, Any] = {"initialization_timeout": timeout_s}
    if cluster.explicit:
        kwargs.update(
            coordinator_address=cluster.coordinator,
            num_processes=cluster.num_processes,
            process_id=cluster.process_id,
        )
    try:
        jax.distributed.initialize(**kwargs)
    except (RuntimeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        how = cluster.coordinator or "auto-detection"
        raise DistributedError(f"jax.distributed.initialize ({how}) failed: {first}") from None
    return jax.process_count()


def is_writer() -> bool:
    """Whether this process writes logs, plots, metrics and run files (process 0)."""
    return jax.process_index() == 0


def _put_leaf(x, sharding):
    """One leaf (the same value on every process) as a global array with ``sharding``."""
    if jax.process_count() == 1:
        return jax.device_put(x, sharding)
    if isinstance(x, jax.Array) and x.sharding == sharding:
        return x
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        impl = jax.random.key_impl(x)
        data = _put_leaf(jax.random.key_data(x), sharding)
        return jax.jit(lambda d: jax.random.wrap_key_data(d, impl=impl), out_shardings=sharding)(
            data
        )
    host = np.asarray(jax.device_get(x))
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def put_global(tree: Any, shardings: Any) -> Any:
    """``tree`` (computed identically by every process, e.g. ``agent.init(key)``) placed
    with ``shardings``, which may span the devices of all processes."""
    return jax.tree_util.tree_map(_put_leaf, tree, shardings)


def to_host(tree: Any) -> Any:
    """NumPy copies of a pytree of arrays on every process: replicated arrays from the local
    copy, split ones gathered from all processes (a collective: every process calls it)."""
    from jax.experimental import multihost_utils

    def one(x):
        if not isinstance(x, jax.Array) or x.is_fully_addressable:
            return np.asarray(jax.device_get(x))
        if x.is_fully_replicated:
            return np.asarray(x.addressable_data(0))
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))

    return jax.tree_util.tree_map(one, tree)


def barrier(name: str) -> None:
    """Wait until every process reaches the point called ``name`` (no-op in one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def writer_only(fn, default: Any = None, wait: bool = False):
    """``fn`` run by process 0 alone (the others get ``default``; with ``wait`` they wait
    until it has run). For what writes a run's files: status, config, summary, plots."""

    def call(*args, **kwargs):
        out = fn(*args, **kwargs) if is_writer() else default
        if wait:
            barrier(f"larvax-{getattr(fn, '__name__', 'writer')}")
        return out

    call.__name__ = getattr(fn, "__name__", "writer_only")
    call.__doc__ = fn.__doc__
    return call


class _Muted:
    """An object whose ``muted`` methods do nothing (the rest is the object's own)."""

    def __init__(self, obj, muted: tuple[str, ...]):
        self._obj, self._muted = obj, muted

    def __getattr__(self, name):
        if name in self._muted:
            return lambda *args, **kwargs: None
        return getattr(self._obj, name)


def writer_only_methods(cls, muted: tuple[str, ...]):
    """A factory of ``cls`` objects whose ``muted`` (writing) methods do nothing outside
    process 0; reading methods work everywhere (e.g. a CSV log read back on resume)."""

    def make(*args, **kwargs):
        obj = cls(*args, **kwargs)
        return obj if is_writer() else _Muted(obj, muted)

    return make


class NullLog:
    """Stands in for a log that only process 0 opens: ``write`` and ``close`` do nothing."""

    def write(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass


def launcher(environ: dict | None = None) -> str | None:
    """The cluster launcher that started several tasks of this command (JAX detects its
    coordinator, process count and id): ``"slurm"`` under ``srun`` with more than one task,
    ``"openmpi"`` under ``mpirun -n`` > 1; None otherwise."""
    environ = os.environ if environ is None else environ
    if int(environ.get("SLURM_STEP_NUM_TASKS", "1") or 1) > 1:
        return "slurm"
    if int(environ.get("OMPI_COMM_WORLD_SIZE", "1") or 1) > 1:
        return "openmpi"
    return None


def start(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    environ: dict | None = None,
) -> int:
    """Join a multi-process run if flags, ``LARVAX_*`` variables or a cluster launcher ask
    for one (see the module docstring); returns the number of processes (1: nothing done)."""
    cluster = resolve(
        coordinator, num_processes, process_id, auto=launcher(environ) is not None, environ=environ
    )
    if cluster is not None and cluster.num_processes == 1:
        return 1
    return initialize(cluster)


def mesh_devices(count: int) -> list:
    """The ``count`` devices of an agent's mesh: the first ``count`` of ``jax.devices()`` in
    one process; with several processes the first ``count / P`` of each process (every
    process must hold a share of the mesh), in process order."""
    processes = jax.process_count()
    if processes == 1:
        return list(jax.devices()[:count])
    if count % processes:
        raise ValueError(
            f"num_devices={count} does not split over {processes} processes; allowed: a "
            f"multiple of {processes}"
        )
    per = count // processes
    chosen = []
    for p in range(processes):
        mine = [d for d in jax.devices() if d.process_index == p][:per]
        if len(mine) < per:
            raise ValueError(
                f"num_devices={count}: process {p} has {len(mine)} device(s), {per} needed"
            )
        chosen += mine
    return chosen
