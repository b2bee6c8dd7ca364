"""Simfish throughput with the batch sharded over the CPU's cores (JAX's own sharding).

XLA:CPU runs most of a vmapped Simfish step on one thread. Splitting the host into N JAX
devices (``--xla_force_host_platform_device_count=N``) and sharding the environment batch
over them (``NamedSharding``, one ``jit``) runs the same computation on all cores: every
environment is independent, so the results are the same, only faster.

    python benchmarks/simfish_env_sharded.py                   # devices 1 and 2, batch 1024
    python benchmarks/simfish_env_sharded.py --devices 2 --batch 4096

Each device count runs in its own subprocess (XLA_FLAGS must be set before JAX starts).
Writes benchmarks/results/simfish_env_sharded.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REFERENCE_STEPS_PER_S = 39.0


def worker(devices: int, batch: int, steps: int, repeats: int) -> dict:
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    import jax
    import jax.numpy as jnp
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    from larvax.envs.simfish import Simfish

    env = Simfish.preset("normal")  # shot noise on
    if batch % devices:
        raise ValueError(f"--batch {batch} must be a multiple of --devices {devices}")
    shard = NamedSharding(Mesh(jax.devices(), ("batch",)), PartitionSpec("batch"))

    def rollout(keys, state):
        def body(s, i):
            ks = jax.vmap(lambda k: jax.random.fold_in(k, i))(keys)
            k_act, k_step = jax.vmap(lambda k: tuple(jax.random.split(k)))(ks)
            actions = jax.vmap(lambda k: jax.random.randint(k, (), 0, 21))(k_act)
            s, ts = jax.vmap(env.step_autoreset)(k_step, s, actions)
            return s, ts.reward.sum()

        return jax.lax.scan(body, state, jnp.arange(steps))

    keys = jax.device_put(jax.random.split(jax.random.key(0), batch), shard)
    state, _ = jax.jit(jax.vmap(env.reset), out_shardings=shard)(keys)
    fn = jax.jit(rollout)
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(keys, state))
    compile_s = time.perf_counter() - t0
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn(keys, out[0]))
        rates.append(batch * steps / (time.perf_counter() - t0))
    return {
        "devices": devices,
        "batch": batch,
        "steps_per_call": steps,
        "compile_and_first_call_s": round(compile_s, 2),
        "env_steps_per_s": round(max(rates), 1),
        "env_steps_per_s_calls": [round(r, 1) for r in rates],
        "speedup_vs_reference": round(max(rates) / REFERENCE_STEPS_PER_S, 1),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    ap.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "simfish_env_sharded.json")
    )
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.batch, args.steps, args.repeats)))
        return 0
    results = []
    for n in args.devices:
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            str(n),
            "--batch",
            str(args.batch),
            "--steps",
            str(args.steps),
            "--repeats",
            str(args.repeats),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = results[-1]
        print(
            f"devices {n}: {r['env_steps_per_s']:>10,.0f} env steps/s at batch {args.batch} "
            f"(x{r['speedup_vs_reference']:.0f} the reference), compile {r['compile_and_first_call_s']} s"
        )
    import jax

    import larvax

    record = {
        "benchmark": "simfish_env_sharded",
        "command": " ".join([sys.executable, *sys.argv]),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "load_average": list(os.getloadavg()),
        },
        "versions": {
            "python": platform.python_version(),
            "jax": jax.__version__,
            "larvax": larvax.__version__,
        },
        "params": {"preset": "normal", "eyes_shot_noise": True},
        "reference_steps_per_s": REFERENCE_STEPS_PER_S,
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
