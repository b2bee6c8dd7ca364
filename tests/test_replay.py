"""Prioritised sequence replay: layout, validity, priorities, sampling frequencies, bytes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from larvax.agents.replay import SequenceReplay, inverse_cdf_index, replay_nbytes

N, S, P, L = 2, 4, 3, 5  # actors, slots per actor, period, sequence length -> ring of 12 steps


def _step_example():
    return {"t": jnp.int32(0), "obs": jnp.zeros((2,), jnp.uint8)}


def _fill(buf, state, chunks):
    """Add ``chunks`` chunks whose step data is the global time index (and env id * 100)."""
    add = jax.jit(buf.add)
    for _ in range(chunks):
        t0 = int(state.num_steps)
        t = np.arange(t0, t0 + P)[None, :] + 100 * np.arange(N)[:, None]
        steps = {
            "t": jnp.asarray(t, jnp.int32),
            "obs": jnp.asarray(np.stack([t % 256, t % 7], -1), jnp.uint8),
        }
        extras = {"c": jnp.asarray(t[:, 0], jnp.float32)}
        state = add(state, steps, extras)
    return state


def test_valid_items_and_sequences_by_hand():
    buf = SequenceReplay(N, S, P, L)
    state = buf.init(_step_example(), {"c": jnp.float32(0)})
    assert buf.ring_length == 12 and buf.capacity == 8
    # per actor, when full: items k with 3k >= W - 12 and 3k + 5 <= W -> (12 - 5)//3 + 1 = 3
    assert buf.max_valid_items == N * 3
    expected_valid = {1: 0, 2: 1, 3: 2, 4: 3, 5: 3, 6: 3, 7: 3}  # chunks -> items per actor
    for chunks in range(1, 8):
        state = _fill(buf, state, 1)
        assert int(buf.num_valid(state)) == N * expected_valid[chunks], chunks
    # after 7 chunks (W = 21): valid items k = 3, 4, 5 (starts 9, 12, 15; 15 + 5 <= 21)
    valid = np.asarray(buf.valid_mask(state))
    assert valid.tolist() == [True, True, False, True]  # slots 3 % 4, 4 % 4, 5 % 4
    sample = buf.sample(state, jax.random.key(0), 64, 1.0)
    t = np.asarray(sample.steps["t"])
    env = np.asarray(sample.env_index)
    for b in range(64):
        local = t[b] - 100 * env[b]
        start = local[0]
        assert start in (9, 12, 15)  # only complete, not overwritten items
        np.testing.assert_array_equal(local, start + np.arange(L))  # contiguous in time
        # the extras are the ones stored with the item's first step
        assert float(sample.extras["c"][b]) == t[b, 0]
    np.testing.assert_array_equal(np.asarray(sample.steps["obs"])[..., 0], t % 256)


def test_new_items_get_max_priority_and_updates_apply():
    buf = SequenceReplay(N, S, P, L)
    state = _fill(buf, buf.init(_step_example(), {"c": jnp.float32(0)}), 2)
    # item 0 is complete (slot 0) with the initial max priority 1.0
    np.testing.assert_allclose(np.asarray(state.priorities[:, 0]), [1.0, 1.0])
    state = buf.update_priorities(
        state, jnp.array([0, 1]), jnp.array([0, 0]), jnp.array([3.0, 0.5])
    )
    np.testing.assert_allclose(np.asarray(state.priorities[:, 0]), [3.0, 0.5])
    assert float(state.max_priority) == 3.0
    state = _fill(buf, state, 1)  # completes item 1 (slot 1)
    np.testing.assert_allclose(np.asarray(state.priorities[:, 1]), [3.0, 3.0])


def test_sampling_frequencies_follow_priorities_chi_square():
    buf = SequenceReplay(N, S, P, L)
    state = _fill(buf, buf.init(_step_example(), {"c": jnp.float32(0)}), 7)
    valid = np.asarray(buf.valid_mask(state))
    pr = np.array([[0.5, 1.0, 7.0, 2.0], [3.0, 0.25, 9.0, 4.0]], np.float32)
    state = state._replace(priorities=jnp.asarray(pr))
    alpha = 0.9
    expected = np.where(valid[None], pr.astype(np.float64) ** alpha, 0.0)
    expected = (expected / expected.sum()).reshape(-1)
    draws = 20000
    sample = jax.jit(lambda s, k: buf.sample(s, k, draws, alpha))(state, jax.random.key(42))
    flat = np.asarray(sample.env_index) * S + np.asarray(sample.slot)
    counts = np.bincount(flat, minlength=N * S)
    assert counts[expected == 0].sum() == 0  # never an invalid slot
    keep = expected > 0
    f_exp = draws * expected[keep] / expected[keep].sum()
    chi = stats.chisquare(counts[keep], f_exp)
    assert chi.pvalue > 1e-3, (counts, draws * expected)
    np.testing.assert_allclose(np.asarray(sample.probability), expected[flat], rtol=1e-5)


def test_a_draw_never_lands_on_an_empty_slot():
    """float32 running sums from XLA's tree-ordered cumsum can step up at an item of mass 0
    and step down elsewhere (seen in a real run: 10 such steps over 8,192 items, then a draw of
    an empty slot, an infinite importance weight and a NaN loss). By hand:"""
    flat = jnp.array([0.5, 0.0, 0.25, 0.0, 0.25], jnp.float32)
    # a rounded running sum that steps up by 2 ulp (1.2e-7) at the empty item 1
    cdf = jnp.array([0.5, 0.50000012, 0.75, 0.75, 1.0], jnp.float32)
    u = jnp.array([0.0, 0.49, 0.50000006, 0.6, 0.74, 0.76, 0.99, 0.9999999], jnp.float32)
    idx = np.asarray(inverse_cdf_index(flat, cdf, u))
    # u = 0.50000006 (0.5 + 1 ulp) has cdf[1] > u first: the empty item 1 -> the nearest item
    # with mass before it, 0; the empty item 3 is never reached (cdf does not step there)
    np.testing.assert_array_equal(idx, [0, 0, 0, 2, 2, 4, 4, 4])
    assert (np.asarray(flat)[idx] > 0).all()
    # leading empty items: the first item with mass
    flat2 = jnp.array([0.0, 0.0, 1.0], jnp.float32)
    cdf2 = jnp.array([1e-8, 1e-8, 1.0], jnp.float32)
    np.testing.assert_array_equal(inverse_cdf_index(flat2, cdf2, jnp.array([0.0, 0.5])), [2, 2])


def test_nbytes_matches_the_arrays():
    buf = SequenceReplay(4, 6, 5, 11)
    step = {"obs": jnp.zeros((139, 3, 2), jnp.uint8), "a": jnp.int32(0), "r": jnp.float32(0)}
    extras = {"carry": (jnp.zeros((16,)), jnp.zeros((16,)))}
    state = buf.init(step, extras)
    actual = sum(x.nbytes for x in jax.tree.leaves((state.steps, state.extras, state.priorities)))
    assert buf.nbytes(step, extras) == actual
    # by hand: C = 24 items, each 5 steps of 834 + 8 bytes, 128 bytes of carry, 4 of priority
    assert replay_nbytes(24, 5, 842, 128) == 24 * (5 * 842 + 128 + 4) == actual


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(num_envs=0, slots_per_env=4, period=3, sequence_length=5), "num_envs"),
        (dict(num_envs=1, slots_per_env=1, period=3, sequence_length=5), "slots_per_env"),
        (dict(num_envs=1, slots_per_env=2, period=2.5, sequence_length=5), "period"),
    ],
)
def test_bad_arguments_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        SequenceReplay(**kwargs)
