"""Evaluation: HDF5 episode logs (round trip, the env's real trajectory, the network's carry),
atomic writes under SIGKILL, metrics, and ``larvax eval``'s one-line errors.

One tiny Simfish world (400 px, 6 prey, an early predator, 24 steps) and an untrained
``r2d2_simfish`` agent (its network is what matters, not its skill); one evaluation of 3
episodes (batch 2: the second batch has a padding lane) is shared by the module.
"""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import textwrap
import time
from types import SimpleNamespace

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from larvax.agents.r2d2 import make_agent
from larvax.cli import main
from larvax.envs.simfish import Simfish, SimfishParams
from larvax.evaluation.hdf5 import (
    EpisodeWriter,
    env_variables,
    read_episode,
    regenerate_sediment,
    write_atomic,
    write_episode,
)
from larvax.evaluation.loop import evaluate
from larvax.evaluation.metrics import episode_metrics, summarize, write_metrics_csv

PARAMS = SimfishParams(
    arena_width=400,
    arena_height=400,
    prey_num=6,
    max_steps=24,
    predator_immunity_steps=1,
    predator_epoch_num=1,
    predator_epoch_duration=10,
    predator_probability_per_epoch_step=0.5,
    predator_wall_margin=20.0,
    predator_distance_from_fish=120.0,
)
CFG = dict(num_devices=1, burn_in=1, trace_length=4, period=2, n_step=2, batch_size=2,
           num_envs=2, replay_capacity=16, min_replay_size=8, mirror=False)  # fmt: skip
EPISODES = 3


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    env = Simfish(PARAMS, num_textures=2, texture_seed=3)
    agent = make_agent(env, PARAMS, {"name": "r2d2_simfish", "seed": 1}, CFG)
    # the network's parameters are all evaluation needs (agent.init would also reset the
    # actors' environments and allocate the replay)
    state = SimpleNamespace(params=agent._params0, rest=agent._rest0)
    out = tmp_path_factory.mktemp("eval")
    rows = []
    writer = EpisodeWriter(
        out,
        attrs={"world": "test"},
        env_vars=env_variables(PARAMS, {"sediment_texture_seed": 3, "sediment_num_textures": 2}),
        on_episode=lambda n, d: rows.append(episode_metrics(n, d)),
    )
    for records in evaluate(agent, state, env, PARAMS, EPISODES, 0.3, batch=2, chunk=10, seed=5):
        writer.add(records)
    logs = {n: read_episode(out / f"logs_{n}.hdf5") for n in range(1, EPISODES + 1)}
    return env, agent, state, out, logs, rows


def test_one_file_per_episode_and_no_leftovers(setup):
    _, _, _, out, logs, rows = setup
    assert sorted(p.name for p in out.iterdir()) == [f"logs_{n}.hdf5" for n in (1, 2, 3)]
    assert [r["episode"] for r in rows] == [1, 2, 3]
    total = sum(int(log["episode_length"]) for log in logs.values())
    assert max(int(log["actor_steps"]) for log in logs.values()) == total


def test_datasets_have_the_documented_shapes_and_dtypes(setup):
    *_, logs, _ = setup
    for log in logs.values():
        t = int(log["episode_length"])
        assert 1 <= t <= PARAMS.max_steps
        per_step = {
            "fish_x": ((t + 1,), np.float32),
            "fish_y": ((t + 1,), np.float32),
            "fish_angle": ((t + 1,), np.float32),
            "predator_x": ((t + 1,), np.float32),
            "predator_y": ((t + 1,), np.float32),
            "event_consumed_prey": ((t + 1,), np.bool_),
            "event_survived_predator": ((t + 1,), np.bool_),
            "event_captured_by_predator": ((t + 1,), np.bool_),
            "action": ((t + 1,), np.int32),
            "reward": ((t + 1,), np.float32),
            "vis_observation": ((t + 1, 139, 3, 2), np.float32),
            "internal_state": ((t + 1, 3), np.float32),
            "reward_energy": ((t + 1,), np.float32),
            "actor_state": ((t, 64), np.float32),
            "actor_cell_state": ((t, 64), np.float32),
            "q_values": ((t, 21), np.float32),
            "step_keys": ((t + 1, 2), np.uint32),
            "salt_location": ((1, 2), np.float32),
        }
        for name, (shape, dtype) in per_step.items():
            assert log[name].shape == shape, name
            assert log[name].dtype == dtype, name
        assert log["prey_x"].shape == (t + 1, PARAMS.prey_num)  # every slot held a prey
        assert log["action"][0] == -1 and log["reward"][0] == 0.0
        assert np.all((log["action"][1:] >= 0) & (log["action"][1:] < 21))
        assert log["episode_return"].dtype == np.float64
        assert int(log["actor_episodes"]) in (1, 2, 3) and log["actor_steps"] >= t
        np.testing.assert_allclose(log["episode_return"], log["reward"].sum(), rtol=1e-6)
        comps = sum(
            log[f"reward_{c}"] for c in ("energy", "consumption", "salt", "predator", "wall")
        )
        np.testing.assert_allclose(comps, log["reward"], atol=1e-5)
        np.testing.assert_array_equal(log["energy"], log["internal_state"][:, 1])


def test_env_variables_hold_every_parameter(setup):
    *_, logs, _ = setup
    ev = logs[1]["env_variables"]
    for f in dataclasses.fields(SimfishParams):
        value = getattr(PARAMS, f.name)
        if isinstance(value, tuple) and value:
            np.testing.assert_array_equal(ev[f.name], np.asarray(value))
        elif value is None or value == ():
            assert str(ev[f.name]) in ("None", "()"), f.name
        else:
            assert ev[f.name] == value, f.name
    # the reference's names, as its analysis scripts read them
    assert ev["max_sim_steps_per_episode"] == PARAMS.max_steps
    assert ev["arena_dark_fraction"] == PARAMS.dark_fraction and ev["arena_width"] == 400
    assert ev["arena_light_gradient"] == 20 and not ev["test_sensory_system"]


def test_write_read_round_trip_by_hand(tmp_path):
    data = {
        "fish_x": np.array([1.5, 2.5, np.nan], np.float32),
        "action": np.array([-1, 3, 20], np.int32),
        "vis_observation": np.arange(2 * 139 * 3 * 2, dtype=np.float32).reshape(2, 139, 3, 2),
        "episode_length": np.int64(2),
        "carry/layer_0": np.ones((2, 5), np.float32),
    }
    path = write_episode(tmp_path / "logs_1.hdf5", data, {"world": "w"}, {"prey_num": 3})
    with h5py.File(path, "r") as f:  # plain h5py, as an analysis script reads it
        for name, value in data.items():
            np.testing.assert_array_equal(f[name][()], value)
            assert f[name].dtype == np.asarray(value).dtype
        assert f.attrs["world"] == "w" and f["env_variables"].attrs["prey_num"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["logs_1.hdf5"]


def _wrap(data):
    return jax.random.wrap_key_data(jnp.asarray(data, jnp.uint32))


def _rows_of(state, ts):
    """The logged quantities of a state computed here by hand (not by the writer)."""
    alive = np.asarray(state.prey_alive)
    pres = bool(state.predator_present)
    return {
        "fish_x": float(state.fish_xy[0]),
        "fish_y": float(state.fish_xy[1]),
        "fish_angle": float(state.fish_angle),
        "prey_x": np.where(alive, np.asarray(state.prey_xy[:, 0]), np.nan),
        "prey_y": np.where(alive, np.asarray(state.prey_xy[:, 1]), np.nan),
        "predator_x": float(state.predator_xy[0]) if pres else 0.0,
        "predator_y": float(state.predator_xy[1]) if pres else 0.0,
        "vis_observation": np.asarray(ts.observation["visual"]),
        "internal_state": np.asarray(ts.observation["internal"]),
        "reward": float(ts.reward),
        "event_consumed_prey": bool(ts.info["prey_caught"] > 0),
        "event_survived_predator": bool(ts.info["attack_survived"]),
        "event_captured_by_predator": bool(ts.info["predator_hit"]),
    }


def test_log_equals_the_resimulated_trajectory(setup):
    """Re-run reset and step from the recorded keys and actions (one jitted scan per
    episode, no evaluation code involved); every dataset matches, row by row."""
    env, *_, logs, _ = setup
    n = PARAMS.max_steps

    @jax.jit
    def resimulate(reset_key, step_keys, actions):
        state, ts = env.reset(_wrap(reset_key))

        def body(state, x):
            key, action = x
            state, ts = env.step(_wrap(key), state, action)
            return state, (state, ts)

        _, (states, steps) = jax.lax.scan(body, state, (step_keys, actions))
        return (state, ts), (states, steps)

    for log in logs.values():
        t_end = int(log["episode_length"])
        keys = np.zeros((n, 2), np.uint32)
        keys[:t_end] = log["step_keys"][1:]
        actions = np.zeros(n, np.int32)
        actions[:t_end] = log["action"][1:]
        first, (states, steps) = jax.device_get(resimulate(log["reset_key"], keys, actions))
        for t in range(t_end + 1):
            if t == 0:
                state, ts = first
            else:
                state, ts = jax.tree.map(lambda x, i=t - 1: x[i], (states, steps))
            for name, want in _rows_of(state, ts).items():
                got = log[name][t]
                if name.startswith("prey_"):
                    got = np.concatenate([got, np.full(len(want) - len(got), np.nan)])
                np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-4, err_msg=f"{name}[{t}]")
        assert bool(ts.terminated | ts.truncated), "the log ends where the episode ends"
        assert int(log["end_cause"]) == int(ts.info["end_cause"])
        assert int(log["sediment_texture_index"]) == int(state.sediment.index)
    assert any(np.any(log["predator_x"] != 0) for log in logs.values()), "a predator appeared"


def test_actor_state_equals_the_carry_of_replayed_observations(setup):
    """Feed the recorded observations, previous actions and rewards one by one through the
    network from a zero carry: h, c and Q equal actor_state, actor_cell_state, q_values."""
    _, agent, state, *_ = setup
    logs = setup[4]
    step = jax.jit(
        lambda o, pa, pr, st, c: agent.actor.q_step(state.params, state.rest, o, pa, pr, st, c)
    )
    for log in logs.values():
        carry = agent.initialize_carry(1)
        for t in range(int(log["episode_length"])):
            obs = {
                "visual": jnp.asarray(log["vis_observation"][t][None]),
                "internal": jnp.asarray(log["internal_state"][t][None]),
            }
            prev_action = jnp.asarray([log["action"][t] if t > 0 else -1], jnp.int32)
            prev_reward = jnp.asarray([log["reward"][t]], jnp.float32)
            carry, q = step(obs, prev_action, prev_reward, jnp.asarray([t == 0]), carry)
            c, h = carry
            np.testing.assert_allclose(log["actor_state"][t], h[0], rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(log["actor_cell_state"][t], c[0], rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(log["q_values"][t], q[0], rtol=1e-5, atol=1e-5)
            assert log["greedy_action"][t] == int(jnp.argmax(q[0]))


def test_sediment_is_regenerated_exactly(setup):
    env, *_, out, logs, _ = setup
    image = regenerate_sediment(out / "logs_2.hdf5")
    log = logs[2]
    pool = np.asarray(env.sediment_textures, np.float32)[int(log["sediment_texture_index"])]
    sx, sy = (int(v) for v in log["sediment_shift_xy"])
    flip = int(log["sediment_flip"])
    ys, xs = np.mgrid[: PARAMS.arena_height, : PARAMS.arena_width]  # the handle's formula
    tx = (sx - xs if flip & 1 else sx + xs) % pool.shape[1]
    ty = (sy - ys if flip & 2 else sy + ys) % pool.shape[0]
    np.testing.assert_array_equal(image, pool[ty, tx])
    assert image.shape == (PARAMS.arena_height, PARAMS.arena_width)


def test_metrics_by_hand(tmp_path):
    data = {
        "episode_length": np.int64(4),
        "episode_return": np.float64(2.5),
        "fish_x": np.zeros(5, np.float32),
        "action": np.array([-1, 0, 1, 5, 0], np.int32),  # 0 SCS and 1 LCS are capture bouts
        "prey_caught": np.array([0, 1, 0, 0, 1], np.int32),
        "event_survived_predator": np.array([0, 0, 1, 0, 0], bool),
        "event_captured_by_predator": np.array([0, 0, 0, 1, 0], bool),
        "wall_touch": np.array([0, 1, 1, 0, 0], bool),
        "end_cause": np.int32(3),
        **{
            f"reward_{c}": np.array([0, 1, 0, 0, 0.5], np.float32)
            for c in ("energy", "consumption", "salt", "predator", "wall")
        },  # fmt: skip
    }
    row = episode_metrics(7, data)
    assert row["capture_bouts"] == 3 and row["prey_caught"] == 2
    assert row["capture_success"] == pytest.approx(2 / 3)
    assert (row["predators_avoided"], row["predators_hit"], row["wall_touches"]) == (1, 1, 2)
    assert row["end_cause"] == "Time" and row["reward_salt"] == pytest.approx(1.5)
    no_bouts = episode_metrics(8, dict(data, action=np.array([-1, 5, 6, 7, 8], np.int32)))
    assert np.isnan(no_bouts["capture_success"])
    write_metrics_csv(tmp_path / "metrics.csv", [row, no_bouts])
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0].startswith("episode,length,return,reward_energy")
    assert len(lines) == 3 and ",," in lines[2]  # NaN success written as an empty cell
    summary = summarize([row, no_bouts])
    assert summary["prey_caught"]["mean"] == 2 and summary["end_causes"] == {"Time": 2}


_KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import h5py, numpy as np
    from larvax.evaluation.hdf5 import write_atomic, write_episode
    out = sys.argv[1]
    for n in (1, 2):
        write_episode(f"{out}/logs_{n}.hdf5", {"reward": np.full(10, n, np.float32)})
    def slow(tmp):
        with h5py.File(tmp, "w") as f:
            f.create_dataset("reward", data=np.zeros(10**6, np.float32))
            f.flush()
            print("writing", flush=True)
            time.sleep(60)
    write_atomic(f"{out}/logs_3.hdf5", slow)
    """
)


def test_kill_while_writing_leaves_earlier_files_and_no_partial_file(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILL_SCRIPT, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "writing"
        time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "logs_3.hdf5" not in names
    assert [n for n in names if not n.startswith(".")] == ["logs_1.hdf5", "logs_2.hdf5"]
    for n in (1, 2):
        np.testing.assert_array_equal(read_episode(tmp_path / f"logs_{n}.hdf5")["reward"], n)


def test_write_atomic_removes_the_temporary_file_on_error(tmp_path):
    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(tmp_path / "logs_1.hdf5", broken)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- CLI errors


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("larvax: error: ")
    return err


@pytest.fixture()
def fake_run(tmp_path):
    """A directory that passes the cheap checks (they run before the run is loaded)."""
    d = tmp_path / "run"
    d.mkdir()
    (d / "config.yaml").write_text("env: {name: simfish}\n")
    return d


def test_cli_missing_run_dir(capsys, tmp_path):
    err = _one_line_error(capsys, ["eval", str(tmp_path / "nope")])
    assert "not a larvax run directory" in err


def test_cli_unknown_world_lists_the_worlds(capsys, fake_run):
    err = _one_line_error(capsys, ["eval", str(fake_run), "--world", "moon"])
    assert "'moon'" in err and "tethered_prey_pred" in err and "empty" in err


def test_cli_bad_set_key_and_syntax(capsys, fake_run):
    err = _one_line_error(capsys, ["eval", str(fake_run), "--set", "env.prey_nmu=3"])
    assert "prey_nmu" in err and "prey_num" in err
    err = _one_line_error(capsys, ["eval", str(fake_run), "--set", "prey_num=3"])
    assert "env.KEY=VALUE" in err


def test_cli_unwritable_output(capsys, fake_run, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    err = _one_line_error(capsys, ["eval", str(fake_run), "--out", str(blocker / "sub")])
    assert "not writable" in err and str(blocker / "sub") in err


def test_cli_bad_episodes_and_epsilon(capsys, fake_run):
    assert "--episodes=0" in _one_line_error(capsys, ["eval", str(fake_run), "--episodes", "0"])
    assert "--epsilon=1.5" in _one_line_error(capsys, ["eval", str(fake_run), "--epsilon", "1.5"])


@pytest.mark.slow
def test_cli_trains_then_evaluates_a_tiny_run_end_to_end(tmp_path, capsys):
    """``larvax train`` a few updates of a tiny R2D2 run, then ``larvax eval`` it in the
    tethered predator world (shrunk): logs, metrics.csv and summary.json appear."""
    run = tmp_path / "run"
    sets = ["agent_config.num_envs=2", "agent_config.batch_size=2", "agent_config.burn_in=1",
            "agent_config.trace_length=4", "agent_config.period=2", "agent_config.n_step=2",
            "agent_config.replay_capacity=16", "agent_config.min_replay_size=8",
            "agent_config.num_devices=1", "env.max_steps=20", "env.prey_num=5",
            "chunk_updates=2"]  # fmt: skip
    argv = ["train", "--preset", "r2d2-simfish", "--steps", "16", "--run-dir", str(run)]
    assert main(argv + [a for s in sets for a in ("--set", s)] + ["--no-progress"]) == 0
    out = tmp_path / "eval"
    world = ["env.arena_width=600", "env.arena_height=600", "env.fish_init_x=300",
             "env.fish_init_y=300", "env.max_steps=260"]  # fmt: skip
    argv = ["eval", str(run), "--world", "tethered_pred", "--episodes", "2", "--out", str(out)]
    extra = ["--no-progress", "--full-sediment", "--batch", "2", "--chunk", "64"]
    assert main(argv + [a for s in world for a in ("--set", s)] + extra) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "logs_1.hdf5", "logs_2.hdf5", "metrics.csv", "summary.json"
    ]  # fmt: skip
    log = read_episode(out / "logs_1.hdf5")
    assert int(log["episode_length"]) == 260 and np.all(log["fish_x"] == 300.0)
    assert log["stimulus_predator_xy"].shape == (1, 260, 2)
    assert log["attrs"]["world"] == "tethered_pred"
    assert log["sediment"].shape == (1, 600, 600)
    np.testing.assert_array_equal(log["sediment"][0], regenerate_sediment(out / "logs_1.hdf5"))
    assert "prey_caught" in (out / "metrics.csv").read_text().splitlines()[0]


def test_ppo_agent_on_a_memory_task_logs_policy_value_and_carry(tmp_path):
    """Any environment and a PPO agent: observation/info datasets, policy logits, value and
    the LSTM carry; greedy (epsilon 0) actions are the argmax of the logged logits."""
    from larvax.agents.base import make_agent as make_any_agent
    from larvax.envs import make

    env, params = make("RepeatPreviousEasy")
    net = dict(name="shared_actor_critic", torso="lstm", hidden=[8], hidden_size=8,
               use_prev_action=True, use_prev_reward=True)  # fmt: skip
    cfg = dict(num_envs=2, rollout_length=4, num_minibatches=1, total_env_steps=100)
    agent = make_any_agent("ppo", env, params, net, cfg)
    state = agent.init(jax.random.key(0))
    writer = EpisodeWriter(tmp_path)
    for records in evaluate(agent, state, env, params, 2, 0.0, chunk=32, max_steps=100):
        writer.add(records)
    log = read_episode(tmp_path / "logs_2.hdf5")
    t = int(log["episode_length"])
    assert log["observation/leaf"].shape[0] == t + 1 and log["action"][0] == -1
    assert log["policy_logits"].shape == (t, 4) and log["value"].shape == (t,)
    assert log["actor_state"].shape == log["actor_cell_state"].shape == (t, 8)
    np.testing.assert_array_equal(log["action"][1:], np.argmax(log["policy_logits"], axis=1))
    np.testing.assert_allclose(log["episode_return"], log["reward"].sum(), rtol=1e-6)
