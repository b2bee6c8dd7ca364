"""Virtual experiments: world presets, the tethered (paralysed, fixed-energy) fish, scripted
stimuli (the reference's sweeps, stimulus files) seen but not simulated.

Worlds are shrunk to a 600 px arena with the fish held at (300, 300): the sweeps follow the
fish (they are defined relative to it, as the reference's are to (2500, 2500)).
"""

from __future__ import annotations

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from larvax.envs.simfish import Simfish, SimfishParams
from larvax.envs.simfish.experiments import (
    ScriptedSimfish,
    load_stimulus,
    make_world,
    reference_sweeps,
    world_names,
    world_overrides,
)

SMALL = dict(arena_width=600, arena_height=600, fish_init_x=300.0, fish_init_y=300.0)
QUIET = dict(SMALL, eyes_shot_noise=False)  # exact comparisons of observations


def test_reference_sweeps_equal_the_reference_stimulus_files():
    """make_stim_files.ipynb (second cell): predator x linspace(2400, 2500, 20) at y 2550
    from steps 250 and 750; prey x linspace(2400, 2500, 20) at y 2530 from 300 and 800."""
    prey, pred = reference_sweeps()
    assert prey.shape == pred.shape == (1, 1000, 2)
    sweep = np.linspace(2400, 2500, 20)
    for start in (250, 750):
        np.testing.assert_allclose(pred[0, start : start + 20, 0], sweep, rtol=1e-6)
        np.testing.assert_array_equal(pred[0, start : start + 20, 1], 2550)
    for start in (300, 800):
        np.testing.assert_allclose(prey[0, start : start + 20, 0], sweep, rtol=1e-6)
        np.testing.assert_array_equal(prey[0, start : start + 20, 1], 2530)
    present = ~np.isnan(pred[0, :, 0])
    assert present.sum() == 40 and not present[249] and not present[270]
    assert (~np.isnan(prey[0, :, 0])).sum() == 40


def test_worlds_are_data_and_unknown_names_list_the_allowed():
    assert {"empty", "tethered", "tethered_prey", "tethered_pred", "tethered_prey_pred"} <= set(
        world_names()
    )
    env, p = make_world("empty")
    assert (p.prey_num, p.salt_enabled, p.predator_probability_per_epoch_step) == (0, False, 0.0)
    assert (p.arena_width, p.dark_fraction) == (5000, 0.0)
    assert type(env) is Simfish
    _, low = make_world(
        "empty_low_energy", overrides=dict(SMALL, fish_init_x=None, fish_init_y=None)
    )
    assert low.fish_fixed_energy and low.fish_init_energy == 0.2
    _, train = make_world("train", SimfishParams(prey_num=7))
    assert train == SimfishParams(prey_num=7)
    _, normal = make_world("normal", SimfishParams(prey_num=7, eyes_verg_angle_deg=70.0))
    assert normal.prey_num == 120 and normal.eyes_verg_angle_deg == 70.0  # vision kept
    with pytest.raises(ValueError, match="unknown world 'moon'; allowed: train, normal"):
        world_overrides("moon")


def test_tethered_fish_never_moves_and_keeps_its_energy():
    env, p = make_world("tethered", overrides=dict(SMALL, max_steps=40))
    assert p.fish_paralyzed and p.fish_fixed_energy and p.prey_num == 0

    @jax.jit
    def run(key):
        state, _ = env.reset(key, p)

        def body(s, k):
            ka, ks = jax.random.split(k)
            s, ts = env.step(ks, s, jax.random.randint(ka, (), 0, 21), p)
            return s, (s.fish_xy, s.fish_angle, s.energy, ts.info["bout_distance_mm"], ts.reward)

        return state, jax.lax.scan(body, state, jax.random.split(key, 30))[1]

    state, (xy, angle, energy, dist, reward) = run(jax.random.key(0))
    np.testing.assert_array_equal(np.asarray(state.fish_xy), [300.0, 300.0])
    np.testing.assert_array_equal(np.asarray(xy), np.tile([300.0, 300.0], (30, 1)))
    np.testing.assert_array_equal(np.asarray(angle), np.float32(1.5707))
    np.testing.assert_array_equal(np.asarray(energy), 1.0)
    np.testing.assert_array_equal(np.asarray(dist), 0.0)
    # a paralysed bout still costs the baseline (x5 for capture bouts): -10 x 2e-5 or x 1e-4
    r = np.asarray(reward)
    assert np.all(np.isclose(r, -2e-4, atol=1e-8) | np.isclose(r, -1e-3, atol=1e-8))


@pytest.fixture(scope="module")
def scripted():
    """``tethered_prey_pred`` (noise off) and the same world without stimuli: the
    observations of the fish's reset state at a given step count (jitted once), and one
    step of each from a state at step 250."""
    env, p = make_world("tethered_prey_pred", overrides=QUIET)
    plain = Simfish(p, num_textures=4, texture_seed=0)
    state, _ = jax.jit(env.reset)(jax.random.key(1))

    @jax.jit
    def at(step):
        s = state.replace(step=jnp.asarray(step, jnp.int32))
        k = jax.random.key(2)
        return env.observe(k, s, p)["visual"], plain.observe(k, s, p)["visual"]

    @jax.jit
    def step_from_250():
        s = state.replace(step=jnp.asarray(250, jnp.int32))
        k, a = jax.random.key(3), jnp.int32(5)
        return env.step(k, s, a)[1].observation["visual"], plain.step(k, s, a)[1].observation[
            "visual"
        ]

    return state, at, step_from_250


def test_scripted_predator_shadow_appears_in_red_channels_at_the_scripted_step(scripted):
    state, at, step_from_250 = scripted
    # stimulus index 250 (the first predator entry) is shown after step 251
    before, plain_before = at(250)
    after, plain_after = at(251)
    np.testing.assert_array_equal(before, plain_before)  # nothing scripted at index 249
    np.testing.assert_array_equal(plain_after, plain_before)  # the fish never moved
    diff = np.asarray(after) - np.asarray(plain_after)
    assert np.all(diff[:, 0] == 0), "the predator is not seen in UV"
    assert np.any(diff[:, 1:] < 0), "the shadow darkens red receptors"
    assert np.all(diff[:, 1:] <= 0), "a shadow never brightens"
    # and through env.step: the observation after step 251 shows the shadow too
    scripted_obs, plain_obs = step_from_250()
    red = np.asarray(scripted_obs[:, 1:]) - np.asarray(plain_obs[:, 1:])
    assert np.any(red < 0) and np.all(red <= 0)


def test_scripted_prey_is_seen_in_uv_but_not_simulated(scripted):
    state, at, _ = scripted
    seen, plain = at(310)  # prey entry 309, 47 px left of the fish's axis, 30 px ahead
    diff = np.asarray(seen) - np.asarray(plain)
    assert np.any(diff[:, 0] > 0) and np.all(diff[:, 1:] == 0)
    none, plain_none = at(300)
    np.testing.assert_array_equal(none, plain_none)
    assert state.prey_xy.shape == (0, 2), "scripted prey are not in the world's state"


def test_stimulus_files(tmp_path):
    prey = np.full((2, 5, 2), np.nan, np.float32)
    prey[0, 1] = (10.0, 20.0)
    np.savez(tmp_path / "s.npz", prey=prey)
    got_prey, got_pred = load_stimulus(tmp_path / "s.npz")
    np.testing.assert_array_equal(got_prey, prey)
    assert got_pred is None
    # the reference's own files: (0, 0) means absent
    loc = np.zeros((1, 4, 2))
    loc[0, 2] = (2450.0, 2550.0)
    with h5py.File(tmp_path / "predator_stim.h5", "w") as f:
        f.create_dataset("predator_loc", data=loc)
    _, pred = load_stimulus(tmp_path / "predator_stim.h5")
    assert np.isnan(pred[0, [0, 1, 3]]).all()
    np.testing.assert_array_equal(pred[0, 2], (2450.0, 2550.0))
    np.savez(tmp_path / "bad.npz", prey=np.zeros((5, 2)))
    with pytest.raises(ValueError, match=r"shape \(5, 2\); allowed: \[N, T, 2\]"):
        load_stimulus(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="does not exist"):
        load_stimulus(tmp_path / "missing.npz")
    env, _ = make_world("tethered", overrides=SMALL, stimulus_file=tmp_path / "s.npz")
    assert isinstance(env, ScriptedSimfish)


def test_start_pose_fields_are_validated():
    with pytest.raises(ValueError, match="fish_init_y"):
        SimfishParams(fish_init_x=10.0)
    with pytest.raises(ValueError, match="fish_init_x"):
        SimfishParams(fish_init_x=5000.0, fish_init_y=10.0)
