"""``physics_step``: one Simfish env step of the world, without the observation.

Order (the reference's): the bout; the predator's spawn attempt; the prey's per-step draws
and the free motion of every prey; the sub-steps (``substeps.py``); the predator's
outcome, energy, salt, wall penalty, cloud reproduction, step count and end of episode.
The environment (``env.py``) adds the observation.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from larvax.envs.simfish import arena, body, candidates, predator, prey, substeps
from larvax.envs.simfish import bouts as bouts_lib
from larvax.envs.simfish.config import SimfishParams
from larvax.envs.simfish.state import SimfishState

Array = jax.Array

END_NONE, END_STARVATION, END_PREY_ALL_EATEN, END_TIME = 0, 1, 2, 3
END_CAUSES = {0: "none", 1: "Starvation", 2: "Prey-All-Eaten", 3: "Time"}
REWARD_COMPONENTS = ("energy", "consumption", "salt", "predator", "wall")


class PreyMoves(NamedTuple):
    """The prey's per-step draws (new gaits and angles), the closed-form free motion of
    every prey (xy, velocity) and the candidates; all None but the candidates without prey."""

    new_gait: Array | None
    new_angle: Array | None
    free_xy: Array | None
    free_velocity: Array | None
    candidates: candidates.Candidates


def _prey_moves(params, key_prey, key_escape, state: SimfishState, fish_v) -> PreyMoves:
    p = params
    if int(p.prey_num) == 0:
        return PreyMoves(None, None, None, None, candidates.none(p))
    new_gait, new_angle = prey.step_randoms(key_prey, p, state.prey_gait, state.prey_angle)
    free_xy, free_v = prey.free_step(
        p, state.prey_xy, state.prey_velocity, state.prey_gait, new_gait, new_angle
    )
    glide_end, _ = body.glide(p, state.fish_xy, fish_v, p.phys_substeps)
    cands = candidates.select(p, key_escape, state, new_gait, new_angle, glide_end)
    return PreyMoves(new_gait, new_angle, free_xy, free_v, cands)


def _prey_after(params, state: SimfishState, moves: PreyMoves, out: candidates.Outcome) -> dict:
    """The prey fields after the step (before reproduction): the free motion of every live
    prey, overwritten by the candidates' outcome, kept inside the walls."""
    alive0 = state.prey_alive
    if moves.free_xy is None:
        return dict(
            prey_xy=state.prey_xy,
            prey_velocity=state.prey_velocity,
            prey_alive=alive0,
            prey_angle=state.prey_angle,
            prey_gait=state.prey_gait,
        )
    c = moves.candidates
    xy = jnp.where(alive0[:, None], moves.free_xy, state.prey_xy)
    v = jnp.where(alive0[:, None], moves.free_velocity, state.prey_velocity)
    xy = xy.at[c.index].set(jnp.where(c.alive[:, None], out.xy, c.xy))
    v = v.at[c.index].set(jnp.where(c.alive[:, None], out.velocity, c.velocity))
    xy, v = prey.keep_inside(params, xy, v)
    return dict(
        prey_xy=xy,
        prey_velocity=v,
        prey_alive=alive0.at[c.index].set(out.alive),
        prey_angle=jnp.where(alive0, moves.new_angle, state.prey_angle),
        prey_gait=jnp.where(alive0, moves.new_gait, state.prey_gait),
    )


def _reproduce(params, key, fish_xy, state: SimfishState, fields: dict) -> dict:
    """Cloud births and deaths (with clouds and reproduction on), and the prey's ages."""
    p = params
    if not (p.prey_cloud_num > 0 and p.prey_reproduction_mode and p.prey_num > 0):
        return {**fields, "prey_age": state.prey_age}
    xy, v, angle, gait, alive, age = prey.reproduce(
        key,
        p,
        fish_xy,
        fields["prey_xy"],
        fields["prey_velocity"],
        fields["prey_angle"],
        fields["prey_gait"],
        fields["prey_alive"],
        state.prey_age,
        state.prey_cloud_xy,
    )
    return dict(
        prey_xy=xy,
        prey_velocity=v,
        prey_angle=angle,
        prey_gait=gait,
        prey_alive=alive,
        prey_age=age,
    )


def _reward_components(params, use, consumed, salt, hit, survived, wall) -> dict:
    p = params
    return {
        "energy": (-p.reward_energy_use_factor * use).astype(jnp.float32),
        "consumption": jnp.where(consumed, p.reward_consumption, 0.0).astype(jnp.float32),
        "salt": (p.reward_salt_factor * salt).astype(jnp.float32),
        "predator": (
            jnp.where(hit, p.reward_predator_caught, 0.0)
            + jnp.where(survived, p.reward_predator_avoidance, 0.0)
        ).astype(jnp.float32),
        "wall": jnp.where(wall, p.reward_wall_touch, 0.0).astype(jnp.float32),
    }


def _end_of_episode(params, energy, consumed, prey_alive, step):
    """``(terminated, truncated, end_cause int32)`` after a step."""
    starved = energy < 0
    all_eaten = consumed & ~jnp.any(prey_alive)
    terminated = starved | all_eaten
    truncated = (step >= params.max_steps) & ~terminated
    cause = jnp.where(
        starved,
        END_STARVATION,
        jnp.where(all_eaten, END_PREY_ALL_EATEN, jnp.where(truncated, END_TIME, END_NONE)),
    ).astype(jnp.int32)
    return terminated, truncated, cause


def physics_step(params: SimfishParams, key: Array, state: SimfishState, action: Array):
    """Advance the world by one env step (no observation): returns (state, reward
    components dict, events dict). Pure; see the module docstring for the order."""
    p = params
    k_bout, k_spawn, k_angle, k_prey, k_esc, k_repro = jax.random.split(key, 6)
    action = jnp.asarray(action, jnp.int32)
    d_mm, theta = bouts_lib.sample_bout(k_bout, action, p.deterministic_action)
    if p.fish_paralyzed:  # the bout is chosen (and costs its baseline) but not executed
        d_mm, theta = jnp.zeros_like(d_mm), jnp.zeros_like(theta)
    fish_angle, fish_v = body.start_bout(p, state.fish_angle, state.fish_velocity, d_mm, theta)
    capture_bout = jnp.asarray(bouts_lib.IS_CAPTURE)[action]
    pred, target = predator.spawn(k_spawn, k_angle, p, state)
    fish = body.FishBody(
        xy=state.fish_xy,
        angle=fish_angle,
        velocity=fish_v,
        angular_velocity=state.fish_angular_velocity,
        bias=state.fish_bias_velocity,
        contact=state.fish_wall_contact,
    )
    immune = state.step <= p.predator_immunity_steps
    moves = _prey_moves(p, k_prey, k_esc, state, fish_v)
    result = substeps.run(p, fish, pred, target, moves.candidates, capture_bout, immune)
    prey_fields = _prey_after(p, state, moves, result.prey)
    hit = result.predator.touched
    survived = result.predator.survived & ~hit
    fish_xy = body.bring_in_bounds(p, result.fish.xy)
    use = body.energy_use(p, d_mm, theta, action)
    caught = result.prey.caught
    consumed = caught > 0
    energy = body.update_energy(p, state.energy, use, consumed)
    if p.fish_fixed_energy:
        energy = state.energy
    salt = arena.salt_concentration(p, state.salt_source_xy, fish_xy)
    prey_fields = _reproduce(p, k_repro, fish_xy, state, prey_fields)
    comps = _reward_components(p, use, consumed, salt, hit, survived, result.wall)
    pred_on = result.predator.present & ~hit
    new_state = state.replace(
        fish_xy=fish_xy.astype(jnp.float32),
        fish_angle=result.fish.angle.astype(jnp.float32),
        fish_velocity=result.fish.velocity.astype(jnp.float32),
        fish_bias_velocity=result.fish.bias.astype(jnp.float32),
        fish_angular_velocity=result.fish.angular_velocity.astype(jnp.float32),
        fish_wall_contact=result.fish.contact,
        energy=energy,
        prey_xy=prey_fields["prey_xy"].astype(jnp.float32),
        prey_velocity=prey_fields["prey_velocity"].astype(jnp.float32),
        prey_angle=prey_fields["prey_angle"].astype(jnp.float32),
        prey_gait=prey_fields["prey_gait"].astype(jnp.int32),
        prey_alive=prey_fields["prey_alive"],
        prey_age=prey_fields["prey_age"],
        predator_present=pred_on,
        predator_xy=result.predator.xy.astype(jnp.float32),
        predator_velocity=jnp.where(pred_on, result.predator.velocity, 0.0).astype(jnp.float32),
        predator_target_xy=target.astype(jnp.float32),
        predator_touched=jnp.asarray(False),
        salt=salt,
        step=state.step + 1,
    )
    terminated, truncated, cause = _end_of_episode(
        p, energy, consumed, new_state.prey_alive, new_state.step
    )
    events = {
        "prey_caught": caught.astype(jnp.int32),
        "predator_hit": hit,
        "attack_survived": survived,
        "wall_touch": result.wall,
        "end_cause": cause,
        "bout_distance_mm": d_mm.astype(jnp.float32),
        "bout_angle_rad": theta.astype(jnp.float32),
        "energy_use": use,
        "escape_jumps": result.prey.escape_jumps,
        "terminated": terminated,
        "truncated": truncated,
    }
    return new_state, comps, events


__all__ = [
    "END_CAUSES",
    "END_NONE",
    "END_PREY_ALL_EATEN",
    "END_STARVATION",
    "END_TIME",
    "REWARD_COMPONENTS",
    "physics_step",
]
