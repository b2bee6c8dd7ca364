"""Shared pieces of the sequence-model contract.

Every torso, cell and block in ``larvax.networks`` follows one contract::

    carry = model.initialize_carry(batch_shape)          # batch_shape = (B,)
    carry, y = model(x, starts, carry)                   # x [B, T, F], starts [B, T] bool

``starts[b, t]`` True means step ``t`` is the first step of a new episode: the carry is
reset to the initial carry *before* step ``t`` is read. Acting is ``T = 1``. Running a
sequence with a start in the middle equals running the two pieces separately, each from
the initial carry, and running ``T`` single steps equals one call on the whole sequence.
The initial carry is all zeros for every model. Each model exposes ``in_features`` and
``out_features`` (the size of the last axis of ``y``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

Array = jax.Array
PyTree = Any


def check_positive_int(owner: str, name: str, value: Any) -> int:
    """Return ``value`` as an int, or raise a ValueError naming ``owner.name`` and the value."""
    if isinstance(value, bool) or not isinstance(value, int | jnp.integer) or int(value) < 1:
        raise ValueError(f"{owner}.{name} must be a positive int, got {value!r}")
    return int(value)


def check_positive_float(owner: str, name: str, value: Any) -> float:
    """Return ``value`` as a float, or raise a ValueError if it is not a finite number > 0."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{owner}.{name} must be a positive float, got {value!r}") from None
    if not (v > 0.0 and v < float("inf")):
        raise ValueError(f"{owner}.{name} must be a positive float, got {value!r}")
    return v


def check_batch_shape(owner: str, batch_shape: Any) -> tuple[int, ...]:
    """Validate the ``batch_shape`` given to ``initialize_carry`` (a tuple of ints >= 1)."""
    try:
        shape = tuple(int(d) for d in batch_shape)
    except TypeError:
        raise ValueError(
            f"{owner}.initialize_carry: batch_shape must be a tuple of ints such as (B,), "
            f"got {batch_shape!r}"
        ) from None
    if any(d < 1 for d in shape):
        raise ValueError(
            f"{owner}.initialize_carry: batch_shape entries must be >= 1, got {batch_shape!r}"
        )
    return shape


def check_inputs(owner: str, x: Array, starts: Array, in_features: int | None) -> Array:
    """Check ``x [B, T, F]`` and ``starts [B, T]``; return ``starts`` as bool.

    Shapes are static, so the check costs nothing under ``jit``. ``starts`` may be bool or
    numeric (nonzero = start, e.g. a float ``done`` flag of the previous step).
    """
    if x.ndim != 3:
        raise ValueError(f"{owner}: x must have shape [B, T, F], got shape {tuple(x.shape)}")
    if in_features is not None and x.shape[-1] != in_features:
        raise ValueError(
            f"{owner}: x has {x.shape[-1]} features (last axis), expected in_features={in_features}"
        )
    if tuple(starts.shape) != tuple(x.shape[:2]):
        raise ValueError(
            f"{owner}: starts must have shape [B, T] = {tuple(x.shape[:2])}, got "
            f"{tuple(starts.shape)}"
        )
    return jnp.asarray(starts).astype(bool)


def reset_where(start: Array, init: PyTree, carry: PyTree) -> PyTree:
    """Per batch entry, replace ``carry`` by ``init`` where ``start`` ([B] bool) is True."""

    def pick(i, c):
        s = jnp.reshape(start, start.shape + (1,) * (c.ndim - start.ndim))
        return jnp.where(s, i, c)

    return jax.tree.map(pick, init, carry)


def time_major(x: Array) -> Array:
    """[B, T, ...] -> [T, B, ...]."""
    return jnp.swapaxes(x, 0, 1)
