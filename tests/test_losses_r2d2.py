"""R2D2's TD maths in ``larvax.agents.losses``: n-step double-Q targets with value rescaling,
the weighted sequence TD loss, priorities and importance weights, against hand-computed
values."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import rlax

from larvax.agents.losses import (
    importance_weights,
    n_step_targets,
    rescaled_double_q_targets,
    sequence_priority,
    sequence_td_loss,
)


def test_n_step_targets_by_hand():
    g, v = 0.5, np.array([10.0, 20.0, 30.0, 40.0, 50.0, 60.0], np.float32)
    r = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], np.float32)
    # steps 0..5 (T = 5 targets); step 2 -> 3 terminates, step 3 is the final observation
    d = np.array([1, 1, 0, 1, 1, 1], np.float32)
    has = np.array([1, 1, 1, 0, 1, 1], bool)
    out = np.asarray(n_step_targets(*(jnp.asarray(x)[None] for x in (r, d, has, v)), 3, g))[0]
    expected = [
        1 + g * 2 + g**2 * 3 + 0.0,  # window reaches the final obs after a terminal step
        2 + g * 3 + 0.0,  # stops at the final observation: no bootstrap (terminated)
        3 + 0.0,  # 1-step, terminal
        np.nan,  # final observation: no target
        5 + g * v[5],  # sequence end after one step
    ]
    np.testing.assert_allclose(out[[0, 1, 2, 4]], np.array(expected)[[0, 1, 2, 4]], rtol=1e-6)
    # truncation instead of termination: bootstrap from the final observation's value
    d_tr = np.ones(6, np.float32)
    out = np.asarray(n_step_targets(*(jnp.asarray(x)[None] for x in (r, d_tr, has, v)), 3, g))[0]
    np.testing.assert_allclose(
        out[:3],
        [1 + g * 2 + g**2 * 3 + g**3 * v[3], 2 + g * 3 + g**2 * v[3], 3 + g * v[3]],
        rtol=1e-6,
    )
    # an ordinary window of n = 3
    has_all = np.ones(6, bool)
    out = np.asarray(n_step_targets(*(jnp.asarray(x)[None] for x in (r, d_tr, has_all, v)), 3, g))[
        0
    ]
    np.testing.assert_allclose(out[0], 1 + g * 2 + g**2 * 3 + g**3 * v[3], rtol=1e-6)
    np.testing.assert_allclose(out[3], 4 + g * 5 + g**2 * v[5], rtol=1e-6)


def test_importance_weights_and_priority_mix_by_hand():
    p = jnp.array([0.1, 0.4, 0.2])
    w = np.asarray(importance_weights(p, jnp.int32(10), 0.6))
    raw = (10 * np.array([0.1, 0.4, 0.2])) ** -0.6
    np.testing.assert_allclose(w, raw / raw.max(), rtol=1e-6)
    assert w.max() == pytest.approx(1.0)
    td = jnp.array([[1.0, -3.0, 2.0, 100.0], [0.5, 0.5, 0.5, 0.5]])
    mask = jnp.array([[True, True, True, False], [True, True, False, False]])
    prio = np.asarray(sequence_priority(jnp.abs(td), mask, 0.9))
    np.testing.assert_allclose(prio, [0.9 * 3 + 0.1 * 2.0, 0.5], rtol=1e-6)


def test_rescaled_double_q_targets_by_hand():
    """The online network picks the action, the target network values it, h rescales."""
    eps, gamma = 1e-3, 0.5
    q_online = jnp.array([[[1.0, 2.0], [3.0, 0.0], [0.0, 5.0]]])  # [1, T+1 = 3, 2]
    q_target = jnp.array([[[10.0, 20.0], [30.0, -4.0], [7.0, -1.0]]])
    r = jnp.array([[1.0, 2.0, 0.0]])
    d = jnp.ones((1, 3))
    has = jnp.ones((1, 3), bool)
    y = np.asarray(rescaled_double_q_targets(q_online, q_target, r, d, has, 1, gamma, eps))
    v = np.asarray(rlax.signed_parabolic(jnp.array([20.0, 30.0, -1.0]), eps))  # a* = 1, 0, 1
    expected = rlax.signed_hyperbolic(jnp.array([1.0 + gamma * v[1], 2.0 + gamma * v[2]]), eps)
    np.testing.assert_allclose(y[0], np.asarray(expected), rtol=1e-5)
    # no gradient flows through the targets
    g = jax.grad(lambda q: jnp.sum(rescaled_double_q_targets(q, q, r, d, has, 1, gamma, eps)))(
        q_online
    )
    assert np.all(np.asarray(g) == 0.0)


def test_sequence_td_loss_by_hand():
    q_taken = jnp.array([[1.0, 2.0, 3.0], [0.0, 0.0, 4.0]])
    y = jnp.array([[0.0, 4.0, 100.0], [1.0, 1.0, 1.0]])
    mask = jnp.array([[True, True, False], [True, False, True]])
    w = jnp.array([1.0, 0.5])
    loss, td = sequence_td_loss(q_taken, y, mask, w)
    np.testing.assert_array_equal(np.asarray(td), [[1.0, -2.0, 0.0], [-1.0, 0.0, 3.0]])
    per_seq = [0.5 * (1 + 4) / 2, 0.5 * (1 + 9) / 2]
    np.testing.assert_allclose(float(loss), np.mean([1.0 * per_seq[0], 0.5 * per_seq[1]]))


def test_importance_weights_normalised_over_devices():
    """With ``axis_name`` the largest weight over all devices is 1 (one global batch)."""
    p = jnp.array([[0.1, 0.4], [0.2, 0.05]])  # [devices, B / D]
    w = jax.vmap(lambda x: importance_weights(x, jnp.int32(10), 0.6, axis_name="d"),
                 axis_name="d")(p)  # fmt: skip
    raw = (10 * np.asarray(p)) ** -0.6
    np.testing.assert_allclose(np.asarray(w), raw / raw.max(), rtol=1e-6)
