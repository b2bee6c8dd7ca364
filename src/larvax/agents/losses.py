"""PPO losses and generalised advantage estimation, as small pure functions.

Each function handles one concept (rlax style): shapes are in the docstrings, there is no
hidden state, and every one is tested against hand-computed values in ``tests/test_ppo.py``.

References:
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
