"""Devices for data-parallel training on a CPU.

XLA:CPU runs one computation mostly on one core; JAX can instead expose several CPU
devices (``jax_num_cpu_devices``) and an agent can split its actors and batch over them
(``R2D2Config.num_devices``, ``jax.shard_map``). ``larvax train --cpu-devices N`` exposes N
CPU devices (default: JAX's one). On this project's 2-core CPU, R2D2 on Simfish is *slower*
split over two devices (2,487 vs 2,834 env steps/s, ``benchmarks/r2d2_simfish.py --mode
throughput --devices 2`` vs ``--devices 1``): its learner is a chain of small sequential
steps (84-step LSTM scans) that a half batch does not make shorter, and one XLA device already
spreads large ops over both cores; the Simfish environment alone gains 1.4x (README). On a GPU
machine the accelerators are the default devices and this setting does not change them.
"""

from __future__ import annotations


class DeviceError(ValueError):
    """A device count that cannot be provided (one-line message)."""


def use_cpu_devices(count: int | None = None, cores: int | None = None) -> int:
    """Ask JAX for ``count`` CPU devices (None: leave JAX's setting alone).

    A count above the machine's CPU cores (``os.cpu_count()``, or ``cores``) is refused: the
    extra devices would share cores and only slow the run down. Must run before JAX starts
    its CPU backend (the first computation); once it runs, a different count is refused too.
    Returns the number of CPU devices JAX has after the call.
    """
    import os

    import jax

    if count is None:
        return len(jax.devices("cpu"))
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise DeviceError(f"cpu devices must be an int >= 1, got {count!r}")
    cores = (os.cpu_count() or 1) if cores is None else cores
    if count > cores:
        raise DeviceError(
            f"--cpu-devices={count} is more than this machine's {cores} CPU cores; "
            f"allowed: 1..{cores}"
        )
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:  # the backend is already running: it keeps what it has
        pass
    have = len(jax.devices("cpu"))
    if have != count:
        raise DeviceError(
            f"--cpu-devices={count}: JAX already started with {have} CPU device(s); set it "
            "before the first JAX computation"
        )
    return have
