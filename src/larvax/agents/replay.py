"""Prioritised sequence replay for recurrent agents (R2D2), as pure functions over a pytree.

Layout
------
Every actor (``num_envs`` of them, all stepping in lock-step) owns a ring of ``T = S * period``
time steps; every time step is stored **once**::

    steps:    pytree of [N, T, ...]   one entry per actor per time step (compact dtypes allowed)
    extras:   pytree of [N, S, ...]   one entry per *sequence item*: the recurrent state(s)
                                      the actor held before the item's first step
    priorities: float32 [N, S]        raw priorities p (sampling uses p ** alpha)

Item ``k`` of an actor starts at that actor's step ``k * period`` and covers the
``sequence_length`` steps ``k * period ... k * period + sequence_length - 1`` (so consecutive
items overlap by ``sequence_length - period`` steps, as in R2D2's replay of sequences cut every
``period`` steps). It lives in slot ``k % S``; its time steps are read with wrap-around from
the ring. ``add`` writes ``period`` steps per actor (one chunk) together with the item that
starts at the chunk's first step. An item can be sampled once all its steps are written and
until its first step is overwritten (then its slot holds the next item).

Why not flashbax's prioritised trajectory buffer? It stores per time step whatever is added,
so storing the recurrent state at sequence starts means storing it at *every* step (an LSTM
carry of 2 x 512 float32 is 4 KiB, five times a compact Simfish observation of 834 bytes).
Here the carry is stored once per item (per ``period`` steps). Sampling is an
inverse-CDF draw over all ``N * S`` priorities (one cumulative sum, then a binary search per
sample, never landing on an empty slot: ``inverse_cdf_index``) with no sum-tree state to keep
consistent. The comparison with flashbax's prioritised
trajectory buffer (time and bytes) is ``benchmarks/r2d2_simfish.py --mode replay``; its
figures are in the README.

Memory: a buffer of capacity ``C = N * S`` items costs
``C * period * bytes_per_step + C * (bytes_per_item + 4)`` bytes (``replay_nbytes``).

Episode boundaries are the caller's business: the buffer stores the actor's stream as is.
R2D2 (``larvax.agents.r2d2``) stores one ``StoredStep`` per actor tick, lets sequences cross
episode starts (the ``start`` flag resets the recurrent state there) and stops n-step returns
at each episode's final observation. Its priorities and importance weights are computed in
``larvax.agents.losses``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
PyTree = Any


def inverse_cdf_index(flat: Array, cdf: Array, u: Array) -> Array:
    """The items drawn by ``u`` [B] in ``[0, cdf[-1])`` from masses ``flat`` [M] (>= 0, one at
    least > 0) and their running sum ``cdf``: the first ``i`` with ``cdf[i] > u``, moved to the
    nearest item with mass at or before it (else the first with mass).

    XLA's ``cumsum`` adds in a tree order, so in float32 ``cdf`` can step up at an item of mass
    0 or step down: a plain binary search then sometimes lands on an empty slot (probability 0,
    an infinite importance weight, a NaN loss). Items with mass 0 are never returned.
    """
    m = flat.shape[0]
    idx = jnp.minimum(jnp.searchsorted(cdf, u, side="right"), m - 1)
    has_mass = flat > 0
    prev_with_mass = jax.lax.cummax(jnp.where(has_mass, jnp.arange(m), -1))
    idx = jnp.where(has_mass[idx], idx, prev_with_mass[idx])
    return jnp.where(idx < 0, jnp.argmax(has_mass), idx)


class ReplayState(NamedTuple):
    """The whole replay buffer (a pytree of arrays; it is part of the agent's TrainState).

    steps: pytree of [N, T, ...] stored time steps, T = slots * period.
    extras: pytree of [N, S, ...] per-item data (recurrent state at the item's start).
    priorities: float32 [N, S] raw priorities (>= 0) of the items in each slot.
    max_priority: float32 scalar, the largest priority seen (new items get it).
    num_steps: int32 scalar, time steps written per actor so far.
    """

    steps: PyTree
    extras: PyTree
    priorities: Array
    max_priority: Array
    num_steps: Array


class Sample(NamedTuple):
    """A batch of sampled items.

    env_index, slot: int32 [B] where the items live (for ``update_priorities``).
    steps: pytree of [B, L, ...] the sequences. extras: pytree of [B, ...].
    probability: float32 [B] the probability with which each item was drawn.
    num_valid: int32 scalar, how many items could be drawn.
    """

    env_index: Array
    slot: Array
    steps: PyTree
    extras: PyTree
    probability: Array
    num_valid: Array


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"SequenceReplay.{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _nbytes(example: PyTree) -> int:
    return int(
        sum(np.dtype(x.dtype).itemsize * int(np.prod(x.shape)) for x in jax.tree.leaves(example))
    )


class SequenceReplay:
    """Prioritised replay of fixed-length sequences cut every ``period`` steps.

    Args:
        num_envs: N, actors adding in lock-step (one row each).
        slots_per_env: S, items kept per actor; the ring holds ``S * period`` steps.
        period: steps between the starts of consecutive items (= steps per ``add``).
        sequence_length: L, steps per item; needs ``S * period >= L``.
    """

    def __init__(self, num_envs: int, slots_per_env: int, period: int, sequence_length: int):
        self.num_envs = _check_int("num_envs", num_envs, 1)
        self.slots_per_env = _check_int("slots_per_env", slots_per_env, 1)
        self.period = _check_int("period", period, 1)
        self.sequence_length = _check_int("sequence_length", sequence_length, 1)
        if self.slots_per_env * self.period < self.sequence_length:
            raise ValueError(
                f"SequenceReplay.slots_per_env={slots_per_env} with period={period} keeps "
                f"{slots_per_env * period} steps per actor, fewer than sequence_length="
                f"{sequence_length}; allowed: slots_per_env >= ceil(sequence_length / period)"
                f" = {-(-sequence_length // period)}"
            )

    @property
    def ring_length(self) -> int:
        """T, time steps stored per actor."""
        return self.slots_per_env * self.period

    @property
    def capacity(self) -> int:
        """C = N * S item slots."""
        return self.num_envs * self.slots_per_env

    @property
    def max_valid_items(self) -> int:
        """Items that can be sampled once the buffer is full."""
        per_env = (self.ring_length - self.sequence_length) // self.period + 1
        return self.num_envs * per_env

    def nbytes(self, step_example: PyTree, extras_example: PyTree) -> int:
        """Bytes of the buffer for one (unbatched) stored step and one item's extras."""
        return replay_nbytes(
            self.capacity, self.period, _nbytes(step_example), _nbytes(extras_example)
        )

    # ------------------------------------------------------------------ functions of the state

    def init(self, step_example: PyTree, extras_example: PyTree) -> ReplayState:
        """An empty buffer shaped after one unbatched step and one item's extras."""
        n, s, t = self.num_envs, self.slots_per_env, self.ring_length
        steps = jax.tree.map(
            lambda x: jnp.zeros((n, t) + jnp.shape(x), jnp.asarray(x).dtype), step_example
        )
        extras = jax.tree.map(
            lambda x: jnp.zeros((n, s) + jnp.shape(x), jnp.asarray(x).dtype), extras_example
        )
        return ReplayState(
            steps,
            extras,
            jnp.zeros((n, s), jnp.float32),
            jnp.ones((), jnp.float32),
            jnp.zeros((), jnp.int32),
        )

    def add(self, state: ReplayState, steps: PyTree, extras: PyTree) -> ReplayState:
        """Write one chunk: ``steps`` [N, period, ...] and the extras [N, ...] of the item that
        starts at the chunk's first step. The item completed by this chunk (if any) gets the
        maximum priority seen so far."""
        p = self.period
        for leaf in jax.tree.leaves(steps):
            if leaf.shape[:2] != (self.num_envs, p):
                raise ValueError(
                    f"SequenceReplay.add: steps must be [N={self.num_envs}, "
                    f"period={p}, ...], got {leaf.shape}"
                )
        k = state.num_steps // p  # index of the item starting at this chunk
        slot = k % self.slots_per_env
        pos = slot * p
        new_steps = jax.tree.map(
            lambda buf, x: jax.lax.dynamic_update_slice_in_dim(buf, x.astype(buf.dtype), pos, 1),
            state.steps,
            steps,
        )
        new_extras = jax.tree.map(
            lambda buf, x: jax.lax.dynamic_update_index_in_dim(buf, x.astype(buf.dtype), slot, 1),
            state.extras,
            extras,
        )
        num_steps = state.num_steps + p
        # The item completed now: the one with k * p + L <= num_steps < k * p + L + p.
        done_k = (num_steps - self.sequence_length) // p
        done_slot = jnp.maximum(done_k, 0) % self.slots_per_env
        col = jnp.where(done_k >= 0, state.max_priority, state.priorities[:, done_slot])
        priorities = state.priorities.at[:, done_slot].set(col)
        return ReplayState(new_steps, new_extras, priorities, state.max_priority, num_steps)

    def valid_mask(self, state: ReplayState) -> Array:
        """bool [S]: slots whose item is complete and not overwritten (same for all actors)."""
        p, s = self.period, self.slots_per_env
        last_k = state.num_steps // p - 1  # last item written
        slots = jnp.arange(s)
        k_in_slot = last_k - jnp.mod(last_k - slots, s)
        return (k_in_slot >= 0) & (k_in_slot * p + self.sequence_length <= state.num_steps)

    def num_valid(self, state: ReplayState) -> Array:
        return jnp.sum(self.valid_mask(state)).astype(jnp.int32) * self.num_envs

    def probabilities(self, state: ReplayState, priority_exponent: float) -> Array:
        """float32 [N, S]: P(i) = p_i^alpha / sum_j p_j^alpha over valid items (0 elsewhere)."""
        w = jnp.where(
            self.valid_mask(state)[None, :], jnp.power(state.priorities, priority_exponent), 0.0
        )
        return w / jnp.maximum(jnp.sum(w), 1e-30)

    def sample(
        self, state: ReplayState, key: Array, batch_size: int, priority_exponent: float
    ) -> Sample:
        """Draw ``batch_size`` items with replacement, P(i) proportional to p_i^alpha.

        Inverse CDF: one cumulative sum over the N * S slots, one binary search per draw.
        The caller must make sure at least one item is valid.
        """
        probs = self.probabilities(state, priority_exponent)
        flat = probs.reshape(-1)
        cdf = jnp.cumsum(flat)
        u = jax.random.uniform(key, (batch_size,)) * cdf[-1]
        idx = inverse_cdf_index(flat, cdf, u)
        env_index = (idx // self.slots_per_env).astype(jnp.int32)
        slot = (idx % self.slots_per_env).astype(jnp.int32)
        times = (slot[:, None] * self.period + jnp.arange(self.sequence_length)[None, :]) % (
            self.ring_length
        )
        seq = jax.tree.map(lambda buf: buf[env_index[:, None], times], state.steps)
        ext = jax.tree.map(lambda buf: buf[env_index, slot], state.extras)
        return Sample(env_index, slot, seq, ext, flat[idx], self.num_valid(state))

    def update_priorities(
        self, state: ReplayState, env_index: Array, slot: Array, priorities: Array
    ) -> ReplayState:
        """Set the raw priorities of sampled items (duplicates: one of them wins)."""
        new = state.priorities.at[env_index, slot].set(priorities.astype(jnp.float32))
        return state._replace(
            priorities=new, max_priority=jnp.maximum(state.max_priority, jnp.max(priorities))
        )


def replay_nbytes(capacity: int, period: int, bytes_per_step: int, bytes_per_item: int) -> int:
    """Bytes of a ``SequenceReplay`` of ``capacity`` items: every item slot owns ``period``
    stored steps, its extras and one float32 priority."""
    return int(capacity) * (int(period) * int(bytes_per_step) + int(bytes_per_item) + 4)


__all__ = [
    "inverse_cdf_index",
    "ReplayState",
    "Sample",
    "SequenceReplay",
    "replay_nbytes",
]
