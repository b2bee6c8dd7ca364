"""R2D2: config validation, targets, loss, burn-in, stored states, mirroring, target copies,
episode boundaries, determinism. Tiny shapes; one compiled ``train`` shared by the module."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import rlax
from flax import nnx

from larvax.agents.r2d2 import (
    R2D2Config,
    StoredStep,
    actor_epsilons,
    decompress_observation,
    make_agent,
    mirror_batch,
    r2d2_loss,
)
from larvax.envs.core import Box, Dict, Discrete, Environment, EpisodeMetric, TimeStep

# ----------------------------------------------------------------------------- toys


class CueEnv(Environment):
    """Remember a left/right cue shown at t = 0 and answer it at t = delay.

    observation: {"visual": float32 [2] photon counts (200 on the cue side at t = 0, else 0),
    "internal": float32 [1] = t / delay}. Actions: 0 left, 1 right, 2 wait. Reward at t = delay:
    +1 for the cue's side, -1 otherwise, then the episode terminates. With ``truncate_at``
    (< delay) the episode is truncated instead. info["prey_caught"]: 1 on a correct answer,
    declared as an episode metric. Mirror: visual reversed, actions 0 <-> 1.
    """

    mirror_actions = np.array([1, 0, 2], np.int32)
    episode_metrics = (EpisodeMetric("prey_caught", "prey_caught"),)

    def __init__(self, delay: int = 3, truncate_at: int | None = None):
        self.delay = delay
        self.truncate_at = truncate_at

    @property
    def default_params(self):
        return {}

    def _obs(self, t, cue):
        first = (t == 0).astype(jnp.float32)
        vis = 200.0 * first * jax.nn.one_hot(cue, 2)
        return {"visual": vis, "internal": jnp.full((1,), t / self.delay, jnp.float32)}

    def reset(self, key, params=None):
        cue = jax.random.randint(key, (), 0, 2)
        state = (jnp.int32(0), cue)
        ts = TimeStep(
            self._obs(jnp.int32(0), cue),
            jnp.float32(0),
            jnp.bool_(False),
            jnp.bool_(False),
            {"prey_caught": jnp.float32(0)},
        )
        return state, ts

    def step(self, key, state, action, params=None):
        t, cue = state
        answer = t == self.delay
        correct = answer & (action == cue)
        reward = jnp.where(answer, jnp.where(correct, 1.0, -1.0), 0.0).astype(jnp.float32)
        t1 = t + 1
        terminated = answer
        truncated = jnp.bool_(False)
        if self.truncate_at is not None:
            truncated = (t1 >= self.truncate_at) & ~terminated
        ts = TimeStep(
            self._obs(t1, cue),
            reward,
            terminated,
            truncated,
            {"prey_caught": correct.astype(jnp.float32)},
        )
        return (t1, cue), ts

    def observation_space(self, params=None):
        return Dict({"visual": Box(0, 255, (2,)), "internal": Box(0.0, 1.0, (1,))})

    def action_space(self, params=None):
        return Discrete(3)

    def reflect_observation(self, obs):
        return {"visual": obs["visual"][..., ::-1], "internal": obs["internal"]}


class TinyLSTMQ(nnx.Module):
    """Embed [obs, one-hot prev action, prev reward] -> LSTM (reset at starts) -> linear Q."""

    def __init__(self, num_actions: int = 3, obs_dim: int = 3, hidden: int = 8, *, rngs):
        self.num_actions = num_actions
        self.hidden = hidden
        d_in = obs_dim + num_actions + 1 + 1
        self.embed = nnx.Linear(d_in, hidden, rngs=rngs)
        self.w = nnx.Linear(2 * hidden, 4 * hidden, rngs=rngs)
        self.head = nnx.Linear(hidden, num_actions, rngs=rngs)

    def initialize_carry(self, batch_shape):
        z = jnp.zeros(tuple(batch_shape) + (self.hidden,), jnp.float32)
        return (z, z)

    def __call__(self, obs, prev_action, prev_reward, starts, carry):
        flat = jnp.concatenate([obs["visual"] / 255.0, obs["internal"]], axis=-1)
        pa = jax.nn.one_hot(prev_action + 1, self.num_actions + 1)
        x = jnp.concatenate([flat, pa, prev_reward[..., None]], axis=-1)
        x = jax.nn.relu(self.embed(x))  # [B, T, H]
        w_kernel, w_bias = self.w.kernel[...], self.w.bias[...]

        def cell(c, inp):
            xt, st = inp
            h, m = c
            h = jnp.where(st[:, None], 0.0, h)
            m = jnp.where(st[:, None], 0.0, m)
            z = jnp.concatenate([xt, h], -1) @ w_kernel + w_bias
            i, f, g, o = jnp.split(z, 4, -1)
            m = jax.nn.sigmoid(f + 1.0) * m + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(m)
            return (h, m), h

        carry, hs = jax.lax.scan(cell, carry, (jnp.swapaxes(x, 0, 1), jnp.swapaxes(starts, 0, 1)))
        return carry, self.head(jnp.swapaxes(hs, 0, 1))


def tiny_net(seed: int = 0, hidden: int = 8) -> TinyLSTMQ:
    return TinyLSTMQ(hidden=hidden, rngs=nnx.Rngs(seed))


CFG = dict(
    num_devices=1,
    burn_in=2,
    trace_length=5,
    period=4,
    n_step=2,
    batch_size=2,
    num_envs=4,
    replay_capacity=32,
    min_replay_size=16,
    target_update_period=3,
    learning_rate=1e-2,
    discount=0.9,
)
UPDATES = 4  # one compiled train(state, 4) serves every test


def _copy(tree):
    return jax.tree.map(lambda x: jnp.array(x, copy=True), tree)


def _h(x, eps=1e-3):
    return np.sign(x) * (np.sqrt(np.abs(x) + 1) - 1) + eps * x


def _h_inv(x, eps=1e-3):
    return np.sign(x) * (((np.sqrt(1 + 4 * eps * (np.abs(x) + 1 + eps)) - 1) / (2 * eps)) ** 2 - 1)


@pytest.fixture(scope="module")
def agent():
    return make_agent(CueEnv(delay=3), None, tiny_net(), CFG)


@pytest.fixture(scope="module")
def acted(agent):
    """After 4 updates (16 steps per actor): acting only, 3 items per actor complete."""
    state = agent.init(jax.random.key(0))
    state, metrics = agent.train(state, UPDATES)
    return state, metrics


@pytest.fixture(scope="module")
def learned(agent, acted):
    """4 more updates; learning starts once 16 items are complete (update 5)."""
    state, metrics = agent.train(_copy(acted[0]), UPDATES)
    return state, metrics


@pytest.fixture(scope="module")
def learner_step(agent):
    return jax.jit(agent.learner_step)


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "override, field",
    [
        (dict(batch_size=32, min_replay_size=16), "batch_size"),
        (dict(replay_capacity=30), "replay_capacity"),
        (dict(replay_capacity=4), "replay_capacity"),
        (dict(min_replay_size=29), "min_replay_size"),
        (dict(samples_per_insert=0.75), "samples_per_insert"),
        (dict(n_step=6), "n_step"),
        (dict(discount=1.5), "discount"),
        (dict(mirror="maybe"), "mirror"),
        (dict(mirror_update="both"), "mirror_update"),
        (dict(mirror_features=True), "mirror_features"),
        (dict(burn_in=-1), "burn_in"),
        (dict(batch_size=2.0), "batch_size"),
    ],
)
def test_config_errors_name_field_value_and_allowed(override, field):
    with pytest.raises(ValueError, match=rf"R2D2Config\.{field}=.*allowed"):
        R2D2Config(**{**CFG, **override})


def test_config_unknown_field_and_derived_sizes():
    with pytest.raises(ValueError, match="unknown field.*'batchsize'"):
        R2D2Config.from_dict({"batchsize": 3})
    c = R2D2Config()  # simfish_rl defaults
    assert (c.burn_in, c.trace_length, c.period, c.n_step, c.batch_size) == (8, 75, 20, 5, 32)
    assert c.sequence_length == 84
    assert c.learner_steps_per_update == 2  # 1 sample/insert * 64 inserted / 32 per batch
    c = R2D2Config(**CFG)
    assert c.learner_steps_per_update == 2 and c.max_valid_items == 4 * 7


def test_mirror_true_without_mirror_map_is_an_error():
    class NoMirror(CueEnv):
        mirror_actions = None

    with pytest.raises(ValueError, match="mirror"):
        make_agent(NoMirror(), None, tiny_net(), {**CFG, "mirror": True})


def test_registry_network_spec_is_filled_and_init_works_under_eval_shape():
    """A network dict gets num_actions / obs_shape from the env; init(key) builds the
    parameters from the key, also under jax.eval_shape (the training loop's resume)."""
    spec = {"name": "recurrent_q", "hidden_size": 8, "mlp_hidden": [8], "head_hidden": [8]}
    ag = make_agent(CueEnv(), None, spec, CFG)
    assert ag.network_spec["num_actions"] == 3
    assert ag.network_spec["obs_shape"] == {"visual": [2], "internal": [1]}
    abstract = jax.eval_shape(ag.init, jax.random.key(0))
    s0, s0b, s1 = (ag.init(jax.random.key(k)) for k in (0, 0, 1))
    assert jax.tree.structure(abstract) == jax.tree.structure(s0)
    leaves = [jax.tree.leaves(s.params) for s in (s0, s0b, s1)]
    assert all(np.array_equal(a, b) for a, b in zip(leaves[0], leaves[1], strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(leaves[0], leaves[2], strict=True))


def test_actor_epsilons_log_spaced():
    eps = actor_epsilons(3, 0.1, 0.001)
    np.testing.assert_allclose(eps, [0.1, 0.01, 0.001], rtol=1e-6)
    assert actor_epsilons(1, 0.1, 0.001).tolist() == pytest.approx([0.1])


# ----------------------------------------------------------------------------- targets, loss


class ObsQ(nnx.Module):
    """Q-values read from the observation plus a bias parameter (for hand-computed losses)."""

    def __init__(self, bias):
        self.b = nnx.Param(jnp.asarray(bias, jnp.float32))

    def initialize_carry(self, batch_shape):
        return jnp.zeros(tuple(batch_shape) + (1,))

    def __call__(self, obs, prev_action, prev_reward, starts, carry):
        return carry, obs["q"] + self.b[...]


def test_loss_with_rescaled_double_q_targets_by_hand():
    net = ObsQ([0.0, 0.0])
    graphdef, params, rest = nnx.split(net, nnx.Param, ...)
    target = jax.tree.map(lambda p: p + jnp.array([1.0, -2.0]), params)
    q = np.array([[9.0, 9.0], [1, 2], [3, 0], [2.5, 4], [2, 1]], np.float32)  # burn-in + 4
    batch = StoredStep(
        observation={"q": jnp.asarray(q)[None]},
        prev_action=jnp.zeros((1, 5), jnp.int32),
        prev_reward=jnp.zeros((1, 5)),
        start=jnp.zeros((1, 5), bool),
        action=jnp.array([[0, 0, 1, 0, 0]], jnp.int32),
        reward=jnp.array([[0.0, 3.0, 0.0, 2.0, 5.0]]),
        discount=jnp.ones((1, 5)),  # step 2 is truncated: step 3 is its final observation
        has_action=jnp.array([[True, True, True, False, True]]),
    )
    gamma = 0.5
    loss, out = jax.jit(
        lambda p, t, b: r2d2_loss(
            p,
            t,
            rest,
            graphdef,
            b,
            jnp.zeros((1, 1)),
            jnp.ones((1,)),
            burn_in=1,
            n_step=2,
            discount=gamma,
            value_rescale_eps=1e-3,
        )
    )(params, target, batch)
    # online argmax at step 3 (final obs) is action 1 -> target q = 4 - 2 = 2 (double Q;
    # the target's own max would be 2.5 + 1 = 3.5)
    v3 = _h_inv(2.0)
    g0 = 3.0 + gamma * 0.0 + gamma**2 * v3
    g1 = 0.0 + gamma * v3
    td = np.array([1.0 - _h(g0), 0.0 - _h(g1)])  # Q(o0, a=0) = 1, Q(o1, a=1) = 0
    # float32 h^-1 loses ~1e-5 relative precision (cancellation in sqrt(1 + 4 eps x) - 1)
    np.testing.assert_allclose(float(loss), 0.5 * np.mean(td**2), rtol=1e-4)
    np.testing.assert_allclose(np.asarray(out.abs_td)[0, :2], np.abs(td), rtol=1e-4, atol=1e-5)
    assert np.asarray(out.mask)[0].tolist() == [True, True, False]  # T = 3 targets
    # rlax's h and h^-1 are the ones written above
    np.testing.assert_allclose(float(rlax.signed_hyperbolic(3.0, 1e-3)), _h(3.0), rtol=1e-6)
    np.testing.assert_allclose(float(rlax.signed_parabolic(_h(7.0), 1e-3)), 7.0, rtol=1e-4)


def test_burn_in_steps_receive_no_gradient(agent, acted):
    state = acted[0]
    sample, batch, w = jax.jit(agent.learner_batch)(state, jax.random.key(1))
    carry = sample.extras["carry"]

    def loss_of(vis, carry):
        b = batch._replace(observation=dict(batch.observation, visual=vis))
        return agent._loss(state.params, state.target_params, state.rest, b, carry, w)[0]

    g_obs, g_carry = jax.jit(jax.grad(loss_of, argnums=(0, 1)))(batch.observation["visual"], carry)
    g_obs = np.asarray(g_obs)
    bi = agent.config.burn_in
    assert np.all(g_obs[:, :bi] == 0.0)
    assert np.all(g_obs[:, -1] == 0.0)  # the last step only bootstraps (stop-gradient)
    assert np.abs(g_obs[:, bi:-1]).sum() > 0.0
    assert all(np.all(np.asarray(x) == 0.0) for x in jax.tree.leaves(g_carry))
    # and the parameter gradient is not zero
    g_p = jax.jit(
        jax.grad(lambda p: agent._loss(p, state.target_params, state.rest, batch, carry, w)[0])
    )(state.params)
    assert sum(float(jnp.abs(x).sum()) for x in jax.tree.leaves(g_p)) > 0.0


# ----------------------------------------------------------------------------- stored stream


def test_stored_states_are_the_actor_states(agent, acted):
    """carry of item k+1 = the network run from the stored carry of item k over item k's first
    ``period`` stored steps (no learning yet, so the acting parameters are state.params). The
    same holds for the mirrored stream and its stored mirrored carry (exact, not reused)."""
    state, metrics = acted
    assert np.all(np.isnan(np.asarray(metrics["loss"])))  # no learning in the first 4 updates
    rp, p = state.replay, agent.config.period
    apply = jax.jit(agent.apply)
    steps = rp.steps._replace(observation=decompress_observation(rp.steps.observation))
    msteps = mirror_batch(steps, agent.env.reflect_observation, agent.mirror_actions)
    for k in range(3):
        for stream, key in ((steps, "carry"), (msteps, "carry_mirror")):
            chunk = jax.tree.map(lambda x, k=k: x[:, k * p : (k + 1) * p], stream)
            c0 = jax.tree.map(lambda x, k=k: x[:, k], rp.extras[key])
            c1, _ = apply(
                state.params,
                state.rest,
                chunk.observation,
                chunk.prev_action,
                chunk.prev_reward,
                chunk.start,
                c0,
            )
            for a, b in zip(jax.tree.leaves(c1), jax.tree.leaves(rp.extras[key]), strict=True):
                np.testing.assert_allclose(np.asarray(a), np.asarray(b[:, k + 1]), atol=1e-5)
    # the mirrored state differs from the unmirrored one (so reusing it would be wrong)
    diff = sum(
        float(jnp.abs(a - b).sum())
        for a, b in zip(
            jax.tree.leaves(rp.extras["carry"]),
            jax.tree.leaves(rp.extras["carry_mirror"]),
            strict=True,
        )
    )
    assert diff > 1e-3
    # the learner starts from the stored state of the sampled items
    sample, _, _ = agent.learner_batch(state, jax.random.key(3))
    for a, b in zip(
        jax.tree.leaves(sample.extras["carry"]), jax.tree.leaves(rp.extras["carry"]), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b[sample.env_index, sample.slot]))


def test_stream_episode_boundaries_and_compact_observations(agent, acted):
    """CueEnv episodes: 4 actions then the final observation (no action), then a start."""
    rp = acted[0].replay
    s = jax.tree.map(np.asarray, rp.steps)._asdict()
    assert s["observation"]["visual"].dtype == np.uint8
    assert set(np.unique(s["observation"]["visual"])) <= {0, 200}  # exact photon counts
    has, start = s["has_action"][:, :16], s["start"][:, :16]
    t = np.arange(16)
    np.testing.assert_array_equal(has, np.broadcast_to(t % 5 != 4, has.shape))
    np.testing.assert_array_equal(start, np.broadcast_to(t % 5 == 0, has.shape))
    assert np.all(s["prev_action"][:, :16][start] == -1)
    assert np.all(s["prev_reward"][:, :16][start] == 0.0)
    assert np.all(s["reward"][:, :16][~has] == 0.0)
    # the answer step (t = 3) terminates: discount 0; all other steps 1
    ans = t % 5 == 3
    np.testing.assert_array_equal(s["discount"][:, :16] == 0.0, np.broadcast_to(ans, has.shape))
    assert set(np.unique(s["reward"][:, :16][:, ans])) <= {-1.0, 1.0}
    # a cue is shown exactly on start steps
    assert np.all((s["observation"]["visual"][:, :16].sum(-1) > 0) == start)


def test_sequences_cross_episode_starts_with_a_reset_carry(agent, acted):
    """A replayed sequence spanning a start gives, after the start, exactly what a fresh
    sequence from the zero state gives."""
    state = acted[0]
    st = jax.tree.map(lambda x: x[:1, 0:8], state.replay.steps)._asdict()  # start at 5
    st = dict(st, observation=decompress_observation(st["observation"]))
    c0 = jax.tree.map(lambda x: x[:1, 0], state.replay.extras["carry"])
    args = (st["observation"], st["prev_action"], st["prev_reward"], st["start"])
    _, q_full = agent.apply(state.params, state.rest, *args, c0)
    tail = jax.tree.map(lambda x: x[:, 5:], args)
    _, q_tail = agent.apply(state.params, state.rest, *tail, agent.initialize_carry(1))
    assert bool(st["start"][0, 5])
    np.testing.assert_allclose(np.asarray(q_full[:, 5:]), np.asarray(q_tail), atol=1e-6)


def test_mirror_batch_is_the_exact_mirror():
    env = CueEnv()
    obs = {
        "visual": jnp.array([[[200.0, 0.0], [0.0, 7.0]]]),
        "internal": jnp.array([[[0.1], [0.2]]]),
    }
    batch = StoredStep(
        observation=obs,
        action=jnp.array([[0, 1]]),
        prev_action=jnp.array([[-1, 2]]),
        reward=jnp.array([[1.0, -1.0]]),
        start=jnp.array([[True, False]]),
        prev_reward=jnp.zeros((1, 2)),
        discount=jnp.ones((1, 2)),
        has_action=jnp.ones((1, 2), bool),
    )
    mirrored = mirror_batch(batch, env.reflect_observation, jnp.asarray(env.mirror_actions))
    m = mirrored._asdict()
    np.testing.assert_array_equal(
        np.asarray(m["observation"]["visual"]), [[[0.0, 200.0], [7.0, 0.0]]]
    )
    np.testing.assert_array_equal(
        np.asarray(m["observation"]["internal"]), np.asarray(obs["internal"])
    )
    assert np.asarray(m["action"]).tolist() == [[1, 0]]
    assert np.asarray(m["prev_action"]).tolist() == [[-1, 2]]
    np.testing.assert_array_equal(np.asarray(m["reward"]), [[1.0, -1.0]])
    np.testing.assert_array_equal(np.asarray(m["start"]), [[True, False]])
    mm = mirror_batch(mirrored, env.reflect_observation, jnp.asarray(env.mirror_actions))
    for a, b in zip(jax.tree.leaves(mm), jax.tree.leaves(batch), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# ----------------------------------------------------------------------------- learning


def test_learning_metrics_and_samples_per_insert(agent, learned):
    state, m = learned
    loss = np.asarray(m["loss"])
    # 16 items are complete after update 5 (first of this call): learning in all 4 updates
    assert np.all(np.isfinite(loss))
    np.testing.assert_array_equal(np.asarray(m["learner_steps"]), [2, 4, 6, 8])
    np.testing.assert_array_equal(np.asarray(m["env_steps"]), [80, 96, 112, 128])
    assert int(state.learner_steps) == 8 and int(state.updates) == 8
    # episodes of 4 actions + 1 final-observation tick end at ticks 18, 23, 28 of 16..31
    np.testing.assert_array_equal(np.asarray(m["episodes"]), [4, 4, 0, 4])
    assert np.isnan(np.asarray(m["episode_return"])[2])  # no episode ended in update 7
    np.testing.assert_allclose(np.nanmean(np.asarray(m["episode_length"])), 4.0)
    r = np.asarray(m["episode_return"])
    assert np.all((np.isnan(r)) | ((r >= -1) & (r <= 1)))
    pc = np.asarray(m["prey_caught"])  # correct answers per episode = (return + 1) / 2
    ok = ~np.isnan(r)
    np.testing.assert_allclose(pc[ok], (r[ok] + 1) / 2, atol=1e-6)
    assert np.all(np.asarray(m["td_abs"]) > 0)
    pm, px = np.asarray(m["priority_mean"]), np.asarray(m["priority_max"])
    assert np.all(px >= pm)
    np.testing.assert_allclose(
        np.asarray(m["epsilon"]), np.mean(actor_epsilons(4, 0.1, 0.001)), rtol=1e-6
    )
    # sampled items got new priorities (not the initial 1.0 anywhere sampled)
    assert float(state.replay.max_priority) >= float(np.max(px)) - 1e-6


def test_target_network_changes_only_every_n_learner_steps(agent, learned, learner_step):
    state = _copy(learned[0])
    n = agent.config.target_update_period
    assert int(state.learner_steps) == 8
    changed = []
    for i in range(1, 7):
        before = state.target_params
        state, _ = learner_step(state, jax.random.key(i))
        same = all(
            bool(jnp.array_equal(a, b))
            for a, b in zip(
                jax.tree.leaves(before), jax.tree.leaves(state.target_params), strict=True
            )
        )
        equal_online = all(
            bool(jnp.array_equal(a, b))
            for a, b in zip(
                jax.tree.leaves(state.params), jax.tree.leaves(state.target_params), strict=True
            )
        )
        changed.append(not same)
        assert equal_online == (int(state.learner_steps) % n == 0)
    # learner steps 9..14: copies at 9 and 12
    assert changed == [True, False, False, True, False, False]


def test_learner_step_updates_sampled_priorities(agent, learned, learner_step):
    state = _copy(learned[0])
    new, _ = learner_step(state, jax.random.key(5))
    # one device: it samples its rows (all of them) with fold_in(first split key, device 0)
    assert agent.num_devices == 1
    k_sample = jax.random.fold_in(jax.random.split(jax.random.key(5))[0], 0)
    sample, _, _ = agent.learner_batch(state, k_sample)
    pr_old, pr_new = np.asarray(state.replay.priorities), np.asarray(new.replay.priorities)
    changed = pr_old != pr_new
    sampled = np.zeros_like(changed)
    sampled[np.asarray(sample.env_index), np.asarray(sample.slot)] = True
    assert np.all(changed <= sampled)  # only sampled items change
    assert changed.any()


def test_same_seed_gives_identical_metrics(agent, acted):
    s2, m2 = agent.train(agent.init(jax.random.key(0)), UPDATES)
    for k, v in acted[1].items():
        np.testing.assert_array_equal(np.asarray(v), np.asarray(m2[k]), err_msg=k)
    for a, b in zip(jax.tree.leaves(acted[0].replay), jax.tree.leaves(s2.replay), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    _, m3 = agent.train(agent.init(jax.random.key(1)), UPDATES)
    assert not np.array_equal(
        np.asarray(m3["episode_return"]), np.asarray(acted[1]["episode_return"]), equal_nan=True
    ) or not np.array_equal(
        np.asarray(m3["prey_caught"]), np.asarray(acted[1]["prey_caught"]), equal_nan=True
    )


def test_act_is_greedy_on_the_online_network(agent, learned):
    state = learned[0]
    env = agent.env
    _, ts = jax.vmap(env.reset)(jax.random.split(jax.random.key(9), 3))
    carry, a = agent.act(state, ts.observation, None, jax.random.key(0))
    _, q = agent.apply(
        state.params,
        state.rest,
        jax.tree.map(lambda x: x[:, None], ts.observation),
        -jnp.ones((3, 1), jnp.int32),
        jnp.zeros((3, 1)),
        jnp.ones((3, 1), bool),
        agent.initialize_carry(3),
    )
    np.testing.assert_array_equal(np.asarray(a), np.asarray(jnp.argmax(q[:, 0], -1)))
    assert np.asarray(carry.prev_action).tolist() == np.asarray(a).tolist()
    assert not np.asarray(carry.start).any()


def test_sequential_mirror_update_and_reused_carry_run(acted):
    """The simfish_rl variant: two Adam steps (batch and mirror in random order), mirrored
    batch from the unmirrored state; it changes the parameters and gives finite metrics."""
    ag = make_agent(
        CueEnv(delay=3),
        None,
        tiny_net(),
        {**CFG, "mirror_update": "sequential", "mirror_carry": "reuse"},
    )
    assert "carry_mirror" not in ag._replay_examples()[1]
    state = acted[0]
    st = ag.init(jax.random.key(0))
    st = st._replace(
        replay=state.replay._replace(extras={"carry": state.replay.extras["carry"]}),
        params=state.params,
        target_params=state.target_params,
    )
    new, m = jax.jit(ag.learner_step)(st, jax.random.key(2))
    assert np.isfinite(float(m["loss"])) and int(new.learner_steps) == 1
    moved = sum(
        float(jnp.abs(a - b).sum())
        for a, b in zip(jax.tree.leaves(new.params), jax.tree.leaves(st.params), strict=True)
    )
    assert moved > 0


class CueSides(nnx.Module):
    """Both sides of the Cue visual through one shared embedding: [left, right, internal]; the
    mirror image (visual reversed) swaps the two side blocks, declared with mirror_features."""

    mirror_features = True

    def __init__(self, hidden: int = 4, *, rngs):
        self.side = nnx.Linear(1, hidden, rngs=rngs)
        self.out_features = 2 * hidden + 1

    def _sides(self, obs):
        v = obs["visual"][..., None] / 255.0
        return jax.nn.relu(self.side(v[..., 0, :])), jax.nn.relu(self.side(v[..., 1, :]))

    def __call__(self, obs, *, with_mirror=False):
        left, right = self._sides(obs)
        f = jnp.concatenate([left, right, obs["internal"]], -1)
        if not with_mirror:
            return f
        return jnp.concatenate([f, jnp.concatenate([right, left, obs["internal"]], -1)])


class WrongCueSides(CueSides):
    """Declares mirror_features but its 'mirror' does not swap: must not be used."""

    def __call__(self, obs, *, with_mirror=False):
        f = super().__call__(obs)
        return jnp.concatenate([f, f]) if with_mirror else f


def mirror_net(cls=CueSides, seed: int = 3):
    from larvax.networks import (
        DiscreteQ,
        FeatureExtractor,
        Network,
        OneHotAction,
        TanhReward,
        make_torso,
    )

    rngs = nnx.Rngs(seed)
    fe = FeatureExtractor(observation=cls(rngs=rngs), action=OneHotAction(3), reward=TanhReward())
    return Network(
        fe, make_torso("lstm", fe.out_features, 8, rngs=rngs), DiscreteQ(8, 3, rngs=rngs)
    )


def test_mirror_features_train_like_explicitly_reflected_observations():
    """``mirror_features='auto'`` (the network derives the mirrored rows' features from the
    unmirrored observation, in acting and in the joint learner step) trains exactly like
    reflecting the observations and running them through the network (``False``): same
    metrics and parameters after acting and learning. A network whose declared mirror does not
    match the environment's reflection is detected at start-up and not trusted."""
    env = CueEnv(delay=3)
    fast = make_agent(env, None, mirror_net(), CFG)
    slow = make_agent(env, None, mirror_net(), {**CFG, "mirror_features": False})
    wrong = make_agent(env, None, mirror_net(WrongCueSides), CFG)
    assert fast.mirror_features and not slow.mirror_features and not wrong.mirror_features
    sf, mf = fast.train(fast.init(jax.random.key(4)), 2 * UPDATES)
    ss, ms = slow.train(slow.init(jax.random.key(4)), 2 * UPDATES)
    assert int(sf.learner_steps) > 0
    for key in ("loss", "q_mean", "td_abs"):
        np.testing.assert_allclose(np.asarray(mf[key]), np.asarray(ms[key]), rtol=1e-4, atol=1e-6)
    for a, b in zip(jax.tree.leaves(sf.params), jax.tree.leaves(ss.params), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    for a, b in zip(
        jax.tree.leaves(sf.actor.carry_mirror), jax.tree.leaves(ss.actor.carry_mirror), strict=True
    ):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_learns_stateless_cartpole_with_a_generic_recurrent_q_network():
    """StatelessCartPoleEasy (velocities hidden) with the registry's "recurrent_q" LSTM:
    the actors' mean episode return rises from ~0.05 (random) to >= 0.5 within 1M env steps
    (measured: 0.50 at 640k, 0.66 at 1M, 0.75 at 1.5M; about 4 minutes on a busy 2-core CPU)."""
    from larvax.envs import make

    env, params = make("StatelessCartPoleEasy")
    cfg = dict(burn_in=4, trace_length=16, period=8, n_step=3, batch_size=32, num_envs=32,
               replay_capacity=8192, min_replay_size=512, target_update_period=200,
               learning_rate=1e-3, discount=0.99, samples_per_insert=2.0)  # fmt: skip
    agent = make_agent(env, params, {"name": "recurrent_q", "hidden_size": 64}, cfg)
    state = agent.init(jax.random.key(0))
    returns = []
    for _ in range(40):  # 40 x 100 updates x 256 env steps = 1.02M env steps
        state, m = agent.train(state, 100)
        returns.append(float(np.nanmean(np.asarray(m["episode_return"]))))
    assert returns[0] < 0.2
    assert np.mean(returns[-4:]) >= 0.5, returns
