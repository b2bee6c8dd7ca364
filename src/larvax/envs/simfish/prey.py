"""Prey (paramecia): placement, gaits, turns, escapes, contacts with the fish, clouds.

Reference rules (Simfish 2.0, ``_move_prey``), per env step of 100 sub-steps:

* At sub-step 0 each prey turns by ``U(-0.15, 0.15)`` plus, with p 0.04, ``U(-pi, pi)``, and
  redraws its gait with p 0.05 (0 static p 0, 1 slow p 0.8, 2 fast p 0.2); the impulse of
  sub-step 0 still uses the *previous* gait.
* Every sub-step, after the physics integration (``x += v dt; v *= q``, ``q = 0.7^0.1``), it
  gets an impulse ``v_gait * (1 - q)`` (mass 1, so a velocity change in px/s) along its
  heading, which holds the speed at ``v_gait``.
* Escape: prey nearer than 100 px to the fish (checked once, at sub-step 0, after the
  integration) jump with p ``1 - 0.7^(1/100)`` per sub-step: ``1800 * (1 - q)`` px/s along
  the heading (~3.6 px each).
* A touch of the fish (mouth outside the capture window / angle, or head / tail) adds the
  same jump impulse in that sub-step.

The motion of prey that cannot meet the fish in a step is a geometric series:
:func:`free_step` gives it in closed form (exactly the 100-sub-step loop without jumps).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from larvax.envs.simfish.body import WALL_HALF_WIDTH
from larvax.envs.simfish.config import SimfishParams
from larvax.envs.simfish.random_numbers import hashed_uniforms

Array = jax.Array


def gait_speeds(params: SimfishParams) -> Array:
    """Speed per gait (px/s): [0, slow, fast]."""
    return jnp.array([0.0, params.prey_velocity_slow, params.prey_velocity_fast], jnp.float32)


def gait_probs(params: SimfishParams) -> Array:
    """Probabilities of gaits [static, slow, fast] at creation / switch."""
    p0 = max(0.0, 1.0 - (params.prey_p_slow + params.prey_p_fast))
    return jnp.array([p0, params.prey_p_slow, params.prey_p_fast], jnp.float32)


def sample_gait(key: Array, params: SimfishParams, shape) -> Array:
    """Random gaits (int32) with :func:`gait_probs`."""
    return jax.random.categorical(key, jnp.log(gait_probs(params)), shape=shape).astype(jnp.int32)


def sample_cloud_centres(key: Array, params: SimfishParams) -> Array:
    """Cloud centres, float32 ``[C, 2]``: integers in ``[s/2 + 3, W - 3 - s/2)`` (s = region)."""
    c = max(int(params.prey_cloud_num), 1)
    half = params.prey_cloud_region_size / 2
    lo = int(half + params.prey_radius + params.fish_mouth_radius)
    kx, ky = jax.random.split(key)
    x = jax.random.randint(kx, (c,), lo, int(params.arena_width - lo))
    y = jax.random.randint(ky, (c,), lo, int(params.arena_height - lo))
    return jnp.stack([x, y], -1).astype(jnp.float32)


def sample_in_clouds(key: Array, params: SimfishParams, cloud_xy: Array, shape) -> Array:
    """Positions (integers) uniform in the square region of a random cloud, ``shape + (2,)``."""
    kc, ku = jax.random.split(key)
    half = params.prey_cloud_region_size / 2
    idx = jax.random.randint(kc, shape, 0, cloud_xy.shape[0])
    centre = cloud_xy[idx]
    lo = jnp.ceil(centre - half)
    span = jnp.ceil(centre + half) - lo  # rng.integers(low, high) on float bounds
    u = jax.random.uniform(ku, shape + (2,))
    return (lo + jnp.floor(u * span)).astype(jnp.float32)


def spawn(key: Array, params: SimfishParams, cloud_xy: Array) -> tuple[Array, Array, Array]:
    """Initial prey (all ``prey_num`` slots): (xy ``[P, 2]``, angle ``[P]``, gait ``[P]``).

    Uniform integers in ``[43, W - 43)`` (reference ``rng.integers``), or in the clouds.
    """
    p = int(params.prey_num)
    kxy, ka, kg = jax.random.split(key, 3)
    if params.prey_cloud_num > 0:
        xy = sample_in_clouds(kxy, params, cloud_xy, (p,))
    else:
        m = int(params.prey_start_margin)
        hi = jnp.array([params.arena_width - m, params.arena_height - m])
        xy = jax.random.randint(kxy, (p, 2), m, hi).astype(jnp.float32)
    angle = jax.random.uniform(ka, (p,), minval=0.0, maxval=2 * jnp.pi)
    gait = sample_gait(kg, params, (p,))
    return xy, angle, gait


def step_randoms(
    key: Array, params: SimfishParams, gait: Array, angle: Array
) -> tuple[Array, Array]:
    """The once-per-step draws: (new gait, new angle) for every prey slot.

    One ``[5, P]`` table of counter-hashed uniforms (one key draw, no threefry per value)
    and the gait by inverse CDF (one uniform per slot instead of the three Gumbel draws and
    logs of ``jax.random.categorical``); the distributions are those of :func:`gait_probs`.
    """
    shape = gait.shape
    u = hashed_uniforms(key, (5,) + shape)
    switch = u[0] < params.prey_p_switch
    probs = gait_probs(params)
    above = (u[1] >= probs[0], u[1] >= probs[0] + probs[1])
    drawn = above[0].astype(jnp.int32) + above[1].astype(jnp.int32)
    new_gait = jnp.where(switch, drawn, gait)
    a = params.prey_max_turning_angle
    turn = -a + 2.0 * a * u[2]
    large = -jnp.pi + 2.0 * jnp.pi * u[3]
    turn = turn + jnp.where(u[4] < params.prey_p_large_turn, large, 0.0)
    return new_gait, angle + turn


def free_step(
    params: SimfishParams,
    xy: Array,
    velocity: Array,
    old_gait: Array,
    new_gait: Array,
    new_angle: Array,
) -> tuple[Array, Array]:
    """Closed form of one env step without contacts or jumps: returns (xy, velocity).

    With ``a_j`` the impulse after the integration of sub-step j (``a_0`` from the old gait,
    ``a_j`` from the new one for j >= 1), all along the new heading ``u``::

        x_100 = x_0 + dt [v_0 (1 - q^100) / (1 - q) + u sum_j a_j (1 - q^(99 - j)) / (1 - q)]
        v_100 = v_0 q^100 + u sum_j a_j q^(99 - j)
    """
    q = params.substep_damping
    n = params.phys_substeps
    dt = params.phys_dt
    speeds = gait_speeds(params)
    a_old = speeds[old_gait] * (1.0 - q)
    a_new = speeds[new_gait] * (1.0 - q)
    s_rest = (1.0 - q ** (n - 1)) / (1.0 - q)  # sum_{m=0}^{n-2} q^m
    pos_old = (1.0 - q ** (n - 1)) / (1.0 - q)
    pos_new = ((n - 1) - s_rest) / (1.0 - q)
    u = jnp.stack([jnp.cos(new_angle), jnp.sin(new_angle)], -1)
    disp = (
        velocity * (dt * (1.0 - q**n) / (1.0 - q))
        + u * (dt * (a_old * pos_old + a_new * pos_new))[..., None]
    )
    v = velocity * (q**n) + u * (a_old * q ** (n - 1) + a_new * s_rest)[..., None]
    return xy + disp, v


def _path_dist2(xy: Array, start: Array, end: Array) -> Array:
    """Squared distance (px^2) from points ``xy [..., 2]`` to the segment ``start``-``end``."""
    ab = end - start
    t = jnp.clip(jnp.sum((xy - start) * ab, -1) / jnp.maximum(jnp.sum(ab * ab, -1), 1e-9), 0.0, 1.0)
    d = xy - (start + t[..., None] * ab)
    return jnp.sum(d * d, -1)


def contact_candidates(
    params: SimfishParams, xy: Array, alive: Array, path_start: Array, path_end: Array
) -> Array:
    """Slots of the ``contact_candidates`` live prey nearest the fish's straight glide path
    ``path_start``-``path_end`` (px), int32 ``[K]``, K = min(contact_candidates, prey_num):
    the prey simulated together with the fish in a step (the others move by
    :func:`free_step`)."""
    k = min(int(params.contact_candidates), int(params.prey_num))
    dist2 = _path_dist2(xy, path_start[None], path_end[None])
    dist2 = jnp.where(alive, dist2, jnp.inf)
    _, idx = jax.lax.top_k(-dist2, k)
    return idx


def keep_inside(params: SimfishParams, xy: Array, velocity: Array) -> tuple[Array, Array]:
    """Prey centres stay ``prey_radius`` inside the wall surfaces; the normal velocity
    component is removed at a wall (the reference bounces them physically)."""
    w, h = float(params.arena_width), float(params.arena_height)
    r = params.prey_radius
    lo = jnp.array([WALL_HALF_WIDTH + r, 2 * WALL_HALF_WIDTH + r], jnp.float32)
    hi = jnp.array([w - 2 * WALL_HALF_WIDTH - r, h - WALL_HALF_WIDTH - r], jnp.float32)
    clipped = jnp.clip(xy, lo, hi)
    hit = clipped != xy
    return clipped, jnp.where(hit, 0.0, velocity)


def capture_bearing(fish_xy: Array, fish_angle: Array, prey_xy: Array) -> Array:
    """Wrapped bearing of the prey from the fish body position relative to the heading."""
    d = prey_xy - fish_xy
    raw = jnp.arctan2(d[..., 1], d[..., 0]) - fish_angle
    return jnp.arctan2(jnp.sin(raw), jnp.cos(raw))


def _seg_dist2(px, py, ax, ay, bx, by):
    abx, aby = bx - ax, by - ay
    t = jnp.clip(((px - ax) * abx + (py - ay) * aby) / (abx * abx + aby * aby), 0.0, 1.0)
    dx, dy = px - (ax + t * abx), py - (ay + t * aby)
    return dx * dx + dy * dy


def body_contact(
    params: SimfishParams, fish_xy: Array, fish_angle: Array, prey_xy: Array, radius=None
) -> Array:
    """A circle (default: a prey, ``prey_radius``) overlaps the head circle or the tail.

    Head: circle r 2.5 centred 2.5 px behind the mouth. Tail: triangle (-2.5, +-2.5),
    (-2.5 - 41, 0) in the fish frame (x forward, y lateral).
    """
    d = prey_xy - fish_xy
    c, s = jnp.cos(fish_angle), jnp.sin(fish_angle)
    fx = d[..., 0] * c + d[..., 1] * s  # forward
    ly = -d[..., 0] * s + d[..., 1] * c  # lateral
    hr = params.fish_head_radius
    rp = params.prey_radius if radius is None else radius
    head = (fx + params.fish_head_offset) ** 2 + ly**2 < (hr + rp) ** 2
    base = -params.fish_head_offset
    tip = base - params.fish_tail_length
    inside = (fx <= base) & (fx >= tip) & (jnp.abs(ly) <= hr * (fx - tip) / (base - tip))
    r2 = rp * rp
    e1 = _seg_dist2(fx, ly, base, -hr, tip, 0.0) < r2
    e2 = _seg_dist2(fx, ly, base, hr, tip, 0.0) < r2
    e3 = _seg_dist2(fx, ly, base, -hr, base, hr) < r2
    return head | inside | e1 | e2 | e3


def _closest_on_seg(px, py, ax, ay, bx, by):
    abx, aby = bx - ax, by - ay
    t = jnp.clip(((px - ax) * abx + (py - ay) * aby) / (abx * abx + aby * aby), 0.0, 1.0)
    return ax + t * abx, ay + t * aby


def _unit(dx, dy):
    n = jnp.sqrt(dx * dx + dy * dy)
    safe = jnp.maximum(n, 1e-6)
    return jnp.where(n > 1e-6, dx / safe, 1.0), jnp.where(n > 1e-6, dy / safe, 0.0)


def fish_contacts(
    params: SimfishParams, fish_xy: Array, fish_angle: Array, xy: Array, radius, cos_sin=None
):
    """Overlaps of circles (centres ``xy [..., 2]``, ``radius`` px) with the fish's three
    shapes and the contact normals (world frame, unit, pointing from the fish shape to the
    circle): ``((mouth, n_mouth), (head, n_head), (tail, n_tail))``.

    ``cos_sin``: optional precomputed ``(cos, sin)`` of ``fish_angle`` (saves recomputing
    them for every circle when the fish poses are broadcast against many circles).
    """
    d = xy - fish_xy
    if cos_sin is None:
        c, s = jnp.cos(fish_angle), jnp.sin(fish_angle)
    else:
        c, s = cos_sin
    fx = d[..., 0] * c + d[..., 1] * s
    ly = -d[..., 0] * s + d[..., 1] * c

    def to_world(nx, ny):
        return jnp.stack([nx * c - ny * s, nx * s + ny * c], -1)

    rm = params.fish_mouth_radius + radius
    mouth = fx * fx + ly * ly < rm * rm
    n_mouth = to_world(*_unit(fx, ly))
    ho = params.fish_head_offset
    rh = params.fish_head_radius + radius
    head = (fx + ho) ** 2 + ly * ly < rh * rh
    n_head = to_world(*_unit(fx + ho, ly))
    hr = params.fish_head_radius
    base = -ho
    tip = base - params.fish_tail_length
    best = None
    for ax, ay, bx, by in ((base, -hr, tip, 0.0), (base, hr, tip, 0.0), (base, -hr, base, hr)):
        qx, qy = _closest_on_seg(fx, ly, ax, ay, bx, by)
        d2 = (fx - qx) ** 2 + (ly - qy) ** 2
        if best is None:
            best = (d2, qx, qy)
        else:
            closer = d2 < best[0]
            best = tuple(jnp.where(closer, a, b) for a, b in zip((d2, qx, qy), best, strict=True))
    d2, qx, qy = best
    inside = (fx <= base) & (fx >= tip) & (jnp.abs(ly) <= hr * (fx - tip) / (base - tip))
    tail = inside | (d2 < radius * radius)
    nx, ny = _unit(fx - qx, ly - qy)
    n_tail = to_world(jnp.where(inside, -nx, nx), jnp.where(inside, -ny, ny))
    return (mouth, n_mouth), (head, n_head), (tail, n_tail)


def collision_impulse(
    params: SimfishParams, overlap: Array, normal: Array, v_prey: Array, v_fish: Array
) -> Array:
    """Impulse magnitude (mass x px/s, >= 0) of an elastic prey-fish contact, as Chipmunk's
    solver gives it in one sub-step: the relative normal velocity before damping ``v_n``
    ends at ``-e v_n`` (e = 1 x 1) after the damping ``q``: ``j = -(e + q) v_n / (1/m_p + 1/m_f)``
    when approaching, 0 otherwise. (Rotation of the fish and penetration bias are ignored.)
    """
    q = params.substep_damping
    vn = jnp.sum((v_prey - v_fish) * normal, -1)
    k = 1.0 / params.prey_mass + 1.0 / params.fish_mass
    j = -(1.0 + q) * vn / k
    return jnp.where(overlap & (vn < 0), j, 0.0)


def reproduce(
    key: Array,
    params: SimfishParams,
    fish_xy: Array,
    xy: Array,
    velocity: Array,
    angle: Array,
    gait: Array,
    alive: Array,
    age: Array,
    cloud_xy: Array,
):
    """Cloud births and deaths once per step (only with clouds and reproduction on).

    Births: per cloud with p ``birth_rate * (prey_num - N)`` unless the fish is within the
    cloud's box (+-region px), a new prey in the cloud's region (the first free slot; none if
    the slots are full). Deaths: prey older than ``safe_duration`` die with p ``p_death``
    unless the fish is within +-200 px of them. Ages grow by one.
    """
    kb, kp, ka, kg, kd = jax.random.split(key, 5)
    c = cloud_xy.shape[0]
    n = jnp.sum(alive)
    p_birth = params.prey_birth_rate * (params.prey_num - n)
    near = jnp.all(jnp.abs(fish_xy[None] - cloud_xy) <= params.prey_cloud_region_size, -1)
    births = (jax.random.uniform(kb, (c,)) < p_birth) & ~near
    half = params.prey_cloud_region_size / 2
    u = jax.random.uniform(kp, (c, 2))
    lo = jnp.ceil(cloud_xy - half)
    new_xy = lo + jnp.floor(u * (jnp.ceil(cloud_xy + half) - lo))
    new_angle = jax.random.uniform(ka, (c,), minval=0.0, maxval=2 * jnp.pi)
    new_gait = sample_gait(kg, params, (c,))
    for i in range(c):  # C is tiny (3): fill the first free slot per birth
        free = ~alive
        slot = jnp.argmax(free)
        ok = births[i] & free[slot]
        xy = xy.at[slot].set(jnp.where(ok, new_xy[i], xy[slot]))
        velocity = velocity.at[slot].set(jnp.where(ok, 0.0, velocity[slot]))
        angle = angle.at[slot].set(jnp.where(ok, new_angle[i], angle[slot]))
        gait = gait.at[slot].set(jnp.where(ok, new_gait[i], gait[slot]))
        age = age.at[slot].set(jnp.where(ok, 0, age[slot]))
        alive = alive.at[slot].set(alive[slot] | ok)
    age = age + 1
    far = jnp.any(jnp.abs(xy - fish_xy[None]) > 200.0, -1)
    die = (
        alive
        & (age > params.prey_safe_duration)
        & (jax.random.uniform(kd, alive.shape) < params.prey_p_death)
        & far
    )
    return xy, velocity, angle, gait, alive & ~die, age


__all__ = [
    "body_contact",
    "collision_impulse",
    "contact_candidates",
    "fish_contacts",
    "capture_bearing",
    "free_step",
    "gait_probs",
    "gait_speeds",
    "keep_inside",
    "reproduce",
    "sample_cloud_centres",
    "sample_gait",
    "sample_in_clouds",
    "spawn",
    "step_randoms",
]
