"""``Simfish``: the larval-zebrafish hunting environment as pure JAX functions.

```
env = Simfish.preset("normal")            # or Simfish(SimfishParams(...))
params = env.default_params
state, ts = env.reset(key, params)
state, ts = env.step(key, state, action, params)   # action: int32 bout 0..20
ts.observation = {"visual": float32 [139, 3, 2], "internal": float32 [3]}
```

``internal = (in_light, energy, salt)``. ``jax.jit`` and ``jax.vmap(env.step, (0, 0, 0, None))``
work; ``params`` is a static pytree.

One step (0.2 s, 100 physics sub-steps of 2 ms), in the reference's order:

1. The bout: ``(d, theta)`` drawn (or the mean with ``deterministic_action``); the heading
   turns at once and the fish gets one impulse (``body.py``).
2. Predator spawn attempt (``predator.py``).
3. Prey per-step draws: gait switch, turn (``prey.py``).
4. Sub-steps. Prey that can meet the fish in this step are simulated sub-step by sub-step
   together with the fish and the predator (a ``lax.scan`` of 100 iterations): the
   ``contact_candidates`` prey nearest to the fish's straight glide path (default 8). All
   other prey move by the closed form :func:`larvax.envs.simfish.prey.free_step`, which is the
   sub-step loop exactly (they cannot touch the fish, and escape needs the fish within
   100 px). If more than ``contact_candidates`` prey lie within reach, the farther ones
   neither escape nor get caught in that step (a documented approximation; its
   frequency is measured in docs/simfish.md).
5. Predator hit (-2) / survived attack (+2), energy, salt, wall penalty, cloud
   reproduction, step count, end of episode, observation.

End of episode (``info["end_cause"]``):

====  ===================  ==========================================
code  cause                reported as
====  ===================  ==========================================
0     (episode goes on)    -
1     starvation           ``terminated`` (energy < 0)
2     all prey eaten       ``terminated`` (a catch left no live prey)
3     time limit           ``truncated`` (``step == max_steps``)
====  ===================  ==========================================

Reward = sum of ``info["reward_components"]``: ``energy`` (-10 x energy use),
``consumption`` (+3 when any prey was caught this step, as the reference: once per step),
``salt`` (-0.05 x concentration), ``predator`` (-2 hit, +2 survived), ``wall`` (-2).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from larvax.envs.core import Box, Dict, Discrete, Environment, EpisodeMetric, TimeStep
from larvax.envs.simfish import arena, body, predator, prey
from larvax.envs.simfish import bouts as bouts_lib
from larvax.envs.simfish.config import SimfishParams
from larvax.envs.simfish.state import SimfishState, make_state

Array = jax.Array

END_NONE, END_STARVATION, END_PREY_ALL_EATEN, END_TIME = 0, 1, 2, 3
END_CAUSES = {0: "none", 1: "Starvation", 2: "Prey-All-Eaten", 3: "Time"}
REWARD_COMPONENTS = ("energy", "consumption", "salt", "predator", "wall")


def _seg_dist2(p: Array, a: Array, b: Array) -> Array:
    ab = b - a
    t = jnp.clip(jnp.sum((p - a) * ab, -1) / jnp.maximum(jnp.sum(ab * ab, -1), 1e-9), 0.0, 1.0)
    d = p - (a + t[..., None] * ab)
    return jnp.sum(d * d, -1)


def _observe_visual(params, state: SimfishState, textures, key, noise=None):
    from larvax.envs.simfish import vision

    sed = arena.Sediment(textures=textures, handle=state.sediment)
    return vision.observe(
        params,
        state.fish_xy,
        state.fish_angle,
        state.prey_xy,
        state.prey_alive,
        state.predator_present,
        state.predator_xy,
        state.predator_radius,
        sed,
        key,
        noise,
    )


def internal_state(params: SimfishParams, state: SimfishState) -> Array:
    """``float32 [3] = (in_light, energy, salt)`` of a state."""
    return jnp.stack([arena.in_light(params, state.fish_xy[1]), state.energy, state.salt]).astype(
        jnp.float32
    )


def physics_step(
    params: SimfishParams,
    key: Array,
    state: SimfishState,
    action: Array,
):
    """Advance the world by one env step (no observation): returns (state, reward
    components dict, events dict). Pure; see the module docstring for the order."""
    p = params
    q = p.substep_damping
    dt = p.phys_dt
    n_sub = p.phys_substeps
    k_bout, k_spawn, k_angle, k_prey, k_esc, k_repro = jax.random.split(key, 6)
    action = jnp.asarray(action, jnp.int32)

    # 1. bout
    d_mm, theta = bouts_lib.sample_bout(k_bout, action, p.deterministic_action)
    fish_angle, fish_v = body.start_bout(p, state.fish_angle, state.fish_velocity, d_mm, theta)
    capture_bout = jnp.asarray(bouts_lib.IS_CAPTURE)[action]

    # 2. predator spawn (from the fish position before the bout moves it)
    if p.predator_enabled and p.predator_epoch_num > 0:
        prob = predator.spawn_probability(p, state.predator_epoch_starts, state.step)
        spawn = (
            ~state.predator_present
            & (jax.random.uniform(k_spawn) < prob)
            & ~predator.fish_near_wall(p, state.fish_xy)
        )
        ang = predator.attack_angle(k_angle, p, state.fish_xy)
        pred_xy = jnp.where(
            spawn, predator.spawn_position(p, state.fish_xy, ang), state.predator_xy
        )
        pred_v = jnp.where(spawn, 0.0, state.predator_velocity)
        target = jnp.where(spawn, state.fish_xy, state.predator_target_xy)
        pred_present = state.predator_present | spawn
    else:
        pred_xy, pred_v = state.predator_xy, state.predator_velocity
        target, pred_present = state.predator_target_xy, state.predator_present

    # 3. prey per-step draws and the closed-form motion of every prey
    n_prey = int(p.prey_num)
    alive0 = state.prey_alive
    if n_prey > 0:
        new_gait, new_pangle = prey.step_randoms(k_prey, p, state.prey_gait, state.prey_angle)
        free_xy, free_v = prey.free_step(
            p, state.prey_xy, state.prey_velocity, state.prey_gait, new_gait, new_pangle
        )
        # candidates: nearest live prey to the straight glide path of the fish
        kc = min(int(p.contact_candidates), n_prey)
        glide_end, _ = body.glide(p, state.fish_xy, fish_v, n_sub)
        dist2 = _seg_dist2(state.prey_xy, state.fish_xy[None], glide_end[None])
        dist2 = jnp.where(alive0, dist2, jnp.inf)
        _, idx = jax.lax.top_k(-dist2, kc)
        c_xy0 = state.prey_xy[idx]
        c_v0 = state.prey_velocity[idx]
        c_alive0 = alive0[idx]
        c_old_gait = state.prey_gait[idx]
        c_new_gait = new_gait[idx]
        c_u = jnp.stack([jnp.cos(new_pangle[idx]), jnp.sin(new_pangle[idx])], -1)
        # counter-hashed uniforms (vision.hashed_uniforms: one key draw) instead of threefry
        from larvax.envs.simfish import vision

        esc_draw = vision.hashed_uniforms(k_esc, (n_sub, kc)) < p.prey_p_escape_substep
    else:
        kc = 1
        c_xy0 = jnp.zeros((1, 2), jnp.float32)
        c_v0 = jnp.zeros((1, 2), jnp.float32)
        c_alive0 = jnp.zeros((1,), bool)
        c_old_gait = c_new_gait = jnp.zeros((1,), jnp.int32)
        c_u = jnp.zeros((1, 2), jnp.float32)
        esc_draw = jnp.zeros((n_sub, 1), bool)

    speeds = prey.gait_speeds(p)
    jump = p.prey_velocity_jump * (1.0 - q)
    capture_end = p.capture_end_substep
    immune = state.step <= p.predator_immunity_steps
    pred_target_r = jnp.round(target)

    def substep(carry, xs):
        (f_xy, f_v, wall, pr_xy, pr_v, pr_on, touched, survived, c_xy, c_v, c_alive) = carry[:11]
        (c_mouth, c_body, eligible, caught, n_jumps, f_vb, f_contact, f_ang, f_w) = carry[11:]
        k, esc = xs
        # integrate positions (pymunk: before collisions and damping)
        f_v_pre = f_v
        f_xy, f_ang, f_v, f_w, f_vb, f_contact, w = body.fish_substep(
            p, f_xy, f_ang, f_v, f_w, f_vb, f_contact
        )
        c_xy = jnp.where(c_alive[:, None], c_xy + c_v * dt, c_xy)
        pr_xy = jnp.where(pr_on, pr_xy + pr_v * dt, pr_xy)
        wall = wall | w
        # predator - wall / fish
        pw = pr_on & predator.touches_wall(p, pr_xy)
        hit = pr_on & ~immune & predator.hits_fish(p, pr_xy, f_xy, f_ang)
        touched = touched | hit
        survived = survived | (pw & ~touched)
        pr_on = pr_on & ~pw
        # prey - fish (begin callbacks fire on new contacts only)
        (m, n_m), (h, n_h), (t, n_t) = prey.fish_contacts(p, f_xy, f_ang, c_xy, p.prey_radius)
        m = c_alive & m
        b = c_alive & (h | t)
        new_m = m & ~c_mouth
        new_b = b & ~c_body
        window = capture_bout & (k >= 1) & (k <= capture_end)
        bearing = prey.capture_bearing(f_xy, f_ang, c_xy)
        cap = new_m & window & (jnp.abs(bearing) < p.capture_permissive_angle)
        consumed_now = jnp.any(cap)
        touch_jump = (new_m | new_b) & ~cap & ~consumed_now
        c_alive = c_alive & ~cap
        caught = caught + jnp.sum(cap).astype(jnp.int32)
        # elastic prey-fish collisions of the contacts left (Chipmunk: bounce from the
        # pre-damping velocities, impulses after the damping)
        f_vref = jnp.where(w, 0.0, f_v_pre)[None]  # the fish velocity the solver sees
        jm = prey.collision_impulse(p, m & c_alive, n_m, c_v, f_vref)
        jh = prey.collision_impulse(p, h & c_alive, n_h, c_v, f_vref)
        jt = prey.collision_impulse(p, t & c_alive, n_t, c_v, f_vref)
        dp = jm[:, None] * n_m + jh[:, None] * n_h + jt[:, None] * n_t  # impulse on the prey
        # velocity damping (the fish's: in fish_substep), then the contact impulses
        f_v = f_v - jnp.sum(dp, 0) / p.fish_mass
        c_v = c_v * q + dp / p.prey_mass
        pr_v = pr_v * q
        # prey impulses (sub-step 0: old gait; escape eligibility checked once, at 0)
        d2 = jnp.sum((c_xy - f_xy) ** 2, -1)
        eligible = jnp.where(k == 0, d2 < p.prey_sensing_distance**2, eligible)
        gait_now = jnp.where(k == 0, c_old_gait, c_new_gait)
        dv = speeds[gait_now] * (1.0 - q)
        dv = dv + jnp.where(touch_jump, jump, 0.0) + jnp.where(eligible & esc, jump, 0.0)
        c_v = jnp.where(c_alive[:, None], c_v + dv[:, None] * c_u, c_v)
        n_jumps = n_jumps + jnp.sum(c_alive & eligible & esc).astype(jnp.int32)
        # predator: removal at target / outside, else push toward the target
        rem = pr_on & (
            jnp.all(jnp.round(pr_xy) == pred_target_r) | predator.outside_arena(p, pr_xy)
        )
        survived = survived | (rem & ~touched)
        pr_on = pr_on & ~rem
        pr_v = jnp.where(pr_on, pr_v + predator.impulse_velocity(p, pr_xy, target), pr_v)
        carry = (f_xy, f_v, wall, pr_xy, pr_v, pr_on, touched, survived, c_xy, c_v, c_alive)
        return carry + (m, b, eligible, caught, n_jumps, f_vb, f_contact, f_ang, f_w), None

    init = (
        state.fish_xy,
        fish_v,
        jnp.asarray(False),
        pred_xy,
        pred_v,
        pred_present,
        jnp.asarray(False),
        jnp.asarray(False),
        c_xy0,
        c_v0,
        c_alive0,
        jnp.zeros((kc,), bool),
        jnp.zeros((kc,), bool),
        jnp.zeros((kc,), bool),
        jnp.zeros((), jnp.int32),
        jnp.zeros((), jnp.int32),
        state.fish_bias_velocity,
        state.fish_wall_contact,
        fish_angle,
        state.fish_angular_velocity,
    )
    ks = jnp.arange(n_sub, dtype=jnp.int32)
    if p.exact_substeps:
        out, _ = jax.lax.scan(substep, init, (ks, esc_draw))
        (f_xy, f_v, wall, pr_xy, pr_v, pr_on, touched, survived, c_xy, c_v, c_alive) = out[:11]
        caught, n_jumps, f_vb, f_contact, fish_angle, f_w = out[14:20]
    else:
        # fast path: the fish and the predator sub-step by sub-step (walls need it), the
        # candidate prey for all 100 sub-steps at once in closed form (see _prey_vectorised)
        def fish_sub(carry, k):
            f_xy, f_v, f_w, f_vb, f_contact, f_ang, wall, pr_xy, pr_v, pr_on, touched, surv = carry
            f_v_pre = f_v
            f_xy, f_ang, f_v, f_w, f_vb, f_contact, w = body.fish_substep(
                p, f_xy, f_ang, f_v, f_w, f_vb, f_contact
            )
            wall = wall | w
            pr_xy = jnp.where(pr_on, pr_xy + pr_v * dt, pr_xy)
            pw = pr_on & predator.touches_wall(p, pr_xy)
            hit = pr_on & ~immune & predator.hits_fish(p, pr_xy, f_xy, f_ang)
            touched = touched | hit
            surv = surv | (pw & ~touched)
            pr_on = pr_on & ~pw
            pr_v = pr_v * q
            rem = pr_on & (
                jnp.all(jnp.round(pr_xy) == pred_target_r) | predator.outside_arena(p, pr_xy)
            )
            surv = surv | (rem & ~touched)
            pr_on = pr_on & ~rem
            pr_v = jnp.where(pr_on, pr_v + predator.impulse_velocity(p, pr_xy, target), pr_v)
            f_vref = jnp.where(w, 0.0, f_v_pre)
            carry = (
                f_xy,
                f_v,
                f_w,
                f_vb,
                f_contact,
                f_ang,
                wall,
                pr_xy,
                pr_v,
                pr_on,
                touched,
                surv,
            )
            return carry, (f_xy, f_ang, f_vref)

        finit = (
            state.fish_xy,
            fish_v,
            state.fish_angular_velocity,
            state.fish_bias_velocity,
            state.fish_wall_contact,
            fish_angle,
            jnp.asarray(False),
            pred_xy,
            pred_v,
            pred_present,
            jnp.asarray(False),
            jnp.asarray(False),
        )
        fout, (traj_xy, traj_ang, traj_v) = jax.lax.scan(fish_sub, finit, ks)
        (f_xy, f_v, f_w, f_vb, f_contact, fish_angle, wall) = fout[:7]
        (pr_xy, pr_v, pr_on, touched, survived) = fout[7:]
    if not p.exact_substeps and n_prey == 0:
        c_xy, c_v, c_alive = c_xy0, c_v0, c_alive0
        caught = n_jumps = jnp.zeros((), jnp.int32)
    elif not p.exact_substeps:
        c_xy, c_v, c_alive, caught, n_jumps, dfish_xy, dfish_v = _prey_vectorised(
            p,
            traj_xy,
            traj_ang,
            traj_v,
            capture_bout,
            c_xy0,
            c_v0,
            c_alive0,
            c_old_gait,
            c_new_gait,
            c_u,
            esc_draw,
        )
        f_xy = f_xy + dfish_xy
        f_v = f_v + dfish_v

    # prey write-back
    if n_prey > 0:
        prey_xy = jnp.where(alive0[:, None], free_xy, state.prey_xy)
        prey_v = jnp.where(alive0[:, None], free_v, state.prey_velocity)
        prey_xy = prey_xy.at[idx].set(jnp.where(c_alive0[:, None], c_xy, c_xy0))
        prey_v = prey_v.at[idx].set(jnp.where(c_alive0[:, None], c_v, c_v0))
        prey_alive = alive0.at[idx].set(c_alive)
        prey_xy, prey_v = prey.keep_inside(p, prey_xy, prey_v)
        prey_angle = jnp.where(alive0, new_pangle, state.prey_angle)
        prey_gait = jnp.where(alive0, new_gait, state.prey_gait)
    else:
        prey_xy, prey_v, prey_alive = state.prey_xy, state.prey_velocity, alive0
        prey_angle, prey_gait = state.prey_angle, state.prey_gait

    # predator outcome
    ev_hit = touched
    ev_survived = survived & ~touched
    pr_on = pr_on & ~touched

    # fish bookkeeping
    f_xy = body.bring_in_bounds(p, f_xy)
    use = body.energy_use(p, d_mm, theta, action)
    consumed = caught > 0
    energy = body.update_energy(p, state.energy, use, consumed)
    salt = arena.salt_concentration(p, state.salt_source_xy, f_xy)

    prey_age = state.prey_age
    if p.prey_cloud_num > 0 and p.prey_reproduction_mode and n_prey > 0:
        prey_xy, prey_v, prey_angle, prey_gait, prey_alive, prey_age = prey.reproduce(
            k_repro,
            p,
            f_xy,
            prey_xy,
            prey_v,
            prey_angle,
            prey_gait,
            prey_alive,
            prey_age,
            state.prey_cloud_xy,
        )

    comps = {
        "energy": (-p.reward_energy_use_factor * use).astype(jnp.float32),
        "consumption": jnp.where(consumed, p.reward_consumption, 0.0).astype(jnp.float32),
        "salt": (p.reward_salt_factor * salt).astype(jnp.float32),
        "predator": (
            jnp.where(ev_hit, p.reward_predator_caught, 0.0)
            + jnp.where(ev_survived, p.reward_predator_avoidance, 0.0)
        ).astype(jnp.float32),
        "wall": jnp.where(wall, p.reward_wall_touch, 0.0).astype(jnp.float32),
    }
    new_state = state.replace(
        fish_xy=f_xy.astype(jnp.float32),
        fish_angle=fish_angle.astype(jnp.float32),
        fish_velocity=f_v.astype(jnp.float32),
        fish_bias_velocity=f_vb.astype(jnp.float32),
        fish_angular_velocity=f_w.astype(jnp.float32),
        fish_wall_contact=f_contact,
        energy=energy,
        prey_xy=prey_xy.astype(jnp.float32),
        prey_velocity=prey_v.astype(jnp.float32),
        prey_angle=prey_angle.astype(jnp.float32),
        prey_gait=prey_gait.astype(jnp.int32),
        prey_alive=prey_alive,
        prey_age=prey_age,
        predator_present=pr_on,
        predator_xy=pr_xy.astype(jnp.float32),
        predator_velocity=jnp.where(pr_on, pr_v, 0.0).astype(jnp.float32),
        predator_target_xy=target.astype(jnp.float32),
        predator_touched=jnp.asarray(False),
        salt=salt,
        step=state.step + 1,
    )
    starved = energy < 0
    all_eaten = consumed & ~jnp.any(prey_alive)
    terminated = starved | all_eaten
    truncated = (new_state.step >= p.max_steps) & ~terminated
    cause = jnp.where(
        starved,
        END_STARVATION,
        jnp.where(all_eaten, END_PREY_ALL_EATEN, jnp.where(truncated, END_TIME, END_NONE)),
    ).astype(jnp.int32)
    events = {
        "prey_caught": caught.astype(jnp.int32),
        "predator_hit": ev_hit,
        "attack_survived": ev_survived,
        "wall_touch": wall,
        "end_cause": cause,
        "bout_distance_mm": d_mm.astype(jnp.float32),
        "bout_angle_rad": theta.astype(jnp.float32),
        "energy_use": use,
        "escape_jumps": n_jumps,
        "terminated": terminated,
        "truncated": truncated,
    }
    return new_state, comps, events


def _prey_vectorised(
    p: SimfishParams,
    traj_xy: Array,
    traj_ang: Array,
    traj_v: Array,
    capture_bout: Array,
    x0: Array,
    v0: Array,
    alive: Array,
    old_gait: Array,
    new_gait: Array,
    u: Array,
    esc: Array,
    traj_cs: tuple[Array, Array] | None = None,
):
    """The candidate prey over one step, all sub-steps at once (the default fast path).

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

    Returns ``(xy [K, 2], v [K, 2], alive [K], caught, escape_jumps, dfish_xy, dfish_v)``.
    """
    q = p.substep_damping
    dt = p.phys_dt
    n = p.phys_substeps
    f32 = jnp.float32
    kk = jnp.arange(n)
    diff = kk[:, None] - kk[None, :]  # k - j
    lower = diff > 0
    qpow = jnp.power(f32(q), jnp.maximum(diff - 1, 0).astype(f32))
    lv = jnp.where(lower, qpow, 0.0)  # v_k from a_j (j < k)
    lx = jnp.where(lower, (1.0 - jnp.power(f32(q), diff.astype(f32))) / (1.0 - q), 0.0)
    g = (1.0 - jnp.power(f32(q), (kk + 1).astype(f32))) / (1.0 - q)  # [S]
    speeds = prey.gait_speeds(p)
    jump = p.prey_velocity_jump * (1.0 - q)
    # escape eligibility at sub-step 0 (after its integration)
    x_first = x0 + v0 * dt
    d2 = jnp.sum((x_first - traj_xy[0]) ** 2, -1)
    eligible = alive & (d2 < p.prey_sensing_distance**2)
    jumps = esc & eligible[None, :]  # [S, K]
    a = jnp.broadcast_to(speeds[new_gait] * (1.0 - q), esc.shape)
    a = a.at[0].set(speeds[old_gait] * (1.0 - q))
    a = a + jnp.where(jumps, jump, 0.0)  # [S, K] along u
    hi = jax.lax.Precision.HIGHEST
    # one matmul for both sums (the same right-hand side): [2S, S] @ [S, K]
    svx = jnp.matmul(jnp.concatenate([lv, lx], 0), a, precision=hi)
    sv, sx = svx[:n], svx[n:]  # [S, K] each
    qk = jnp.power(f32(q), kk.astype(f32))  # [S]
    vel = v0[None] * qk[:, None, None] + u[None] * sv[..., None]  # v_k [S, K, 2]
    pos = x0[None] + dt * (v0[None] * g[:, None, None] + u[None] * sx[..., None])  # x_k
    # contacts
    fxy = traj_xy[:, None, :]
    fang = traj_ang[:, None]
    if traj_cs is None:
        traj_cs = (jnp.cos(traj_ang), jnp.sin(traj_ang))
    cs = (traj_cs[0][:, None], traj_cs[1][:, None])
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
    alive_end = alive & ~cap
    x_end = jnp.where(alive[:, None], x_end, x0)
    v_end = jnp.where(alive[:, None], v_end, v0)
    # the fish's recoil (mass 1 vs 50), added in closed form after its scan
    df = jnp.where(touch[:, None], -imp / p.fish_mass, 0.0)
    dfish_xy = jnp.sum(df * spread[:, None], 0)
    dfish_v = jnp.sum(df * decay[:, None], 0)
    caught = jnp.sum(cap).astype(jnp.int32)
    after_capture = cap[None] & (kk[:, None] >= k1[None])  # a caught prey jumps no more
    n_jumps = jnp.sum(jumps & alive[None] & ~after_capture).astype(jnp.int32)
    return x_end, v_end, alive_end, caught, n_jumps, dfish_xy, dfish_v


class Simfish(Environment):
    """The Simfish environment (see the module docstring).

    Args:
        params: a :class:`SimfishParams` (default: the ``normal`` preset).
        sediment: the sediment textures, ``[H, W]`` or ``[K, H, W]`` (photons, 0..60), shared
            by every environment of a batch; default: a pool of ``num_textures`` periodic
            textures generated from ``texture_seed`` on first use (see ``arena.py``).
        num_textures, texture_seed: the default pool.
    """

    mirror_actions = bouts_lib.MIRROR_ACTIONS  # int32 [21] (NumPy: no device work at import)
    episode_metrics = (
        EpisodeMetric("prey_caught", "prey_caught", label="prey"),
        EpisodeMetric("predators_avoided", "attack_survived", label="pred. avoided"),
        EpisodeMetric("predators_hit", "predator_hit", label="pred. hit"),
        EpisodeMetric("wall_touches", "wall_touch", label="walls"),
        EpisodeMetric("end_starvation", "end_cause", "last", END_STARVATION),
        EpisodeMetric("end_prey_all_eaten", "end_cause", "last", END_PREY_ALL_EATEN),
        EpisodeMetric("end_time_limit", "end_cause", "last", END_TIME),
    )

    def __init__(
        self,
        params: SimfishParams | None = None,
        sediment=None,
        num_textures: int = 4,
        texture_seed: int = 0,
    ):
        if params is None:
            params = SimfishParams()
        if not isinstance(params, SimfishParams):
            raise ValueError(
                f"Simfish params={type(params).__name__} is invalid; allowed: SimfishParams"
            )
        if isinstance(num_textures, bool) or not isinstance(num_textures, int) or num_textures < 1:
            raise ValueError(f"num_textures={num_textures!r} is invalid; allowed: an int >= 1")
        self.params = params
        self._num_textures = num_textures
        self._texture_seed = int(texture_seed)
        self._textures = None
        if sediment is not None:
            tex = jnp.asarray(sediment)
            if tex.ndim == 2:
                tex = tex[None]
            if tex.ndim != 3:
                raise ValueError(
                    f"sediment shape={tuple(tex.shape)} is invalid; allowed: [H, W] or [K, H, W]"
                )
            self._textures = tex

    @classmethod
    def preset(cls, name: str = "normal", **overrides) -> Simfish:
        """``Simfish(SimfishParams.preset(name, **overrides))``."""
        return cls(SimfishParams.preset(name, **overrides))

    @property
    def default_params(self) -> SimfishParams:
        return self.params

    @property
    def sediment_textures(self) -> Array:
        """The shared sediment pool ``[K, H, W]`` (generated on first use)."""
        if self._textures is None:
            with jax.ensure_compile_time_eval():
                self._textures = arena.make_sediment_pool(
                    jax.random.key(self._texture_seed), self.params, self._num_textures
                )
        return self._textures

    # ------------------------------------------------------------------ contract
    def observation_space(self, params: SimfishParams | None = None) -> Dict:
        p = params or self.params
        return Dict(
            {
                "visual": Box(0.0, 255.0, (p.obs_grid_size, 3, 2), jnp.float32),
                "internal": Box(
                    np.array([0.0, -np.inf, 0.0]), np.array([1.0, 1.0, 1.0]), (3,), jnp.float32
                ),
            }
        )

    def action_space(self, params: SimfishParams | None = None) -> Discrete:
        return Discrete(bouts_lib.NUM_ACTIONS)

    def reflect_observation(self, observation):
        """Mirror an observation about the heading axis (the vision's ``reflect_observation``)."""
        from larvax.envs.simfish import vision

        return vision.reflect_observation(observation)

    def observe(self, key: Array, state: SimfishState, params: SimfishParams | None = None):
        """The observation dict of a state (shot noise per ``params.eyes_shot_noise``)."""
        p = params or self.params
        visual = _observe_visual(p, state, self.sediment_textures, key)
        return {"visual": visual, "internal": internal_state(p, state)}

    def init_state(self, key: Array, params: SimfishParams | None = None) -> SimfishState:
        """A fresh episode's state (what :meth:`reset` returns, without the observation)."""
        p = params or self.params
        kf, ka, kc, kp, ks, ke, kt = jax.random.split(key, 7)
        m = int(p.fish_mouth_radius + 40)
        hi = jnp.array([p.arena_width - m, p.arena_height - m])
        fish_xy = jax.random.randint(kf, (2,), m, hi).astype(jnp.float32)
        fish_angle = jax.random.uniform(ka, (), minval=0.0, maxval=2 * jnp.pi)
        state = make_state(p, fish_xy, fish_angle)
        if p.prey_cloud_num > 0:
            clouds = prey.sample_cloud_centres(kc, p)
        else:
            clouds = state.prey_cloud_xy
        if p.prey_num > 0:
            pxy, pang, pgait = prey.spawn(kp, p, clouds)
            state = state.replace(
                prey_xy=pxy,
                prey_angle=pang.astype(jnp.float32),
                prey_gait=pgait,
                prey_alive=jnp.ones((p.prey_num,), bool),
            )
        if p.salt_enabled:
            src = arena.sample_salt_source(ks, p).astype(jnp.float32)
        else:
            src = jnp.zeros((2,), jnp.float32)
        tex = self.sediment_textures
        handle = arena.sample_sediment_handle(kt, tex.shape[0], tex.shape[1:])
        return state.replace(
            prey_cloud_xy=clouds,
            salt_source_xy=src,
            salt=arena.salt_concentration(p, src, fish_xy),
            predator_epoch_starts=predator.epoch_starts(ke, p),
            sediment=handle,
        )

    def reset(self, key: Array, params: SimfishParams | None = None):
        p = params or self.params
        k_state, k_obs = jax.random.split(key)
        state = self.init_state(k_state, p)
        obs = self.observe(k_obs, state, p)
        info = _zero_info()
        ts = TimeStep(obs, jnp.zeros((), jnp.float32), jnp.asarray(False), jnp.asarray(False), info)
        return state, ts

    def step(self, key: Array, state: SimfishState, action: Array, params=None):
        p = params or self.params
        k_phys, k_obs = jax.random.split(key)
        new_state, comps, events = physics_step(p, k_phys, state, action)
        obs = self.observe(k_obs, new_state, p)
        reward = sum(comps[c] for c in REWARD_COMPONENTS).astype(jnp.float32)
        info = {"reward_components": comps, **events}
        ts = TimeStep(obs, reward, events["terminated"], events["truncated"], info)
        return new_state, ts

    def step_autoreset(self, key: Array, state: SimfishState, action: Array, params=None):
        """``step`` that starts a new episode in the same call when this one ends.

        Cheaper than the generic ``AutoReset`` wrapper for Simfish: the reset state is built
        without an observation and only one observation (of the state returned) is computed,
        so under ``vmap`` the vision runs once per step instead of twice (or three times with
        ``final_observation``). The returned TimeStep has the new episode's first observation
        and the reward / terminated / truncated / info of the step that ended the old one.
        There is no ``final_observation`` (use the ``AutoReset`` wrapper when a truncated
        episode must bootstrap from its last observation).
        """
        p = params or self.params
        k_phys, k_reset, k_obs = jax.random.split(key, 3)
        new_state, comps, events = physics_step(p, k_phys, state, action)
        done = events["terminated"] | events["truncated"]
        fresh = self.init_state(k_reset, p)
        new_state = jax.tree_util.tree_map(lambda a, b: jnp.where(done, a, b), fresh, new_state)
        obs = self.observe(k_obs, new_state, p)
        reward = sum(comps[c] for c in REWARD_COMPONENTS).astype(jnp.float32)
        info = {"reward_components": comps, **events}
        ts = TimeStep(obs, reward, events["terminated"], events["truncated"], info)
        return new_state, ts


def _zero_info() -> dict:
    z = jnp.zeros((), jnp.float32)
    f = jnp.asarray(False)
    return {
        "reward_components": {c: z for c in REWARD_COMPONENTS},
        "prey_caught": jnp.zeros((), jnp.int32),
        "predator_hit": f,
        "attack_survived": f,
        "wall_touch": f,
        "end_cause": jnp.zeros((), jnp.int32),
        "bout_distance_mm": z,
        "bout_angle_rad": z,
        "energy_use": z,
        "escape_jumps": jnp.zeros((), jnp.int32),
        "terminated": f,
        "truncated": f,
    }


__all__ = [
    "END_CAUSES",
    "END_NONE",
    "END_PREY_ALL_EATEN",
    "END_STARVATION",
    "END_TIME",
    "REWARD_COMPONENTS",
    "Simfish",
    "SimfishState",
    "internal_state",
    "physics_step",
]
