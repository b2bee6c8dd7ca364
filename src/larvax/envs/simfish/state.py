"""``SimfishState``: the whole Simfish world as one pytree of arrays (one environment).

All fields are JAX arrays; a batch of environments is the same pytree with a leading
batch axis on every leaf. Positions in px (world frame of the reference: x right, y down
in the arena image), angles in rad (unwrapped, heading vector ``(cos a, sin a)``),
velocities in px/s. ``P = params.prey_num`` (prey slots; dead/eaten prey keep their slot
with ``prey_alive = False``).

Fields
------
fish_xy            float32 [2]   body position = centre of the mouth circle (px)
fish_angle         float32 []    heading (rad, unwrapped)
fish_velocity      float32 [2]   residual velocity carried into the next step (px/s)
fish_angular_velocity float32 [] (rad/s) from wall contacts of the tail (0 in open water)
fish_bias_velocity float32 [3]   the contact solver's pending penetration fix (vx, vy px/s;
                                 w rad/s)
fish_wall_contact  bool    [4]   mouth in contact with the left, right, top, bottom wall
energy             float32 []    energy level, <= 1; < 0 means starvation
prey_xy            float32 [P,2] prey centres (px)
prey_velocity      float32 [P,2] prey velocities (px/s)
prey_angle         float32 [P]   prey headings (rad)
prey_gait          int32   [P]   0 static, 1 slow (10 px/s), 2 fast (20 px/s)
prey_alive         bool    [P]   slot holds a live prey
prey_age           int32   [P]   steps since birth (reproduction mode)
prey_cloud_xy      float32 [C,2] centres of the prey clouds (C = max(prey_cloud_num, 1))
predator_present   bool    []
predator_xy        float32 [2]   predator centre (px; meaningless when absent)
predator_velocity  float32 [2]   (px/s)
predator_target_xy float32 [2]   where the fish was when the predator appeared (px)
predator_radius    float32 []    (px) 64, kept in the state for the vision
predator_touched   bool    []    the predator hit the fish during the current attack
predator_epoch_starts int32 [E]  first step of each predator epoch (E = predator_epoch_num)
salt_source_xy     float32 [2]   salt source (px, integers as in the reference)
salt               float32 []    salt concentration at the fish after the last step
sediment           arena.SedimentHandle  which pool texture / shift / flip this episode sees
step               int32   []    env steps taken in this episode
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from larvax.envs.simfish.arena import SedimentHandle, zero_handle
from larvax.envs.simfish.config import SimfishParams

Array = jax.Array


@struct.dataclass
class SimfishState:
    """The state of one Simfish environment (see the module docstring for every field)."""

    fish_xy: Array
    fish_angle: Array
    fish_velocity: Array
    fish_angular_velocity: Array
    fish_bias_velocity: Array
    fish_wall_contact: Array
    energy: Array
    prey_xy: Array
    prey_velocity: Array
    prey_angle: Array
    prey_gait: Array
    prey_alive: Array
    prey_age: Array
    prey_cloud_xy: Array
    predator_present: Array
    predator_xy: Array
    predator_velocity: Array
    predator_target_xy: Array
    predator_radius: Array
    predator_touched: Array
    predator_epoch_starts: Array
    salt_source_xy: Array
    salt: Array
    sediment: SedimentHandle
    step: Array


def _prey_slots(p: int, prey_xy, prey_angle, prey_gait, prey_velocity):
    """The ``p`` prey slots ``(xy, alive, angle, gait, velocity)`` holding the given prey first
    (rows of ``prey_xy`` with NaN are absent) and neutral values elsewhere."""
    xy = jnp.zeros((p, 2), jnp.float32)
    alive = jnp.zeros((p,), bool)
    ang = jnp.zeros((p,), jnp.float32)
    gait = jnp.zeros((p,), jnp.int32)
    vel = jnp.zeros((p, 2), jnp.float32)
    if prey_xy is None:
        return xy, alive, ang, gait, vel
    pxy = jnp.asarray(prey_xy, jnp.float32).reshape(-1, 2)
    n = pxy.shape[0]
    if n > p:
        raise ValueError(
            f"prey_xy has {n} prey; allowed: at most params.prey_num={p} (raise prey_num)"
        )
    ok = jnp.all(jnp.isfinite(pxy), axis=-1)
    xy = xy.at[:n].set(jnp.where(ok[:, None], pxy, 0.0))
    alive = alive.at[:n].set(ok)
    if prey_angle is not None:
        ang = ang.at[:n].set(jnp.asarray(prey_angle, jnp.float32).reshape(n))
    if prey_gait is not None:
        gait = gait.at[:n].set(jnp.asarray(prey_gait, jnp.int32).reshape(n))
    if prey_velocity is not None:
        vel = vel.at[:n].set(jnp.asarray(prey_velocity, jnp.float32).reshape(n, 2))
    return xy, alive, ang, gait, vel


def make_state(
    params: SimfishParams,
    fish_xy,
    fish_angle,
    *,
    fish_velocity=(0.0, 0.0),
    energy=1.0,
    prey_xy=None,
    prey_angle=None,
    prey_gait=None,
    prey_velocity=None,
    predator_xy=None,
    predator_target_xy=None,
    salt_source_xy=(0.0, 0.0),
    salt=0.0,
    sediment: SedimentHandle | None = None,
    step=0,
    predator_epoch_starts=None,
) -> SimfishState:
    """Build a state from explicit values (scenes, tests): unspecified parts are neutral.

    ``prey_xy`` ``[n, 2]`` with ``n <= params.prey_num`` fills the first ``n`` slots (rows with
    NaN are treated as absent); ``prey_angle`` / ``prey_gait`` default to 0 (static prey at
    rest). ``predator_xy`` None means no predator; its target defaults to the fish position.
    Predator epochs default to "never" (starts at ``max_steps``), so no predator appears
    unless ``predator_epoch_starts`` is given.
    """
    p = int(params.prey_num)
    xy, alive, ang, gait, vel = _prey_slots(p, prey_xy, prey_angle, prey_gait, prey_velocity)
    fish_xy = jnp.asarray(fish_xy, jnp.float32).reshape(2)
    present = predator_xy is not None and bool(jnp.all(jnp.isfinite(jnp.asarray(predator_xy))))
    pred_xy = jnp.asarray(predator_xy if present else (0.0, 0.0), jnp.float32).reshape(2)
    target = fish_xy if predator_target_xy is None else jnp.asarray(predator_target_xy, jnp.float32)
    e = max(int(params.predator_epoch_num), 1)
    if predator_epoch_starts is None:
        starts = jnp.full((e,), params.max_steps + params.predator_epoch_duration, jnp.int32)
    else:
        starts = jnp.asarray(predator_epoch_starts, jnp.int32).reshape(e)
    c = max(int(params.prey_cloud_num), 1)
    return SimfishState(
        fish_xy=fish_xy,
        fish_angle=jnp.asarray(fish_angle, jnp.float32).reshape(()),
        fish_velocity=jnp.asarray(fish_velocity, jnp.float32).reshape(2),
        fish_angular_velocity=jnp.zeros((), jnp.float32),
        fish_bias_velocity=jnp.zeros((3,), jnp.float32),
        fish_wall_contact=jnp.zeros((4,), bool),
        energy=jnp.asarray(energy, jnp.float32).reshape(()),
        prey_xy=xy,
        prey_velocity=vel,
        prey_angle=ang,
        prey_gait=gait,
        prey_alive=alive,
        prey_age=jnp.zeros((p,), jnp.int32),
        prey_cloud_xy=jnp.zeros((c, 2), jnp.float32),
        predator_present=jnp.asarray(present),
        predator_xy=pred_xy,
        predator_velocity=jnp.zeros((2,), jnp.float32),
        predator_target_xy=jnp.asarray(target, jnp.float32).reshape(2),
        predator_radius=jnp.asarray(params.predator_radius, jnp.float32),
        predator_touched=jnp.asarray(False),
        predator_epoch_starts=starts,
        salt_source_xy=jnp.asarray(salt_source_xy, jnp.float32).reshape(2),
        salt=jnp.asarray(salt, jnp.float32).reshape(()),
        sediment=zero_handle() if sediment is None else sediment,
        step=jnp.asarray(step, jnp.int32).reshape(()),
    )


__all__ = ["SimfishState", "make_state"]
