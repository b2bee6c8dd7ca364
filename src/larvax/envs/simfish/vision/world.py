"""``World``: what the eyes of one fish can see, the one input of Simfish vision."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from larvax.envs.simfish import arena

Array = jax.Array


class World(NamedTuple):
    """The visible world of one fish (a pytree: vmap it for a batch).

    fish_xy float32 ``[2]`` px; fish_angle float32 ``[]`` rad (unwrapped is fine);
    prey_xy float32 ``[P, 2]`` px; prey_alive bool ``[P]`` (dead or NaN prey are invisible);
    predator_present bool ``[]``; predator_xy float32 ``[2]`` px; predator_radius float32
    ``[]`` px; sediment :class:`larvax.envs.simfish.arena.Sediment` (pool and handle).
    """

    fish_xy: Array
    fish_angle: Array
    prey_xy: Array
    prey_alive: Array
    predator_present: Array
    predator_xy: Array
    predator_radius: Array
    sediment: arena.Sediment

    @classmethod
    def of_state(cls, state, textures: Array) -> World:
        """The world of a :class:`~larvax.envs.simfish.state.SimfishState` whose sediment
        handle points into the pool ``textures [K, H, W]``."""
        return cls(
            fish_xy=state.fish_xy,
            fish_angle=state.fish_angle,
            prey_xy=state.prey_xy,
            prey_alive=state.prey_alive,
            predator_present=state.predator_present,
            predator_xy=state.predator_xy,
            predator_radius=state.predator_radius,
            sediment=arena.Sediment(textures=textures, handle=state.sediment),
        )

    def as_arrays(self) -> World:
        """The same world as JAX arrays of the vision's dtypes (float32, bool)."""
        f32 = jnp.float32
        return self._replace(
            fish_xy=jnp.asarray(self.fish_xy, f32),
            fish_angle=jnp.asarray(self.fish_angle, f32),
            prey_xy=jnp.asarray(self.prey_xy, f32),
            prey_alive=jnp.asarray(self.prey_alive, bool),
            predator_present=jnp.asarray(self.predator_present, bool),
            predator_xy=jnp.asarray(self.predator_xy, f32),
            predator_radius=jnp.asarray(self.predator_radius, f32),
        )


__all__ = ["World"]
