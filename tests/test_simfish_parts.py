"""Small parts of the Simfish step: candidate selection, the predator's sub-step, the
vision's World input and the config errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from larvax.envs.simfish import Simfish, SimfishParams, make_state, predator, prey, vision
from larvax.validation import ConfigValueError


def test_contact_candidates_are_the_live_prey_nearest_the_path():
    p = SimfishParams(prey_num=6, contact_candidates=3)
    xy = jnp.array(
        [[50.0, 0.0], [50.0, 30.0], [200.0, 1.0], [-40.0, 0.0], [100.0, 2.0], [60.0, 0.5]]
    )
    alive = jnp.array([True, True, True, True, True, False])
    idx = prey.contact_candidates(p, xy, alive, jnp.zeros(2), jnp.array([100.0, 0.0]))
    # distances to the segment (0, 0)-(100, 0): 0, 30, 100, 40, 2 and a dead prey at 0.5
    assert sorted(np.asarray(idx).tolist()) == [0, 1, 4]


def test_predator_substep_reaches_its_target_and_counts_a_survived_attack():
    p = SimfishParams()
    target = jnp.array([1000.0, 1000.0])
    no = jnp.asarray(False)
    pred = predator.Predator(target + 0.3, jnp.zeros(2), jnp.asarray(True), no, no)
    far_fish = jnp.array([1500.0, 1500.0])
    out = predator.substep(p, pred, far_fish, jnp.float32(0.0), no, target)
    assert bool(predator.at_target(pred.xy, target))
    assert not bool(out.present) and bool(out.survived) and not bool(out.touched)
    # on the fish (not immune): a hit, not a survived attack
    pred = pred._replace(xy=jnp.array([1200.0, 1000.0]))
    out = predator.substep(p, pred, jnp.array([1230.0, 1000.0]), jnp.float32(0.0), no, target)
    assert bool(out.touched) and not bool(out.survived)


def test_world_of_state_gives_the_env_observation():
    params = SimfishParams(eyes_shot_noise=False, prey_num=4)
    env = Simfish(params, sediment=np.zeros((8, 8), np.float32))
    state = make_state(params, (1250.0, 1800.0), 0.3, prey_xy=[[1270.0, 1805.0]])
    key = jax.random.key(0)
    world = vision.World.of_state(state, env.sediment_textures)
    np.testing.assert_array_equal(
        np.asarray(vision.observe(params, world, key)),
        np.asarray(env.observe(key, state)["visual"]),
    )


def test_config_errors_name_field_value_and_allowed():
    with pytest.raises(ConfigValueError, match=r"SimfishParams.fish_mass=True is not allowed"):
        SimfishParams(fish_mass=True)
    with pytest.raises(ConfigValueError, match=r"prey_start_margin=1300.0 .*half the smaller"):
        SimfishParams(prey_start_margin=1300.0)
    with pytest.raises(ConfigValueError, match=r"Simfish.num_textures=0 .*an int >= 1"):
        Simfish(num_textures=0)
