"""Devices for data-parallel training on a CPU.

XLA:CPU runs one computation mostly on one core; JAX can instead expose several CPU
devices (``jax_num_cpu_devices``) and an agent can split its actors and batch over them
(``R2D2Config.num_devices``, ``jax.shard_map``). ``larvax train`` exposes one device per core
by default (``--cpu-devices`` changes it). On a GPU machine the accelerators are the default
devices and this setting does not change them.
"""

from __future__ import annotations

import os

MAX_AUTO_CPU_DEVICES = 8


def default_cpu_devices() -> int:
    """One per core this process may use, at most ``MAX_AUTO_CPU_DEVICES``."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_AUTO_CPU_DEVICES))


def use_cpu_devices(count: int | None = None) -> int:
    """Ask JAX for ``count`` CPU devices (default: ``default_cpu_devices()``).

    Must run before JAX starts its CPU backend (the first computation); later it changes
    nothing. Returns the number of CPU devices JAX has after the call.
    """
    import jax

    if count is None:
        count = default_cpu_devices()
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"cpu devices must be an int >= 1, got {count!r}")
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:  # the backend is already running: keep what it has
        pass
    return len(jax.devices("cpu"))
