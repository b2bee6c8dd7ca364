"""Scale-out throughput: env steps/s of Simfish, R2D2 and PPO on 1 device, on 2 devices of
one process, and on 2 processes (one device each) joined by ``jax.distributed`` (gloo).

Workloads:

- ``simfish``: the Simfish environment alone ("normal" preset, random actions), a batch of
  ``--batch`` environments sharded over the global mesh, ``--steps`` steps per jitted call.
- ``r2d2``: the training loop (``larvax.training.loop.run``) on preset ``r2d2-simfish`` with
  learning from the second update (``min_replay_size`` = one update's sequences), chunks of
  ``--chunk`` updates; steps/s is the mean over the chunks after the first (compilation).
- ``ppo``: the training loop on preset ``ppo-repeat-previous-easy`` (GRU), timed the same way.

Every configuration runs in fresh subprocesses (device counts and ``jax.distributed`` must
be set before JAX starts); process 0 reports. Writes ``benchmarks/results/scale_out.json``.

    python benchmarks/scale_out.py                       # all workloads, 1 dev, 2 dev, 2 procs
    python benchmarks/scale_out.py --workloads ppo --chunks 3
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

SETUPS = {"1 device": (1, 1), "2 devices": (2, 1), "2 processes": (1, 2)}  # (devices, procs)
PRESETS = {"r2d2": "r2d2-simfish", "ppo": "ppo-repeat-previous-easy"}


def simfish_worker(args) -> dict:
    import jax
    import jax.numpy as jnp
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    from larvax import distributed
    from larvax.envs.simfish import Simfish

    env = Simfish.preset("normal")
    shard = NamedSharding(Mesh(jax.devices(), ("batch",)), PartitionSpec("batch"))
    keys = distributed.put_global(jax.random.split(jax.random.key(0), args.batch), shard)

    def rollout(keys, state):
        def body(s, i):
            ks = jax.vmap(lambda k: jax.random.fold_in(k, i))(keys)
            k_act, k_step = jax.vmap(lambda k: tuple(jax.random.split(k)))(ks)
            actions = jax.vmap(lambda k: jax.random.randint(k, (), 0, 21))(k_act)
            s, ts = jax.vmap(env.step_autoreset)(k_step, s, actions)
            return s, ts.reward.sum()

        return jax.lax.scan(body, state, jnp.arange(args.steps))

    state, _ = jax.jit(jax.vmap(env.reset), out_shardings=shard)(keys)
    fn = jax.jit(rollout)
    t0 = time.perf_counter()
    state = jax.block_until_ready(fn(keys, state))[0]
    compile_s = time.perf_counter() - t0
    rates = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        state = jax.block_until_ready(fn(keys, state))[0]
        rates.append(args.batch * args.steps / (time.perf_counter() - t0))
    return {"compile_s": round(compile_s, 1), "rates": [round(r, 1) for r in rates]}


def loop_worker(args) -> dict:
    import jax

    from larvax.training import config as C
    from larvax.training import loop

    cfg = C.resolve(PRESETS[args.worker], None, [], None, 0)
    ac = dict(cfg["agent_config"], num_devices=len(jax.devices()))
    if args.worker == "r2d2":  # learn from the second update on
        ac["min_replay_size"] = ac["num_envs"]
    cfg = C.validate(dict(cfg, agent_config=ac, chunk_updates=args.chunk))
    steps_per_update = loop.build(cfg)[2].env_steps_per_update
    cfg["total_env_steps"] = steps_per_update * args.chunk * args.chunks
    cfg["checkpoint_every_seconds"] = 10**6
    result = loop.run(cfg, run_dir=Path(args.run_dir) / "run", progress=False)
    rates = [float(r["steps_per_s"]) for r in result.rows]
    return {
        "compile_and_first_chunk_s": round(float(result.rows[0]["wall_time_s"]), 1),
        "rates": [round(r, 1) for r in rates[1:]],
        "num_envs": ac["num_envs"],
        "env_steps_per_chunk": steps_per_update * args.chunk,
    }


def worker(args) -> None:
    import jax

    from larvax import distributed

    jax.config.update("jax_num_cpu_devices", args.devices)
    if args.num_processes > 1:
        cluster = distributed.resolve(f"localhost:{args.port}", args.num_processes, args.process_id)
        distributed.initialize(cluster)
    out = simfish_worker(args) if args.worker == "simfish" else loop_worker(args)
    out["global_devices"] = len(jax.devices())
    if distributed.is_writer():
        print("RESULT " + json.dumps(out), flush=True)
    distributed.barrier("benchmark-done")


def run_setup(args, workload: str, devices: int, procs: int) -> dict:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        common = [sys.executable, __file__, "--worker", workload, "--devices", str(devices)]
        common += ["--num-processes", str(procs), "--port", str(port), "--run-dir", tmp]
        common += ["--batch", str(args.batch), "--steps", str(args.steps)]
        common += ["--repeats", str(args.repeats), "--chunk", str(args.chunk)]
        common += ["--chunks", str(args.chunks)]
        procs_ = [
            subprocess.Popen(
                [*common, "--process-id", str(i)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for i in range(procs)
        ]
        outs = [p.communicate(timeout=args.timeout)[0] for p in procs_]
    lines = [ln for ln in outs[0].splitlines() if ln.startswith("RESULT ")]
    if any(p.returncode for p in procs_) or not lines:
        raise RuntimeError(f"{workload} {devices}x{procs} failed:\n" + outs[0][-3000:])
    out = json.loads(lines[-1][len("RESULT ") :])
    out["env_steps_per_s"] = round(sum(out["rates"]) / len(out["rates"]), 1)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", nargs="+", default=["simfish", "r2d2", "ppo"])
    ap.add_argument("--setups", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    ap.add_argument("--batch", type=int, default=512, help="simfish: environments")
    ap.add_argument("--steps", type=int, default=50, help="simfish: steps per call")
    ap.add_argument("--repeats", type=int, default=3, help="simfish: timed calls")
    ap.add_argument("--chunk", type=int, default=10, help="r2d2/ppo: updates per chunk")
    ap.add_argument("--chunks", type=int, default=3, help="r2d2/ppo: chunks (first untimed)")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "scale_out.json"))
    for name in ("--worker", "--run-dir"):
        ap.add_argument(name, help=argparse.SUPPRESS)
    for name in ("--devices", "--num-processes", "--process-id", "--port"):
        ap.add_argument(name, type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    from _common import machine_info, rich_table

    results = []
    for workload in args.workloads:
        for setup in args.setups:
            devices, procs = SETUPS[setup]
            r = run_setup(args, workload, devices, procs)
            r.update(workload=workload, setup=setup, devices_per_process=devices, processes=procs)
            results.append(r)
            print(
                f"{workload:8s} {setup:12s} {r['env_steps_per_s']:>10,.0f} env steps/s", flush=True
            )
    rich_table(
        "Scale-out on this machine (env steps/s after compilation)",
        ["workload", "setup", "global devices", "env steps/s", "timed values"],
        [
            [
                r["workload"],
                r["setup"],
                str(r["global_devices"]),
                f"{r['env_steps_per_s']:,.0f}",
                ", ".join(f"{x:,.0f}" for x in r["rates"]),
            ]
            for r in results
        ],
    )
    record = {
        "benchmark": "scale_out",
        "command": " ".join(["python", *sys.argv]),
        "machine": machine_info(),
        "gpu": "none available to this task: CPU devices only",
        "params": {k: getattr(args, k) for k in ("batch", "steps", "repeats", "chunk", "chunks")},
        "presets": PRESETS,
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
