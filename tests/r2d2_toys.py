"""A toy mirror-symmetric memory env and a tiny LSTM Q-network for the R2D2 tests."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from larvax.envs.core import Box, Dict, Discrete, Environment, TimeStep


class CueEnv(Environment):
    """Remember a left/right cue shown at t = 0 and answer it at t = delay.

    observation: {"visual": float32 [2] photon counts (200 on the cue side at t = 0, else 0),
    "internal": float32 [1] = t / delay}. Actions: 0 left, 1 right, 2 wait. Reward at t = delay:
    +1 for the cue's side, -1 otherwise, then the episode terminates. With ``truncate_at``
    (< delay) the episode is truncated instead. info["prey_caught"]: 1 on a correct answer.
    Mirror: visual reversed, actions 0 <-> 1.
    """

    mirror_actions = np.array([1, 0, 2], np.int32)

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
        ts = TimeStep(self._obs(jnp.int32(0), cue), jnp.float32(0), jnp.bool_(False),
                      jnp.bool_(False), {"prey_caught": jnp.float32(0)})
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
        ts = TimeStep(self._obs(t1, cue), reward, terminated, truncated,
                      {"prey_caught": correct.astype(jnp.float32)})
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
