"""The pretrained hunter shipped in the package: it loads, lives in the unchanged `normal`
world, acts there, and refuses a damaged weights file."""

from __future__ import annotations

import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from larvax import pretrained
from larvax.envs.simfish.bouts import NUM_ACTIONS
from larvax.envs.simfish.config import SimfishParams
from larvax.pretrained import store

NAME = "hunter-normal"


@pytest.fixture(scope="module")
def fish():
    return pretrained.load(NAME)


def test_the_hunter_is_shipped_with_its_card():
    assert NAME in pretrained.names()
    card = pretrained.card(NAME)
    for key in ("preset", "seed", "env_steps", "wall_time_s", "commit", "prey_per_episode"):
        assert key in card, key
    assert (store.folder(NAME) / "MODEL_CARD.md").is_file()
    assert (store.folder(NAME) / "network.npz").stat().st_size < 1_000_000  # a few hundred kB


def test_the_hunter_acts_in_the_unchanged_normal_world(fish):
    assert fish.env_params == SimfishParams.preset("normal")
    key = jax.random.key(3)
    keys = jax.random.split(key, 4)
    env_state, ts = jax.vmap(fish.env.reset, (0, None))(keys, fish.env_params)
    carry = None
    seen = set()
    for t in range(12):
        k_act, k_env = jax.random.split(jax.random.fold_in(key, t))
        carry, action = fish.agent.act(fish.state, ts.observation, carry, k_act,
                                       prev_reward=ts.reward, start=jnp.full(4, t == 0))  # fmt: skip
        action = np.asarray(action)
        assert action.shape == (4,) and ((0 <= action) & (action < NUM_ACTIONS)).all()
        seen.update(action.tolist())
        env_state, ts = jax.vmap(fish.env.step, (0, 0, 0, None))(
            jax.random.split(k_env, 4), env_state, jnp.asarray(action), fish.env_params
        )
    assert len(seen) > 1  # a trained fish does not repeat one bout whatever it sees


def test_the_network_has_the_trained_weights(fish):
    flat = store.read_network(NAME)
    kernel = np.asarray(fish.network.head.advantage_out.kernel.value)
    np.testing.assert_array_equal(kernel, flat["params/head/advantage_out/kernel"])
    assert float(np.abs(kernel).max()) > 0


def test_a_damaged_weights_file_is_refused(tmp_path, monkeypatch):
    root = tmp_path / "pretrained"
    shutil.copytree(store.folder(NAME), root / NAME)
    data = bytearray((root / NAME / "network.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (root / NAME / "network.npz").write_bytes(bytes(data))
    monkeypatch.setattr(store, "_root", lambda: root)
    with pytest.raises(store.PretrainedError, match=r"network\.npz has sha256 .* the file is "
                       r"damaged; reinstall larvax") as err:  # fmt: skip
        pretrained.load(NAME)
    assert "\n" not in str(err.value)
    with pytest.raises(store.PretrainedError, match=r"pretrained model 'shark' is not allowed"):
        pretrained.load("shark")


def test_export_then_load_a_ppo_fish(tmp_path, monkeypatch):
    """A run exported as a pretrained model loads with the checkpoint's network (PPO with the
    Simfish actor-critic, so the act-only PPO agent is covered too)."""
    from larvax.training.loop import run
    from larvax.training.network_state import flat_network, network_parts
    from larvax.training.runs import load_run

    cfg = {
        "agent": "ppo",
        "env": {"name": "simfish", "preset": "normal", "arena_width": 300, "arena_height": 300,
                "prey_num": 4, "predator_enabled": False, "max_steps": 6},
        "network": {"name": "ppo_simfish", "visual_scale": 0.03},
        "agent_config": {"num_envs": 2, "rollout_length": 4, "num_epochs": 1,
                         "num_minibatches": 1},
        "total_env_steps": 16, "chunk_updates": 1, "seed": 5,
    }  # fmt: skip
    run(cfg, run_dir=tmp_path / "run", progress=False)
    root = tmp_path / "pretrained"
    pretrained.export(tmp_path / "run", "tiny", {"preset": "test"}, root=root)
    monkeypatch.setattr(store, "_root", lambda: root)
    assert pretrained.names() == ["tiny"]
    assert pretrained.card("tiny")["env_steps"] == 16
    fish = pretrained.load("tiny")
    assert fish.agent.config.num_envs == 1  # acts; it does not train
    *_, agent, state, _ = load_run(tmp_path / "run")
    want = flat_network(network_parts(agent, state))
    got = flat_network(network_parts(fish.agent, fish.state))
    assert sorted(got) == sorted(want)
    for k in want:
        np.testing.assert_array_equal(got[k], np.asarray(want[k]).astype(got[k].dtype), k)
    obs = jax.tree.map(lambda x: x[None], fish.env.reset(jax.random.key(0), fish.env_params)[1]
                       .observation)  # fmt: skip
    _, action = fish.agent.act(fish.state, obs, None, jax.random.key(1), starts=jnp.ones(1, bool))
    assert 0 <= int(action[0]) < NUM_ACTIONS
