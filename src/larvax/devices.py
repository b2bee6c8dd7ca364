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


def use_cpu_devices(count: int | None = None) -> int:
    """Ask JAX for ``count`` CPU devices (None: leave JAX's setting alone).

    Must run before JAX starts its CPU backend (the first computation); later it changes
    nothing. Returns the number of CPU devices JAX has after the call.
    """
    import jax

    if count is None:
        return len(jax.devices("cpu"))
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"cpu devices must be an int >= 1, got {count!r}")
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:  # the backend is already running: keep what it has
        pass
    return len(jax.devices("cpu"))
