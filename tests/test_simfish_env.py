"""Simfish environment: contract, invariants, end of episode, predator, episode statistics."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from larvax.envs import make
from larvax.envs.simfish import MIRROR_ACTIONS, Simfish, SimfishParams, make_state, physics_step
from larvax.envs.simfish.env import END_PREY_ALL_EATEN, END_STARVATION, END_TIME, REWARD_COMPONENTS

# A small periodic texture keeps the tests light (the vision reads sediment modulo its size).
SMALL_TEX = np.asarray(np.random.default_rng(0).uniform(0, 60, (1, 64, 64)), np.float32)
PARAMS = SimfishParams(prey_num=24)


@pytest.fixture(scope="module")
def env():
    return Simfish(PARAMS, sediment=SMALL_TEX)


@pytest.fixture(scope="module")
def fns(env):
    """The compiled functions shared by the tests: one single step, batched reset and step."""
    step = jax.jit(env.step)
    vstep = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0)))
    vreset = jax.jit(jax.vmap(env.reset))
    return step, vreset, vstep


@pytest.fixture(scope="module")
def rollout(env, fns):
    """4 environments x 40 random steps with auto-reset (the jitted single-step function)."""
    _, vreset, vstep = fns
    n, t = 4, 30
    key = jax.random.key(11)
    state, ts = vreset(jax.random.split(key, n))
    states, steps = [state], [ts]
    for i in range(t):
        k = jax.random.fold_in(key, i)
        ka, ks, kr = jax.random.split(k, 3)
        actions = jax.random.randint(ka, (n,), 0, 21)
        state, ts = vstep(jax.random.split(ks, n), state, actions)
        steps.append(ts)
        done = np.asarray(ts.terminated | ts.truncated)
        if done.any():
            fresh, _ = vreset(jax.random.split(kr, n))
            state = jax.tree_util.tree_map(
                lambda a, b, d=done: jnp.where(d.reshape((-1,) + (1,) * (a.ndim - 1)), a, b),
                fresh,
                state,
            )
        states.append(state)
    return states, steps


# ------------------------------------------------------------------------- contract


def test_spaces_and_first_observation(env, rollout):
    states, steps = rollout
    state = jax.tree_util.tree_map(lambda a: a[0], states[0])
    ts = jax.tree_util.tree_map(lambda a: a[0], steps[0])
    obs = ts.observation
    assert set(obs) == {"visual", "internal"}
    assert obs["visual"].shape == (139, 3, 2) and obs["visual"].dtype == jnp.float32
    assert obs["internal"].shape == (3,)
    assert env.observation_space().contains(jax.tree_util.tree_map(np.asarray, obs))
    assert env.action_space().n == 21
    assert float(ts.reward) == 0.0 and not bool(ts.terminated) and not bool(ts.truncated)
    # internal = (in_light = y > 750, energy 1, salt = exp(-0.002 |source - int(fish)|))
    fish = np.asarray(state.fish_xy)
    assert float(obs["internal"][0]) == float(fish[1] > 750)
    assert float(obs["internal"][1]) == 1.0
    d = np.linalg.norm(np.asarray(state.salt_source_xy) - np.trunc(fish))
    assert float(obs["internal"][2]) == pytest.approx(np.exp(-0.002 * d), rel=1e-5)
    # start pose: integers in [42, W - 42), prey alive on integers in [43, W - 43)
    assert np.all(fish == np.round(fish)) and np.all((fish >= 42) & (fish < 2458))
    prey = np.asarray(state.prey_xy)
    assert np.all(np.asarray(state.prey_alive))
    assert np.all((prey >= 43) & (prey < 2457)) and np.all(prey == np.round(prey))


def test_registry_presets_and_mirror():
    env, params = make("simfish", preset="sparse")
    assert isinstance(env, Simfish) and params.prey_num == 30 and params.prey_cloud_num == 3
    env, params = make("simfish", preset="stage1", max_steps=50)
    assert params.reward_consumption == 12.0 and params.reward_wall_touch == -10.0
    assert params.max_steps == 50
    _, params = make("simfish", preset="empty")
    assert params.prey_num == 0 and params.arena_width == 5000
    np.testing.assert_array_equal(np.asarray(env.mirror_actions), MIRROR_ACTIONS)
    v = jnp.arange(139 * 6, dtype=jnp.float32).reshape(139, 3, 2)
    r = env.reflect_observation({"visual": v, "internal": jnp.ones(3)})
    np.testing.assert_array_equal(np.asarray(r["visual"]), np.asarray(v)[::-1, :, ::-1])


def test_sparse_preset_places_prey_in_clouds():
    env = Simfish(SimfishParams.preset("sparse"), sediment=SMALL_TEX)
    s = env.init_state(jax.random.key(3))
    clouds = np.asarray(s.prey_cloud_xy)
    prey = np.asarray(s.prey_xy)
    assert clouds.shape == (3, 2) and np.all(np.asarray(s.prey_alive))
    # every prey inside the 240 px square region of some cloud
    inside = np.all(np.abs(prey[:, None, :] - clouds[None]) <= 120.0 + 1.0, -1)
    assert np.all(inside.any(1))
    # cloud centres keep the region inside the arena (>= 120 + 3 px from the edges)
    assert np.all((clouds >= 123) & (clouds < 2500 - 123))


def test_bad_params_raise_clear_errors():
    with pytest.raises(ValueError, match="prey_p_switch=1.5"):
        SimfishParams(prey_p_switch=1.5)
    with pytest.raises(ValueError, match="max_steps"):
        SimfishParams(max_steps=0)
    with pytest.raises(ValueError, match="preset='huge'.*allowed"):
        SimfishParams.preset("huge")
    with pytest.raises(ValueError, match="no field 'prey_count'"):
        SimfishParams.preset("normal", prey_count=3)
    with pytest.raises(ValueError, match="prey_p_slow \\+ prey_p_fast"):
        SimfishParams(prey_p_slow=0.5, prey_p_fast=0.2)
    with pytest.raises(ValueError, match="params"):
        Simfish(params={"prey_num": 3})
    with pytest.raises(ValueError, match="prey_xy has 3 prey"):
        make_state(SimfishParams(prey_num=2), (100, 100), 0.0, prey_xy=np.ones((3, 2)))


# ------------------------------------------------------------------------- invariants


def test_rollout_invariants(rollout):
    states, steps = rollout
    p = PARAMS
    for s in states:
        fish = np.asarray(s.fish_xy)
        assert np.all((fish > 0) & (fish < p.arena_width))
        alive = np.asarray(s.prey_alive)
        prey = np.asarray(s.prey_xy)[alive]
        assert np.all((prey > 5) & (prey < p.arena_width - 5))
        assert np.all(np.asarray(s.energy) <= 1.0)
    for ts in steps:
        v = np.asarray(ts.observation["visual"])
        assert np.all(np.isfinite(v)) and np.all(v == np.floor(v))
        assert v.min() >= 0 and v.max() <= 255
        comps = sum(np.asarray(ts.info["reward_components"][c]) for c in REWARD_COMPONENTS)
        np.testing.assert_allclose(np.asarray(ts.reward), comps, atol=1e-5)
        assert not np.any(np.asarray(ts.terminated) & np.asarray(ts.truncated))
    # shot noise on and light: the UV channel sees something
    assert np.asarray(steps[-1].observation["visual"])[..., 0, :].max() > 0


def test_same_key_same_trajectory_and_vmap_matches_single(env, fns, rollout):
    step, vreset, vstep = fns
    states, steps = rollout
    keys = jax.random.split(jax.random.key(10), 4)
    actions = jnp.array([1, 7, 20, 0])

    def run():
        s = states[0]
        out = []
        for i in range(3):
            s, ts = vstep(jax.random.split(jax.random.key(100 + i), 4), s, actions)
            out.append((np.asarray(s.fish_xy), np.asarray(ts.observation["visual"])))
        return out

    a, b = run(), run()
    for (fa, va), (fb, vb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(fa, fb)
        np.testing.assert_array_equal(va, vb)
    # the batched step equals the single one, environment by environment
    bs2, bts2 = vstep(keys, states[0], actions)
    for i in range(4):
        s = jax.tree_util.tree_map(lambda x, i=i: x[i], states[0])
        s2, ts2 = step(keys[i], s, actions[i])
        np.testing.assert_allclose(np.asarray(bs2.fish_xy[i]), np.asarray(s2.fish_xy), atol=1e-3)
        np.testing.assert_allclose(np.asarray(bs2.prey_xy[i]), np.asarray(s2.prey_xy), atol=1e-3)
        np.testing.assert_allclose(float(bts2.reward[i]), float(ts2.reward), atol=1e-5)
        np.testing.assert_array_equal(
            np.asarray(bts2.observation["visual"][i]), np.asarray(ts2.observation["visual"])
        )


# One physics-only compiled step for the scenario tests: one prey slot, no salt, mean bouts,
# no escapes; predator epochs only when a test sets them (make_state's default: never).
_P = SimfishParams(
    prey_num=1,
    salt_enabled=False,
    deterministic_action=True,
    prey_p_escape=0.0,
    predator_probability_per_epoch_step=1.0,
)
_phys = jax.jit(lambda k, s, a: physics_step(_P, k, s, a))


@settings(max_examples=25, deadline=None)
@given(
    x=st.floats(8.0, 2485.0),
    y=st.floats(13.0, 2490.0),
    angle=st.floats(-10.0, 10.0),
    action=st.integers(0, 20),
    seed=st.integers(0, 2**30),
)
def test_fish_stays_in_arena(x, y, angle, action, seed):
    s = make_state(_P, (x, y), angle, prey_xy=[[x + 30.0, y]])
    for i in range(3):
        s, comps, ev = _phys(jax.random.key(seed + i), s, jnp.int32(action))
        fx, fy = np.asarray(s.fish_xy)
        assert 0.0 < fx < 2500.0 and 0.0 < fy < 2500.0
        px, py = np.asarray(s.prey_xy[0])
        assert 5.0 < px < 2490.0 and 10.0 < py < 2495.0
        assert float(s.energy) <= 1.0


def test_truncation_vs_termination():
    s = make_state(_P, (1000.0, 1000.0), 0.0, step=_P.max_steps - 2)
    s, comps, ev = _phys(jax.random.key(0), s, jnp.int32(20))
    assert not bool(ev["truncated"]) and not bool(ev["terminated"]) and int(ev["end_cause"]) == 0
    s, comps, ev = _phys(jax.random.key(1), s, jnp.int32(20))
    assert bool(ev["truncated"]) and not bool(ev["terminated"])
    assert int(ev["end_cause"]) == END_TIME and int(s.step) == _P.max_steps
    # starvation: too little energy for a bout
    s = make_state(_P, (1000.0, 1000.0), 0.0, energy=1e-4)
    s, comps, ev = _phys(jax.random.key(0), s, jnp.int32(7))
    assert bool(ev["terminated"]) and not bool(ev["truncated"])
    assert int(ev["end_cause"]) == END_STARVATION and float(s.energy) < 0


def test_eating_the_last_prey_terminates():
    # a static prey 8 px straight ahead, the SCS capture bout (mean 10.8 px)
    prey = [[1000 + 8 * np.cos(0.3), 1000 + 8 * np.sin(0.3)]]
    s = make_state(_P, (1000.0, 1000.0), 0.3, prey_xy=prey)
    s2, comps, ev = _phys(jax.random.key(0), s, jnp.int32(0))
    assert int(ev["prey_caught"]) == 1 and not bool(s2.prey_alive[0])
    assert bool(ev["terminated"]) and int(ev["end_cause"]) == END_PREY_ALL_EATEN
    use = 5 * (0.00023 * 1.078005565 + 0.00002)
    assert float(comps["consumption"]) == 3.0
    assert float(comps["energy"]) == pytest.approx(-10 * use, rel=1e-4)
    assert float(s2.energy) == 1.0  # capped
    # the same prey behind the fish: a touch of the tail, not a catch
    s = make_state(_P, (1000.0, 1000.0), 0.3 + np.pi, prey_xy=prey)
    s2, comps, ev = _phys(jax.random.key(0), s, jnp.int32(0))
    assert int(ev["prey_caught"]) == 0 and bool(s2.prey_alive[0])


# ------------------------------------------------------------------------- predator


def test_predator_spawns_180px_away_and_hits():
    starts = np.full(5, 300)
    s = make_state(_P, (1200.0, 1300.0), 0.0, step=300, predator_epoch_starts=starts)
    s, comps, ev = _phys(jax.random.key(0), s, jnp.int32(20))
    assert bool(s.predator_present)
    np.testing.assert_allclose(np.asarray(s.predator_target_xy), [1200.0, 1300.0])
    # it moved toward the fish from 180 px away; speed -> 90 px/s (< 18 px per step)
    d = float(np.linalg.norm(np.asarray(s.predator_xy) - [1200.0, 1300.0]))
    assert 180.0 - 18.0 < d < 180.0
    hits = 0
    for i in range(15):
        s, comps, ev = _phys(jax.random.key(i + 1), s, jnp.int32(20))
        if bool(ev["predator_hit"]):
            hits += 1
            assert float(comps["predator"]) == -2.0
            assert not bool(s.predator_present)
            break
    assert hits == 1


def test_predator_immunity_and_avoidance():
    # before step 200 a predator cannot hit; one that reaches its target is an avoided attack
    s = make_state(
        _P,
        (1200.0, 1300.0),
        0.0,
        step=10,
        predator_xy=(1200.0, 1330.0),
        predator_target_xy=(1200.0, 1300.0),
    )
    total = 0.0
    for i in range(12):
        s, comps, ev = _phys(jax.random.key(i), s, jnp.int32(20))
        assert not bool(ev["predator_hit"])
        total += float(comps["predator"])
        if bool(ev["attack_survived"]):
            break
    assert bool(ev["attack_survived"]) and not bool(s.predator_present) and total == 2.0


# ------------------------------------------------------------------------- episodes


def _random_episodes(n, seed):
    p = SimfishParams()
    env = Simfish(p, sediment=SMALL_TEX)

    def episode(key):
        k0, k1 = jax.random.split(key)
        s = env.init_state(k0, p)

        def body(carry, k):
            s, done = carry
            ka, kp = jax.random.split(k)
            a = jax.random.randint(ka, (), 0, 21)
            s2, comps, ev = physics_step(p, kp, s, a)
            live = ~done
            r = sum(comps[c] for c in REWARD_COMPONENTS)
            out = {
                "r": jnp.where(live, r, 0.0),
                "wall": live & ev["wall_touch"],
                "caught": jnp.where(live, ev["prey_caught"], 0),
                "live": live,
            }
            done = done | ev["terminated"] | ev["truncated"]
            return (s2, done), out

        _, out = jax.lax.scan(body, (s, jnp.asarray(False)), jax.random.split(k1, p.max_steps))
        return out

    out = jax.jit(jax.vmap(episode))(jax.random.split(jax.random.key(seed), n))
    out = jax.tree_util.tree_map(np.asarray, out)
    return {
        "return": out["r"].sum(1),
        "wall": out["wall"].sum(1),
        "caught": out["caught"].sum(1),
        "length": out["live"].sum(1),
    }


def _compare_episodes(ours, simfish_data_dir, k_se):
    ref = np.load(simfish_data_dir / "episodes.npz")
    refs = {
        "return": ref["episode_return"],
        "wall": (ref["step_reward_components"][..., 4] < 0).sum(1),
        "caught": ref["episode_prey_caught"],
        "length": ref["episode_length"],
    }
    for name in ("return", "wall", "length", "caught"):
        o, r = ours[name].astype(float), refs[name].astype(float)
        se = np.sqrt(o.var(ddof=1) / len(o) + r.var(ddof=1) / len(r))
        assert abs(o.mean() - r.mean()) < k_se * se + 1e-9, (name, o.mean(), r.mean(), se)


def test_random_policy_episodes_like_reference(simfish_data_dir):
    ours = _random_episodes(8, seed=1)
    _compare_episodes(ours, simfish_data_dir, k_se=3.0)
    # returns dominated by walls: around -180 .. -280, 0-1 prey
    assert -350 < ours["return"].mean() < -120
    assert ours["caught"].mean() < 1.0


@pytest.mark.slow
def test_random_policy_episodes_like_reference_many(simfish_data_dir):
    ours = _random_episodes(128, seed=2)
    _compare_episodes(ours, simfish_data_dir, k_se=3.0)
