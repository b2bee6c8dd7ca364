"""R2D2 split over two JAX CPU devices (``jax.shard_map``): the same actors as on one device,
gradients averaged exactly like one full-batch step, replicated networks, and a resumable run
through the training loop. conftest.py exposes two CPU devices."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from larvax.agents.r2d2 import AXIS, R2D2Config, make_agent
from larvax.training import loop
from test_r2d2 import CFG, UPDATES, CueEnv, tiny_net


def _agent(num_devices):
    return make_agent(CueEnv(delay=3), None, tiny_net(), dict(CFG, num_devices=num_devices))


@pytest.fixture(scope="module")
def agents():
    assert len(jax.devices()) >= 2, "conftest.py should expose two CPU devices"
    return _agent(1), _agent(2)


@pytest.fixture(scope="module")
def acted_both(agents):
    out = []
    for a in agents:
        s, m = a.train(a.init(jax.random.key(0)), UPDATES)  # acting only (replay filling)
        out.append((s, m))
    return out


def test_device_count_is_validated():
    with pytest.raises(ValueError, match=r"num_devices=3.*divisor of both num_envs=4"):
        R2D2Config(num_envs=4, batch_size=2, replay_capacity=32, num_devices=3)
    with pytest.raises(ValueError, match=r"num_devices=0"):
        R2D2Config(num_devices=0)
    with pytest.raises(ValueError, match=r"num_devices=64 but JAX sees 2 device"):
        make_agent(
            CueEnv(),
            None,
            tiny_net(),
            dict(
                CFG,
                num_envs=64,
                batch_size=64,
                replay_capacity=512,
                min_replay_size=64,
                num_devices=64,
            ),
        )
    # "auto": the most devices dividing num_envs and batch_size
    assert make_agent(CueEnv(), None, tiny_net(), dict(CFG, num_devices="auto")).num_devices == 2
    odd = make_agent(
        CueEnv(),
        None,
        tiny_net(),
        dict(CFG, batch_size=3, num_devices="auto", samples_per_insert=0.75),
    )
    assert odd.num_devices == 1


def test_actors_and_replay_are_the_same_on_two_devices(agents, acted_both):
    (s1, m1), (s2, m2) = acted_both
    assert agents[1].num_devices == 2
    # every per-actor leaf is split over the two devices
    shard = s2.replay.priorities.sharding
    assert shard.spec == P(AXIS) and len(shard.device_set) == 2
    for k in m1:
        np.testing.assert_allclose(np.asarray(m1[k]), np.asarray(m2[k]), rtol=1e-6, err_msg=k)
    for a, b in zip(jax.tree.leaves(s1.replay), jax.tree.leaves(s2.replay), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    assert float(np.sum(np.asarray(m1["episodes"]))) > 0


def test_two_device_gradient_step_is_the_full_batch_step(agents, acted_both):
    """pmean of the two halves' gradients = the gradient of the full batch's mean loss."""
    a1, a2 = agents
    state = acted_both[0][0]
    sample, batch, w = a1.learner_batch(state, jax.random.key(3))
    # host copies: each mesh places them on its own devices
    batch, carry, w = jax.device_get((batch, sample.extras["carry"], w))
    args = jax.device_get((state.params, state.target_params, state.rest, state.opt_state))
    rep, row = P(), P(AXIS)

    def step(agent, mesh_specs_batch):
        f = jax.shard_map(
            agent._grad_step,
            mesh=agent.mesh,
            in_specs=(rep, rep, rep, rep, mesh_specs_batch, mesh_specs_batch, mesh_specs_batch),
            out_specs=(rep, rep, rep, P()),
            check_vma=False,
        )
        return jax.jit(f)(*args, batch, carry, w)

    p1, _, loss1, _ = step(a1, row)
    p2, _, loss2, _ = step(a2, row)
    np.testing.assert_allclose(float(loss1), float(loss2), rtol=1e-5)
    changed = False
    for x, y, x0 in zip(
        jax.tree.leaves(p1), jax.tree.leaves(p2), jax.tree.leaves(state.params), strict=True
    ):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-6)
        changed |= not np.allclose(np.asarray(x), np.asarray(x0))
    assert changed


def test_learning_on_two_devices_keeps_one_network(agents, acted_both):
    a2 = agents[1]
    state = jax.tree.map(lambda x: jnp.array(x, copy=True), acted_both[1][0])
    prio0 = np.asarray(state.replay.priorities)
    state, m = a2.train(state, UPDATES)  # learning starts at update 5
    assert int(state.learner_steps) == UPDATES * a2.config.learner_steps_per_update
    assert np.all(np.isfinite(np.asarray(m["loss"])))
    for leaf in jax.tree.leaves((state.params, state.target_params, state.opt_state)):
        shards = [np.asarray(s.data) for s in leaf.addressable_shards]
        assert len(shards) == 2
        np.testing.assert_array_equal(shards[0], shards[1])
    # both devices' rows were sampled and re-prioritised (each device learns from its rows)
    changed = np.asarray(state.replay.priorities) != prio0
    assert changed[:2].any() and changed[2:].any()
    # the shared max priority is the largest over both devices
    assert float(state.replay.max_priority) >= float(np.max(np.asarray(state.replay.priorities)))


def _loop_cfg():
    return {
        "name": "r2d2-two-devices",
        "agent": "r2d2",
        "env": {"name": "RepeatPreviousEasy"},
        "network": {"name": "recurrent_q", "hidden_size": 8, "mlp_hidden": [8], "head_hidden": [8]},
        # test_r2d2's tiny config on two devices, at R2D2Config's learning rate and discount
        "agent_config": {
            **{k: v for k, v in CFG.items() if k not in ("learning_rate", "discount")},
            "num_devices": 2,
        },
        "total_env_steps": 16 * 8,
        "seed": 0,
        "chunk_updates": 2,
        "checkpoint_every_seconds": 0,
        "keep_checkpoints": 2,
    }


def test_two_device_run_resumes_with_the_same_rows(tmp_path):
    full = loop.run(_loop_cfg(), run_dir=tmp_path / "full", progress=False)
    assert full.updates == 8
    run_json = (tmp_path / "full" / "run.json").read_text()
    assert '"devices": 2' in run_json
    part = loop.run(_loop_cfg(), run_dir=tmp_path / "part", progress=False, max_chunks=2)
    assert part.updates == 4
    resumed = loop.run(None, run_dir=tmp_path / "part", resume=True, progress=False)
    assert resumed.updates == 8
    keys = [k for k in full.rows[0] if k not in ("wall_time_s", "steps_per_s")]
    assert len(resumed.rows) == len(full.rows)
    for r_full, r_res in zip(full.rows, resumed.rows, strict=True):
        for k in keys:
            a, b = float(r_full[k]), float(r_res[k])
            assert (np.isnan(a) and np.isnan(b)) or a == pytest.approx(b, rel=1e-6), k
    assert np.isfinite(float(full.rows[-1]["loss"]))
