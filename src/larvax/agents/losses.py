"""The two agents' maths as small pure functions: PPO (GAE, clipped surrogate and value
losses) and R2D2 (n-step double-Q targets with value rescaling, the TD loss, priorities,
importance weights).

Each function handles one concept (rlax style): shapes are in the docstrings, there is no
hidden state, and every one is tested against hand-computed values (PPO in
``tests/test_ppo.py``, R2D2 in ``tests/test_losses_r2d2.py``).

PPO references:
- Schulman et al. 2017, "Proximal Policy Optimization Algorithms" (clipped surrogate).
- Schulman et al. 2016, "High-Dimensional Continuous Control Using Generalized Advantage
  Estimation" (GAE).
- Andrychowicz et al. 2021, "What Matters in On-Policy RL" and the PPO2 baselines code
  (clipped value loss, per-minibatch advantage normalisation).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import rlax

Array = jax.Array


def generalized_advantages(
    rewards: Array,
    values: Array,
    last_value: Array,
    terminated: Array,
    truncated: Array,
    truncation_values: Array,
    gamma: float,
    gae_lambda: float,
) -> tuple[Array, Array]:
    """GAE(gamma, lambda) over one trajectory of ``T`` steps with auto-reset episodes.

    Shapes: ``rewards, values, terminated, truncated, truncation_values: [T]``,
    ``last_value: []``. Step ``t`` is the transition ``s_t -a_t-> s_{t+1}`` with reward
    ``r_t``; ``values[t] = V(s_t)``; ``last_value = V(s_T)`` (the state after the rollout).

    .. math::

        \\delta_t = r_t + \\gamma\\,(1 - d_t)\\,V(s_{t+1})
                  + \\gamma\\,u_t\\,V(s^{final}_{t+1}) - V(s_t)

        A_t = \\delta_t + \\gamma\\lambda\\,(1 - d_t)\\,A_{t+1}, \\qquad R_t = A_t + V(s_t)

    with ``d_t = terminated_t or truncated_t`` (the episode ended at step ``t``; with
    auto-reset ``s_{t+1}`` then belongs to the *next* episode, so neither its value nor its
    advantage may leak back) and ``u_t = truncated_t and not terminated_t``:

    - **terminated** (a true terminal state): no bootstrap, the future value is 0.
    - **truncated** (a time limit cut the episode): the episode would have gone on, so we
      bootstrap from ``truncation_values[t] = V(s^final_{t+1})``, the value of the final
      observation of the cut episode (``info["final_observation"]``), evaluated with that
      episode's recurrent state. It is folded into the reward so that rlax's recursion
      (which only knows one discount per step) stays exact.

    ``truncation_values`` is ignored where ``u_t`` is False. Uses
    ``rlax.truncated_generalized_advantage_estimation`` for the recursion.

    Returns ``(advantages [T], returns [T])``; ``returns`` are the value targets
    ``A_t + V(s_t)``. Gradients are stopped through both.
    """
    rewards = jnp.asarray(rewards, jnp.float32)
    terminated = jnp.asarray(terminated, bool)
    truncated = jnp.asarray(truncated, bool)
    done = jnp.logical_or(terminated, truncated)
    bootstrap = jnp.logical_and(truncated, jnp.logical_not(terminated))
    folded_rewards = rewards + gamma * jnp.where(bootstrap, truncation_values, 0.0)
    discounts = gamma * (1.0 - done.astype(jnp.float32))
    all_values = jnp.concatenate([values, jnp.reshape(last_value, (1,))])
    advantages = rlax.truncated_generalized_advantage_estimation(
        folded_rewards, discounts, gae_lambda, all_values, stop_target_gradients=True
    )
    advantages = jax.lax.stop_gradient(advantages)
    returns = jax.lax.stop_gradient(advantages + values)
    return advantages, returns


def normalize_advantages(advantages: Array, eps: float = 1e-8) -> Array:
    """``(A - mean(A)) / (std(A) + eps)`` over all elements (one minibatch)."""
    return (advantages - advantages.mean()) / (advantages.std() + eps)


def clipped_surrogate_loss(
    log_prob: Array, old_log_prob: Array, advantages: Array, clip_eps: float
) -> tuple[Array, dict]:
    """PPO clipped surrogate objective, as a loss to minimise (Schulman et al. 2017, eq. 7).

    .. math::

        \\rho_t = \\exp(\\log\\pi_\\theta(a_t|h_t) - \\log\\pi_{old}(a_t|h_t))

        L^{CLIP} = -\\mathbb{E}_t\\big[\\min(\\rho_t A_t,\\;
                   \\mathrm{clip}(\\rho_t, 1-\\epsilon, 1+\\epsilon) A_t)\\big]

    Any shapes (all equal); the mean is over all elements. Returns ``(loss, aux)`` with
    ``aux = {"clip_fraction": fraction of |rho - 1| > eps, "approx_kl": mean((rho - 1) -
    log rho)}`` (the low-variance KL estimator of Schulman's blog, k3).
    """
    log_ratio = log_prob - old_log_prob
    ratio = jnp.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
    loss = -jnp.mean(jnp.minimum(unclipped, clipped))
    aux = {
        "clip_fraction": jnp.mean((jnp.abs(ratio - 1.0) > clip_eps).astype(jnp.float32)),
        "approx_kl": jnp.mean((ratio - 1.0) - log_ratio),
    }
    return loss, aux


def clipped_value_loss(
    values: Array, old_values: Array, returns: Array, vf_clip: float | None
) -> Array:
    """Value loss with the PPO2 clipping of the value change (baselines ``ppo2``).

    .. math::

        V^{clip}_t = V_{old}(h_t) + \\mathrm{clip}(V_\\theta(h_t) - V_{old}(h_t),
                     -\\epsilon_v, \\epsilon_v)

        L^{V} = \\tfrac12\\,\\mathbb{E}_t\\big[\\max((V_\\theta(h_t) - R_t)^2,\\;
                (V^{clip}_t - R_t)^2)\\big]

    With ``vf_clip`` None (or <= 0) it is the plain ``0.5 * mean((V - R)^2)``.
    Any shapes (all equal); the mean is over all elements.
    """
    unclipped = jnp.square(values - returns)
    if vf_clip is None or vf_clip <= 0:
        return 0.5 * jnp.mean(unclipped)
    clipped_values = old_values + jnp.clip(values - old_values, -vf_clip, vf_clip)
    clipped = jnp.square(clipped_values - returns)
    return 0.5 * jnp.mean(jnp.maximum(unclipped, clipped))


__all__ = [
    "clipped_surrogate_loss",
    "clipped_value_loss",
    "generalized_advantages",
    "normalize_advantages",
]


# ============================================================================= R2D2
# Kapturowski et al. 2019, "Recurrent Experience Replay in Distributed Reinforcement Learning"
# (R2D2); Schaul et al. 2016, "Prioritized Experience Replay". Tested by hand in
# ``tests/test_losses_r2d2.py``.


def n_step_targets(
    rewards: Array, discounts: Array, has_action: Array, values: Array, n: int, gamma: float
) -> Array:
    """n-step returns that stop at an episode's final observation and at the sequence end.

    For a sequence of T + 1 steps (index 0..T) and every t < T::

        K_t = min(n, T - t, e_t - t),  e_t = first j > t with has_action[j] False
        G_t = sum_{k<K_t} gamma^k (prod_{i<k} d_{t+i}) r_{t+k}
              + gamma^K_t (prod_{i<K_t} d_{t+i}) v_{t+K_t}

    rewards r, discounts d (0 after a terminal step, else 1), has_action: [B, T+1] (the reward
    and discount of step j belong to the transition out of step j; a step without action is an
    episode's final observation). values v [B, T+1]: bootstrap values (raw, not rescaled).
    Returns G [B, T] (entries with has_action[t] False are meaningless; mask them).
    """
    tp1 = rewards.shape[-1]
    t_len = tp1 - 1
    idx = jnp.arange(t_len)
    g = jnp.zeros(rewards.shape[:-1] + (t_len,), values.dtype)
    disc = jnp.ones_like(g)
    alive = has_action[..., :t_len]
    for k in range(n):
        j = idx + k  # <= T - 1 wherever alive
        jc = jnp.minimum(j, t_len - 1)
        nxt = jnp.minimum(j + 1, t_len)
        g = g + jnp.where(alive, disc * rewards[..., jc], 0.0)
        disc = jnp.where(alive, disc * gamma * discounts[..., jc], disc)
        alive_next = alive & has_action[..., nxt] & (j + 1 < t_len) & (k + 1 < n)
        stop = alive & ~alive_next
        g = g + jnp.where(stop, disc * values[..., nxt], 0.0)
        alive = alive_next
    return g


def rescaled_double_q_targets(
    q_online: Array,
    q_target: Array,
    rewards: Array,
    discounts: Array,
    has_action: Array,
    n: int,
    gamma: float,
    eps: float,
) -> Array:
    """R2D2's n-step double-Q targets with value rescaling (Kapturowski et al. 2019, eq. 1).

    With h(x) = sign(x)(sqrt(|x|+1)-1) + eps x (``rlax.signed_hyperbolic``) and its inverse
    h^-1 (``rlax.signed_parabolic``)::

        a*_j = argmax_a Q(o_j, a; theta)                 (double Q: the online network picks)
        v_j  = h^-1(Q(o_j, a*_j; theta^-))               (the target network values)
        y_t  = h(G_t),  G_t the n-step return of ``n_step_targets`` over (r, d, v)

    q_online, q_target: [B, T+1, A] Q-values of the trace; rewards, discounts, has_action:
    [B, T+1] (see ``n_step_targets``). Returns y [B, T] under stop-gradient.
    """
    sg = jax.lax.stop_gradient
    a_star = jnp.argmax(sg(q_online), axis=-1)
    v = rlax.signed_parabolic(jnp.take_along_axis(sg(q_target), a_star[..., None], -1)[..., 0], eps)
    g = n_step_targets(rewards, discounts, has_action, v, n, gamma)
    return sg(rlax.signed_hyperbolic(g, eps))


def sequence_td_loss(
    q_taken: Array, targets: Array, mask: Array, weights: Array
) -> tuple[Array, Array]:
    """Importance-weighted squared TD loss over sequences (Kapturowski et al. 2019, sec. 2.3).

    ::

        d_bt = Q(o_t, a_t; theta) - y_t        (0 where mask is False)
        L    = mean_b w_b * 0.5 * sum_t d_bt^2 / max(1, sum_t mask_bt)

    q_taken: [B, T] the online Q-values of the actions taken; targets y: [B, T]; mask: bool
    [B, T] (steps with an action); weights w: [B] importance weights. Returns (L, d [B, T]).
    """
    td = jnp.where(mask, q_taken - targets, 0.0)
    m = mask.astype(jnp.float32)
    per_seq = 0.5 * jnp.sum(td**2, axis=1) / jnp.maximum(jnp.sum(m, axis=1), 1.0)
    return jnp.mean(weights * per_seq), td


def sequence_priority(abs_td: Array, mask: Array, max_weight: float) -> Array:
    """R2D2 priority (Kapturowski et al. 2019, sec. 2.3): eta * max_t |d_t| + (1-eta) * mean_t |d_t|.

    abs_td: float32 [B, T]; mask: bool [B, T] (steps that count); returns float32 [B].
    """
    m = mask.astype(abs_td.dtype)
    mx = jnp.max(jnp.where(mask, abs_td, 0.0), axis=-1)
    mean = jnp.sum(abs_td * m, axis=-1) / jnp.maximum(jnp.sum(m, axis=-1), 1.0)
    return max_weight * mx + (1.0 - max_weight) * mean


def importance_weights(
    probability: Array, num_valid: Array, exponent: float, axis_name: str | None = None
) -> Array:
    """Prioritised-replay importance weights (Schaul et al. 2016, sec. 3.4).

    w_i = (N * P(i)) ** -beta / max_j w_j, with N the number of valid items and the max over
    the batch (and, with ``axis_name``, over the devices of that mapped axis).
    probability: float32 [B]; num_valid: int scalar; returns float32 [B] in (0, 1].
    """
    w = jnp.power(num_valid.astype(jnp.float32) * probability, -exponent)
    largest = jnp.max(w)
    if axis_name is not None:
        largest = jax.lax.pmax(largest, axis_name)
    return w / largest


__all__ += [
    "importance_weights",
    "n_step_targets",
    "rescaled_double_q_targets",
    "sequence_priority",
    "sequence_td_loss",
]
