"""Curricula (stages in one run directory) and warm starts, on the loop helpers' tiny agent.

``stager`` (tests/loop_helpers.py) reports ``prey_caught`` = its environment's level, keeps
a random-walk "network" in ``params`` and a world in ``env_state``: which stage's world a row
came from, and what crossed a stage boundary, can be read off directly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from larvax.training import config as C  # noqa: E402
from larvax.training.curriculum import Advance, Stage, stage_decision  # noqa: E402
from larvax.training.loop import run  # noqa: E402
from larvax.training.runs import build, load_run  # noqa: E402
from larvax.training.warm_start import warm_start  # noqa: E402
from loop_helpers import (  # noqa: E402
    LevelEnv,
    StagerAgent,
    StagerConfig,
    kill_after_rows,
    stager_config,
)

TIMING = ("wall_time_s", "steps_per_s")
HELPER = str(Path(__file__).parent / "loop_helpers.py")


def strip_timing(rows):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def _rule_config(threshold: float) -> dict:
    cfg = stager_config()
    cfg["stages"][0]["advance"]["threshold"] = threshold
    return cfg


# ----------------------------------------------------------------------------- rules


def test_rule_averages_the_newest_rows_holding_enough_episodes():
    rule = Advance("prey_caught", threshold=4.0, episodes=5)
    stage = Stage("s", {}, {}, 10_000, rule)
    rows = [
        {"episodes": "3", "prey_caught": "10"},
        {"episodes": "0", "prey_caught": "nan"},
        {"episodes": "2", "prey_caught": "2"},
        {"episodes": "4", "prey_caught": "5"},
    ]
    # the newest rows with >= 5 episodes: 4 x 5 and 2 x 2 -> 24 / 6 = 4.0 (the 10s are older)
    assert "prey_caught 4 >= 4 over the last 6 episodes" in stage_decision(stage, rows, 100)
    # 2 episodes are too few, so the older row counts too: (2 x 2 + 3 x 10) / 5 = 6.8
    assert "6.8 >= 4 over the last 5 episodes" in stage_decision(stage, rows[:1] + rows[2:3], 0)
    # too few episodes: no decision, whatever the mean; then the budget ends the stage
    assert stage_decision(stage, rows[3:], 9_999) is None
    assert "budget of 10,000" in stage_decision(stage, rows[3:], 10_000)
    # caught / available
    per = Stage("s", {}, {}, None, Advance("prey_caught", 0.05, 4, per_env="prey_num"))
    assert stage_decision(per, rows[3:], 0, per_env=100.0) is not None  # 5 / 100 >= 0.05
    assert stage_decision(per, rows[3:], 0, per_env=101.0) is None


def test_bad_stages_give_one_line_errors():
    base = stager_config()
    cases = [
        ({"stages": []}, r"stages=\[\] is not allowed; allowed: a non-empty list"),
        ({"stages": [{"name": "a"}, {"name": "b"}]}, r"stages\[0\]\.max_env_steps=None"),
        ({"stages": [{"name": "a", "max_env_steps": 5}, {"name": "a"}]}, r"stages\[1\]\.name"),
        ({"stages": [{"nmae": "a"}]}, r"stages\[0\]\.nmae='a' is not allowed; allowed: keys"),
        ({"stages": [{"advance": {"metric": "prey_caught"}}]}, r"advance\.threshold=None"),
        ({"stages": [{"env": {"name": "other"}}]}, r"stages\[0\]\.env\.name='other'"),
    ]
    for change, pattern in cases:
        with pytest.raises(C.ConfigError, match=pattern) as err:
            C.validate({**base, **change})
        assert "\n" not in str(err.value)


def test_unknown_rule_metric_is_refused_before_training(tmp_path):
    cfg = stager_config()
    cfg["stages"][0]["advance"]["metric"] = "prey_eaten"
    with pytest.raises(C.ConfigError, match=r"advance\.metric='prey_eaten'.*prey_caught"):
        run(cfg, run_dir=tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


# ----------------------------------------------------------------------------- runs


@pytest.fixture(scope="module")
def curriculum_run(tmp_path_factory):
    """Uninterrupted: stage ``low`` ends by its budget (4 chunks), ``high`` runs the rest."""
    d = tmp_path_factory.mktemp("cur") / "run"
    return d, run(stager_config(), run_dir=d, progress=False)


def test_stage_ends_by_its_rule_and_carries_the_network(tmp_path):
    d = tmp_path / "rule"
    result = run(_rule_config(0.5), run_dir=d, progress=False)
    stages = [int(r["stage"]) for r in result.rows]
    # the first chunk holds 2 updates x 2 episodes of prey 1.0 >= 0.5: stage 1 from chunk 2
    assert stages == [0] + [1] * 7
    caught = [float(r["prey_caught"]) for r in result.rows]
    assert caught == [1.0] + [5.0] * 7  # each row from its own stage's world
    # the checkpoint written at the switch: the network and optimiser of one chunk of
    # training in stage 0 (a separate single-stage run), the world of stage 1 afresh
    cfg, _, _, agent, state, record = load_run(d, step=2)
    assert record["stage"] == 1 and record["stage_start_env_steps"] == 64
    single = {**stager_config(), "env": {"name": "level", "level": 1.0}}
    single.pop("stages")
    ref = run(single, run_dir=tmp_path / "single", progress=False, max_chunks=1)
    *_, ref_state, _ = load_run(ref.run_dir, step=2)
    np.testing.assert_array_equal(state.params["w"], ref_state.params["w"])
    np.testing.assert_array_equal(state.opt_state, ref_state.opt_state)
    assert state.env_state.shape == (4, 3)  # stage 1's wider world, not stage 0's (4, 2)
    fresh = StagerAgent(LevelEnv(level=5.0, width=3), StagerConfig()).init(
        jax.random.fold_in(jax.random.key(0), 1)
    )
    np.testing.assert_array_equal(state.env_state, fresh.env_state)
    assert cfg["env"]["level"] == 5.0  # load_run gives the checkpoint's stage's config


def test_stage_ends_by_its_budget_and_the_run_records_the_stages(curriculum_run):
    d, result = curriculum_run
    stages = [int(r["stage"]) for r in result.rows]
    assert stages == [0, 0, 0, 0, 1, 1, 1, 1]  # 4 chunks of 64 env steps = the budget of 256
    summary = json.loads((d / "summary.json").read_text())
    assert [(s["name"], s["start_env_steps"], s["env_steps"]) for s in summary["stages"]] == [
        ("low", 0, 256),
        ("high", 256, 256),
    ]
    assert (d / "learning_curve.png").stat().st_size > 1000


def test_resume_mid_stage_two_reproduces_the_rows(curriculum_run, tmp_path):
    _, ref = curriculum_run
    d = tmp_path / "run"
    partial = run(stager_config(), run_dir=d, progress=False, max_chunks=6)
    assert partial.updates == 12
    resumed = run(None, run_dir=d, resume=True, progress=False)
    assert strip_timing(resumed.rows) == strip_timing(ref.rows)


def test_sigkill_in_stage_two_then_resume_gives_the_same_rows(curriculum_run, tmp_path):
    _, ref = curriculum_run
    cfg = stager_config(agent_config={"sleep_s": 0.25}, checkpoint_every_seconds=0.6)
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg))
    d = tmp_path / "run"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    args = [sys.executable, HELPER, "train", "--config", str(cfg_file), "--run-dir", str(d)]
    proc = subprocess.Popen(args + ["--no-progress"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env)  # fmt: skip
    kill_after_rows(proc, d, 6)  # stage 2 began after 4 rows
    out = subprocess.run([sys.executable, HELPER, "train", "--resume", str(d), "--no-progress"],
                         capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert load_run(d)[-1]["stage"] == 1  # the record of the final checkpoint
    import csv

    with (d / "metrics.csv").open() as f:
        got = list(csv.DictReader(f))
    assert strip_timing(got) == strip_timing(ref.rows)


# ----------------------------------------------------------------------------- warm starts


def test_init_from_loads_the_network_and_rejects_a_mismatched_one(curriculum_run, tmp_path):
    src, _ = curriculum_run
    *_, src_state, _ = load_run(src)
    single = stager_config()
    single.pop("stages")
    _, _, agent = build(C.validate(single))
    fresh = agent.init(jax.random.key(7))
    state = warm_start(agent, fresh, str(src), report=lambda m: None)
    np.testing.assert_array_equal(state.params["w"], src_state.params["w"])
    np.testing.assert_array_equal(state.opt_state, fresh.opt_state)  # only the network moves
    np.testing.assert_array_equal(state.env_state, fresh.env_state)
    # through a run: the first row's return is one random-walk step from the source's w
    wide = {**single, "agent_config": {"width": 4}, "init_from": str(src)}
    with pytest.raises(C.ConfigError, match=r"'params/w' has shape \(3,\) there, this run "
                       r"needs \(4,\)") as err:  # fmt: skip
        run(wide, run_dir=tmp_path / "wide", progress=False)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "wide").exists()  # checked before the run directory is made
    with pytest.raises(C.ConfigError, match=r"--init-from 'nowhere' is not allowed"):
        run({**single, "init_from": "nowhere"}, run_dir=tmp_path / "none", progress=False)


# ----------------------------------------------------------------------------- R2D2


def test_r2d2_stage_switch_carries_learner_and_replay_and_restarts_the_actors(tmp_path):
    """With the real R2D2 state: what crosses the boundary equals a single-stage run's state
    after the same chunk; the actors (environments, carries) are stage 1's fresh ones."""
    from test_r2d2 import CFG

    agent_config = {k: v for k, v in CFG.items() if k not in ("learning_rate", "discount")}
    base = {
        "name": "r2d2-stages",
        "agent": "r2d2",
        "env": {"name": "RepeatPreviousEasy"},
        "network": {"name": "recurrent_q", "hidden_size": 8, "mlp_hidden": [8],
                    "head_hidden": [8]},
        "agent_config": agent_config,
        "total_env_steps": 8 * CFG["num_envs"] * CFG["period"],
        "seed": 0,
        "chunk_updates": 2,
        "checkpoint_every_seconds": 0,
        "keep_checkpoints": 5,
    }  # fmt: skip
    per_chunk = 2 * CFG["num_envs"] * CFG["period"]
    staged = {**base, "stages": [{"name": "k2", "env": {"k": 2}, "max_env_steps": 3 * per_chunk},
                                 {"name": "k3", "env": {"k": 3}}]}  # fmt: skip
    result = run(staged, run_dir=tmp_path / "staged", progress=False)
    assert [int(r["stage"]) for r in result.rows] == [0, 0, 0, 1]
    cfg, _, _, agent, state, record = load_run(tmp_path / "staged", step=6)
    assert record["stage"] == 1 and cfg["env"]["k"] == 3
    single = {**base, "env": {"name": "RepeatPreviousEasy", "k": 2}}
    run(single, run_dir=tmp_path / "single", progress=False, max_chunks=3)
    *_, ref, _ = load_run(tmp_path / "single", step=6)
    for field in ("params", "target_params", "opt_state", "replay", "updates", "learner_steps"):
        for a, b in zip(jax.tree.leaves(getattr(state, field)),
                        jax.tree.leaves(getattr(ref, field)), strict=True):  # fmt: skip
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=field)
    assert int(state.learner_steps) > 0  # the learner had trained before the switch
    fresh = build(C.validate(staged), 1)[2].init(jax.random.fold_in(jax.random.key(0), 1))
    for a, b in zip(jax.tree.leaves(state.actor), jax.tree.leaves(fresh.actor), strict=True):
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
