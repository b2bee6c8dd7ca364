"""Registry: create by name, JSON metadata, save/load round trip and clear errors."""

from __future__ import annotations

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from larvax.networks import registry, serialization

B, T = 2, 3
KWARGS = dict(obs_dim=4, num_actions=3, torso="gru", hidden_size=8, mlp_hidden=[8], head_hidden=[8])


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = registry.create("recurrent_q", seed=3, activation=jax.nn.gelu, **KWARGS)
    path = tmp_path_factory.mktemp("models") / "rq"
    serialization.save_model(model, path)
    return model, path


def _q(model):
    obs = jnp.linspace(-1, 1, B * T * 4).reshape(B, T, 4)
    act = jnp.array([[-1, 0, 2], [1, 1, -1]])
    rew = jnp.array([[0.0, 1.0, -1.0], [0.5, 0.0, 2.0]])
    starts = jnp.array([[True, False, False], [False, False, True]])
    return model(obs, act, rew, starts, model.initialize_carry((B,)))[1]


def test_all_ready_made_models_are_registered():
    names = set(registry.registered_models())
    assert {
        "r2d2_simfish",
        "recurrent_q",
        "shared_actor_critic",
        "actor_critic",
        "lstm_actor_critic",
        "mingru_actor_critic",
        "ppo_simfish",
    } <= names
    info = registry.list_models()
    assert info["r2d2_simfish"]["parameters"] == {"num_actions": 21, "visual_scale": 1.0}
    assert info["recurrent_q"]["parameters"]["num_actions"] == "<required>"
    assert info["recurrent_q"]["class"] == "larvax.networks.models.RecurrentQNetwork"
    assert info["r2d2_simfish"]["signature"] == (
        "R2D2SimfishNetwork(num_actions=21, visual_scale=1.0, *, rngs)"
    )
    json.dumps(info)  # JSON-serialisable for `larvax models`


def test_metadata_is_json_with_callables_by_path(saved):
    model, _ = saved
    meta = registry.metadata(model)
    assert meta["name"] == "recurrent_q"
    assert meta["kwargs"]["activation"] == "jax.nn.gelu"
    assert meta["kwargs"]["torso"] == "gru" and meta["kwargs"]["hidden_size"] == 8
    assert meta["kwargs"]["use_prev_action"] is True  # defaults are recorded too
    assert json.loads(json.dumps(meta)) == meta
    # the metadata rebuilds the same architecture, and the same seed the same parameters
    again = registry.create(meta["name"], seed=3, **meta["kwargs"])
    np.testing.assert_array_equal(_q(again), _q(model))


def test_save_load_round_trip_gives_identical_outputs(saved):
    model, path = saved
    loaded = serialization.load_model(path)
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(_q(loaded), _q(model))
    # and not by accident: a different seed gives different outputs
    other = registry.create("recurrent_q", seed=4, activation="jax.nn.gelu", **KWARGS)
    assert float(jnp.abs(_q(other) - _q(model)).max()) > 1e-4


def test_round_trip_of_a_continuous_actor_critic(tmp_path):
    model = registry.create(
        "actor_critic", seed=1, obs_dim=3, action_dim=2, hidden=[4], torso="mlp",
        action_space={"name": "max_norm", "max_norm": 2.0}, state_dependent_std=True,
    )  # fmt: skip
    serialization.save_model(model, tmp_path / "ac")
    loaded = serialization.load_model(tmp_path / "ac")
    obs = jnp.ones((B, T, 3))
    _, (d1, v1) = model(obs, None, None, None, model.initialize_carry((B,)))
    _, (d2, v2) = loaded(obs, None, None, None, loaded.initialize_carry((B,)))
    np.testing.assert_array_equal(v1, v2)
    np.testing.assert_array_equal(d1.mode(), d2.mode())
    assert registry.metadata(loaded)["kwargs"]["action_space"] == {
        "name": "max_norm",
        "max_norm": 2.0,
    }


def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        serialization.load_model(tmp_path / "nothing")


def test_partial_checkpoint_without_state(saved, tmp_path):
    _, path = saved
    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    shutil.rmtree(copy / "state")
    with pytest.raises(ValueError, match="partial checkpoint"):
        serialization.load_model(copy)


def test_partial_checkpoint_without_metadata(saved, tmp_path):
    _, path = saved
    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    (copy / "metadata.json").unlink()
    with pytest.raises(ValueError, match="metadata.json is missing"):
        serialization.load_model(copy)


def test_corrupted_metadata(saved, tmp_path):
    _, path = saved
    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    (copy / "metadata.json").write_text('{"name": "recurrent_q", "kwargs": {')
    with pytest.raises(ValueError, match="not valid JSON"):
        serialization.load_model(copy)
    (copy / "metadata.json").write_text('{"format": 1, "kwargs": {}}')
    with pytest.raises(ValueError, match="'name' is missing"):
        serialization.load_model(copy)


def test_mismatched_checkpoint(saved, tmp_path):
    _, path = saved
    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    record = json.loads((copy / "metadata.json").read_text())
    record["kwargs"]["hidden_size"] = 16  # the stored parameters are for 8
    (copy / "metadata.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="does not match model 'recurrent_q'.*saved shape"):
        serialization.load_model(copy)


def test_state_that_disagrees_with_its_metadata(saved, tmp_path):
    _, path = saved
    bigger = registry.create("recurrent_q", seed=0, **{**KWARGS, "hidden_size": 16})
    serialization.save_model(bigger, tmp_path / "big")
    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    shutil.rmtree(copy / "state")
    shutil.copytree(tmp_path / "big" / "state", copy / "state")  # state of another model
    with pytest.raises(ValueError, match=r"parameter .* has shape \(.*16.*model expects"):
        serialization.load_model(copy)


def test_unknown_model_in_metadata(saved, tmp_path):
    _, path = saved
    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    record = json.loads((copy / "metadata.json").read_text())
    record["name"] = "transformer_xl"
    (copy / "metadata.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="unknown model 'transformer_xl'"):
        serialization.load_model(copy)


def test_save_refuses_to_overwrite(saved):
    model, path = saved
    with pytest.raises(ValueError, match="not empty"):
        serialization.save_model(model, path)


def test_create_errors():
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        registry.create("nope")
    with pytest.raises(ValueError, match="seed must be an int"):
        registry.create("r2d2_simfish", seed="zero")
    with pytest.raises(ValueError, match="seed= or rngs="):
        registry.create("r2d2_simfish", seed=0, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="bad arguments"):
        registry.create("r2d2_simfish", num_layers=3)
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        registry.create("recurrent_q", obs_dim=2, num_actions=2, torso_kwargs={"x": object()})


def test_metadata_of_unregistered_module():
    with pytest.raises(ValueError, match="not built by a registered class"):
        registry.metadata(nnx.Linear(2, 2, rngs=nnx.Rngs(0)))
