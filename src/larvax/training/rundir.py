"""The run directory: creating it, its status file, strict JSON, and the checks that make a
resumed run consistent or refused.

A new run refuses a directory that holds anything; every file-system failure (a parent that
is a file, a read-only or unwritable path) is a :class:`RunDirError` naming the path and the
cause. ``config.yaml`` is written once, at the start, and its sha256 kept in ``run.json``; a
resume refuses an edited config. A resume also refuses metric rows without checkpoints to
continue them (``checkpoints/`` deleted), and the training session refuses a checkpoint
that has written more rows than ``metrics.csv`` holds (the CSV deleted or cut): restarting
from update 0 over existing rows, or continuing a record with a hole in it, would lose data
silently. The only thing repaired is the one safe case: no checkpoint was ever finished and
at most one (unfinished) chunk's row was written; the run restarts from update 0, saying so.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import yaml

import larvax

RUN_FILES = ("config.yaml", "run.json", "metrics.csv", "checkpoints")


class RunDirError(ValueError):
    """A run directory that cannot be used (holds another run, is not a run, is
    inconsistent, or cannot be written)."""


def strict(value):
    """``value`` with NaN and infinities as None (JSON ``null``) and NumPy scalars as Python
    numbers, so ``json.dumps(..., allow_nan=False)`` accepts it."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict(v) for v in value]
    return value


def write_json_atomic(path: Path, data: dict) -> None:
    """Strict JSON (``null`` for missing numbers), written to a temporary file then renamed."""
    text = json.dumps(strict(data), indent=2, sort_keys=True, allow_nan=False)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def set_status(run_dir: Path, status: str, **extra) -> None:
    path = run_dir / "run.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update(status=status, larvax_version=larvax.__version__, **extra)
    data["updated"] = _dt.datetime.now().isoformat(timespec="seconds")
    write_json_atomic(path, data)


def default_run_dir(cfg_name: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg_name}-{stamp}"


def _cause(err: OSError) -> str:
    return err.strerror or type(err).__name__


def prepare_new_run_dir(run_dir: Path) -> None:
    """Create ``run_dir`` (or take an empty one) and check that it can be written; refuse a
    directory that already holds a run or anything else."""
    if run_dir.exists():
        if not run_dir.is_dir():
            raise RunDirError(f"run directory {str(run_dir)!r} is a file, not a directory")
        if any((run_dir / f).exists() for f in RUN_FILES):
            raise RunDirError(
                f"run directory {str(run_dir)!r} already holds a run; continue it with "
                f"`larvax train --resume {run_dir}` or choose another --run-dir"
            )
        if any(run_dir.iterdir()):
            raise RunDirError(
                f"run directory {str(run_dir)!r} is not empty and is not a larvax run; "
                "choose a new or empty directory"
            )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        where = f" ({err.filename})" if err.filename and str(err.filename) != str(run_dir) else ""
        raise RunDirError(
            f"cannot create run directory {str(run_dir)!r}: {_cause(err)}{where}"
        ) from None
    check_writable(run_dir)


def check_writable(run_dir: Path) -> None:
    """Write and remove a probe file: a read-only or unwritable directory is a one-line error
    now rather than a traceback at the first checkpoint."""
    probe = run_dir / ".larvax-write-test"
    try:
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise RunDirError(
            f"run directory {str(run_dir)!r} is not writable: {_cause(err)}"
        ) from None


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def write_config(run_dir: Path, cfg: dict) -> None:
    """``config.yaml`` (atomically) and its sha256 in ``run.json`` (what resume checks)."""
    text = yaml.safe_dump(cfg, sort_keys=False)
    tmp = run_dir / "config.yaml.tmp"
    tmp.write_text(text)
    os.replace(tmp, run_dir / "config.yaml")
    set_status(run_dir, "starting", config_sha256=_sha256(text))


def _count_rows(path: Path) -> int:
    from larvax.training.logging import CSVLog

    return len(CSVLog(path).read())


def check_resumable(run_dir: Path) -> dict:
    """The saved config of a run to resume, after the checks that need no agent: a larvax
    run, writable, an unedited ``config.yaml``, checkpoints for its metric rows."""
    where = str(run_dir)
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise RunDirError(f"{where!r} is not a larvax run directory (no config.yaml)")
    check_writable(run_dir)
    text = cfg_path.read_text()
    status = run_dir / "run.json"
    saved_hash = json.loads(status.read_text()).get("config_sha256") if status.is_file() else None
    if saved_hash is not None and saved_hash != _sha256(text):
        raise RunDirError(
            f"{where}/config.yaml was edited after the run started (its sha256 differs from "
            f"run.json's config_sha256); undo the edit to resume, or start a new run from it: "
            f"larvax train --config {where}/config.yaml"
        )
    rows = _count_rows(run_dir / "metrics.csv")
    if rows and not (run_dir / "checkpoints").is_dir():
        raise RunDirError(
            f"{where}/checkpoints is missing but metrics.csv has {rows} rows: nothing to "
            "continue them from; restore the checkpoints, or start a new run "
            f"(larvax train --config {where}/config.yaml --run-dir NEW_DIR)"
        )
    return yaml.safe_load(text)


def check_rows(run_dir: Path, rows: int, record: dict, step: int) -> None:
    """Refuse a restored checkpoint that has written more rows than ``metrics.csv`` holds."""
    needed = int(record["csv_rows"])
    if rows >= needed:
        return
    what = "is missing" if not (run_dir / "metrics.csv").exists() else f"has {rows} rows"
    raise RunDirError(
        f"{run_dir}/metrics.csv {what} but checkpoint {step} was saved after {needed} rows "
        "(the file was deleted or cut); restore metrics.csv to resume, or start a new run "
        f"(larvax train --config {run_dir}/config.yaml --run-dir NEW_DIR)"
    )
