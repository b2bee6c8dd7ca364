"""The physics sub-steps of one Simfish env step (100 of 2 ms by default).

The fish (``body.py``) and the predator (``predator.py``) always move sub-step by sub-step
(walls and hits need it). The candidate prey (``candidates.py``) either join that loop
(``exact_substeps=True``) or are solved for all sub-steps at once after it, from the
fish's trajectory (the default). Both loops carry named structures: :class:`Carry`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from larvax.envs.simfish import body, candidates, predator
from larvax.envs.simfish.config import SimfishParams

Array = jax.Array


class Carry(NamedTuple):
    """The sub-step loop's carry: the fish's body, whether its mouth newly touched a wall in
    this step (bool), the predator, and (exact loop only) the candidate prey."""

    fish: body.FishBody
    wall: Array
    predator: predator.Predator
    prey: candidates.PreyCarry | None = None


class Result(NamedTuple):
    """What the sub-steps leave: the fish, the wall flag, the predator and the candidates'
    :class:`~larvax.envs.simfish.candidates.Outcome`."""

    fish: body.FishBody
    wall: Array
    predator: predator.Predator
    prey: candidates.Outcome


def _exact(params, start: Carry, cands, immune, target, capture_bout) -> Result:
    """Fish, predator and candidates together, sub-step by sub-step."""

    def substep(carry: Carry, xs):
        k, escape = xs
        fish_v_pre = carry.fish.velocity
        fish, touch = body.fish_substep(params, carry.fish)
        prey = candidates.integrate(params, carry.prey)
        pred = predator.substep(params, carry.predator, fish.xy, fish.angle, immune, target)
        fish_v_ref = jnp.where(touch, 0.0, fish_v_pre)[None]  # what the contact solver sees
        prey, recoil = candidates.substep(
            params, cands, prey, k, escape, fish.xy, fish.angle, fish_v_ref, capture_bout
        )
        fish = fish._replace(velocity=fish.velocity - recoil / params.fish_mass)
        return Carry(fish, carry.wall | touch, pred, prey), None

    ks = jnp.arange(params.phys_substeps, dtype=jnp.int32)
    out, _ = jax.lax.scan(substep, start._replace(prey=candidates.start(cands)), (ks, cands.escape))
    return Result(out.fish, out.wall, out.predator, candidates.outcome(out.prey))


def _fast(params, start: Carry, cands, immune, target, capture_bout, has_prey) -> Result:
    """Fish and predator sub-step by sub-step; then the candidates in closed form."""

    def substep(carry: Carry, k):
        fish_v_pre = carry.fish.velocity
        fish, touch = body.fish_substep(params, carry.fish)
        pred = predator.substep(params, carry.predator, fish.xy, fish.angle, immune, target)
        fish_v_ref = jnp.where(touch, 0.0, fish_v_pre)
        return Carry(fish, carry.wall | touch, pred), (fish.xy, fish.angle, fish_v_ref)

    ks = jnp.arange(params.phys_substeps, dtype=jnp.int32)
    out, (traj_xy, traj_ang, traj_v) = jax.lax.scan(substep, start, ks)
    fish = out.fish
    if has_prey:
        prey, dfish_xy, dfish_v = candidates.closed_form(
            params, cands, traj_xy, traj_ang, traj_v, capture_bout
        )
        fish = fish._replace(xy=fish.xy + dfish_xy, velocity=fish.velocity + dfish_v)
    else:
        zero = jnp.zeros((), jnp.int32)
        prey = candidates.Outcome(cands.xy, cands.velocity, cands.alive, zero, zero)
    return Result(fish, out.wall, out.predator, prey)


def run(
    params: SimfishParams,
    fish: body.FishBody,
    pred: predator.Predator,
    target: Array,
    cands: candidates.Candidates,
    capture_bout: Array,
    immune: Array,
) -> Result:
    """All sub-steps of one env step, from the fish just after its bout and the predator
    after the spawn attempt; ``immune``: the predator cannot hit the fish in this step."""
    start = Carry(fish, jnp.asarray(False), pred)
    if params.exact_substeps:
        return _exact(params, start, cands, immune, target, capture_bout)
    return _fast(params, start, cands, immune, target, capture_bout, params.prey_num > 0)


__all__ = ["Carry", "Result", "run"]
