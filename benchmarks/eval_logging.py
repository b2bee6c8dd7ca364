"""Evaluation with full HDF5 logging: wall time and bytes on disk, against the reference.

``nice -n 10 python benchmarks/eval_logging.py [--episodes 100] [--batch 20]`` runs an
``r2d2_simfish`` agent (fresh parameters: the network's cost is what a trained one's is;
epsilon 0.1) for N episodes of up to 1000 steps in the ``normal`` world, writing
``logs_{n}.hdf5`` exactly as ``larvax eval`` does (every dataset of docs/evaluation.md,
gzip-compressed large datasets, atomic writes), then reports steps/s, wall time (with and
without compilation) and bytes on disk. The reference (simfish_rl ``StateEnvLoop`` with its
HDF5 logger) runs about 39 steps/s: 100k steps take about 43 minutes.

Results: ``benchmarks/results/eval_logging.json`` (machine, versions, command).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

REFERENCE_STEPS_PER_S = 39.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--chunk", type=int, default=100)
    parser.add_argument("--epsilon", type=float, default=0.1)
    parser.add_argument("--out", help="log directory (default: a temporary one, removed)")
    parser.add_argument("--json", default="benchmarks/results/eval_logging.json")
    args = parser.parse_args()

    import jax

    from _common import machine_info, rich_table
    from larvax.agents.r2d2 import make_agent
    from larvax.envs.simfish import Simfish, SimfishParams
    from larvax.evaluation.hdf5 import EpisodeWriter, env_variables
    from larvax.evaluation.loop import evaluate
    from larvax.evaluation.metrics import episode_metrics

    params = SimfishParams()  # the normal world
    env = Simfish(params)
    cfg = dict(num_devices=1, num_envs=2, batch_size=2, replay_capacity=64, min_replay_size=32)
    agent = make_agent(env, params, {"name": "r2d2_simfish", "seed": 0}, cfg)
    state = agent.init(jax.random.key(0))
    env.sediment_textures.block_until_ready()  # the pool is built once, before timing

    tmp = None if args.out else tempfile.TemporaryDirectory(prefix="larvax-eval-bench-")
    out = Path(args.out or tmp.name)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    env_vars = env_variables(params, {"sediment_texture_seed": 0, "sediment_num_textures": 4})
    writer = EpisodeWriter(
        out,
        {"world": "normal"},
        env_vars,
        on_episode=lambda n, d: rows.append(episode_metrics(n, d)),
    )
    t0 = time.perf_counter()
    first_chunk_s = None
    steps = 0
    for records in evaluate(
        agent, state, env, params, args.episodes, args.epsilon, batch=args.batch, chunk=args.chunk
    ):
        writer.add(records)
        if records.agent:
            steps += int(records.valid.sum())
            if first_chunk_s is None:
                first_chunk_s = time.perf_counter() - t0
    wall = time.perf_counter() - t0
    files = sorted(out.glob("logs_*.hdf5"))
    nbytes = sum(f.stat().st_size for f in files)
    chunk_steps = min(args.batch, args.episodes) * args.chunk
    steady = (steps - chunk_steps) / max(wall - first_chunk_s, 1e-9)
    result = {
        "episodes": args.episodes,
        "env_steps": steps,
        "files": len(files),
        "wall_s": wall,
        "first_chunk_s_with_compilation": first_chunk_s,
        "steps_per_s": steps / wall,
        "steps_per_s_after_first_chunk": steady,
        "bytes_on_disk": nbytes,
        "bytes_per_episode": nbytes / max(len(files), 1),
        "bytes_per_step": nbytes / max(steps + len(files), 1),
        "reference_steps_per_s": REFERENCE_STEPS_PER_S,
        "reference_wall_s_same_steps": steps / REFERENCE_STEPS_PER_S,
        "speedup_vs_reference": (steps / wall) / REFERENCE_STEPS_PER_S,
        "mean_episode_length": sum(r["length"] for r in rows) / max(len(rows), 1),
        "batch": args.batch,
        "chunk": args.chunk,
        "epsilon": args.epsilon,
        "machine": machine_info(),
        "command": "nice -n 10 python " + " ".join(sys.argv),
    }
    rich_table(
        f"larvax eval logging, normal world, {args.episodes} episodes",
        ["quantity", "larvax", "reference"],
        [
            ["env steps", f"{steps:,}", f"{steps:,}"],
            ["wall time", f"{wall:.1f} s", f"{steps / REFERENCE_STEPS_PER_S / 60:.1f} min"],
            ["steps/s", f"{steps / wall:,.0f}", f"{REFERENCE_STEPS_PER_S:.0f}"],
            ["steps/s after compile", f"{steady:,.0f}", "-"],
            ["bytes on disk", f"{nbytes / 1e6:.1f} MB", "-"],
            ["per episode", f"{nbytes / max(len(files), 1) / 1e6:.2f} MB", "-"],
        ],
    )
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
