"""Fault injection: damaged or missing run files, bad input and kills at the worst moments.

Each case asserts the exact one-line error, or the announced repair/fallback and the metric
rows that follow it (always those of an uninterrupted run: nothing lost, nothing doubled).
The table of cases is docs/faults.md. Runs use the tiny dummy agent of loop_helpers.py.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from larvax.cli import build_parser, main  # noqa: E402
from larvax.training import config as C  # noqa: E402
from larvax.training.logging import CSVLog  # noqa: E402
from larvax.training.loop import RunDirError, run  # noqa: E402
from loop_helpers import dummy_config  # noqa: E402

TIMING = ("wall_time_s", "steps_per_s")
HELPER = str(Path(__file__).parent / "loop_helpers.py")


def strip_timing(rows):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def csv_rows(d: Path) -> list[dict]:
    if not (d / "metrics.csv").exists():
        return []
    with (d / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def steps_of(d: Path) -> list[int]:
    return sorted(int(p.name) for p in (d / "checkpoints").iterdir() if p.name.isdigit())


def damage(step_dir: Path) -> None:
    """Overwrite every data file of a checkpoint in place with random bytes (same size)."""
    rng = np.random.default_rng(0)
    for p in (step_dir / "state").rglob("*"):
        if p.is_file() and p.stat().st_size > 0:
            p.write_bytes(rng.integers(0, 256, p.stat().st_size, dtype=np.uint8).tobytes())


class Notes:
    """A console stand-in that records the one-line notes of ``run``."""

    def __init__(self):
        from rich.console import Console

        self.file = io.StringIO()
        self.console = Console(file=self.file, width=80)

    @property
    def lines(self) -> list[str]:
        return [ln for ln in self.file.getvalue().splitlines() if ln.startswith("larvax: ")]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Rows of uninterrupted dummy runs with chunks of 2 and of 1 update."""
    base = tmp_path_factory.mktemp("reference")
    two = run(dummy_config(), run_dir=base / "two", progress=False)
    one = run(dummy_config(chunk_updates=1), run_dir=base / "one", progress=False)
    return {2: strip_timing(two.rows), 1: strip_timing(one.rows)}


# ----------------------------------------------------------------------------- checkpoints


def test_damaged_latest_checkpoint_falls_back_to_the_previous_one(reference, tmp_path):
    d = tmp_path / "run"
    run(dummy_config(), run_dir=d, progress=False, max_chunks=3)
    assert steps_of(d) == [4, 6]  # keep_checkpoints=2
    damage(d / "checkpoints" / "6")
    notes = Notes()
    result = run(None, run_dir=d, resume=True, progress=False, console=notes.console)
    ckpt = d / "checkpoints"
    assert notes.lines[0].startswith(
        f"larvax: checkpoint 6 in {ckpt} is damaged (file state/"
    ) and notes.lines[0].endswith(
        f"does not match its sha256 in larvax.sha256); moved to "
        f"{d / 'damaged_checkpoints' / '6'}, falling back to the previous one"
    )
    assert notes.lines[1] == "larvax: resuming from checkpoint 4, the newest good one"
    assert strip_timing(result.rows) == reference[2]  # chunk 3 re-run once, rows 4.. follow
    assert (d / "damaged_checkpoints" / "6").is_dir()


def test_unverified_unreadable_checkpoint_falls_back_without_tracebacks(reference, tmp_path, capfd):
    """A checkpoint without its checksum file (an older larvax) whose data orbax cannot read:
    damaged too. tensorstore's threads would print "Event loop is closed" tracebacks."""
    d = tmp_path / "run"
    run(dummy_config(), run_dir=d, progress=False, max_chunks=2)
    (d / "checkpoints" / "4" / "larvax.sha256").unlink()
    rng = np.random.default_rng(1)
    for p in (d / "checkpoints" / "4" / "state").rglob("*"):
        if p.is_file() and p.parent.name == "d":  # the array data, not the metadata
            p.write_bytes(rng.integers(0, 256, p.stat().st_size, dtype=np.uint8).tobytes())
    notes = Notes()
    result = run(None, run_dir=d, resume=True, progress=False, console=notes.console)
    assert notes.lines[0].startswith(
        f"larvax: checkpoint 4 in {d / 'checkpoints'} is damaged (unreadable and without "
        "larvax.sha256: "
    ) and notes.lines[0].endswith("falling back to the previous one")
    assert strip_timing(result.rows) == reference[2]
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Event loop" not in err


def test_no_good_checkpoint_left_is_a_one_line_error(tmp_path, capfd):
    d = tmp_path / "run"
    run(dummy_config(), run_dir=d, progress=False, max_chunks=1)
    damage(d / "checkpoints" / "2")
    code = main(["train", "--resume", str(d), "--no-progress"])
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1] == (
        f"larvax: error: no good checkpoint left in {d / 'checkpoints'}: each one is damaged "
        f"or does not match this run (moved to {d / 'damaged_checkpoints'}: [2]); start a new "
        "run, or restore the checkpoints from a backup"
    )
    assert not any("Traceback" in line for line in err)
    assert len(csv_rows(d)) == 1  # the record is left as it was


def test_load_model_refuses_a_damaged_state(tmp_path):
    from larvax.networks.registry import create
    from larvax.networks.serialization import load_model, save_model

    model = create("recurrent_q", obs_dim=3, num_actions=2, torso="gru", seed=0)
    d = save_model(model, tmp_path / "model")
    load_model(d)  # intact: loads
    damage(d)
    with pytest.raises(ValueError, match=r"state/\S+ does not match its sha256 in metadata.json"):
        load_model(d)


# ----------------------------------------------------------------------------- run directory


def test_resume_refuses_rows_without_checkpoints(tmp_path):
    d = tmp_path / "run"
    run(dummy_config(), run_dir=d, progress=False, max_chunks=2)
    shutil.rmtree(d / "checkpoints")
    with pytest.raises(RunDirError) as err:
        run(None, run_dir=d, resume=True, progress=False)
    assert str(err.value) == (
        f"{d}/checkpoints is missing but metrics.csv has 2 rows: nothing to continue them "
        f"from; restore the checkpoints, or start a new run (larvax train --config "
        f"{d}/config.yaml --run-dir NEW_DIR)"
    )
    assert len(csv_rows(d)) == 2  # untouched


def test_resume_refuses_a_missing_metrics_file(tmp_path):
    d = tmp_path / "run"
    run(dummy_config(), run_dir=d, progress=False, max_chunks=2)
    (d / "metrics.csv").unlink()
    with pytest.raises(RunDirError) as err:
        run(None, run_dir=d, resume=True, progress=False)
    assert str(err.value) == (
        f"{d}/metrics.csv is missing but checkpoint 4 was saved after 2 rows (the file was "
        "deleted or cut); restore metrics.csv to resume, or start a new run (larvax train "
        f"--config {d}/config.yaml --run-dir NEW_DIR)"
    )
    assert not (d / "summary.json").exists() and not (d / "metrics.csv").exists()


def test_resume_refuses_an_edited_config(tmp_path):
    d = tmp_path / "run"
    run(dummy_config(), run_dir=d, progress=False, max_chunks=1)
    cfg = yaml.safe_load((d / "config.yaml").read_text())
    cfg["seed"] = 7
    (d / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    with pytest.raises(RunDirError, match=r"config.yaml was edited after the run started"):
        run(None, run_dir=d, resume=True, progress=False)


def test_resume_without_any_checkpoint_restarts_only_over_one_row(reference, tmp_path):
    d = tmp_path / "run"
    run(dummy_config(), run_dir=d, progress=False, max_chunks=1)
    shutil.rmtree(d / "checkpoints" / "2")  # as if killed while writing the first one
    notes = Notes()
    result = run(None, run_dir=d, resume=True, progress=False, console=notes.console)
    assert notes.lines[0] == (
        "larvax: no checkpoint was finished before the run stopped: starting again from "
        "update 0 (dropping the unfinished chunk's row)"
    )
    assert strip_timing(result.rows) == reference[2]
    # two rows and no checkpoint: the checkpoints were deleted, not never written
    d2 = tmp_path / "run2"
    run(dummy_config(), run_dir=d2, progress=False, max_chunks=2)
    for step in steps_of(d2):
        shutil.rmtree(d2 / "checkpoints" / str(step))
    with pytest.raises(RunDirError, match="checkpoints holds no checkpoint but metrics.csv has 2"):
        run(None, run_dir=d2, resume=True, progress=False)


def test_file_system_failures_are_one_line_errors(tmp_path, capfd):
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(yaml.safe_dump(dummy_config()))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    target = blocker / "run"
    code = main(["train", "--config", str(cfg_file), "--run-dir", str(target), "--no-progress"])
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1] == f"larvax: error: cannot create run directory {str(target)!r}: Not a directory"
    assert not any("Traceback" in line for line in err)
    with pytest.raises(RunDirError, match=r"run directory '.*/file' is a file, not a directory"):
        run(dummy_config(), run_dir=blocker, progress=False)
    if Path("/sys").is_dir():  # a path no one may create (root included)
        with pytest.raises(RunDirError) as err:
            run(dummy_config(), run_dir="/sys/larvax-test/run", progress=False)
        assert str(err.value).startswith("cannot create run directory '/sys/larvax-test/run': ")


def test_file_system_failure_during_training_is_one_line(tmp_path, capfd, monkeypatch):
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(yaml.safe_dump(dummy_config()))
    d = tmp_path / "run"

    def disk_full(self, row):
        raise OSError(28, "No space left on device", str(self.path))

    monkeypatch.setattr(CSVLog, "append", disk_full)
    code = main(["train", "--config", str(cfg_file), "--run-dir", str(d), "--no-progress"])
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[-1] == f"larvax: error: {d / 'metrics.csv'}: No space left on device"
    assert not any("Traceback" in line for line in err)
    status = json.loads((d / "run.json").read_text())
    assert status["status"] == "failed"
    assert status["reason"] == f"{d / 'metrics.csv'}: No space left on device"


def test_read_only_run_directory_is_refused(tmp_path, monkeypatch):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    if os.geteuid() == 0:  # root writes to read-only directories: the kernel's answer for others
        real_write_text = Path.write_text

        def write_text(self, *args, **kwargs):
            if self.parent == d:
                raise PermissionError(13, "Permission denied", str(self))
            return real_write_text(self, *args, **kwargs)

        monkeypatch.setattr(Path, "write_text", write_text)
    try:
        with pytest.raises(RunDirError, match=r"is not writable: Permission denied"):
            run(dummy_config(), run_dir=d, progress=False)
    finally:
        d.chmod(0o700)


# ----------------------------------------------------------------------------- kills


@pytest.mark.parametrize(
    "point, resumed_from",
    [("csv-row:3", 2), ("checkpoint-data:3", 2), ("checkpoint-sums:3", 3)],
)
def test_sigkill_at_the_worst_moment_loses_at_most_the_unfinished_chunk(
    reference, tmp_path, point, resumed_from
):
    """The test hook LARVAX_TEST_KILL (larvax/training/fault_hooks.py) SIGKILLs a real
    `larvax train` half-way through the 3rd metrics row, inside orbax's 3rd save (data
    written, not yet renamed) or between that save and its checksum file."""
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(yaml.safe_dump(dummy_config(chunk_updates=1)))
    d = tmp_path / "run"
    env = dict(os.environ, JAX_PLATFORMS="cpu", LARVAX_TEST_KILL=point)
    cmd = [sys.executable, HELPER, "train", "--config", str(cfg_file), "--run-dir", str(d)]
    proc = subprocess.run(cmd + ["--no-progress"], env=env, capture_output=True, timeout=300)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    text = (d / "metrics.csv").read_text()
    complete = CSVLog(d / "metrics.csv").read()  # without a cut last line
    assert len(complete) == (2 if point.startswith("csv") else 3)
    if point.startswith("csv"):
        assert not text.endswith("\n")  # half a row on disk
    notes = Notes()
    result = run(None, run_dir=d, resume=True, progress=False, console=notes.console)
    assert strip_timing(result.rows) == reference[1]  # every row exactly once
    if point.startswith("checkpoint-data"):
        assert notes.lines[0] == (
            "larvax: metrics.csv: dropping 1 row(s) written after checkpoint 2; the chunks "
            "are run again"
        )
    if point.startswith("checkpoint-sums"):
        assert notes.lines[0] == (
            "larvax: checkpoint 3 has no larvax.sha256 (saved by an older larvax or "
            "interrupted right after saving): restored unverified"
        )
    assert f"resuming at {resumed_from * 32}" in notes.file.getvalue()


# ----------------------------------------------------------------------------- bad input


def test_network_that_does_not_fit_the_environment_is_refused():
    from larvax.training.loop import build

    cfg = C.resolve("ppo-repeat-first-easy", overrides=["network.num_actions=5"])
    with pytest.raises(C.ConfigError) as err:
        build(cfg)
    assert str(err.value) == (
        "network.num_actions=5 does not match the environment: its action space has 4 "
        "actions; remove network.num_actions (it is filled from the environment) or set it to 4"
    )
    cfg = C.resolve("ppo-repeat-first-easy", overrides=["network.obs_dim=7"])
    with pytest.raises(C.ConfigError, match=r"network.obs_dim=7 does not match the environment"):
        build(cfg)
    cfg = C.resolve(overrides=["network.num_actions=5"])  # Simfish: 21 bouts
    with pytest.raises(C.ConfigError, match=r"its action space has 21 actions"):
        build(cfg)


def test_act_refuses_observations_of_another_shape():
    import jax
    import jax.numpy as jnp

    from larvax.training.loop import build

    _, _, agent = build(C.resolve("ppo-repeat-first-easy"))  # observations: 4 values
    for obs in (jnp.zeros((2, 5)), jnp.zeros(4)):  # wrong size; not batch-major
        with pytest.raises(ValueError) as err:
            agent.act(None, obs, None, jax.random.key(0))
        assert str(err.value) == (
            f"ppo.act: observation of shape {obs.shape}; expected (batch, 4) (batch-major, "
            "one row per environment)"
        )


def test_too_many_cpu_devices_is_a_one_line_error(capfd):
    from larvax.devices import DeviceError, use_cpu_devices

    too_many = (os.cpu_count() or 1) + 1
    assert main(["train", "--cpu-devices", str(too_many)]) == 2
    assert capfd.readouterr().err.strip().splitlines() == [
        f"larvax: error: --cpu-devices={too_many} is more than this machine's "
        f"{os.cpu_count()} CPU cores; allowed: 1..{os.cpu_count()}"
    ]
    # conftest started JAX with 2 CPU devices: another count cannot take effect any more
    with pytest.raises(DeviceError, match="JAX already started with 2 CPU device"):
        use_cpu_devices(1, cores=4)


def test_unused_devices_are_announced():
    from types import SimpleNamespace

    from larvax.training.console import banner

    lines = []
    agent = SimpleNamespace(env_steps_per_update=32, num_devices=1)  # conftest: 2 devices
    cfg = {"total_env_steps": 160, "expected_steps_per_s": 64.0}
    banner(cfg, agent, 2, 6, 0, 0, lines.append)
    assert lines == [
        "budget 192 env steps (6 updates of 32 in chunks of 2, 160 requested, rounded up to "
        "whole chunks); about 3 s at the preset's measured 64 steps/s, plus compilation",
        "the agent uses 1 of the 2 JAX devices (its num_devices setting: 'auto' takes the "
        "most that divide num_envs and batch_size)",
    ]


def test_actions_outside_the_action_space():
    import jax

    from larvax.envs import make
    from larvax.envs.adapters import to_gymnasium
    from larvax.envs.core import InvalidActionError
    from larvax.envs.wrappers import Mirror

    simfish, _ = make("simfish")
    for bad in (21, 1000, -1, -21):  # eager: refused before any work (no state needed)
        with pytest.raises(InvalidActionError) as err:
            simfish.step(jax.random.key(0), None, bad)
        assert str(err.value) == (
            f"Simfish.step: action {bad} is outside the action space; allowed: "
            "Discrete(21): an integer 0..20"
        )
    env, params = make("RepeatFirstEasy")
    state, _ = env.reset(jax.random.key(0), params)
    with pytest.raises(InvalidActionError, match=r"action 4 is outside the action space"):
        env.step(jax.random.key(1), state, 4, params)
    with pytest.raises(InvalidActionError, match=r"action 1.0 is outside"):
        env.step(jax.random.key(1), state, 1.0, params)
    # under jit nothing can raise: the episode ends with reward 0 (never a remapped action)
    step = jax.jit(env.step)
    scale = 1.0 / (52 - 1)
    for action, ended, reward in ((0, False, None), (4, True, 0.0), (-1, True, 0.0)):
        _, ts = step(jax.random.key(1), state, action, params)
        assert bool(ts.terminated) == ended
        if reward is not None:
            assert float(ts.reward) == reward
        else:
            assert abs(float(ts.reward)) == pytest.approx(scale)
    genv = to_gymnasium(env, params, seed=0)
    genv.reset()
    with pytest.raises(InvalidActionError, match=r"action 7 is outside the action space"):
        genv.step(7)
    cart, cart_params = make("StatelessCartPoleEasy")
    mstate, _ = Mirror(cart).reset(jax.random.key(0), cart_params)
    with pytest.raises(InvalidActionError, match=r"action 2 is outside"):  # not clamped to 1
        Mirror(cart).step(jax.random.key(0), mstate, 2, cart_params)


@pytest.mark.slow
def test_simfish_invalid_action_under_jit_ends_the_episode_with_a_flag():
    import jax

    from larvax.envs import make

    env, params = make("simfish", preset="stage1", prey_num=5)
    state, ts0 = jax.jit(env.reset)(jax.random.key(0), params)
    assert not bool(ts0.info["invalid_action"])
    step = jax.jit(env.step)
    _, ok = step(jax.random.key(1), state, 3, params)
    _, bad = step(jax.random.key(1), state, 21, params)
    assert not bool(ok.info["invalid_action"]) and not bool(ok.terminated)
    assert bool(bad.info["invalid_action"]) and bool(bad.terminated)
    assert bool(bad.info["terminated"]) and float(bad.reward) == 0.0


def test_config_file_without_preset_merges_over_the_default_preset(tmp_path):
    f = tmp_path / "short.yaml"
    f.write_text("total_env_steps: 5000\nagent_config: {batch_size: 16}\n")
    cfg = C.resolve(config_file=f)
    default = C.resolve()
    assert cfg["agent"] == "r2d2" and cfg["env"] == default["env"]
    assert cfg["agent_config"] == {**default["agent_config"], "batch_size": 16}
    assert cfg["total_env_steps"] == 5000 and cfg["name"] == "short"
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(dummy_config()))
    cfg = C.resolve(config_file=other)  # another agent/env/network: sections replaced
    assert cfg["agent_config"] == {} and cfg["env"] == {"name": "count"}
    assert cfg["description"] == "" and cfg["expected_steps_per_s"] == 0.0
    typo = tmp_path / "typo.yaml"
    typo.write_text("agnet: ppo\n")
    with pytest.raises(C.ConfigError) as err:
        C.resolve(config_file=typo)
    assert str(err.value) == (
        "unknown config key(s) ['agnet'] (did you mean 'agent'?); allowed: "
        + ", ".join(C.TOP_LEVEL)
    )


def test_summary_is_strict_json(tmp_path):
    from larvax.training.rundir import write_json_atomic

    path = tmp_path / "s.json"
    write_json_atomic(path, {"a": float("nan"), "b": [1.0, float("inf")], "c": np.float32(2)})

    def refuse(constant):
        raise AssertionError(f"bare {constant} in JSON")

    assert json.loads(path.read_text(), parse_constant=refuse) == {
        "a": None,
        "b": [1.0, None],
        "c": 2.0,
    }


def test_train_help_shows_defaults_rounding_and_config(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "rounded up to whole chunks of chunk_updates updates" in text
    assert "merged over --preset, or over the default preset without one" in text
    assert "default: r2d2-simfish" in text and "default: runs/<preset>-<date>-<time>" in text
    assert "lines every 30 s otherwise" in text


# ----------------------------------------------------------------------------- logs, banner, plots


def test_plain_progress_lines_at_a_steady_rate():
    from larvax.envs.core import EpisodeMetric
    from larvax.training.logging import PlainProgress

    now = [100.0]
    out = io.StringIO()
    metrics = (EpisodeMetric("caught", "caught", label="prey"),)
    p = PlainProgress(384, 0, out, metrics, every_s=10.0, clock=lambda: now[0])
    row = {"env_steps": 64, "steps_per_s": 64.0, "episode_return": 1.5, "caught": 2.0,
           "loss": 0.25}  # fmt: skip
    for t, steps in ((101.0, 64), (105.0, 128), (111.0, 192), (112.0, 384)):
        now[0] = t
        p.update({**row, "env_steps": steps})
    assert out.getvalue().splitlines() == [
        "train 64/384 steps (17%)  64 steps/s  return 1.50  prey 2.00  loss 0.2500  "
        "elapsed 0:00:01  ETA 0:00:05",  # 64 steps in 1 s: 320 left at 64/s
        "train 192/384 steps (50%)  64 steps/s  return 1.50  prey 2.00  loss 0.2500  "
        "elapsed 0:00:11  ETA 0:00:11",  # 105 s was within 10 s of the last line
        "train 384/384 steps (100%)  64 steps/s  return 1.50  prey 2.00  loss 0.2500  "
        "elapsed 0:00:12  ETA 0:00:00",  # the end is always shown
    ]


def test_run_without_a_terminal_logs_plain_lines_and_states_the_budget(tmp_path):
    notes = Notes()  # a console on a file: not a terminal
    cfg = dummy_config(total_env_steps=32 * 5, checkpoint_every_seconds=3600)
    run(cfg, run_dir=tmp_path / "run", console=notes.console)
    text = notes.file.getvalue()
    assert notes.lines[0] == (
        "larvax: budget 192 env steps (6 updates of 32 in chunks of 2, 160 requested, rounded "
        "up to whole chunks); no measured rate for this config (see the progress ETA), plus "
        "compilation"
    )
    assert "train 64/192 steps (33%)" in text and "train 192/192 steps (100%)" in text
    # the first checkpoint follows the first chunk, the next one the end (interval: 1 h)
    assert steps_of(tmp_path / "run") == [2, 6]


def test_progress_display_is_readable_at_80_columns():
    from rich.console import Console

    from larvax.envs.core import EpisodeMetric
    from larvax.training.logging import ProgressDisplay

    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=True, color_system=None)
    metrics = (EpisodeMetric("caught", "caught", label="prey"),)
    display = ProgressDisplay(1_000_960, 0, console, metrics)
    display.update({"env_steps": 204_800, "steps_per_s": 3345.0, "episode_return": 101.25,
                    "caught": 8.5, "loss": 0.0123})  # fmt: skip
    console.print(display._progress.get_renderable())
    lines = [ln.rstrip() for ln in out.getvalue().splitlines() if ln.strip()]
    assert all(len(ln) <= 80 for ln in lines)
    assert "…" not in out.getvalue()
    assert "204,800/1,000,960 steps" in lines[0] and "ETA" in lines[0]
    assert lines[1] == "3,345 steps/s  return 101.25  prey 8.50  loss 0.0123"


def test_learning_curve_says_no_episodes_and_fits_its_title():
    from larvax.training.plots import NO_EPISODES, learning_curve_figure

    nan = float("nan")
    rows = [{"env_steps": 64 * k, "episode_return": nan, "loss": 0.5} for k in (1, 2)]
    title = "R2D2 on Simfish, a prey-rich dish (500 px, 500 prey, +12 per prey, free walls, " * 2
    fig = learning_curve_figure(rows, title, ("episode_return", "loss"))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == [NO_EPISODES]
    renderer = fig.canvas.get_renderer()
    box = fig.axes[0].title.get_window_extent(renderer)
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width and box.y1 <= fig.bbox.height
