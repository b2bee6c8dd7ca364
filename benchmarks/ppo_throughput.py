"""PPO training throughput on gymnax CartPole-v1: environment steps per second after compilation.

Setup (the same work as the reference implementations): 8 environments x 128 steps per
update, 4 epochs x 4 minibatches (of 2 whole 128-step sequences each for recurrent
torsos), Adam, GAE, clipped losses. Each timed call is ``agent.train(state, N)``: N whole
PPO updates (rollout + GAE + 16 gradient steps) in one jitted ``lax.scan``, no host
synchronisation inside. The first call compiles and is not timed; then ``--repeats``
calls are timed with ``block_until_ready``; steps/s = repeats x N x 1024 / seconds
(median of the per-call rates is reported too).

Variants (``--variants``, default all):

- ``gru128-shared``: one GRU(128) shared by actor and critic (``shared_actor_critic``,
  Dense(128)+ReLU embedding, linear heads) - PureJaxRL's recurrent PPO layout.
- ``gru128-separate``: separate actor and critic, each Dense(128) + GRU(128)
  (``actor_critic``) - Memorax's layout.
- ``mlp128``: separate actor and critic MLPs, 2 x 128 tanh (``actor_critic``, torso mlp).
- ``mlp64``: separate actor and critic MLPs, 2 x 64 tanh - PureJaxRL's CartPole network.
- ``mlp128-shared``: one 2 x 128 tanh MLP shared by actor and critic.

Reference on the same 2-core CPU (numbers given in the issue): Memorax 1.0.1 ~4,000
steps/s (separate GRUs) and ~41,000 (MLP 128); PureJaxRL ~8,000 (shared GRU) and ~65,000
(MLP 128), ~165,000 (MLP 64).

Usage::

    python benchmarks/ppo_throughput.py                 # full: 50 updates x 5 timed calls
    python benchmarks/ppo_throughput.py --quick         # smoke: 5 updates x 1 call
    python benchmarks/ppo_throughput.py --variants gru128-shared,mlp64 --updates 100

Writes ``benchmarks/results/ppo_throughput.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import jax

from _common import machine_info, rich_table  # noqa: E402  (benchmarks/ is on sys.path)

VARIANTS = {
    "gru128-shared": {
        "name": "shared_actor_critic", "torso": "gru", "hidden": [128], "hidden_size": 128,
        "activation": "relu",
    },
    "gru128-separate": {
        "name": "actor_critic", "torso": "gru", "hidden": [128], "hidden_size": 128,
        "activation": "relu",
    },
    "mlp128": {
        "name": "actor_critic", "torso": "mlp", "hidden": [128], "hidden_size": 128,
        "activation": "tanh",
    },
    "mlp64": {
        "name": "actor_critic", "torso": "mlp", "hidden": [64], "hidden_size": 64,
        "activation": "tanh",
    },
    "mlp128-shared": {
        "name": "shared_actor_critic", "torso": "mlp", "hidden": [128], "hidden_size": 128,
        "activation": "tanh",
    },
}  # fmt: skip
REFERENCE = {
    "gru128-shared": {"PureJaxRL (shared GRU 128)": 8_000},
    "gru128-separate": {"Memorax 1.0.1 (separate GRUs 128)": 4_000},
    "mlp128": {"PureJaxRL (MLP 128)": 65_000, "Memorax 1.0.1 (MLP 128)": 41_000},
    "mlp64": {"PureJaxRL (MLP 64)": 165_000},
    "mlp128-shared": {"PureJaxRL (MLP 128)": 65_000},
}
AGENT_CONFIG = {
    "num_envs": 8,
    "rollout_length": 128,
    "num_epochs": 4,
    "num_minibatches": 4,
    "discount": 0.99,
    "gae_lambda": 0.95,
    "clip_eps": 0.2,
    "vf_clip": 0.2,
    "vf_coef": 0.5,
    "ent_coef": 0.01,
    "learning_rate": 2.5e-4,
    "anneal_lr": True,
    "max_grad_norm": 0.5,
    "total_env_steps": 5_000_000,
}


def bench_variant(name: str, updates: int, repeats: int, seed: int) -> dict:
    from larvax.agents.ppo import make_agent
    from larvax.envs import make
    from larvax.networks.models import count_parameters

    env, env_params = make("gymnax:CartPole-v1")
    network = dict(VARIANTS[name])
    agent = make_agent(env, env_params, network, AGENT_CONFIG)
    state = agent.init(jax.random.key(seed))
    t0 = time.perf_counter()
    state, metrics = agent.train(state, updates)
    jax.block_until_ready((state, metrics))
    compile_s = time.perf_counter() - t0
    steps = updates * agent.env_steps_per_update
    rates, total = [], 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        state, metrics = agent.train(state, updates)
        jax.block_until_ready((state, metrics))
        dt = time.perf_counter() - t0
        total += dt
        rates.append(steps / dt)
    ret = jax.device_get(metrics["episode_return"])
    return {
        "variant": name,
        "network": network,
        "parameters": count_parameters(agent.model),
        "updates_per_call": updates,
        "timed_calls": repeats,
        "compile_and_first_call_s": round(compile_s, 2),
        "steps_per_s": round(repeats * steps / total, 1),
        "steps_per_s_median": round(statistics.median(rates), 1),
        "steps_per_s_calls": [round(r, 1) for r in rates],
        "last_episode_return": float(ret[-1]) if ret[-1] == ret[-1] else None,
        "reference_steps_per_s": REFERENCE.get(name, {}),
    }


def print_table(results: list[dict]) -> None:
    headers = ["variant", "params", "steps/s", "median", "compile s", "reference"]
    rows = []
    for r in results:
        ref = ", ".join(f"{k}: {v:,}" for k, v in r.get("reference_steps_per_s", {}).items())
        if "error" in r:
            rows.append([r["variant"], "-", "error", "-", "-", r["error"][:60]])
            continue
        rows.append([
            r["variant"], f"{r['parameters']:,}", f"{r['steps_per_s']:,.0f}",
            f"{r['steps_per_s_median']:,.0f}", str(r["compile_and_first_call_s"]), ref,
        ])  # fmt: skip
    rich_table("PPO throughput, gymnax CartPole-v1 (8 envs x 128 steps, 4x4)", headers, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma list of {', '.join(VARIANTS)}"
    )
    parser.add_argument("--updates", type=int, default=50, help="PPO updates per timed call")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per variant")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke run: 5 updates x 1 call")
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "ppo_throughput.json")
    )
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        raise SystemExit(f"--variants: unknown {bad}; allowed: {', '.join(VARIANTS)}")
    updates, repeats = (5, 1) if args.quick else (args.updates, args.repeats)
    if updates < 1 or repeats < 1:
        raise SystemExit(f"--updates and --repeats must be >= 1, got {updates}, {repeats}")

    results = []
    for name in variants:
        print(f"[ppo_throughput] {name}: {updates} updates x {repeats} calls", flush=True)
        try:
            r = bench_variant(name, updates, repeats, args.seed)
            print(f"  {r['steps_per_s']:,.0f} steps/s", flush=True)
        except Exception as err:
            r = {"variant": name, "error": f"{type(err).__name__}: {err}"}
            print(f"  error: {r['error']}", flush=True)
        results.append(r)
    print_table(results)
    out = {
        "benchmark": "ppo_throughput",
        "command": " ".join([sys.executable, *sys.argv]),
        "quick": args.quick,
        "env": "gymnax:CartPole-v1",
        "agent_config": AGENT_CONFIG,
        "machine": machine_info(),
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
