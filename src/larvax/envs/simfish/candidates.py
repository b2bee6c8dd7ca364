"""The candidate prey of one step: the few prey that may meet the fish in it.

:func:`select` picks them (:func:`larvax.envs.simfish.prey.contact_candidates`) and draws
their escape jumps; they then move either sub-step by sub-step with the fish
(:func:`substep`, ``exact_substeps=True``) or for all sub-steps at once in closed form
(:func:`closed_form`, the default). The prey rules are in ``prey.py``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from larvax.envs.simfish import prey
from larvax.envs.simfish.config import SimfishParams
from larvax.envs.simfish.random_numbers import hashed_uniforms

Array = jax.Array


class Candidates(NamedTuple):
    """The candidate prey at the start of a step (K slots; S = phys_substeps).

    index int32 ``[K]`` their slots in the prey arrays; xy float32 ``[K, 2]`` px; velocity
    float32 ``[K, 2]`` px/s; alive bool ``[K]``; old_gait, new_gait int32 ``[K]`` (sub-step 0
    uses the old one); heading float32 ``[K, 2]`` unit vector of the new angle; escape bool
    ``[S, K]`` the pre-drawn escape jumps (taken by prey near the fish).
    """

    index: Array
    xy: Array
    velocity: Array
    alive: Array
    old_gait: Array
    new_gait: Array
    heading: Array
    escape: Array


class Outcome(NamedTuple):
    """The candidates at the end of the step: xy ``[K, 2]``, velocity ``[K, 2]``, alive
    ``[K]``, caught (int32, prey eaten), escape_jumps (int32, jumps taken)."""

    xy: Array
    velocity: Array
    alive: Array
    caught: Array
    escape_jumps: Array


class PreyCarry(NamedTuple):
    """The candidates through the sub-steps (the exact loop's carry): xy, velocity, alive
    as in :class:`Candidates`; mouth, body bool ``[K]`` contacts at the previous sub-step
    (contact callbacks fire on new contacts only); eligible bool ``[K]`` (escape possible);
    caught, escape_jumps int32 counts."""

    xy: Array
    velocity: Array
    alive: Array
    mouth: Array
    body: Array
    eligible: Array
    caught: Array
    escape_jumps: Array


def select(
    params: SimfishParams,
    key: Array,
    state,
    new_gait: Array,
    new_angle: Array,
    path_end: Array,
) -> Candidates:
    """The candidates of a step of ``state`` (a SimfishState before it), with the prey's new
    gaits and angles of this step and the end ``path_end`` of the fish's straight glide;
    ``key`` draws the escape jumps (counter-hashed uniforms: one key draw)."""
    idx = prey.contact_candidates(params, state.prey_xy, state.prey_alive, state.fish_xy, path_end)
    k = idx.shape[0]
    return Candidates(
        index=idx,
        xy=state.prey_xy[idx],
        velocity=state.prey_velocity[idx],
        alive=state.prey_alive[idx],
        old_gait=state.prey_gait[idx],
        new_gait=new_gait[idx],
        heading=jnp.stack([jnp.cos(new_angle[idx]), jnp.sin(new_angle[idx])], -1),
        escape=hashed_uniforms(key, (params.phys_substeps, k)) < params.prey_p_escape_substep,
    )


def none(params: SimfishParams) -> Candidates:
    """One dead placeholder candidate (for ``prey_num = 0``)."""
    zeros_xy = jnp.zeros((1, 2), jnp.float32)
    gait = jnp.zeros((1,), jnp.int32)
    return Candidates(
        index=jnp.zeros((1,), jnp.int32),
        xy=zeros_xy,
        velocity=jnp.zeros((1, 2), jnp.float32),
        alive=jnp.zeros((1,), bool),
        old_gait=gait,
        new_gait=gait,
        heading=jnp.zeros((1, 2), jnp.float32),
        escape=jnp.zeros((params.phys_substeps, 1), bool),
    )


def start(c: Candidates) -> PreyCarry:
    """The exact loop's carry before sub-step 0."""
    k = c.alive.shape[0]
    no = jnp.zeros((k,), bool)
    zero = jnp.zeros((), jnp.int32)
    return PreyCarry(c.xy, c.velocity, c.alive, no, no, no, zero, zero)


def integrate(params: SimfishParams, carry: PreyCarry) -> PreyCarry:
    """Sub-step integration of live candidates, ``x += v dt`` (before any contact)."""
    xy = jnp.where(carry.alive[:, None], carry.xy + carry.velocity * params.phys_dt, carry.xy)
    return carry._replace(xy=xy)


def substep(
    params: SimfishParams,
    c: Candidates,
    carry: PreyCarry,
    k: Array,
    escape: Array,
    fish_xy: Array,
    fish_angle: Array,
    fish_v_ref: Array,
    capture_bout: Array,
) -> tuple[PreyCarry, Array]:
    """Sub-step ``k`` of the candidates after their integration and the fish's sub-step.

    Contacts with the fish (``fish_xy``, ``fish_angle``): capture of a new mouth contact in
    the capture window and angle, else elastic bounces against the fish velocity the solver
    sees (``fish_v_ref [1, 2]``) and the touch jump; damping; gait impulse and escape jumps
    (``escape [K]``, eligibility checked at sub-step 0). Returns the carry and the summed
    impulse on the prey ``[2]`` (the fish gets minus it).
    """
    q = params.substep_damping
    jump = params.prey_velocity_jump * (1.0 - q)
    c_xy, c_v, c_alive = carry.xy, carry.velocity, carry.alive
    (m, n_m), (h, n_h), (t, n_t) = prey.fish_contacts(
        params, fish_xy, fish_angle, c_xy, params.prey_radius
    )
    m = c_alive & m
    b = c_alive & (h | t)
    new_m = m & ~carry.mouth
    new_b = b & ~carry.body
    window = capture_bout & (k >= 1) & (k <= params.capture_end_substep)
    bearing = prey.capture_bearing(fish_xy, fish_angle, c_xy)
    cap = new_m & window & (jnp.abs(bearing) < params.capture_permissive_angle)
    consumed_now = jnp.any(cap)
    touch_jump = (new_m | new_b) & ~cap & ~consumed_now
    c_alive = c_alive & ~cap
    caught = carry.caught + jnp.sum(cap).astype(jnp.int32)
    # elastic prey-fish collisions of the contacts left (Chipmunk: bounce from the
    # pre-damping velocities, impulses after the damping)
    jm = prey.collision_impulse(params, m & c_alive, n_m, c_v, fish_v_ref)
    jh = prey.collision_impulse(params, h & c_alive, n_h, c_v, fish_v_ref)
    jt = prey.collision_impulse(params, t & c_alive, n_t, c_v, fish_v_ref)
    dp = jm[:, None] * n_m + jh[:, None] * n_h + jt[:, None] * n_t  # impulse on the prey
    c_v = c_v * q + dp / params.prey_mass
    # prey impulses (sub-step 0: old gait; escape eligibility checked once, at 0)
    d2 = jnp.sum((c_xy - fish_xy) ** 2, -1)
    eligible = jnp.where(k == 0, d2 < params.prey_sensing_distance**2, carry.eligible)
    gait_now = jnp.where(k == 0, c.old_gait, c.new_gait)
    dv = prey.gait_speeds(params)[gait_now] * (1.0 - q)
    dv = dv + jnp.where(touch_jump, jump, 0.0) + jnp.where(eligible & escape, jump, 0.0)
    c_v = jnp.where(c_alive[:, None], c_v + dv[:, None] * c.heading, c_v)
    jumps = carry.escape_jumps + jnp.sum(c_alive & eligible & escape).astype(jnp.int32)
    out = PreyCarry(c_xy, c_v, c_alive, m, b, eligible, caught, jumps)
    return out, jnp.sum(dp, 0)


def outcome(carry: PreyCarry) -> Outcome:
    """The exact loop's result."""
    return Outcome(carry.xy, carry.velocity, carry.alive, carry.caught, carry.escape_jumps)


def _free_motion(params: SimfishParams, c: Candidates, fish0_xy: Array):
    """Per-sub-step positions and velocities of the candidates without contacts (with their
    gait impulses and escape jumps): ``(pos [S, K, 2], vel [S, K, 2], a [S, K], jumps [S, K])``,
    ``a`` the impulses along the heading, ``jumps`` the escape jumps taken."""
    q = params.substep_damping
    dt = params.phys_dt
    n = params.phys_substeps
    f32 = jnp.float32
    x0, v0, u = c.xy, c.velocity, c.heading
    kk = jnp.arange(n)
    diff = kk[:, None] - kk[None, :]  # k - j
    lower = diff > 0
    qpow = jnp.power(f32(q), jnp.maximum(diff - 1, 0).astype(f32))
    lv = jnp.where(lower, qpow, 0.0)  # v_k from a_j (j < k)
    lx = jnp.where(lower, (1.0 - jnp.power(f32(q), diff.astype(f32))) / (1.0 - q), 0.0)
    g = (1.0 - jnp.power(f32(q), (kk + 1).astype(f32))) / (1.0 - q)  # [S]
    speeds = prey.gait_speeds(params)
    jump = params.prey_velocity_jump * (1.0 - q)
    # escape eligibility at sub-step 0 (after its integration)
    x_first = x0 + v0 * dt
    d2 = jnp.sum((x_first - fish0_xy) ** 2, -1)
    eligible = c.alive & (d2 < params.prey_sensing_distance**2)
    jumps = c.escape & eligible[None, :]  # [S, K]
    a = jnp.broadcast_to(speeds[c.new_gait] * (1.0 - q), c.escape.shape)
    a = a.at[0].set(speeds[c.old_gait] * (1.0 - q))
    a = a + jnp.where(jumps, jump, 0.0)  # [S, K] along u
    hi = jax.lax.Precision.HIGHEST
    # one matmul for both sums (the same right-hand side): [2S, S] @ [S, K]
    svx = jnp.matmul(jnp.concatenate([lv, lx], 0), a, precision=hi)
    sv, sx = svx[:n], svx[n:]  # [S, K] each
    qk = jnp.power(f32(q), kk.astype(f32))  # [S]
    vel = v0[None] * qk[:, None, None] + u[None] * sv[..., None]  # v_k [S, K, 2]
    pos = x0[None] + dt * (v0[None] * g[:, None, None] + u[None] * sx[..., None])  # x_k
    return pos, vel, a, jumps


def closed_form(
    params: SimfishParams,
    c: Candidates,
    traj_xy: Array,
    traj_ang: Array,
    traj_v: Array,
    capture_bout: Array,
) -> tuple[Outcome, Array, Array]:
    """The candidates over one step, all sub-steps at once (the default fast path).

    The fish's per-sub-step positions ``traj_xy [S, 2]``, headings ``traj_ang [S]`` and the
    velocities its contact solver sees ``traj_v [S, 2]`` come from the fish scan. Between
    contacts a prey's motion is linear in its impulses: with ``a_j`` the impulse after the
    integration of sub-step j (gait, and the pre-drawn escape jumps of eligible prey),
    ``v_k = v_0 q^k + u sum_{j<k} a_j q^(k-1-j)`` and
    ``x_k = x_0 + dt [v_0 (1 - q^(k+1)) / (1 - q) + u sum_{j<k} a_j (1 - q^(k-j)) / (1 - q)]``
    (two small matrix products). Contacts with the mouth, head and tail are then found for
    all ``S x K`` (sub-step, prey) pairs; the *first* contact of each prey is handled as the
    sub-step loop does (capture in the window and angle, else elastic bounce + jump), and its
    effect on the rest of the step is added in closed form. Approximations (measured in
    docs/simfish.md against ``exact_substeps=True``): a second contact of the same prey in
    one step is ignored; the fish's recoil from prey (mass 1 vs 50) is added after its scan;
    the touch jump is not suppressed when another prey is caught in the same sub-step.

    Returns ``(Outcome, dfish_xy [2], dfish_v [2])``, the last two the fish's recoil.
    """
    p = params
    q = p.substep_damping
    dt = p.phys_dt
    n = p.phys_substeps
    f32 = jnp.float32
    x0, v0, alive, u = c.xy, c.velocity, c.alive, c.heading
    kk = jnp.arange(n)
    jump = p.prey_velocity_jump * (1.0 - q)
    pos, vel, a, jumps = _free_motion(p, c, traj_xy[0])
    # contacts
    cs = (jnp.cos(traj_ang)[:, None], jnp.sin(traj_ang)[:, None])
    fxy, fang = traj_xy[:, None, :], traj_ang[:, None]
    (m, n_m), (h, n_h), (t, n_t) = prey.fish_contacts(p, fxy, fang, pos, p.prey_radius, cs)
    anyc = (m | h | t) & alive[None]
    has = jnp.any(anyc, 0)  # [K]
    k1 = jnp.argmax(anyc, 0)  # first contact sub-step [K]
    cols = jnp.arange(x0.shape[0])

    def at(arr):
        return arr[k1, cols]

    m1, h1, t1 = at(m), at(h), at(t)
    window = capture_bout & (k1 >= 1) & (k1 <= p.capture_end_substep)
    bearing = prey.capture_bearing(traj_xy[k1], traj_ang[k1], at(pos))
    cap = has & m1 & window & (jnp.abs(bearing) < p.capture_permissive_angle)
    touch = has & ~cap
    v_p = at(vel)
    v_f = traj_v[k1]
    jm = prey.collision_impulse(p, touch & m1, at(n_m), v_p, v_f)
    jh = prey.collision_impulse(p, touch & h1, at(n_h), v_p, v_f)
    jt = prey.collision_impulse(p, touch & t1, at(n_t), v_p, v_f)
    imp = jm[:, None] * at(n_m) + jh[:, None] * at(n_h) + jt[:, None] * at(n_t)  # on prey
    dv = imp / p.prey_mass + jnp.where(touch, jump, 0.0)[:, None] * u  # after damping at k1
    rest = (n - 1 - k1).astype(f32)
    spread = dt * (1.0 - jnp.power(f32(q), rest)) / (1.0 - q)
    decay = jnp.power(f32(q), rest)
    v_end = (
        v0 * q**n
        + u * (jnp.sum(a * jnp.power(f32(q), (n - 1 - kk).astype(f32))[:, None], 0))[:, None]
    )
    x_end = pos[-1] + jnp.where(touch[:, None], dv * spread[:, None], 0.0)
    v_end = v_end + jnp.where(touch[:, None], dv * decay[:, None], 0.0)
    x_end = jnp.where(alive[:, None], x_end, x0)
    v_end = jnp.where(alive[:, None], v_end, v0)
    # the fish's recoil (mass 1 vs 50), added in closed form after its scan
    df = jnp.where(touch[:, None], -imp / p.fish_mass, 0.0)
    dfish_xy = jnp.sum(df * spread[:, None], 0)
    dfish_v = jnp.sum(df * decay[:, None], 0)
    caught = jnp.sum(cap).astype(jnp.int32)
    after_capture = cap[None] & (kk[:, None] >= k1[None])  # a caught prey jumps no more
    n_jumps = jnp.sum(jumps & alive[None] & ~after_capture).astype(jnp.int32)
    return Outcome(x_end, v_end, alive & ~cap, caught, n_jumps), dfish_xy, dfish_v


__all__ = [
    "Candidates",
    "Outcome",
    "PreyCarry",
    "closed_form",
    "integrate",
    "none",
    "outcome",
    "select",
    "start",
    "substep",
]
