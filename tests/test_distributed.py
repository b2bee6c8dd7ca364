"""Several processes joined by ``jax.distributed`` (two CPU processes on localhost, gloo):
settings from flags and environment variables, training that agrees with one process, one
set of logs, and checkpoints that restore in a single process on another device count.

The processes are ``tests/distributed_worker.py`` (one CPU device each, so the global mesh
has two devices, one per process). The single-process reference runs here, on one device.
Tolerance as in test_ppo_devices.py: the two halves' gradients are averaged, so results
agree to float32 rounding (rtol 1e-5, atol 1e-5 on the metrics and parameters).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
import yaml

from larvax import distributed
from larvax.training import loop
from larvax.training.checkpoint import Checkpointer
from larvax.training.runs import build

WORKER = Path(__file__).resolve().parent / "distributed_worker.py"
sys.path.insert(0, str(WORKER.parent))
from distributed_worker import loop_config, tiny_agent  # noqa: E402

RTOL, ATOL = 1e-5, 1e-5
VOLATILE = ("wall_time_s", "steps_per_s")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def run_processes(agent: str, out: Path, updates: int, count: int = 2, timeout: float = 400):
    """Start ``count`` worker processes and wait for all; a failure shows their output."""
    port = _free_port()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                agent,
                str(out),
                str(i),
                str(count),
                str(port),
                str(updates),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(count)
    ]
    outputs = []
    try:
        for p in procs:
            outputs.append(p.communicate(timeout=timeout)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    codes = [p.returncode for p in procs]
    assert codes == [0] * count, "\n".join(o[-3000:] for o in outputs)
    return outputs


def _rows_close(rows_a, rows_b):
    assert len(rows_a) == len(rows_b)
    for ra, rb in zip(rows_a, rows_b, strict=True):
        assert sorted(ra) == sorted(rb)
        for k in ra:
            if k in VOLATILE:
                continue
            a, b = float(ra[k]), float(rb[k])
            assert (np.isnan(a) and np.isnan(b)) or abs(a - b) <= ATOL + RTOL * abs(b), (k, a, b)


def _restore(run_dir: Path, num_devices: int):
    """``(agent, state, record)``: the newest checkpoint of ``run_dir`` restored in this
    process onto ``num_devices`` devices."""
    cfg = loop.validate(yaml.safe_load((run_dir / "config.yaml").read_text()))
    cfg["agent_config"]["num_devices"] = num_devices
    _, _, agent = build(cfg)
    ckpt = Checkpointer(run_dir / "checkpoints", keep=cfg["keep_checkpoints"])
    try:
        state, record = ckpt.restore(loop._abstract_state(agent, jax.random.key(cfg["seed"])))
    finally:
        ckpt.close()
    return agent, state, record


# ----------------------------------------------------------------------------- settings


def test_settings_from_flags_environment_and_auto():
    assert distributed.resolve(environ={}) is None
    assert distributed.resolve(auto=True, environ={}).auto
    c = distributed.resolve("10.0.0.1:1234", 4, 3, environ={})
    assert (c.coordinator, c.num_processes, c.process_id) == ("10.0.0.1:1234", 4, 3)
    env = dict(LARVAX_COORDINATOR="h:99", LARVAX_NUM_PROCESSES="2", LARVAX_PROCESS_ID="1")
    c = distributed.resolve(environ=env)
    assert (c.coordinator, c.num_processes, c.process_id) == ("h:99", 2, 1)
    # flags win over the environment
    assert distributed.resolve("a:1", 3, 0, environ=env).coordinator == "a:1"
    # launchers that started several tasks: JAX's cluster detection takes over
    assert distributed.launcher({"SLURM_STEP_NUM_TASKS": "2"}) == "slurm"
    assert distributed.launcher({"OMPI_COMM_WORLD_SIZE": "4"}) == "openmpi"
    assert distributed.launcher({"SLURM_STEP_NUM_TASKS": "1"}) is None
    assert distributed.launcher({}) is None
    assert distributed.start(environ={}) == 1  # nothing asked: one process, nothing joined


@pytest.mark.parametrize(
    "args, message",
    [
        (("h:1", 2, None), r"--process-id missing"),
        (("h", 2, 0), r"--coordinator 'h': expected HOST:PORT"),
        (("h:1", 2, 2), r"--process-id 2: allowed 0\.\.1"),
        (("h:1", 0, 0), r"--num-processes 0: allowed >= 1"),
    ],
)
def test_bad_settings_are_one_line_errors(args, message):
    with pytest.raises(distributed.DistributedError, match=message):
        distributed.resolve(*args, environ={})


# ----------------------------------------------------------------------------- two processes

UPDATES = 3


def _host(tree):
    return jax.tree.map(np.asarray, jax.device_get(tree))


@pytest.fixture(scope="module")
def ppo_processes(tmp_path_factory):
    """The tiny PPO agent trained in two processes (one device each) and, as the
    reference, in this process on one device."""
    out = tmp_path_factory.mktemp("ppo-processes")
    run_processes("ppo", out, UPDATES)
    agent = tiny_agent("ppo", 1)
    state, metrics = agent.train(agent.init(jax.random.key(0)), UPDATES)
    return out, _host(state.params), _host(metrics), agent


def test_two_processes_train_ppo_like_one(ppo_processes):
    out, params, metrics, _ = ppo_processes
    result = np.load(out / "result.npz")  # written by process 0 only
    for k, v in metrics.items():
        np.testing.assert_allclose(result[f"metric_{k}"], v, rtol=RTOL, atol=ATOL, err_msg=k)
    leaves = jax.tree.leaves(params)
    for i, v in enumerate(leaves):
        np.testing.assert_allclose(result[f"param_{i}"], v, rtol=RTOL, atol=ATOL)
    assert float(np.sum(metrics["episodes"])) > 0


@pytest.mark.parametrize("num_devices", [1, 2])
def test_two_process_checkpoint_restores_in_one_process(ppo_processes, num_devices):
    out, params, _, agent1 = ppo_processes
    agent = agent1 if num_devices == 1 else tiny_agent("ppo", num_devices)
    ckpt = Checkpointer(out / "ckpt", keep=2)
    try:
        state, record = ckpt.restore(loop._abstract_state(agent, jax.random.key(0)))
    finally:
        ckpt.close()
    assert record == {"updates": UPDATES} and int(state.update_count) == UPDATES
    assert state.observation.sharding.num_devices == num_devices
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(params), strict=True):
        np.testing.assert_allclose(np.asarray(a), b, rtol=RTOL, atol=ATOL)
    if num_devices == 1:  # the restored state trains on in this process (compiled already)
        _, metrics = agent.train(state, UPDATES)
        assert np.isfinite(np.asarray(metrics["loss"])).all()


# ----------------------------------------------------------------------------- training loop


def _loop_in_processes(agent: str, root: Path, updates: int):
    """The tiny loop run in two processes and, as the reference, in this one process: PPO
    on one device (its stream does not depend on the device count), R2D2 on two (each
    device samples the replay rows of its own actors, so its stream depends on the device
    count, not on the process count)."""
    run_processes(f"loop-{agent}", root / "two", updates=updates)
    cfg = loop_config(agent, updates)
    cfg["agent_config"]["num_devices"] = 1 if agent == "ppo" else 2
    one = loop.run(cfg, run_dir=root / "one" / "run", progress=False)
    return root / "two" / "run", one


@pytest.mark.slow
@pytest.mark.parametrize("agent", ["ppo", "r2d2"])
def test_loop_in_two_processes_writes_one_set_of_logs(tmp_path, agent):
    updates = 4 if agent == "ppo" else 8
    two_dir, one = _loop_in_processes(agent, tmp_path, updates)
    rows = loop.CSVLog(two_dir / "metrics.csv").read()
    assert len(rows) == updates // 2  # chunks of 2 updates: each row written once
    _rows_close(rows, one.rows)
    status = json.loads((two_dir / "run.json").read_text())
    assert status["status"] == "finished" and status["devices"] == 2
    assert len(list((two_dir / "tb").glob("events.out.tfevents.*"))) == 1
    names = sorted(p.name for p in two_dir.iterdir())
    assert names == sorted(one.run_dir.iterdir() and [p.name for p in one.run_dir.iterdir()])
    # its checkpoint restores in this single process (one device) with the same network
    _, state2, _ = _restore(two_dir, 1)
    _, state1, _ = _restore(one.run_dir, 1)
    assert int(state2.learner_steps if agent == "r2d2" else state2.update_count) > 0
    for a, b in zip(jax.tree.leaves(state2.params), jax.tree.leaves(state1.params), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=RTOL, atol=ATOL)


# ----------------------------------------------------------------------------- command line


def test_device_counts_that_do_not_split_the_batches_are_one_line_errors():
    from larvax.devices import DeviceError, num_devices_for

    ppo = {"agent": "ppo", "agent_config": {"num_envs": 3, "num_minibatches": 1}}
    with pytest.raises(DeviceError) as err:
        num_devices_for(ppo, 2, 1)
    assert str(err.value) == (
        "--devices 2: agent_config.num_envs=3 is not divisible by 2 devices; "
        "allowed: num_envs a multiple of 2 (e.g. 2 or 4)"
    )
    ppo = {"agent": "ppo", "agent_config": {"num_envs": 8, "num_minibatches": 4}}
    with pytest.raises(DeviceError, match=r"--devices 2 x 2 processes: .*num_minibatches=2 is"):
        num_devices_for(ppo, 2, 2)  # 4 devices, minibatches of 2 environments
    assert num_devices_for(ppo, 1, 2) == 2
    r2d2 = {"agent": "r2d2", "agent_config": {"num_envs": 8, "batch_size": 4}}
    with pytest.raises(DeviceError, match=r"batch_size=4 is not divisible by 8 devices.*8 or 16"):
        num_devices_for(r2d2, 8, 1)
    assert num_devices_for(r2d2, None, 1) is None  # the config decides


def test_train_command_reports_bad_process_and_device_flags(tmp_path, capsys):
    from larvax.cli import main

    assert main(["train", "--process-id", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("larvax: error: --coordinator, --num-processes missing")
    assert "\n" not in err
    args = ["train", "--preset", "ppo-repeat-previous-easy", "--run-dir", str(tmp_path / "r")]
    args += ["--set", "agent_config.num_envs=3", "--set", "agent_config.num_minibatches=1"]
    assert main([*args, "--devices", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (
        "larvax: error: --devices 2: agent_config.num_envs=3 is not divisible by 2 devices; "
        "allowed: num_envs a multiple of 2 (e.g. 2 or 4)"
    )
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_two_process_run_resumes_after_one_process_is_killed(tmp_path):
    """Process 1 is SIGKILLed right after the second checkpoint (the fault hook of
    test_faults.py); process 0 is stopped as a scheduler would stop the job; the run resumed
    by two new processes ends with the rows of an uninterrupted run."""
    updates, out = 8, tmp_path / "two"
    port = _free_port()
    procs = []
    for i in range(2):
        env = dict(os.environ, **({"LARVAX_TEST_KILL": "checkpoint-sums:2"} if i == 1 else {}))
        cmd = [
            sys.executable,
            str(WORKER),
            "loop-ppo",
            str(out),
            str(i),
            "2",
            str(port),
            str(updates),
        ]
        procs.append(
            subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        )
    try:
        assert procs[1].wait(timeout=400) == -signal.SIGKILL
        try:
            procs[0].wait(timeout=20)
        except subprocess.TimeoutExpired:
            procs[0].kill()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    run_dir = out / "run"
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"
    assert len(loop.CSVLog(run_dir / "metrics.csv").read()) < updates // 2
    run_processes("loop-ppo", out, updates=-1)  # both processes resume
    cfg = loop_config("ppo", updates)
    cfg["agent_config"]["num_devices"] = 1
    one = loop.run(cfg, run_dir=tmp_path / "one" / "run", progress=False)
    rows = loop.CSVLog(run_dir / "metrics.csv").read()
    assert [int(r["update"]) for r in rows] == [2, 4, 6, 8]
    _rows_close(rows, one.rows)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"


@pytest.mark.slow
def test_train_command_joins_the_processes_that_srun_started(tmp_path):
    """Two ``larvax train`` processes with the variables ``srun`` sets (on localhost): JAX's
    SLURM detection joins them, the mesh spans both, and only process 0 prints and logs."""
    run_dir = tmp_path / "run"
    procs, job = [], str(_free_port())  # JAX derives the coordinator port from the job id
    for i in range(2):
        env = dict(os.environ, SLURM_JOB_ID=job, SLURM_STEP_NODELIST="localhost")
        env.update(SLURM_NTASKS="2", SLURM_STEP_NUM_TASKS="2", SLURM_PROCID=str(i))
        env.update(SLURM_LOCALID=str(i))
        cmd = [sys.executable, "-m", "larvax.cli", "train", "--preset", "ppo-repeat-previous-easy"]
        cmd += ["--steps", "4096", "--set", "chunk_updates=1", "--run-dir", str(run_dir)]
        procs.append(
            subprocess.Popen(
                cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        )
    outs = [p.communicate(timeout=400)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][-2000:] + outs[1][-2000:]
    assert "done" in outs[0] and "done" not in outs[1] and "larvax" not in outs[1]
    status = json.loads((run_dir / "run.json").read_text())
    assert status["status"] == "finished" and status["devices"] == 2
    assert [int(r["update"]) for r in loop.CSVLog(run_dir / "metrics.csv").read()] == [1, 2]
