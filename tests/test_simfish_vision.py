"""Simfish vision against the reference (golden ``observations.npz``, shot noise off).

Conformance measured on the public golden scenes (101 scenes, 139 x 3 x 2 readings each):

* photoreceptor grids: equal to ``eye_grids.npz`` (max error 4e-16 rad);
* UV prey projection (``pr_uv_prey``): max abs error 2e-6 photons (float32 rounding);
* red channels (``pr_red``): max abs error 3e-6 photons;
* UV background (``pr_uv_background``): closed form instead of the reference's 0.5-px
  pixel walk: mean abs error 0.11 photons, 99th percentile 0.96, max 2.94 photons (on a
  ~10-photon background). The large errors are rays within ~1 % of a diagonal (and other
  low-order slopes such as 3/4), where the reference's count of distinct pixels depends on
  the ray's phase; the closed form uses the phase average (unbiased: mean error -0.002).
* visual (after floor): mean abs error per channel (UV, red50, red75) = (0.079, 0, 0)
  photons, max 3 photons (UV), 97.4 % of all readings identical (red: all identical);
* internal state: identical (float64 computation as the reference, then float32).

The tolerances below sit just above these numbers: they hold the implementation to what
it achieves, and they are inside the aim (mean abs error < 0.5 photon per channel, no
reading off by more than a few photons).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from larvax.envs.simfish import arena, random_numbers, scene, vision
from larvax.envs.simfish.config import SimfishParams
from larvax.envs.simfish.vision import red

PARAMS = SimfishParams()


@pytest.fixture(scope="module")
def golden(simfish_data_dir):
    obs = dict(np.load(simfish_data_dir / "observations.npz"))
    sed = np.load(simfish_data_dir / "sediment.npz")
    grids = dict(np.load(simfish_data_dir / "eye_grids.npz"))
    return obs, dict(sed), grids


@functools.lru_cache(maxsize=4)
def _batched_readings(params):
    def f(fxy, ang, prey, alive, present, pxy, pr, tex):
        sed = arena.sediment_from_array(tex)
        world = vision.World(fxy, ang, prey, alive, present, pxy, pr, sed)
        return vision.photoreceptor_readings(params, world)

    return jax.jit(jax.vmap(f, in_axes=(0, 0, 0, 0, 0, 0, 0, None)))


@pytest.fixture(scope="module")
def ours(golden):
    obs, sed, _ = golden
    fxy = np.stack([obs["fish_x"], obs["fish_y"]], -1)
    alive = np.isfinite(obs["prey_xy"][..., 0]) & (
        np.arange(obs["prey_xy"].shape[1])[None] < obs["n_prey"][:, None]
    )
    out = _batched_readings(PARAMS)(
        fxy.astype(np.float32),
        obs["fish_angle"].astype(np.float32),
        np.nan_to_num(obs["prey_xy"]).astype(np.float32),
        alive,
        obs["predator_present"],
        np.nan_to_num(obs["predator_xy"]).astype(np.float32),
        np.nan_to_num(obs["predator_radius"]).astype(np.float32),
        sed["sediment"],
    )
    return {k: np.asarray(v, np.float64) for k, v in out.items()}


# ----------------------------------------------------------------------------- geometry


def test_photoreceptor_grids_equal_reference(golden):
    _, _, g = golden
    geo = vision.eye_geometry(PARAMS)
    np.testing.assert_allclose(geo.uv_angles, g["uv_pr_angles"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(geo.red_angles, g["red_pr_angles"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(geo.interp_angles, g["interp_angles"], rtol=0, atol=1e-12)
    assert geo.uv_half == int(g["uv_fov_half_width"]) == 691
    assert geo.red_half == int(g["red_fov_half_width"]) == 195
    assert abs(geo.uv_range - float(g["max_uv_range"])) < 1e-9
    assert list(geo.radii) == list(g["red_circle_radius_px"]) == [60, 187]


def test_grid_facts_by_hand():
    geo = vision.eye_geometry(PARAMS)
    left, right = geo.uv_angles
    # left eye covers [-133, +30] deg; its nasal edge is -pi/2 + field/2 + verg/2 = 30 deg
    assert np.isclose(np.degrees(left.max()), 30.0)
    assert np.isclose(np.degrees(right.min()), -30.0)
    # strike zone spacing 0.04 rad, periphery approaching 0.1 rad
    dl = np.diff(right)
    assert np.isclose(dl[0], 0.04 + 0.06 / (1 + np.exp(5 * 1.047)), atol=1e-12)
    assert 0.095 < dl[-1] < 0.1
    assert np.allclose(np.diff(geo.interp_angles, axis=1), 0.02)
    # interpolation matrices reproduce np.interp, rows sum to one
    f = np.random.default_rng(0).normal(size=42)
    np.testing.assert_allclose(
        geo.interp_uv[0] @ f, np.interp(geo.interp_angles[0], left, f), atol=1e-5
    )
    np.testing.assert_allclose(geo.interp_red.sum(-1), 1.0, atol=1e-6)


def test_circle_is_closed_ring_of_radius():
    geo = vision.eye_geometry(PARAMS)
    for circle, r in zip(geo.circles, geo.radii, strict=True):
        d = np.hypot(circle.offsets[:, 0], circle.offsets[:, 1])
        # the reference's Bresenham variant ends one step past the octant diagonal
        assert np.all(np.abs(d - r) < 1.5)
        assert np.all(np.diff(circle.angles) >= 0)
        steps = np.abs(np.diff(circle.offsets, axis=0)).max(axis=1)
        assert steps.max() <= 1  # 8-connected ring (duplicates give 0 steps)


# ----------------------------------------------------------------------------- golden


def test_uv_prey_projection_matches_reference(golden, ours):
    obs, _, _ = golden
    err = np.abs(ours["uv_prey"] - obs["pr_uv_prey"])
    assert err.max() < 1e-4, err.max()
    assert obs["pr_uv_prey"].max() > 5.0  # the data do contain prey signals


def test_red_channels_match_reference(golden, ours):
    obs, _, _ = golden
    err = np.abs(ours["red"] - obs["pr_red"])
    assert err.max() < 1e-3, err.max()
    # the predator scenes contain shadows (zeros) that we reproduce
    shadow = obs["pr_red"] == 0
    assert shadow.sum() > 10
    assert np.all(ours["red"][shadow] < 1e-6)


def test_eye_offsets_match_reference(golden, ours):
    obs, _, _ = golden
    np.testing.assert_allclose(ours["eye_offset"], obs["eye_offset_xy"], atol=1e-5)


def test_uv_background_closed_form_within_tolerance(golden, ours):
    obs, _, _ = golden
    d = ours["uv_background"] - obs["pr_uv_background"]
    ad = np.abs(d)
    # measured: mean 0.111, p99 0.96, max 2.94 photons; unbiased (mean -0.002)
    assert ad.mean() < 0.15, ad.mean()
    assert np.quantile(ad, 0.99) < 1.2
    assert ad.max() < 3.5
    assert abs(d.mean()) < 0.02
    # relative to the signal: dark-region backgrounds are ~1 photon, light ones ~10
    rel = ad / np.maximum(obs["pr_uv_background"], 0.5)
    assert np.median(rel) < 0.02


def test_visual_matches_reference(golden, ours):
    obs, _, _ = golden
    raw = ours["raw_interp"]
    assert np.abs(raw - obs["raw_interp"]).max() < 3.0
    visual = np.clip(np.floor(raw), 0, 255)
    d = np.abs(visual - obs["visual"])
    mae = d.mean(axis=(0, 1, 3))
    assert mae[0] < 0.12 and mae[1] < 0.01 and mae[2] < 0.01, mae
    assert d[:, :, 1:].max() <= 1  # red: only floor flips of float rounding
    assert d.max() <= 3
    assert (d == 0).mean() > 0.96


def test_observe_scene_visual_and_internal(golden):
    obs, sed, _ = golden
    for i in (0, 30, 90):  # empty, prey, predator scenes
        sc = scene.scene_from_golden(obs, i, sed["sediment"])
        visual, internal = scene.observe_scene(sc)
        assert visual.shape == (139, 3, 2) and visual.dtype == np.float32
        assert np.abs(visual - obs["visual"][i]).max() <= 3
        np.testing.assert_array_equal(internal, obs["internal"][i])


def test_internal_state_exact_all_scenes(golden):
    obs, sed, _ = golden
    for i in range(len(obs["fish_x"])):
        sc = scene.scene_from_golden(obs, i, sed["sediment"])
        np.testing.assert_array_equal(scene.internal_from_scene(sc), obs["internal"][i])


def test_observations_integral_and_in_range(golden, ours):
    obs, sed, _ = golden
    sc = scene.scene_from_golden(obs, 40, sed["sediment"])
    for noise in (False, True):
        v, _ = scene.observe_scene(sc, noise=noise, key=jax.random.key(3))
        assert np.all(np.isfinite(v))
        assert np.all(v == np.floor(v))
        assert v.min() >= 0 and v.max() <= 255
    v0, _ = scene.observe_scene(sc)
    v1, _ = scene.observe_scene(sc, noise=True, key=jax.random.key(3))
    assert np.any(v0 != v1)  # noise does something


def test_luminance_and_sediment_match_reference(golden):
    _, sed, _ = golden
    np.testing.assert_array_equal(arena.luminance_profile(PARAMS), sed["luminance_profile_y"])
    rows = jnp.arange(0, 2500)
    np.testing.assert_allclose(
        np.asarray(arena.luminance_at_rows(PARAMS, rows)), sed["luminance_profile_y"], atol=1e-6
    )


# ----------------------------------------------------------------------------- by hand


def _single(params=PARAMS):
    @jax.jit
    def f(fxy, ang, prey, alive, tex):
        sed = arena.sediment_from_array(tex)
        world = vision.World(fxy, ang, prey, alive, False, jnp.zeros(2), 0.0, sed)
        return vision.photoreceptor_readings(params, world)

    return f


_SINGLE = _single()


def test_prey_straight_ahead_hand_computed():
    # fish at (1250, 1250) heading 0 in full light, one prey 20 px ahead.
    tex = np.zeros((2500, 2500), np.float32)
    prey = np.zeros((4, 2), np.float32)
    prey[0] = (1270.0, 1250.0)
    alive = np.array([True, False, False, False])
    out = _SINGLE(np.array([1250.0, 1250.0], np.float32), 0.0, prey, alive, tex)
    # left eye at (1250, 1247.5): the prey is seen from (1250.2245, 1247.7245)
    rel = np.array([1270 - 1250.2245, 1250 - 1247.7245])
    rho = np.hypot(*rel)
    theta = np.arctan2(rel[1], rel[0])
    half = np.arctan(1.0 / rho)
    # brightness: window pixel [floor(p'y) - 1, floor(p'x) - 1] = (689, 709) from centre 691
    bright = np.exp(-0.01 * np.hypot(709 - 691, 689 - 691))
    bins = -np.pi + np.arange(6284) * 0.001
    lb = np.argmin(np.abs(bins - (theta - half)))
    rb = np.argmin(np.abs(bins - (theta + half)))
    geo = vision.eye_geometry(PARAMS)
    expect = np.zeros(42)
    for i, a in enumerate(geo.uv_angles[0]):
        s = np.argmin(np.abs(bins - (a - 0.00665)))
        e = np.argmin(np.abs(bins - (a + 0.00665)))
        expect[i] = 1.2 * bright * max(0, min(rb, e) - max(lb, s) + 1)
    np.testing.assert_allclose(np.asarray(out["uv_prey"])[:, 0], expect, atol=1e-4)
    assert expect.max() > 10  # a 20 px prey covers whole receptive fields
    # no sediment: red channels read 0
    assert np.all(np.asarray(out["red"]) == 0)


def test_uv_background_uniform_light_hand_computed():
    # heading along +x at the arena centre, full light (y = 1800): the ray to the window
    # border is 691 - eye offset px; the sum of exp(-0.01 s) over one pixel per px
    params = PARAMS
    fxy = np.array([1250.0, 1800.0], np.float32)
    out = _SINGLE(fxy, 0.0, np.zeros((1, 2), np.float32), np.zeros(1, bool), np.zeros((4, 4)))
    geo = vision.eye_geometry(params)
    bg = np.asarray(out["uv_background"])
    # receptor nearest to straight ahead of the right eye (alpha closest to 0)
    i = int(np.argmin(np.abs(geo.uv_angles[1])))
    a = geo.uv_angles[1][i]
    # direct pixel walk, as the reference (eye at window (691, 693.5) ... border col 1382)
    start = np.array([691.0 - 2.5 * np.sin(0.0), 691.0 + 2.5 * np.cos(0.0)])  # (col, row)
    d = np.array([np.cos(a), np.sin(a)])
    steps_x = (1382 - start[0]) / d[0]
    steps_y = (1382 - start[1]) / d[1] if d[1] > 0 else (-start[1] / d[1] if d[1] < 0 else 1e9)
    length = min(steps_x, steps_y)
    n = int(length / 0.5) + 1
    total, prev = 0.0, None
    for k in range(n):
        t = k * length / (n - 1)
        px = (int(np.round(start[0] + t * d[0])), int(np.round(start[1] + t * d[1])))
        if px != prev:
            total += np.exp(-0.01 * np.hypot(px[0] - 691, px[1] - 691))
            prev = px
    assert abs(bg[i, 1] - 0.1 * total) < 0.1, (bg[i, 1], 0.1 * total)


def test_outside_arena_is_dark():
    # fish in the bottom-left corner (x = 5, y = 2495) heading into the arena (-pi/4)
    fxy = np.array([5.0, 2495.0], np.float32)
    heading = np.float32(-np.pi / 4)
    out = _SINGLE(fxy, heading, np.zeros((1, 2), np.float32), np.zeros(1, bool), np.zeros((4, 4)))
    geo = vision.eye_geometry(PARAMS)
    world = (geo.uv_angles + heading).T  # [R, eye]
    bg = np.asarray(out["uv_background"])
    # rays toward -x or +y leave the arena within 5 / 0.2 = 25 px: at most ~25 lit px
    outward = (np.cos(world) < -0.2) | (np.sin(world) > 0.2)
    inward = (np.cos(world) > 0.5) & (np.sin(world) < -0.5)
    assert outward.sum() > 5 and inward.sum() > 5
    assert np.all(bg[outward] < 3.0)
    assert np.all(bg[inward] > 8.0)


# ----------------------------------------------------------------------------- mirror


def test_reflect_observation_shapes_and_involution():
    v = np.arange(139 * 3 * 2, dtype=np.float32).reshape(139, 3, 2)
    obs = {"visual": v, "internal": np.array([1.0, 0.5, 0.1], np.float32), "extra": 1}
    r = vision.reflect_observation(obs)
    np.testing.assert_array_equal(r["visual"][0, :, 0], v[-1, :, 1])
    np.testing.assert_array_equal(r["internal"], obs["internal"])
    assert r["extra"] == 1
    np.testing.assert_array_equal(vision.reflect_observation(r)["visual"], v)
    batch = np.stack([v, v + 1])
    np.testing.assert_array_equal(vision.reflect_observation(batch)[1], v[::-1, :, ::-1] + 1)
    with pytest.raises(ValueError, match="visual"):
        vision.reflect_observation(np.zeros((3, 2)))


@functools.lru_cache(maxsize=1)
def _mirror_fn():
    def f(prey, alive, pred_xy, present, tex):
        sed = arena.sediment_from_array(tex)
        fxy = jnp.array([1250.0, 1500.0])
        world = vision.World(fxy, jnp.pi / 2, prey, alive, present, pred_xy, 64.0, sed)
        out = vision.photoreceptor_readings(PARAMS, world)
        return out["raw_interp"]

    return jax.jit(jax.vmap(f, in_axes=(0, 0, 0, 0, None)))


@pytest.fixture(scope="module")
def mirror_textures():
    # a smooth texture and its mirror image about x = 1250 (x -> 2500 - x)
    tex = np.asarray(arena.make_sediment_texture(jax.random.key(5), PARAMS))
    mir = np.zeros_like(tex)
    mir[:, 1:] = tex[:, :0:-1]
    return tex, mir


@settings(
    max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**31 - 1))
def test_mirror_world_gives_reflected_observation(mirror_textures, seed):
    """Fish at x = 1250 heading +y (pi/2): reflecting the world about x = 1250 maps the
    heading onto itself and swaps the eyes, so the observation should be reflected. It is
    only approximately: the eye grids are offset by 0.0046 rad, the red circles sit on
    the integer pixels floor(195 +- 2.5) (asymmetric by one px) and the prey are seen from
    the eye shifted by +0.2245 px in x and y."""
    tex, mir = mirror_textures
    rng = np.random.default_rng(seed)
    n = 8
    r = rng.uniform(15, 300, n)
    a = rng.uniform(-np.pi, np.pi, n)
    prey = np.stack([1250 + r * np.cos(a), 1500 + r * np.sin(a)], -1).astype(np.float32)
    prey_m = prey.copy()
    prey_m[:, 0] = 2500 - prey[:, 0]
    pred = np.array([1250 + 90 * np.cos(a[0]), 1500 + 90 * np.sin(a[0])], np.float32)
    pred_m = pred.copy()
    pred_m[0] = 2500 - pred[0]
    present = np.array([False, True])
    alive = np.ones((2, n), bool)
    f = _mirror_fn()
    world = np.asarray(f(np.stack([prey, prey]), alive, np.stack([pred, pred]), present, tex))
    mirror = np.asarray(
        f(np.stack([prey_m, prey_m]), alive, np.stack([pred_m, pred_m]), present, mir)
    )
    reflected = np.asarray(vision.reflect_observation(world))
    d = np.abs(mirror - reflected)
    # UV: prey edges move by at most a bin or a grid offset; mean small
    assert d[..., 0, :].mean() < 1.0, d[..., 0, :].mean()
    # red channels: the sediment is smooth (sigma 5 px), a 1 px circle shift changes little
    assert d[..., 1:, :].mean() < 2.0, d[..., 1:, :].mean()
    # and the mirror relation is far closer than an unrelated observation
    unrelated = np.abs(mirror - world).mean()
    assert d.mean() < 0.5 * unrelated


# ----------------------------------------------------------------------------- noise


_POISSON = jax.jit(random_numbers.poisson)


@pytest.mark.parametrize("lam", [0.0, 0.5, 4.0, 11.5, 12.0, 40.0, 150.0])
def test_poisson_moments(lam):
    n = 40000
    x = np.asarray(_POISSON(jax.random.key(int(lam * 10)), jnp.full((n,), lam, jnp.float32)))
    assert np.all(x == np.floor(x)) and x.min() >= 0
    se = np.sqrt(max(lam, 1e-3) / n)
    assert abs(x.mean() - lam) < 5 * se + 1e-9
    if lam > 0:
        # variance of a Poisson equals its mean; sd of the sample variance ~ lam*sqrt(2/n)
        assert abs(x.var() - lam) < 5 * np.sqrt((2 * lam**2 + lam) / n)
    if lam == 0.5:
        assert abs((x == 0).mean() - np.exp(-0.5)) < 0.01  # P(0) = e^-lam
    if lam in (4.0, 40.0, 150.0):
        # chi-square goodness of fit against the Poisson pmf over bins with >= 20 expected
        from scipy import stats

        k = np.arange(int(lam + 8 * np.sqrt(lam)) + 1)
        expected = stats.poisson.pmf(k, lam) * n
        keep = expected >= 20
        observed = np.bincount(x.astype(int), minlength=len(k))[: len(k)]
        chi2 = (((observed - expected) ** 2 / expected)[keep]).sum()
        dof = keep.sum() - 1
        assert chi2 < dof + 6 * np.sqrt(2 * dof), (chi2, dof)  # ~ 4 sigma above the mean


def test_hashed_uniforms_are_uniform_and_keyed():
    u = np.asarray(random_numbers.hashed_uniforms(jax.random.key(0), (100000,)))
    assert 0 < u.min() and u.max() < 1
    hist = np.histogram(u, bins=10, range=(0, 1))[0]
    assert np.all(np.abs(hist - 10000) < 500)
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.02
    v = np.asarray(random_numbers.hashed_uniforms(jax.random.key(1), (100000,)))
    assert abs(np.corrcoef(u, v)[0, 1]) < 0.02


# ----------------------------------------------------------------------------- arena


def test_sediment_handle_shift_and_flip():
    tex = np.arange(5 * 7, dtype=np.float32).reshape(5, 7)
    base = arena.sediment_from_array(tex)
    x = jnp.array([0, 3, 6])
    y = jnp.array([0, 2, 4])
    np.testing.assert_array_equal(arena.sediment_at(base, x, y), tex[[0, 2, 4], [0, 3, 6]])
    h = arena.SedimentHandle(jnp.int32(0), jnp.array([2, 1], jnp.int32), jnp.int32(0))
    got = arena.sediment_at(arena.Sediment(base.textures, h), x, y)
    np.testing.assert_array_equal(got, tex[[1, 3, 0], [2, 5, 1]])  # (x+2) % 7, (y+1) % 5
    h = arena.SedimentHandle(jnp.int32(0), jnp.array([0, 0], jnp.int32), jnp.int32(3))
    got = arena.sediment_at(arena.Sediment(base.textures, h), x, y)
    np.testing.assert_array_equal(got, tex[[0, 3, 1], [0, 4, 1]])  # (-x) % 7, (-y) % 5


def test_sediment_texture_statistics():
    p = PARAMS
    tex = np.asarray(arena.make_sediment_texture(jax.random.key(0), p, (256, 256)))
    assert tex.shape == (256, 256) and tex.dtype == np.float32
    assert tex.min() == 0.0 and abs(tex.max() - 60.0) < 1e-3
    # smooth (sigma 5 px): neighbours strongly correlated, also across the periodic seam
    inner = np.corrcoef(tex[:, 10], tex[:, 11])[0, 1]
    seam = np.corrcoef(tex[:, -1], tex[:, 0])[0, 1]
    far = np.corrcoef(tex[:, 10], tex[:, 60])[0, 1]
    assert inner > 0.95 and seam > 0.95 and abs(far) < 0.3
    pool = arena.make_sediment_pool(
        jax.random.key(1),
        p.replace(arena_width=64, arena_height=64, fish_start_margin=10.0, prey_start_margin=10.0),
        3,
    )
    assert pool.shape == (3, 64, 64) and pool.dtype == jnp.float16
    assert not np.allclose(np.asarray(pool[0]), np.asarray(pool[1]))
    h = arena.sample_sediment_handle(jax.random.key(2), 3, (64, 64))
    assert 0 <= int(h.index) < 3 and 0 <= int(h.flip) < 4
    assert np.all((np.asarray(h.shift_xy) >= 0) & (np.asarray(h.shift_xy) < 64))


def test_salt_concentration_hand_computed():
    p = PARAMS
    c = arena.salt_concentration(p, jnp.array([100.0, 200.0]), jnp.array([103.9, 204.2]))
    assert np.isclose(float(c), np.exp(-0.002 * 5.0), rtol=1e-6)  # int(fish) = (103, 204)
    assert (
        float(arena.salt_concentration(p.replace(salt_enabled=False), jnp.zeros(2), jnp.ones(2)))
        == 0.0
    )
    assert float(arena.in_light(p, 750.0)) == 0.0 and float(arena.in_light(p, 750.01)) == 1.0


# ----------------------------------------------------------------------------- errors


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="sediment texture must be 2-D"):
        arena.sediment_from_array(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="num_textures"):
        arena.make_sediment_pool(jax.random.key(0), PARAMS, 0)
    with pytest.raises(ValueError, match="key"):
        vision.observe(
            PARAMS,
            vision.World(
                jnp.zeros(2),
                0.0,
                jnp.zeros((1, 2)),
                jnp.zeros(1, bool),
                False,
                jnp.zeros(2),
                0.0,
                arena.sediment_from_array(np.zeros((4, 4))),
            ),
            None,
            True,
        )
    with pytest.raises(ValueError, match="missing field"):
        scene.observe_scene({"fish_x": 1.0})
    with pytest.raises(ValueError, match="preset"):
        scene.observe_scene({f: 0 for f in scene.SCENE_FIELDS}, preset=3)
    with pytest.raises(ValueError, match="obs_grid_size"):
        vision.eye_geometry(PARAMS.replace(obs_grid_size=100))


def test_state_from_scene_observed_by_env_equals_scene_api(golden):
    from larvax.envs.simfish.env import Simfish

    obs, sed, _ = golden
    i = 90  # a scene with a predator
    sc = scene.scene_from_golden(obs, i, sed["sediment"])
    params = SimfishParams(eyes_shot_noise=False)
    state = scene.state_from_scene(sc, params)
    assert bool(state.predator_present) == bool(obs["predator_present"][i])
    assert int(np.asarray(state.prey_alive).sum()) == int(obs["n_prey"][i])
    np.testing.assert_allclose(np.asarray(state.fish_xy), [obs["fish_x"][i], obs["fish_y"][i]])
    env = Simfish(params, sediment=scene.sediment_pool_from_scene(sc))
    o = env.observe(jax.random.key(0), state)
    visual, internal = scene.observe_scene(sc, params)
    np.testing.assert_array_equal(np.asarray(o["visual"]), visual)
    np.testing.assert_allclose(np.asarray(o["internal"]), internal, rtol=1e-6)
    assert np.abs(visual - obs["visual"][i]).max() <= 3


def test_red_receptor_windows_fit_the_static_window():
    # the number of circle pixels a receptor averages never exceeds Circle.window
    geo = vision.eye_geometry(PARAMS)
    theta = jnp.asarray(np.random.default_rng(1).uniform(-50, 50, 4000), jnp.float32)
    for circle in geo.circles:
        n = len(circle.angles)
        for e in range(2):
            c = vision.wrap_angle(
                jnp.asarray(geo.red_angles[e], jnp.float32)[None] + theta[:, None]
            )
            li = jnp.clip(red.closest_index(circle, c - 0.00665), 0, n - 1)
            ri = jnp.maximum(li + 1, jnp.minimum(red.closest_index(circle, c + 0.00665) + 1, n))
            assert int((ri - li).max()) <= circle.window
            assert int((ri - li).min()) >= 1


def test_dead_or_nan_prey_are_invisible():
    tex = np.zeros((8, 8), np.float32)
    fxy = np.array([1250.0, 1800.0], np.float32)
    prey = np.array([[1270.0, 1800.0], [np.nan, np.nan], [1260.0, 1800.0]], np.float32)
    one = _SINGLE(fxy, 0.0, prey[:1], np.array([True]), tex)
    out = _SINGLE(fxy, 0.0, prey, np.array([True, True, False]), tex)
    np.testing.assert_allclose(np.asarray(out["uv_prey"]), np.asarray(one["uv_prey"]), atol=1e-5)
    assert np.all(np.isfinite(np.asarray(out["raw_interp"])))
