"""Measured effect of Simfish's physics approximations (the numbers in docs/simfish.md).

1. Fast prey path vs ``exact_substeps=True``: random scenes with prey crowded near the fish
   (uniform within 4..150 px), random actions with capture bouts over-represented; both
   paths get the same keys. Reports catch agreement, escape-jump agreement and prey / fish
   position differences after one step.
2. Contact-candidate overflow: over random-policy episodes (``normal`` and ``sparse``), the
   fraction of steps where more live prey than ``contact_candidates`` are within 100 px of
   the fish (those beyond the candidates can neither escape nor be caught that step).
3. Random-policy episodes vs the reference's episodes.npz (needs ../shared/simfish).

    python benchmarks/simfish_approximations.py [--quick]

Writes benchmarks/results/simfish_approximations.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from larvax.envs.simfish import Simfish, SimfishParams, make_state, physics_step
from larvax.envs.simfish.env import REWARD_COMPONENTS

ROOT = Path(__file__).resolve().parents[1]


def fast_vs_exact(n_scenes: int, seed: int = 0) -> dict:
    base = dict(prey_num=24, predator_enabled=False, salt_enabled=False)
    pf = SimfishParams(**base)
    pe = SimfishParams(exact_substeps=True, **base)
    rng = np.random.default_rng(seed)
    fish = rng.uniform(300, 2200, (n_scenes, 2))
    ang = rng.uniform(0, 2 * np.pi, n_scenes)
    r = rng.uniform(4, 150, (n_scenes, 24))
    b = ang[:, None] + rng.uniform(-1.2, 1.2, (n_scenes, 24))
    prey = fish[:, None] + r[..., None] * np.stack([np.cos(b), np.sin(b)], -1)
    pang = rng.uniform(0, 2 * np.pi, (n_scenes, 24))
    gait = rng.choice([1, 2], (n_scenes, 24), p=[0.8, 0.2])
    action = np.where(
        rng.random(n_scenes) < 0.5, rng.integers(0, 2, n_scenes), rng.integers(0, 21, n_scenes)
    )

    def run(p):
        def one(f, a, pr, pa, pg, act, key):
            s = make_state(p, f, a, prey_xy=pr, prey_angle=pa, prey_gait=pg)
            s2, comps, ev = physics_step(p, key, s, act)
            return s2.fish_xy, s2.prey_xy, s2.prey_alive, ev["prey_caught"], ev["escape_jumps"]

        f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
        return [
            np.asarray(o)
            for o in jax.jit(jax.vmap(one))(
                f32(fish),
                f32(ang),
                f32(prey),
                f32(pang),
                jnp.asarray(gait, jnp.int32),
                jnp.asarray(action, jnp.int32),
                jax.random.split(jax.random.key(seed), n_scenes),
            )
        ]

    ff, pf_, af, cf, jf = run(pf)
    fe, pe_, ae, ce, je = run(pe)
    both = af & ae
    dprey = np.linalg.norm(pf_ - pe_, axis=-1)[both]
    return {
        "scenes": n_scenes,
        "catches_exact": int(ce.sum()),
        "catches_fast": int(cf.sum()),
        "catch_count_agreement": float(np.mean(cf == ce)),
        "prey_alive_agreement": float(np.mean(af == ae)),
        "escape_jumps_equal": float(np.mean(jf == je)),
        "fish_xy_diff_px": {
            "mean": float(np.linalg.norm(ff - fe, axis=-1).mean()),
            "max": float(np.linalg.norm(ff - fe, axis=-1).max()),
        },
        "prey_xy_diff_px": {
            "mean": float(dprey.mean()),
            "p99": float(np.percentile(dprey, 99)),
            "max": float(dprey.max()),
            "fraction_over_0.1px": float(np.mean(dprey > 0.1)),
        },
    }


def episodes(params: SimfishParams, n: int, seed: int) -> dict:
    env = Simfish(params, sediment=np.zeros((1, 8, 8), np.float32))
    k_cand = params.contact_candidates

    def episode(key):
        k0, k1 = jax.random.split(key)
        s = env.init_state(k0, params)

        def body(carry, k):
            s, done = carry
            ka, kp = jax.random.split(k)
            a = jax.random.randint(ka, (), 0, 21)
            d2 = jnp.sum((s.prey_xy - s.fish_xy) ** 2, -1)
            near = jnp.sum(s.prey_alive & (d2 < params.prey_sensing_distance**2))
            s2, comps, ev = physics_step(params, kp, s, a)
            live = ~done
            out = {
                "r": jnp.where(live, sum(comps[c] for c in REWARD_COMPONENTS), 0.0),
                "wall": live & ev["wall_touch"],
                "caught": jnp.where(live, ev["prey_caught"], 0),
                "live": live,
                "overflow": live & (near > k_cand),
                "near": jnp.where(live, near, 0),
            }
            done = done | ev["terminated"] | ev["truncated"]
            return (s2, done), out

        _, out = jax.lax.scan(body, (s, jnp.asarray(False)), jax.random.split(k1, params.max_steps))
        return out

    out = jax.jit(jax.vmap(episode))(jax.random.split(jax.random.key(seed), n))
    out = jax.tree_util.tree_map(np.asarray, out)
    steps = out["live"].sum()
    ret = out["r"].sum(1)
    wall = out["wall"].sum(1)
    length = out["live"].sum(1)
    return {
        "episodes": n,
        "return_mean": float(ret.mean()),
        "return_sd": float(ret.std(ddof=1)),
        "wall_touches_mean": float(wall.mean()),
        "wall_touches_sd": float(wall.std(ddof=1)),
        "length_mean": float(length.mean()),
        "length_sd": float(length.std(ddof=1)),
        "prey_caught_mean": float(out["caught"].sum(1).mean()),
        "time_limit_fraction": float(np.mean(length == params.max_steps)),
        "candidate_overflow_step_fraction": float(out["overflow"].sum() / steps),
        "max_prey_within_sensing": int(out["near"].max()),
    }


def reference_episodes(path: Path) -> dict | None:
    if not path.exists():
        return None
    e = np.load(path)
    wall = (e["step_reward_components"][..., 4] < 0).sum(1)
    return {
        "episodes": int(len(e["episode_return"])),
        "return_mean": float(e["episode_return"].mean()),
        "return_sd": float(e["episode_return"].std(ddof=1)),
        "wall_touches_mean": float(wall.mean()),
        "wall_touches_sd": float(wall.std(ddof=1)),
        "length_mean": float(e["episode_length"].mean()),
        "length_sd": float(e["episode_length"].std(ddof=1)),
        "prey_caught_mean": float(e["episode_prey_caught"].mean()),
        "time_limit_fraction": float(np.mean(e["episode_length"] == 1000)),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument(
        "--out", default=str(ROOT / "benchmarks" / "results" / "simfish_approximations.json")
    )
    args = ap.parse_args(argv)
    n_scenes = 256 if args.quick else 4096
    n_eps = 8 if args.quick else 128
    res = {
        "benchmark": "simfish_approximations",
        "command": " ".join([sys.executable, *sys.argv]),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
        "versions": {"python": platform.python_version(), "jax": jax.__version__},
    }
    res["fast_vs_exact"] = fast_vs_exact(n_scenes)
    print("fast vs exact:", json.dumps(res["fast_vs_exact"], indent=1), flush=True)
    res["episodes_normal"] = episodes(SimfishParams(), n_eps, seed=1)
    print("normal:", res["episodes_normal"], flush=True)
    res["episodes_sparse"] = episodes(SimfishParams.preset("sparse"), max(n_eps // 4, 4), seed=2)
    print("sparse:", res["episodes_sparse"], flush=True)
    shared = Path(os.environ.get("LARVAX_SHARED", ROOT.parent / "shared"))
    res["reference_episodes"] = reference_episodes(shared / "simfish" / "episodes.npz")
    print("reference:", res["reference_episodes"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
