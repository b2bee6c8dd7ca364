"""Simfish environment throughput: env steps/s with random actions, memory, compile time.

Measures, for batch sizes 1, 64 and 1024 (``normal`` preset, shot noise on), a jitted
``lax.scan`` of vmapped ``Simfish.step_autoreset`` calls with uniformly random actions, and
splits the time between the physics (``physics_step``) and the vision (``observe``).
Memory per environment = bytes of the state pytree / batch; the shared sediment pool is
reported apart. The reference simulator runs at about 39 steps/s on one core.

    python benchmarks/simfish_env.py            # full measurement
    python benchmarks/simfish_env.py --quick    # smoke run (small batches, few steps)

Writes benchmarks/results/simfish_env.json (machine, versions, command, numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import jax
import numpy as np

from larvax.envs.simfish import Simfish, SimfishParams, physics_step

REFERENCE_STEPS_PER_S = 39.0


def _tree_bytes(tree) -> int:
    return int(sum(np.asarray(x).nbytes for x in jax.tree_util.tree_leaves(tree)))


def _time(fn, *args, repeats: int):
    out = fn(*args)
    jax.block_until_ready(out)  # warm-up (after compile)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn(*args)
        jax.block_until_ready(out)
        best = min(best, time.perf_counter() - t)
    return best


def bench_batch(env: Simfish, batch: int, steps: int, repeats: int) -> dict:
    p = env.default_params

    def rollout(key, state):
        def body(s, k):
            ka, ks = jax.random.split(k)
            a = jax.random.randint(ka, (batch,), 0, 21)
            s, ts = jax.vmap(env.step_autoreset)(jax.random.split(ks, batch), s, a)
            return s, ts.reward

        return jax.lax.scan(body, state, jax.random.split(key, steps))

    def physics(key, state):
        def body(s, k):
            ka, ks = jax.random.split(k)
            a = jax.random.randint(ka, (batch,), 0, 21)
            s2, comps, ev = jax.vmap(lambda kk, ss, aa: physics_step(p, kk, ss, aa))(
                jax.random.split(ks, batch), s, a
            )
            return s2, comps["wall"]

        return jax.lax.scan(body, state, jax.random.split(key, steps))

    def vision(key, state):
        def body(s, k):
            o = jax.vmap(env.observe)(jax.random.split(k, batch), s)
            return s, o["visual"][:, 0, 0, 0]

        return jax.lax.scan(body, state, jax.random.split(key, steps))

    state, _ = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(0), batch))
    key = jax.random.key(1)
    res = {"batch": batch, "steps_per_call": steps}
    for name, fn in (("env", rollout), ("physics", physics), ("vision", vision)):
        t0 = time.perf_counter()
        compiled = jax.jit(fn).lower(key, state).compile()
        res[f"{name}_compile_s"] = time.perf_counter() - t0
        dt = _time(compiled, key, state, repeats=repeats)
        res[f"{name}_steps_per_s"] = batch * steps / dt
    res["state_bytes_per_env"] = _tree_bytes(state) / batch
    res["speedup_vs_reference"] = res["env_steps_per_s"] / REFERENCE_STEPS_PER_S
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short smoke run")
    ap.add_argument("--batches", type=int, nargs="*", default=None)
    ap.add_argument("--steps", type=int, default=None, help="env steps per timed call")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "simfish_env.json"))
    args = ap.parse_args(argv)
    batches = args.batches or ([1, 16] if args.quick else [1, 64, 1024])
    steps = args.steps or (5 if args.quick else 50)
    repeats = 1 if args.quick else 3

    params = SimfishParams.preset("normal")
    env = Simfish(params)
    t0 = time.perf_counter()
    textures = env.sediment_textures
    jax.block_until_ready(textures)
    pool_s = time.perf_counter() - t0
    rows = []
    for b in batches:
        r = bench_batch(env, b, steps, repeats)
        rows.append(r)
        print(
            f"batch {b:5d}: env {r['env_steps_per_s']:10.0f} steps/s "
            f"(x{r['speedup_vs_reference']:.0f} the reference), physics only "
            f"{r['physics_steps_per_s']:10.0f}, vision only {r['vision_steps_per_s']:10.0f}; "
            f"compile {r['env_compile_s']:.1f} s; state {r['state_bytes_per_env']:.0f} B/env",
            flush=True,
        )
    try:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="Simfish env throughput (normal preset, shot noise on)")
        for col in ("batch", "env steps/s", "x ref", "physics", "vision", "compile s", "B/env"):
            table.add_column(col, justify="right")
        for r in rows:
            table.add_row(
                str(r["batch"]),
                f"{r['env_steps_per_s']:.0f}",
                f"{r['speedup_vs_reference']:.0f}",
                f"{r['physics_steps_per_s']:.0f}",
                f"{r['vision_steps_per_s']:.0f}",
                f"{r['env_compile_s']:.1f}",
                f"{r['state_bytes_per_env']:.0f}",
            )
        Console().print(table)
    except ImportError:  # pragma: no cover
        pass

    import flax

    import larvax

    result = {
        "benchmark": "simfish_env",
        "command": " ".join([sys.executable, *sys.argv]),
        "quick": bool(args.quick),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "jax_devices": [str(d) for d in jax.devices()],
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        },
        "versions": {
            "python": platform.python_version(),
            "jax": jax.__version__,
            "flax": flax.__version__,
            "larvax": getattr(larvax, "__version__", "unknown"),
        },
        "params": {"preset": "normal", "eyes_shot_noise": params.eyes_shot_noise},
        "reference_steps_per_s": REFERENCE_STEPS_PER_S,
        "sediment_pool": {
            "textures": int(textures.shape[0]),
            "shape": list(textures.shape[1:]),
            "dtype": str(textures.dtype),
            "bytes_shared": int(textures.size * textures.dtype.itemsize),
            "generation_s": pool_s,
        },
        "results": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
