"""What every benchmark records about the machine and the versions it ran with."""

from __future__ import annotations

import os
import platform


def machine_info() -> dict:
    """Platform, cores, load, JAX backend/devices, XLA flags and library versions."""
    import flax
    import jax

    import larvax

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "jax_backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "flax": flax.__version__,
        "larvax": larvax.__version__,
    }


def rich_table(title: str, headers: list[str], rows: list[list[str]]) -> None:
    """Print rows of strings as a rich table."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for h in headers:
        table.add_column(h)
    for row in rows:
        table.add_row(*row)
    Console().print(table)
