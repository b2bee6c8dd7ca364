"""Devices for data-parallel training (``--devices``, ``--cpu-devices``).

XLA:CPU runs one computation mostly on one core; JAX can instead expose several CPU
devices (``jax_num_cpu_devices``) and an agent can split its actors and batch over them
(``R2D2Config.num_devices``, ``jax.shard_map``). ``larvax train --cpu-devices N`` exposes N
CPU devices (default: JAX's one). On this project's 2-core CPU, R2D2 on Simfish is *slower*
split over two devices (2,487 vs 2,834 env steps/s, ``benchmarks/r2d2_simfish.py --mode
throughput --devices 2`` vs ``--devices 1``): its learner is a chain of small sequential
steps (84-step LSTM scans) that a half batch does not make shorter, and one XLA device already
spreads large ops over both cores; the Simfish environment alone gains 1.4x (README). On a GPU
machine the accelerators are the default devices and this setting does not change them.

``larvax train --devices N`` (:func:`use_devices`, :func:`num_devices_for`) sets the agent's
``num_devices`` to N per process, exposes N CPU devices on a CPU-only machine, and checks
that the agent's environments and batches split evenly (docs/scaling.md).
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


def use_devices(count: int | None, cpu_devices: int | None = None, cores: int | None = None):
    """``larvax train --devices N``: this process uses ``N`` of its devices (None: leave the
    choice to the agent). On a CPU-only machine ``N`` CPU devices are exposed (as
    ``--cpu-devices N``, which it must not contradict). Must run before the first JAX
    computation (after ``larvax.distributed.initialize``). Returns ``count``."""
    import jax

    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise DeviceError(f"--devices {count!r}: not allowed; allowed: an int >= 1")
    if count is not None and cpu_devices is not None and cpu_devices != count:
        raise DeviceError(
            f"--devices {count} and --cpu-devices {cpu_devices} disagree; give one of them"
        )
    if cpu_devices is None and count is not None and _cpu_only():
        cpu_devices = count
    use_cpu_devices(cpu_devices, cores)
    if count is not None:
        local = len(jax.local_devices())
        if count > local:
            raise DeviceError(
                f"--devices {count}: this process has {local} {jax.default_backend()} "
                f"device(s); allowed: 1..{local}"
            )
    return count


def _cpu_only() -> bool:
    """Whether JAX will run on the CPU (no accelerator plugin answers), asked without
    starting a backend: from ``JAX_PLATFORMS`` or the installed jaxlib plugins."""
    import importlib.util
    import os

    platforms = os.environ.get("JAX_PLATFORMS", "")
    if platforms:
        return platforms.split(",")[0].strip() == "cpu"
    plugins = ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm60_plugin", "libtpu")
    return not any(importlib.util.find_spec(name) for name in plugins)


def _agent_config(agent: str, agent_config: dict):
    """The agent's validated config dataclass (without num_devices), or None."""
    fields = {k: v for k, v in agent_config.items() if k != "num_devices"}
    if agent == "ppo":
        from larvax.agents.ppo import PPOConfig

        return PPOConfig.from_dict(fields)
    if agent == "r2d2":
        from larvax.agents.r2d2 import R2D2Config

        return R2D2Config.from_dict(fields)
    return None


def _multiples(count: int, near: int) -> str:
    low = max(count, (near // count) * count)
    return f"{low} or {low + count}"


def check_divisible(agent: str, agent_config: dict, count: int, flag: str) -> None:
    """Raise a one-line DeviceError when ``count`` devices cannot split the agent's
    environments and batches evenly; ``flag`` names what set the count (e.g. ``--devices
    2``)."""
    try:
        c = _agent_config(agent, agent_config)
    except ValueError:  # a bad config: the agent reports it when it is built
        return
    if c is None:
        return
    batches = [("num_envs", c.num_envs)]
    if agent == "ppo":
        batches.append(("num_envs / num_minibatches", c.minibatch_size))
    else:
        batches.append(("batch_size", c.batch_size))
    for name, value in batches:
        if value % count:
            raise DeviceError(
                f"{flag}: agent_config.{name}={value} is not divisible by {count} devices; "
                f"allowed: {name} a multiple of {count} (e.g. {_multiples(count, value)})"
            )


def num_devices_for(cfg: dict, devices: int | None, processes: int) -> int | None:
    """The agent's device count for ``larvax train --devices N`` in a run of ``processes``
    processes: ``N`` per process, or every device of every process when several processes
    run without ``--devices``; None leaves the config's own setting. Checked against the
    agent's environments and batches (one-line DeviceError)."""
    import jax

    if devices is None and processes == 1:
        return None
    count = devices * processes if devices is not None else len(jax.devices())
    flag = f"--devices {devices}" if devices is not None else f"--num-processes {processes}"
    if devices is not None and processes > 1:
        flag += f" x {processes} processes"
    check_divisible(cfg["agent"], cfg.get("agent_config", {}), count, flag)
    return count
