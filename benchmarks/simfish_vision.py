"""Simfish vision alone: observations per second, batched and jitted, plus conformance.

Measures ``vision.observe`` (both eyes, all channels, interpolation, floor) vmapped over a
batch of random scenes of the ``normal`` preset (fish uniform in the arena, 120 prey
uniform, a predator near the fish in 20 % of scenes, a pool of 4 sediment textures with
random handles), with shot noise off and on, and the parts separately (UV background, UV
prey, red channels, Poisson noise). Reports observations (= env steps) per second of
wall-clock after compilation, and per CPU-second of this process (robust to other load).

With the golden data (``../shared/simfish`` or ``$LARVAX_SHARED``) it also reports the
conformance of the noise-free observation: mean absolute error per channel, max error,
fraction of identical readings, and the UV-background error of the closed form.

Usage::

    python benchmarks/simfish_vision.py            # full: batches 256, 1024, 4096; 20 repeats
    python benchmarks/simfish_vision.py --quick    # smoke: batch 256, 3 repeats

Writes ``benchmarks/results/simfish_vision.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from _common import machine_info  # noqa: E402  (benchmarks/ is on sys.path)
from larvax.envs.simfish import arena, random_numbers, vision
from larvax.envs.simfish.config import SimfishParams

ROOT = Path(__file__).resolve().parents[1]


def random_scenes(params: SimfishParams, batch: int, pool, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    w, h = params.arena_width, params.arena_height
    fish = rng.uniform(42, [w - 42, h - 42], (batch, 2))
    ang = rng.uniform(0, 2 * np.pi, batch)
    prey = rng.uniform(43, [w - 43, h - 43], (batch, params.prey_num, 2))
    pa = rng.uniform(0, 2 * np.pi, batch)
    pred = fish + 150 * np.stack([np.cos(pa), np.sin(pa)], -1)
    keys = jax.random.split(jax.random.key(seed), batch)
    handles = jax.vmap(lambda k: arena.sample_sediment_handle(k, pool.shape[0], pool.shape[1:]))(
        keys
    )
    return {
        "fish_xy": jnp.asarray(fish, jnp.float32),
        "fish_angle": jnp.asarray(ang, jnp.float32),
        "prey_xy": jnp.asarray(prey, jnp.float32),
        "prey_alive": jnp.ones((batch, params.prey_num), bool),
        "predator_present": jnp.asarray(rng.uniform(size=batch) < 0.2),
        "predator_xy": jnp.asarray(pred, jnp.float32),
        "predator_radius": jnp.full((batch,), params.predator_radius, jnp.float32),
        "handles": handles,
        "keys": keys,
    }


def _time(fn, args, repeats: int) -> dict:
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    compile_s = time.perf_counter() - t0
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn(*args))
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return {
        "compile_s": compile_s,
        "wall_s": float(np.median(wall)),
        "cpu_s": float(np.median(cpu)),
    }


def bench_batch(params, pool, batch: int, repeats: int) -> list[dict]:
    sc = random_scenes(params, batch, pool)
    geo = vision.eye_geometry(params)

    def full(noise):
        def f(fxy, ang, prey, alive, present, pxy, pr, handle, key):
            sed = arena.Sediment(pool, handle)
            world = vision.World(fxy, ang, prey, alive, present, pxy, pr, sed)
            return vision.observe(params, world, key, noise)

        return jax.jit(jax.vmap(f))

    def part(name):
        def f(fxy, ang, prey, alive, present, pxy, pr, handle, key):
            world = vision.World(
                fxy, ang, prey, alive, present, pxy, pr, arena.Sediment(pool, handle)
            )
            centre = jnp.round(fxy).astype(jnp.int32)
            offs = vision.eye_offsets(params, ang)
            if name == "uv_background":
                return [
                    vision.uv_background(
                        params, centre, offs[e], jnp.asarray(geo.uv_angles[e], jnp.float32) + ang
                    )
                    for e in range(2)
                ]
            if name == "uv_prey":
                return vision.uv_prey(params, world, centre, offs)
            if name == "red":
                return [vision.red_channels(params, world, centre, offs[e], e) for e in range(2)]
            if name == "poisson":
                return random_numbers.poisson(key, 10.0 + jnp.zeros((42, 3, 2)) + fxy[0] * 1e-3)
            raise ValueError(name)

        return jax.jit(jax.vmap(f))

    args = (
        sc["fish_xy"],
        sc["fish_angle"],
        sc["prey_xy"],
        sc["prey_alive"],
        sc["predator_present"],
        sc["predator_xy"],
        sc["predator_radius"],
        sc["handles"],
        sc["keys"],
    )
    rows = []
    for name, fn in [
        ("observe (noise off)", full(False)),
        ("observe (shot noise)", full(True)),
        ("  uv_background", part("uv_background")),
        ("  uv_prey", part("uv_prey")),
        ("  red channels", part("red")),
        ("  poisson (252/fish)", part("poisson")),
    ]:
        t = _time(fn, args, repeats)
        rows.append(
            {
                "what": name.strip(),
                "batch": batch,
                **t,
                "obs_per_s_wall": batch / t["wall_s"],
                "obs_per_cpu_s": batch / max(t["cpu_s"], 1e-9),
            }
        )
    return rows


def conformance(params) -> dict | None:
    shared = Path(os.environ.get("LARVAX_SHARED", ROOT.parent / "shared")) / "simfish"
    if not (shared / "observations.npz").exists():
        return None
    obs = np.load(shared / "observations.npz")
    tex = np.load(shared / "sediment.npz")["sediment"]

    def f(fxy, ang, prey, alive, present, pxy, pr):
        sed = arena.sediment_from_array(tex)
        world = vision.World(fxy, ang, prey, alive, present, pxy, pr, sed)
        return vision.photoreceptor_readings(params, world)

    alive = np.isfinite(obs["prey_xy"][..., 0])
    out = jax.jit(jax.vmap(f))(
        np.stack([obs["fish_x"], obs["fish_y"]], -1).astype(np.float32),
        obs["fish_angle"].astype(np.float32),
        np.nan_to_num(obs["prey_xy"]).astype(np.float32),
        alive,
        obs["predator_present"],
        np.nan_to_num(obs["predator_xy"]).astype(np.float32),
        np.nan_to_num(obs["predator_radius"]).astype(np.float32),
    )
    raw = np.asarray(out["raw_interp"], np.float64)
    visual = np.clip(np.floor(raw), 0, 255)
    d = np.abs(visual - obs["visual"])
    bg = np.abs(np.asarray(out["uv_background"], np.float64) - obs["pr_uv_background"])
    return {
        "scenes": int(len(obs["fish_x"])),
        "visual_mae_per_channel": [float(x) for x in d.mean(axis=(0, 1, 3))],
        "visual_max_abs_error": float(d.max()),
        "visual_fraction_identical": float((d == 0).mean()),
        "raw_interp_max_abs_error": float(np.abs(raw - obs["raw_interp"]).max()),
        "uv_background_mae": float(bg.mean()),
        "uv_background_p99": float(np.quantile(bg, 0.99)),
        "uv_background_max": float(bg.max()),
        "uv_prey_max_abs_error": float(
            np.abs(np.asarray(out["uv_prey"], np.float64) - obs["pr_uv_prey"]).max()
        ),
        "red_max_abs_error": float(
            np.abs(np.asarray(out["red"], np.float64) - obs["pr_red"]).max()
        ),
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short smoke run")
    ap.add_argument("--batches", default=None, help="comma-separated batch sizes")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--textures", type=int, default=4, help="sediment pool size")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "simfish_vision.json"))
    args = ap.parse_args(argv)
    batches = [256] if args.quick else [256, 1024, 4096]
    if args.batches:
        batches = [int(b) for b in args.batches.split(",")]
    repeats = args.repeats or (3 if args.quick else 20)

    params = SimfishParams()
    pool = arena.make_sediment_pool(jax.random.key(0), params, args.textures)
    rows = []
    for b in batches:
        rows.extend(bench_batch(params, pool, b, repeats))
    conf = conformance(params)

    try:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="Simfish vision (jit + vmap)")
        for col in ("what", "batch", "compile s", "wall ms", "obs/s (wall)", "obs/CPU-s"):
            table.add_column(col, justify="right" if col != "what" else "left")
        for r in rows:
            table.add_row(
                r["what"],
                str(r["batch"]),
                f"{r['compile_s']:.1f}",
                f"{r['wall_s'] * 1e3:.1f}",
                f"{r['obs_per_s_wall']:,.0f}",
                f"{r['obs_per_cpu_s']:,.0f}",
            )
        Console().print(table)
    except ImportError:  # pragma: no cover
        for r in rows:
            print(r)
    if conf:
        print("conformance vs golden:", json.dumps(conf, indent=1))

    result = {
        "benchmark": "simfish_vision",
        "command": " ".join([sys.executable, *sys.argv]),
        "machine": machine_info(),
        "sediment_pool": {
            "textures": args.textures,
            "dtype": str(pool.dtype),
            "bytes": int(pool.size * pool.dtype.itemsize),
        },
        "rows": rows,
        "conformance": conf,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
