"""Test hook: SIGKILL the training process at a chosen point (fault-injection tests only).

``LARVAX_TEST_KILL=<point>:<n>`` makes the ``n``-th arrival (1-based) at ``<point>`` kill
the process with SIGKILL, deterministically, so ``tests/test_faults.py`` can check that a
resume loses at most the unfinished chunk and never duplicates a row. Points:

``csv-row``          half-way through appending a metrics row (the first half is on disk)
``checkpoint-data``  inside orbax's save: the data is written to its temporary directory,
                     which is not yet renamed to its step
``checkpoint-sums``  after orbax has finished the step, before its checksum file is written

Unset (every normal run), each hook is a no-op that reads one environment variable.
"""

from __future__ import annotations

import os
import signal

ENV = "LARVAX_TEST_KILL"
_arrivals: dict[str, int] = {}


def _target() -> tuple[str, int] | None:
    spec = os.environ.get(ENV, "")
    if not spec:
        return None
    point, _, n = spec.partition(":")
    return point, int(n or 1)


def maybe_kill(point: str) -> None:
    """SIGKILL this process if ``point`` is the selected one and this is its ``n``-th call."""
    target = _target()
    if target is None or target[0] != point:
        return
    _arrivals[point] = _arrivals.get(point, 0) + 1
    if _arrivals[point] == target[1]:
        os.kill(os.getpid(), signal.SIGKILL)


def arm_orbax_finalize() -> None:
    """With ``checkpoint-data`` selected, make orbax's finalize step (which runs after the
    data is written and before the temporary directory is renamed) a kill point."""
    target = _target()
    if target is None or target[0] != "checkpoint-data":
        return
    import orbax.checkpoint as ocp

    cls = ocp.CompositeCheckpointHandler
    if getattr(cls, "_larvax_kill_hook", False):
        return
    original = cls.finalize

    def finalize(self, directory):
        maybe_kill("checkpoint-data")
        return original(self, directory)

    cls.finalize = finalize
    cls._larvax_kill_hook = True
