"""Stateless (position-only) CartPole and its noisy variant, ports of popgym 1.0.7.

popgym's ``PositionOnlyCartPole`` / ``NoisyPositionOnlyCartPole``: gymnasium's CartPole
(Barto, Sutton & Anderson 1983; explicit Euler, ``tau = 0.02 s``, force ``+-10 N``)
whose observation keeps only the cart position ``x`` (m) and pole angle ``theta``
(rad), so velocities must be inferred from memory.

- Observation: float32 [2] = ``[x, theta]`` in ``Box(-[4.8, 0.419], [4.8, 0.419])``
  (twice gymnasium's thresholds). The noisy variant adds ``N(0, noise_sigma^2)`` to
  both components and clips to that box, at reset and at every step.
- Action: ``Discrete(2)`` (0: push left, 1: push right).
- Reset: the full state ``(x, x_dot, theta, theta_dot)`` uniform in ``[-0.05, 0.05]``.
- Reward: ``1 / max_episode_length`` every step, including the failing one (gymnasium
  gives 1 there); ``-1`` only for steps taken after termination (gymnasium's reward 0
  there, mapped by popgym to -1). An episode that lasts ``T`` steps returns
  ``T / max_episode_length`` in ``(0, 1]``; balancing to the limit scores 1.0.
- terminated: ``|x| > 2.4 m`` or ``|theta| > 12 deg``; truncated: ``t >= max_episode_length``.
  As in popgym both can be True on the last step (then treat it as terminated).
- Lengths: StatelessCartPole Easy/Medium/Hard 200/400/600 steps; popgym's noisy
  variants keep 200 steps with ``noise_sigma`` 0.1/0.2/0.3.

The dynamics are computed in float32 (gymnasium uses float64); trajectories agree to
~1e-5 over hundreds of steps (tested against popgym).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from larvax.envs.core import (
    Box,
    Discrete,
    Environment,
    TimeStep,
    check_action,
    end_on_invalid_action,
)
from larvax.validation import Int, Number, fail

Array = jax.Array


class CartPoleParams(NamedTuple):
    """Physical constants (SI units) and episode settings; every leaf may be traced."""

    gravity: float = 9.8  # m/s^2
    masscart: float = 1.0  # kg
    masspole: float = 0.1  # kg
    length: float = 0.5  # m, half the pole's length
    force_mag: float = 10.0  # N
    tau: float = 0.02  # s per step
    theta_threshold: float = 12 * 2 * math.pi / 360  # rad
    x_threshold: float = 2.4  # m
    max_episode_length: int = 200  # steps
    noise_sigma: float = 0.0  # std of the observation noise (m and rad)


class CartPoleState(NamedTuple):
    """x (m), x_dot (m/s), theta (rad), theta_dot (rad/s): float32 scalars; t: int32 steps;
    done: bool, the pole already fell (later steps get reward -1, as in popgym)."""

    x: Array
    x_dot: Array
    theta: Array
    theta_dot: Array
    t: Array
    done: Array


_RULES = {"max_episode_length": Int(ge=1), "noise_sigma": Number(ge=0.0)}
"""Rules of the constructor's settings (the other fields are physical constants)."""


def _check_params(params: CartPoleParams) -> None:
    for name, rule in _RULES.items():
        if not rule.ok(getattr(params, name)):
            fail(params, name, getattr(params, name), rule.describe())


class StatelessCartPole(Environment):
    """popgym ``PositionOnlyCartPole``: CartPole observing only ``[x, theta]`` (module doc).

    Left/right symmetric: ``mirror_actions = [1, 0]`` and ``reflect_observation(o) = -o``.
    """

    mirror_actions = jnp.array([1, 0], jnp.int32)

    def __init__(self, max_episode_length: int = 200, noise_sigma: float = 0.0):
        params = CartPoleParams(max_episode_length=max_episode_length, noise_sigma=noise_sigma)
        _check_params(params)
        self._params = params._replace(
            max_episode_length=int(max_episode_length), noise_sigma=float(noise_sigma)
        )

    @property
    def default_params(self) -> CartPoleParams:
        return self._params

    @property
    def max_episode_length(self) -> int:
        return self._params.max_episode_length

    def _p(self, params):
        return self._params if params is None else params

    @property
    def name(self) -> str:
        """The registered name (e.g. ``RepeatPreviousEasy``) or the class name."""
        return getattr(self, "variant_name", None) or type(self).__name__

    def _high(self, params):
        return jnp.array([params.x_threshold * 2, params.theta_threshold * 2], jnp.float32)

    def _obs(self, key, state: CartPoleState, params) -> Array:
        obs = jnp.stack([state.x, state.theta]).astype(jnp.float32)
        noise = params.noise_sigma * jax.random.normal(key, (2,), jnp.float32)
        high = self._high(params)
        return jnp.where(params.noise_sigma > 0, jnp.clip(obs + noise, -high, high), obs)

    def reset(self, key, params=None):
        params = self._p(params)
        k_state, k_obs = jax.random.split(key)
        s = jax.random.uniform(k_state, (4,), jnp.float32, -0.05, 0.05)
        return self.reset_with(s, params, k_obs)

    def reset_with(self, physical_state, params=None, key=None):
        """Reset to ``physical_state = [x, x_dot, theta, theta_dot]`` (m, m/s, rad, rad/s);
        ``key`` draws the observation noise (noisy variant)."""
        params = self._p(params)
        s = jnp.asarray(physical_state, jnp.float32)
        if s.shape != (4,):
            raise ValueError(
                f"physical_state must have shape (4,) = [x, x_dot, theta, theta_dot], "
                f"got shape {s.shape}"
            )
        key = jax.random.key(0) if key is None else key
        state = CartPoleState(s[0], s[1], s[2], s[3], jnp.int32(0), jnp.bool_(False))
        ts = TimeStep(
            self._obs(key, state, params), jnp.float32(0.0), jnp.bool_(False), jnp.bool_(False), {}
        )
        return state, ts

    def step(self, key, state: CartPoleState, action, params=None):
        params = self._p(params)
        invalid = check_action(self.action_space(params), action, f"{self.name}.step")
        force = jnp.where(jnp.asarray(action) == 1, params.force_mag, -params.force_mag)
        total_mass = params.masspole + params.masscart
        polemass_length = params.masspole * params.length
        cos, sin = jnp.cos(state.theta), jnp.sin(state.theta)
        temp = (force + polemass_length * state.theta_dot**2 * sin) / total_mass
        thetaacc = (params.gravity * sin - cos * temp) / (
            params.length * (4.0 / 3.0 - params.masspole * cos**2 / total_mass)
        )
        xacc = temp - polemass_length * thetaacc * cos / total_mass
        x = state.x + params.tau * state.x_dot
        x_dot = state.x_dot + params.tau * xacc
        theta = state.theta + params.tau * state.theta_dot
        theta_dot = state.theta_dot + params.tau * thetaacc
        terminated = (
            (x < -params.x_threshold)
            | (x > params.x_threshold)
            | (theta < -params.theta_threshold)
            | (theta > params.theta_threshold)
        )
        t = state.t + 1
        reward = jnp.where(state.done, -1.0, 1.0 / params.max_episode_length)
        new = CartPoleState(
            x.astype(jnp.float32),
            x_dot.astype(jnp.float32),
            theta.astype(jnp.float32),
            theta_dot.astype(jnp.float32),
            t,
            state.done | terminated,
        )
        ts = TimeStep(
            self._obs(key, new, params),
            reward.astype(jnp.float32),
            terminated,
            t >= params.max_episode_length,
            {},
        )
        return new, end_on_invalid_action(ts, invalid)

    def observation_space(self, params=None):
        params = self._p(params)
        high = np.array([params.x_threshold * 2, params.theta_threshold * 2], np.float32)
        return Box(-high, high, (2,), jnp.float32)

    def action_space(self, params=None):
        return Discrete(2)

    def reflect_observation(self, observation):
        return -observation


class NoisyStatelessCartPole(StatelessCartPole):
    """popgym ``NoisyPositionOnlyCartPole``: StatelessCartPole with Gaussian observation
    noise of std ``noise_sigma`` (m for x, rad for theta), clipped to the observation box."""

    def __init__(self, max_episode_length: int = 200, noise_sigma: float = 0.1):
        super().__init__(max_episode_length=max_episode_length, noise_sigma=noise_sigma)


CARTPOLE_VARIANTS = {
    "StatelessCartPoleEasy": (StatelessCartPole, {"max_episode_length": 200}),
    "StatelessCartPoleMedium": (StatelessCartPole, {"max_episode_length": 400}),
    "StatelessCartPoleHard": (StatelessCartPole, {"max_episode_length": 600}),
    "NoisyStatelessCartPoleEasy": (
        NoisyStatelessCartPole,
        {"max_episode_length": 200, "noise_sigma": 0.1},
    ),
    "NoisyStatelessCartPoleMedium": (
        NoisyStatelessCartPole,
        {"max_episode_length": 200, "noise_sigma": 0.2},
    ),
    "NoisyStatelessCartPoleHard": (
        NoisyStatelessCartPole,
        {"max_episode_length": 200, "noise_sigma": 0.3},
    ),
}
"""popgym 1.0.7's difficulty levels: name -> (class, constructor arguments)."""
