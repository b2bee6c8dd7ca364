"""The training loop shared by every agent: chunked jit, metrics, checkpoints, resume.

One loop for R2D2 and PPO. The agent does all the work inside ``agent.train(state, n)``
(one compiled scan over ``n`` updates: acting and learning); Python only turns each
chunk's metrics into a CSV/TensorBoard row, updates the progress bar and checkpoints.

Run directory::

    config.yaml          the resolved config (what --resume reads; its sha256 is in run.json)
    run.json             larvax version, status (running | finished | failed | interrupted)
    metrics.csv          one row per chunk
    tb/                  TensorBoard event files
    checkpoints/<update>/  orbax checkpoints (state + record + larvax.sha256), newest
                         ``keep_checkpoints``: after the first chunk, then every
                         ``checkpoint_every_seconds`` and at the end
    damaged_checkpoints/ checkpoints that failed their checksum on resume (moved aside)
    learning_curve.png   at the end
    summary.json         at the end

Crash safety: checkpoints are atomic (orbax) and verified on restore (checkpoint.py); every
CSV row is fsync'ed; on resume the CSV is cut back to the rows the restored checkpoint had
written (so the deterministic re-run of the lost chunks writes them again exactly once) and
TensorBoard purges later points. An inconsistent run directory is refused (rundir.py).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np

from larvax import distributed
from larvax.training.checkpoint import Checkpointer
from larvax.training.config import ConfigError, validate
from larvax.training.console import banner, progress_display, reporter
from larvax.training.curriculum import CurriculumError
from larvax.training.logging import CSVLog, TensorBoardLog
from larvax.training.rundir import (
    RUN_FILES,
    RunDirError,
    check_resumable,
    check_rows,
    default_run_dir,
    prepare_new_run_dir,
    set_status,
    write_config,
)
from larvax.training.runs import build, load_run
from larvax.training.stages import StageTracker
from larvax.training.summary import finish

# Several processes (larvax.distributed): process 0 alone writes the run's files (run.json,
# config, metrics CSV, TensorBoard, plots, summary); every process saves its checkpoint shards.
prepare_new_run_dir = distributed.writer_only(prepare_new_run_dir, wait=True)
set_status = distributed.writer_only(set_status)
write_config = distributed.writer_only(write_config)
finish = distributed.writer_only(finish, default={})
CSVLog = distributed.writer_only_methods(CSVLog, ("append", "truncate"))
TensorBoardLog = distributed.writer_only(TensorBoardLog, default=distributed.NullLog())

__all__ = ["RUN_FILES", "RunDirError", "RunResult", "TrainingDiverged", "load_run", "run"]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class RunResult:
    run_dir: Path
    updates: int
    env_steps: int
    rows: list[dict]
    summary: dict


# ----------------------------------------------------------------------------- helpers


def aggregate(
    metrics: dict,
    update0: int,
    elapsed: float,
    wall_before: float,
    episode_metrics: tuple[str, ...] | list[str] = (),
) -> dict:
    """Turn one chunk's per-update metrics ``{key: [n]}`` into one CSV row.

    Episode statistics (``episode_*`` and the environment's declared ``episode_metrics``,
    by name) are averaged over the episodes that ended in the chunk (weights
    ``episodes``); everything else is a mean over updates.
    """
    metrics = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in metrics.items()}
    n = len(metrics["env_steps"])
    episodes = metrics.get("episodes", np.zeros(n))
    env_steps = int(metrics["env_steps"][-1])
    row: dict = {
        "update": update0 + n,
        "env_steps": env_steps,
        "wall_time_s": round(wall_before + elapsed, 3),
        "steps_per_s": 0.0,
    }
    for key, values in sorted(metrics.items()):
        if key == "env_steps":
            continue
        if key == "episodes":
            row[key] = float(values.sum())
        elif key.startswith("episode_") or key in episode_metrics:
            mask = (episodes > 0) & np.isfinite(values)
            total = episodes[mask].sum()
            row[key] = (
                float((values[mask] * episodes[mask]).sum() / total) if total > 0 else float("nan")
            )
        else:  # mean over the updates that report it (NaN before e.g. learning starts)
            finite = values[~np.isnan(values)]
            row[key] = float(finite.mean()) if len(finite) else float("nan")
    return row


def _nonfinite_loss(metrics: dict) -> str | None:
    """The first loss metric that is infinite, or NaN at an update that learned.

    Agents report NaN losses before learning starts (e.g. R2D2 filling its replay); when
    they report a cumulative ``learner_steps``, only updates with ``learner_steps > 0`` count.
    """
    learned = np.asarray(metrics.get("learner_steps", 1.0)) > 0
    for key, values in metrics.items():
        values = np.asarray(values)
        if "loss" in key and (np.any(np.isinf(values)) or np.any(np.isnan(values) & learned)):
            return key
    return None


# ----------------------------------------------------------------------------- the loop


def _load_config(cfg: dict | None, run_dir, resume: bool) -> tuple[dict, Path]:
    """The validated config and run directory of a new run (prepared) or a resumed one."""
    if resume:
        if run_dir is None:
            raise RunDirError("--resume needs a run directory")
        run_dir = Path(run_dir)
        saved = check_resumable(run_dir)
        if cfg is not None:  # e.g. a larger --steps budget
            saved["total_env_steps"] = cfg["total_env_steps"]
        return validate(saved), run_dir
    if cfg is None:
        raise ConfigError("no config given")
    cfg = validate(cfg)
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(cfg.get("name", "run"))
    return cfg, run_dir


def _setup(cfg: dict | None, run_dir, resume: bool) -> tuple[dict, Path, StageTracker]:
    """Config, run directory and stages, every stage's agent built and checked (and a warm
    start's network against the first) before a new run directory is created: a config
    error leaves nothing behind."""
    cfg, run_dir = _load_config(cfg, run_dir, resume)
    stages = StageTracker(cfg, build)
    try:
        stages.check_all()
    except CurriculumError as err:
        raise ConfigError(str(err)) from None
    if not resume:
        if cfg.get("init_from"):
            from larvax.training.warm_start import check_init_from

            check_init_from(stages.agent, cfg["init_from"])
        prepare_new_run_dir(run_dir)
    return cfg, run_dir, stages


def _abstract_state(agent, key):
    """The shapes of ``agent.init(key)``, placed on the agent's devices when it says where."""
    abstract = jax.eval_shape(agent.init, key)
    if hasattr(agent, "state_shardings"):  # restore straight onto the agent's devices
        abstract = jax.tree.map(
            lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
            abstract,
            agent.state_shardings(abstract),
        )
    return abstract


@dataclass
class _Session:
    """One training session of a run: its checkpoints, logs and progress counters."""

    cfg: dict
    run_dir: Path
    stages: StageTracker  # the curriculum position; builds each stage's env and agent
    ckpt: Checkpointer
    csv_log: CSVLog
    updates: int = 0
    env_steps: int = 0
    wall_s: float = 0.0
    csv_rows: int = 0
    tb: TensorBoardLog | None = None

    @property
    def agent(self):
        return self.stages.agent

    @property
    def episode_metrics(self) -> tuple:
        """The environment's declared EpisodeMetric."""
        return tuple(getattr(self.stages.env, "episode_metrics", ()))

    @property
    def chunk_and_total(self) -> tuple[int, int]:
        """Updates per chunk and in the whole run: whole chunks of one size, since a shorter
        last chunk would compile ``train`` a second time."""
        steps_per_update = int(self.agent.env_steps_per_update)
        total = max(1, math.ceil(self.cfg["total_env_steps"] / steps_per_update))
        chunk = min(self.cfg["chunk_updates"], total)
        return chunk, math.ceil(total / chunk) * chunk

    def time_up(self) -> bool:
        limit = float(self.cfg.get("max_wall_time_s", 0) or 0)
        return limit > 0 and self.wall_s >= limit

    def start(self, resume: bool, report=print):
        """The state to train from: the newest good checkpoint (resume; damaged ones are
        reported and skipped) or ``agent.init``; the CSV is cut back to the rows that
        checkpoint knows about. An inconsistent run directory raises RunDirError."""
        key = jax.random.key(self.cfg["seed"])
        if not resume:
            write_config(self.run_dir, self.cfg)
            state = self.agent.init(key)
            if self.cfg.get("init_from"):
                from larvax.training.warm_start import warm_start

                state = warm_start(self.agent, state, self.cfg["init_from"], report)
        elif self.ckpt.all_steps():

            def abstract(record):  # a curriculum's checkpoint names its stage
                self.stages.restore(record)
                return _abstract_state(self.agent, key)

            state, record = self.ckpt.restore_latest_good(abstract, report)
            self.updates = int(record["updates"])
            self.wall_s = float(record["wall_time_s"])
            self.csv_rows = int(record["csv_rows"])
            have = len(self.csv_log.read())
            check_rows(self.run_dir, have, record, self.updates)
            if have > self.csv_rows:
                report(
                    f"metrics.csv: dropping {have - self.csv_rows} row(s) written after "
                    f"checkpoint {self.updates}; the chunks are run again"
                )
            self.csv_log.truncate(self.csv_rows)
            self.stages.load_rows(self.csv_log.read())
        else:
            rows = len(self.csv_log.read())
            if rows > 1:  # the first checkpoint follows the first row: these were deleted
                raise RunDirError(
                    f"{self.run_dir}/checkpoints holds no checkpoint but metrics.csv has "
                    f"{rows} rows; restore the checkpoints, or start a new run (larvax train "
                    f"--config {self.run_dir}/config.yaml --run-dir NEW_DIR)"
                )
            dropped = " (dropping the unfinished chunk's row)" if rows else ""
            report(
                "no checkpoint was finished before the run stopped: starting again from "
                f"update 0{dropped}"
            )
            self.csv_log.truncate(0)
            state = self.agent.init(key)
        rows = self.csv_log.read()
        steps_per_update = int(self.agent.env_steps_per_update)
        self.env_steps = (
            int(float(rows[-1]["env_steps"])) if rows else self.updates * steps_per_update
        )
        self.tb = TensorBoardLog(
            self.run_dir / "tb", purge_step=self.env_steps + 1 if resume else None
        )
        return state

    def train_chunk(self, state, n: int):
        """``n`` updates in one ``agent.train`` call; returns ``(state, row)`` after logging
        the row (CSV, TensorBoard). A NaN or infinite loss raises :class:`TrainingDiverged`."""
        t0 = time.monotonic()
        new_state, metrics = self.agent.train(state, n)
        metrics = distributed.to_host(metrics)
        elapsed = time.monotonic() - t0
        bad = _nonfinite_loss(metrics)
        if bad is not None:
            last = self.ckpt.latest_step()
            kept = (
                f"the last good checkpoint (update {last}) is kept in {self.run_dir / 'checkpoints'}"
                if last is not None
                else "no checkpoint had been written yet"
            )
            raise TrainingDiverged(
                f"training stopped: {bad} became NaN or infinite between updates "
                f"{self.updates} and {self.updates + n}; {kept}"
            )
        names = [m.name for m in self.episode_metrics]
        row = self.stages.tag(aggregate(metrics, self.updates, elapsed, self.wall_s, names))
        row["steps_per_s"] = round((row["env_steps"] - self.env_steps) / max(elapsed, 1e-9), 1)
        self.updates += n
        self.env_steps = row["env_steps"]
        self.wall_s = row["wall_time_s"]
        self.csv_log.append(row)
        self.csv_rows += 1
        self.tb.write(row, self.env_steps)
        return new_state, row

    def save(self, state) -> None:
        record = {
            "updates": self.updates,
            "env_steps": self.env_steps,
            "csv_rows": self.csv_rows,
            "wall_time_s": self.wall_s,
            **self.stages.record(),
        }
        self.ckpt.save(self.updates, state, record)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        self.ckpt.close()


def _train(session: _Session, state, display, max_chunks: int | None, report=print) -> bool:
    """Train chunk after chunk until the budget or the time limit (True), or until
    ``max_chunks`` chunks (False: checkpointed, resumable). A curriculum moves to its next
    stage between chunks (checkpointed at once)."""
    chunk, total_updates = session.chunk_and_total
    last_save = time.monotonic()
    chunks = 0
    while session.updates < total_updates and not session.time_up():
        state, row = session.train_chunk(state, chunk)
        if display:
            label = session.stages.label if session.stages.curriculum else None
            display.update(dict(row, stage_label=label) if label else row)
        chunks += 1
        time_up = session.time_up()
        finished = session.updates >= total_updates or time_up
        switched = False
        if not finished:
            state, switched = session.stages.advance(state, row, session.env_steps, report)
        first = session.ckpt.latest_step() is None  # the first checkpoint: after one chunk
        due = time.monotonic() - last_save >= session.cfg["checkpoint_every_seconds"]
        if finished or first or due or switched:
            session.save(state)
            last_save = time.monotonic()
        if time_up:
            break
        if max_chunks is not None and chunks >= max_chunks and not finished:
            session.save(state)
            return False
    return True


def run(
    cfg: dict | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    max_chunks: int | None = None,
    console=None,
    log_every: float | None = None,
) -> RunResult:
    """Train a new run (``cfg``) or resume one (``resume=True``, ``run_dir`` given).

    ``max_chunks`` stops after that many chunks (tests, smoke runs); the run can be resumed.
    ``log_every``: plain progress lines at most every that many seconds (the default when
    the console is not a terminal: 30 s). Notes (the budget, fallbacks, repairs) go to
    ``console`` (default: stderr), one line each.
    """
    report = reporter(console)
    cfg, run_dir, stages = _setup(cfg, run_dir, resume)
    session = _Session(
        cfg,
        run_dir,
        stages,
        Checkpointer(run_dir / "checkpoints", keep=cfg["keep_checkpoints"]),
        CSVLog(run_dir / "metrics.csv"),
    )
    try:
        state = session.start(resume, report)
    except BaseException:
        session.close()
        raise
    set_status(
        run_dir,
        "running",
        total_updates=session.chunk_and_total[1],
        devices=int(getattr(session.agent, "num_devices", 1)),
        platform=jax.default_backend(),
    )
    chunk, total_updates = session.chunk_and_total
    if console is not None:
        agent = session.agent
        banner(cfg, agent, chunk, total_updates, session.updates, session.env_steps, report)
        stages.announce(report)
    display = None
    if progress:
        total = total_updates * int(session.agent.env_steps_per_update)
        display = progress_display(
            total, session.env_steps, session.episode_metrics, console, log_every
        )
    try:
        if display:
            display.__enter__()
        completed = _train(session, state, display, max_chunks, report)
    except KeyboardInterrupt:
        set_status(run_dir, "interrupted", updates=session.updates)
        raise
    except TrainingDiverged as err:
        set_status(run_dir, "failed", reason=str(err))
        raise
    except OSError as err:  # e.g. a full disk: recorded if the status file can be written
        try:
            set_status(run_dir, "failed", reason=f"{err.filename}: {err.strerror or err}")
        except OSError:
            pass
        raise
    finally:
        if display:
            display.__exit__(None, None, None)
        session.close()
    rows = session.csv_log.read()
    if not completed:
        set_status(run_dir, "interrupted", updates=session.updates)
        return RunResult(run_dir, session.updates, session.env_steps, rows, {})
    summary = finish(run_dir, cfg, rows, session.episode_metrics)
    set_status(run_dir, "finished", updates=session.updates)
    return RunResult(run_dir, session.updates, session.env_steps, rows, summary)
