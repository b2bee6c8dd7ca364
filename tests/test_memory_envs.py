"""POPGym memory tasks: conformance with popgym 1.0.7 on identical hidden sequences.

Spaces and episode lengths of every variant, per-step observations/rewards/flags for
scripted actions on the deck popgym dealt, an observation-history oracle scoring 1.0,
random-policy returns against popgym's, and one-step CartPole dynamics against popgym.
"""

from __future__ import annotations

import zlib

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import popgym.envs as pe
import pytest

from larvax.envs import make
from larvax.envs.memory import VARIANTS, CountRecall, RepeatPrevious, StatelessCartPole
from larvax.envs.wrappers import AutoReset, EpisodeStatistics

CARD_NAMES = [n for n in VARIANTS if "CartPole" not in n]
CARTPOLE_NAMES = [n for n in VARIANTS if "CartPole" in n]


def popgym_env(name):
    """The popgym class of a larvax variant name."""
    pg_name = name.replace("StatelessCartPole", "PositionOnlyCartPole")
    return getattr(pe, pg_name)()


def one_hot_size(space) -> int:
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if isinstance(space, gym.spaces.MultiDiscrete):
        return int(np.sum(space.nvec))
    if isinstance(space, gym.spaces.Tuple):
        return sum(one_hot_size(s) for s in space.spaces)
    raise TypeError(space)


def one_hot_obs(space, obs) -> np.ndarray:
    """popgym observation -> larvax's documented flat one-hot encoding."""
    if isinstance(space, gym.spaces.Discrete):
        return np.eye(space.n, dtype=np.float32)[int(obs)]
    if isinstance(space, gym.spaces.MultiDiscrete):
        return np.concatenate(
            [np.eye(n, dtype=np.float32)[int(o)] for n, o in zip(space.nvec, obs, strict=True)]
        )
    if isinstance(space, gym.spaces.Tuple):
        return np.concatenate([one_hot_obs(s, o) for s, o in zip(space.spaces, obs, strict=True)])
    raise TypeError(space)


@pytest.fixture(scope="module")
def envs():
    """name -> (env, params, jitted step), shared by the tests."""
    out = {}
    for name in VARIANTS:
        env, params = make(name)
        out[name] = (env, params, jax.jit(env.step))
    return out


# ----------------------------------------------------------------------------- spaces


@pytest.mark.parametrize("name", list(VARIANTS))
def test_spaces_and_lengths_match_popgym(name, envs):
    env, params, _ = envs[name]
    pg = popgym_env(name)
    assert env.max_episode_length == pg.max_episode_length
    assert env.action_space(params).n == pg.action_space.n
    space = env.observation_space(params)
    if "CartPole" in name:
        np.testing.assert_allclose(space.low, pg.observation_space.low, rtol=1e-6)
        np.testing.assert_allclose(space.high, pg.observation_space.high, rtol=1e-6)
        assert space.shape == pg.observation_space.shape
    else:
        assert space.shape == (one_hot_size(pg.observation_space),)
    assert env.name == name


def test_popgym_names_registered():
    env, params = make("PositionOnlyCartPoleMedium")
    assert isinstance(env, StatelessCartPole) and params.max_episode_length == 400
    env, params = make("NoisyPositionOnlyCartPoleHard")
    assert params.noise_sigma == pytest.approx(0.3) and params.max_episode_length == 200
    env, params = make("RepeatPreviousEasy", k=2)
    assert params.k == 2


# ----------------------------------------------------------------------------- oracles


def oracle(env, hist: np.ndarray) -> int:
    """The optimal action from the observation history ``hist`` [t, D] (t >= 1)."""
    name = env.name
    t = len(hist)
    if name.startswith("RepeatPrevious"):
        k = env.default_params.k
        return int(np.argmax(hist[t - k])) if t >= k else 0
    if name.startswith("RepeatFirst"):
        return int(np.argmax(hist[0]))
    if name.startswith("CountRecall"):
        d = hist.shape[1] // 2
        q = int(np.argmax(hist[-1, d:]))
        return int(hist[:, :d][:, q].sum())
    if name.startswith("Autoencode"):
        playing = np.flatnonzero(hist[:, 0] == 1.0)  # mode one-hot [play, watch]
        if len(playing) == 0:
            return 0
        first = playing[0]
        j = t - 1 - first
        return int(np.argmax(hist[first - j, 2:]))
    raise ValueError(name)


def popgym_cards(pg):
    """The deal order(s) popgym drew at reset (it deals from the end of deck.idx)."""
    if hasattr(pg, "value_deck"):
        return pg.value_deck.idx[::-1].copy(), pg.query_deck.idx[::-1].copy()
    return (pg.deck.idx[::-1].copy(),)


@pytest.mark.parametrize("name", CARD_NAMES)
def test_card_game_matches_popgym_step_by_step(name, envs):
    """Same deck, same actions (oracle with 40% random mistakes): same obs, rewards, flags."""
    env, params, step = envs[name]
    pg = popgym_env(name)
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    obs_pg, _ = pg.reset(seed=int(rng.integers(1 << 30)))
    state, ts = env.reset_with(*popgym_cards(pg))
    np.testing.assert_array_equal(ts.observation, one_hot_obs(pg.observation_space, obs_pg))
    hist = [np.asarray(ts.observation)]
    n_actions = pg.action_space.n
    rewards_pg, rewards = [], []
    key = jax.random.key(0)
    for t in range(1, pg.max_episode_length + 1):
        a = oracle(env, np.stack(hist)) if rng.random() < 0.6 else int(rng.integers(n_actions))
        obs_pg, r_pg, term, trunc, _ = pg.step(a)
        state, ts = step(key, state, jnp.int32(a))
        obs = np.asarray(ts.observation)
        np.testing.assert_array_equal(obs, one_hot_obs(pg.observation_space, obs_pg))
        assert float(ts.reward) == pytest.approx(r_pg, abs=1e-7), t
        assert (bool(ts.terminated), bool(ts.truncated)) == (term, trunc), t
        rewards_pg.append(r_pg)
        rewards.append(float(ts.reward))
        hist.append(obs)
        if term or trunc:
            break
    assert t == pg.max_episode_length and term
    # the scripted policy is neither always right nor always wrong
    assert -1.0 < sum(rewards_pg) < 1.0
    assert sum(rewards) == pytest.approx(sum(rewards_pg), abs=1e-5)


@pytest.mark.parametrize("name", CARD_NAMES)
def test_oracle_scores_one(name, envs):
    env, params, step = envs[name]
    state, ts = env.reset(jax.random.key(len(name)))
    hist = [np.asarray(ts.observation)]
    total, key = 0.0, jax.random.key(1)
    for t in range(1, env.max_episode_length + 1):
        state, ts = step(key, state, jnp.int32(oracle(env, np.stack(hist))))
        total += float(ts.reward)
        hist.append(np.asarray(ts.observation))
        assert bool(ts.terminated) == (t == env.max_episode_length)
        assert not bool(ts.truncated)
        assert float(ts.reward) >= 0.0
    assert total == pytest.approx(1.0, abs=1e-4)


# ----------------------------------------------------------------------------- random policy


def random_returns_larvax(env, params, episodes: int, seed: int) -> np.ndarray:
    length = env.max_episode_length
    n_actions = env.action_space(params).n

    def episode(key):
        k0, key = jax.random.split(key)
        state, _ = env.reset(k0, params)

        def body(carry, key):
            state, alive, total = carry
            ka, ks = jax.random.split(key)
            a = jax.random.randint(ka, (), 0, n_actions)
            state, ts = env.step(ks, state, a, params)
            total = total + jnp.where(alive, ts.reward, 0.0)
            return (state, alive & ~ts.done, total), None

        carry = (state, jnp.bool_(True), jnp.float32(0.0))
        (_, _, total), _ = jax.lax.scan(body, carry, jax.random.split(key, length))
        return total

    keys = jax.random.split(jax.random.key(seed), episodes)
    return np.asarray(jax.jit(jax.vmap(episode))(keys))


def random_returns_popgym(name, episodes: int, seed: int) -> np.ndarray:
    pg = popgym_env(name)
    pg.action_space.seed(seed)
    out = []
    for i in range(episodes):
        pg.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            _, r, term, trunc, _ = pg.step(int(pg.action_space.sample()))
            total += r
            done = term or trunc
        out.append(total)
    return np.asarray(out)


# analytic expectation of the uniformly random policy (None: no closed form)
RANDOM_EXPECTED = {
    "RepeatPreviousEasy": -0.5,
    "RepeatFirstEasy": -0.5,
    "AutoencodeEasy": -0.5,
    "CountRecallEasy": 2 / 27 - 1,
    "StatelessCartPoleEasy": None,
    "NoisyStatelessCartPoleEasy": None,
}


@pytest.mark.parametrize("name", list(RANDOM_EXPECTED))
def test_random_policy_return_matches_popgym(name, envs):
    env, params, _ = envs[name]
    ours = random_returns_larvax(env, params, 400, seed=0)
    theirs = random_returns_popgym(name, 150, seed=1000)
    assert np.all(ours >= -1.0) and np.all(ours <= 1.0)
    se = np.sqrt(ours.var() / len(ours) + theirs.var() / len(theirs))
    assert abs(ours.mean() - theirs.mean()) < 4 * se + 1e-6
    if RANDOM_EXPECTED[name] is not None:
        assert ours.mean() == pytest.approx(
            RANDOM_EXPECTED[name], abs=float(4 * ours.std() / 20 + 1e-6)
        )
    else:  # random CartPole falls after ~22 of 200 steps
        assert 0.05 < ours.mean() < 0.2


# ----------------------------------------------------------------------------- CartPole


def history_controller(hist, tau=0.02) -> int:
    """Balance from positions only: velocities by finite differences of [x, theta]."""
    x, th = hist[-1]
    xd, thd = ((hist[-1] - hist[-2]) / tau) if len(hist) >= 2 else (0.0, 0.0)
    return int(th + 0.3 * thd + 0.01 * x + 0.05 * xd > 0)


def test_cartpole_one_step_dynamics_match_popgym():
    """From popgym's exact pre-step state, our step gives popgym's post-step state."""
    env = StatelessCartPole()
    pg = pe.PositionOnlyCartPoleEasy()
    rng = np.random.default_rng(0)
    pre, post, actions, flags, rewards = [], [], [], [], []
    for ep in range(6):
        obs, _ = pg.reset(seed=ep)
        hist = [obs]
        done = False
        while not done:
            p_ctrl = 0.8 if ep < 3 else 0.0  # balanced episodes, then falling ones
            a = history_controller(hist) if rng.random() < p_ctrl else int(rng.integers(2))
            pre.append((np.array(pg.state, np.float64), pg.num_steps))
            obs, r, term, trunc, _ = pg.step(a)
            post.append(np.array(pg.state, np.float64))
            actions.append(a)
            flags.append((term, trunc))
            rewards.append(r)
            hist.append(obs)
            done = term or trunc

    def one(s, t, a):
        state, _ = env.reset_with(s)
        state = state._replace(t=t)
        state, ts = env.step(jax.random.key(0), state, a)
        return jnp.stack([state.x, state.x_dot, state.theta, state.theta_dot]), ts

    states = jnp.asarray(np.stack([p[0] for p in pre]), jnp.float32)
    ts_t = jnp.asarray([p[1] for p in pre], jnp.int32)
    got, ts = jax.jit(jax.vmap(one))(states, ts_t, jnp.asarray(actions, jnp.int32))
    np.testing.assert_allclose(got, np.stack(post), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ts.terminated, [f[0] for f in flags])
    np.testing.assert_array_equal(ts.truncated, [f[1] for f in flags])
    np.testing.assert_allclose(ts.reward, rewards, rtol=1e-6)
    np.testing.assert_allclose(ts.observation, np.stack(post)[:, [0, 2]], rtol=1e-5, atol=1e-6)
    assert any(f[0] for f in flags) and any(f[1] for f in flags)


def test_cartpole_short_open_loop_matches_popgym():
    """Random actions from the same initial state: the same trajectory until the fall."""
    env = StatelessCartPole()
    step = jax.jit(env.step)
    pg = pe.PositionOnlyCartPoleEasy()
    rng = np.random.default_rng(3)
    for ep in range(3):
        obs_pg, _ = pg.reset(seed=100 + ep)
        state, ts = env.reset_with(np.array(pg.state))
        np.testing.assert_allclose(ts.observation, obs_pg, atol=1e-7)
        done = False
        while not done:
            a = int(rng.integers(2))
            obs_pg, r, term, trunc, _ = pg.step(a)
            state, ts = step(jax.random.key(0), state, jnp.int32(a))
            np.testing.assert_allclose(ts.observation, obs_pg, rtol=1e-4, atol=1e-5)
            assert float(ts.reward) == pytest.approx(r)
            assert (bool(ts.terminated), bool(ts.truncated)) == (term, trunc)
            done = term or trunc


@pytest.mark.parametrize("name", ["StatelessCartPoleEasy", "StatelessCartPoleHard"])
def test_cartpole_history_oracle_scores_one(name, envs):
    env, params, step = envs[name]
    state, ts = env.reset(jax.random.key(7))
    hist = [np.asarray(ts.observation)]
    total = 0.0
    for t in range(1, env.max_episode_length + 1):
        state, ts = step(jax.random.key(t), state, jnp.int32(history_controller(hist)))
        total += float(ts.reward)
        hist.append(np.asarray(ts.observation))
        assert not bool(ts.terminated)
        assert bool(ts.truncated) == (t == env.max_episode_length)
    assert total == pytest.approx(1.0, abs=1e-4)


def test_noisy_cartpole_noise_statistics(envs):
    env, params, _ = envs["NoisyStatelessCartPoleMedium"]  # sigma 0.2, clipped at the box
    keys = jax.random.split(jax.random.key(0), 4000)
    state, ts = jax.vmap(env.reset, (0, None))(keys, params)
    true = np.stack([np.asarray(state.x), np.asarray(state.theta)], axis=1)
    noise = np.asarray(ts.observation) - true
    # x noise: box is +-4.8, never clipped; theta box +-0.419 clips some of N(0, 0.2)
    assert noise[:, 0].std() == pytest.approx(0.2, rel=0.05)
    assert abs(noise[:, 0].mean()) < 0.02
    high = float(env.observation_space(params).high[1])
    assert np.all(np.abs(np.asarray(ts.observation)[:, 1]) <= high + 1e-7)
    assert np.any(np.isclose(np.abs(np.asarray(ts.observation)[:, 1]), high))


def test_cartpole_mirror_symmetry():
    """Reflecting the state and the actions reflects the whole trajectory."""
    env = StatelessCartPole()
    step = jax.jit(env.step)
    s = np.array([0.03, -0.02, 0.04, 0.01], np.float32)
    a_state, a_ts = env.reset_with(s)
    b_state, b_ts = env.reset_with(-s)
    for a in [1, 1, 0, 1, 0, 0, 0, 1]:
        a_state, a_ts = step(jax.random.key(0), a_state, jnp.int32(a))
        b_state, b_ts = step(jax.random.key(0), b_state, env.mirror_actions[a])
        np.testing.assert_allclose(
            env.reflect_observation(a_ts.observation), b_ts.observation, atol=1e-7
        )


# ----------------------------------------------------------------------------- misc


def test_autoreset_episode_boundaries():
    env = AutoReset(RepeatPrevious(num_decks=1, k=2))
    step = jax.jit(env.step)
    state, ts = env.reset(jax.random.key(0))
    key = jax.random.key(1)
    ends = []
    for t in range(1, 2 * 51 + 1):
        key, k = jax.random.split(key)
        state, ts = step(k, state, jnp.int32(0))
        if bool(ts.done):
            ends.append(t)
            assert int(state.t) == 0  # the new episode's state
    assert ends == [51, 102]


def test_vmapped_statistics_under_autoreset(envs):
    """EpisodeStatistics(AutoReset(task)) vmapped and scanned: every episode has popgym's
    length and the random policy's expected return."""
    env, params, _ = envs["RepeatPreviousEasy"]
    wrapped = EpisodeStatistics(AutoReset(env))
    n, steps = 64, 3 * 51
    state, _ = jax.vmap(wrapped.reset, (0, None))(jax.random.split(jax.random.key(0), n), params)

    def body(state, key):
        ka, ks = jax.random.split(key)
        actions = jax.random.randint(ka, (n,), 0, 4)
        state, ts = jax.vmap(wrapped.step, (0, 0, 0, None))(
            jax.random.split(ks, n), state, actions, params
        )
        return state, (
            ts.info["episode_done"],
            ts.info["episode_return"],
            ts.info["episode_length"],
        )

    _, (done, ret, length) = jax.jit(
        lambda s: jax.lax.scan(body, s, jax.random.split(jax.random.key(1), steps))
    )(state)
    done, ret, length = np.asarray(done), np.asarray(ret), np.asarray(length)
    assert done.sum() == 3 * n
    np.testing.assert_array_equal(np.flatnonzero(done.any(axis=1)), [50, 101, 152])
    np.testing.assert_array_equal(length[done], 51)
    # 48 rewarded steps (t = 4..51) of +-1/48 with p(correct) = 1/4: mean -0.5,
    # sd = sqrt(48 * (1 - (1/4 - 3/4)^2)) / 48 = 0.125 per episode
    sd = np.sqrt(48 * 0.75) / 48
    assert ret[done].mean() == pytest.approx(-0.5, abs=float(4 * sd / np.sqrt(3 * n)))
    assert np.all(np.abs(ret[done]) <= 1.0)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="k must be"):
        RepeatPrevious(num_decks=1, k=52)
    with pytest.raises(ValueError, match="num_decks"):
        RepeatPrevious(num_decks=0)
    with pytest.raises(ValueError, match="deck_type"):
        CountRecall(deck_type="jokers")
    env = RepeatPrevious()
    with pytest.raises(ValueError, match="permutation"):
        env.reset_with(np.zeros(52, np.int32))
    with pytest.raises(ValueError, match="shape"):
        env.reset_with(np.arange(51))
    with pytest.raises(ValueError, match="physical_state"):
        StatelessCartPole().reset_with(np.zeros(3))
    with pytest.raises(ValueError, match="unknown environment"):
        make("RepeatPreviousImpossible")
