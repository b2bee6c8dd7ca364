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

Peer in the same run (``--purejaxrl DIR``): PureJaxRL's own ``ppo.py`` (separate actor and
critic MLPs, 2 x 64 tanh: the same network as ``mlp64``) and ``ppo_rnn.py`` (Dense(128)+ReLU
embedding, one shared GRU(128), then actor and critic heads with one Dense(128)+ReLU layer
each, so a quarter more multiply-adds per step than ``gru128-shared``'s linear heads) with
the same configuration (8 x 128, 4 x 4, lr 2.5e-4 annealed), timed the same way
(``jax.jit(make_train(config))``, one untimed compiling call, then ``--repeats`` calls of
``--updates`` updates). DIR is a checkout of github.com/luchris429/purejaxrl (its
``purejaxrl`` folder); it needs ``gymnax`` 0.0.8 on ``--peer-path`` (``pip install --no-deps
--target DIR gymnax==0.0.8``). Small run-time shims let that code run on this JAX and Flax
(``jax.tree_map``, ``GRUCell(features=128)``, empty stand-ins for the brax and navix modules
its wrappers import but CartPole never uses); the peer's code is not part of larvax.
Figures quoted without a peer run: Memorax 1.0.1 ~4,000 steps/s (separate GRUs) and ~41,000
(MLP 128) on a 2-core CPU.

Usage::

    python benchmarks/ppo_throughput.py                 # full: 50 updates x 5 timed calls
    python benchmarks/ppo_throughput.py --quick         # smoke: 5 updates x 1 call
    python benchmarks/ppo_throughput.py --variants gru128-shared,mlp64 --updates 100
    python benchmarks/ppo_throughput.py --updates 30 --repeats 3 \
        --purejaxrl /tmp/purejaxrl/purejaxrl --peer-path /tmp/gymnax008

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
    "gru128-separate": {"Memorax 1.0.1 (separate GRUs 128)": 4_000},
    "mlp128": {"Memorax 1.0.1 (MLP 128)": 41_000},
}
# PureJaxRL module timed beside a larvax variant by --purejaxrl
PEERS = {"gru128-shared": "ppo_rnn", "mlp64": "ppo"}
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


def _peer_shims(peer_path: str) -> None:
    """Let PureJaxRL's CartPole code import and run on this JAX and Flax (see the docstring)."""
    import types

    import flax.linen as nn

    sys.path.insert(0, peer_path)
    for name in ("brax", "brax.envs", "brax.envs.wrappers", "brax.envs.wrappers.training", "navix"):
        sys.modules.setdefault(name, types.ModuleType(name))
    training = sys.modules["brax.envs.wrappers.training"]
    training.EpisodeWrapper = training.AutoResetWrapper = object
    sys.modules["brax"].envs = sys.modules["brax.envs"]
    if not hasattr(jax, "tree_map"):
        jax.tree_map = jax.tree_util.tree_map

    class GRUCell128(nn.GRUCell):
        features: int = 128

    nn.GRUCell = GRUCell128


def bench_purejaxrl(module: str, src: str, peer_path: str, updates: int, repeats: int) -> dict:
    """Time PureJaxRL's ``module`` (``ppo`` or ``ppo_rnn``) from the checkout ``src``."""
    import importlib

    import jax.numpy as jnp

    _peer_shims(peer_path)
    sys.path.insert(0, src)
    mod = importlib.import_module(module)
    if module == "ppo_rnn":
        mod.ScannedRNN.initialize_carry = staticmethod(lambda b, h: jnp.zeros((b, h)))
    c = AGENT_CONFIG
    config = {
        "LR": c["learning_rate"], "NUM_ENVS": c["num_envs"], "NUM_STEPS": c["rollout_length"],
        "TOTAL_TIMESTEPS": updates * c["num_envs"] * c["rollout_length"],
        "UPDATE_EPOCHS": c["num_epochs"], "NUM_MINIBATCHES": c["num_minibatches"],
        "GAMMA": c["discount"], "GAE_LAMBDA": c["gae_lambda"], "CLIP_EPS": c["clip_eps"],
        "ENT_COEF": c["ent_coef"], "VF_COEF": c["vf_coef"], "MAX_GRAD_NORM": c["max_grad_norm"],
        "ACTIVATION": "tanh", "ENV_NAME": "CartPole-v1", "ANNEAL_LR": True, "DEBUG": False,
    }  # fmt: skip
    train = jax.jit(mod.make_train(config))
    t0 = time.perf_counter()
    jax.block_until_ready(train(jax.random.key(0)))
    compile_s = time.perf_counter() - t0
    steps = updates * c["num_envs"] * c["rollout_length"]
    rates = []
    for i in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(train(jax.random.key(i + 1)))
        rates.append(steps / (time.perf_counter() - t0))
    return {
        "module": f"purejaxrl/{module}.py",
        "compile_and_first_call_s": round(compile_s, 2),
        "steps_per_s": round(repeats / sum(1 / r for r in rates), 1),
        "steps_per_s_median": round(statistics.median(rates), 1),
        "steps_per_s_calls": [round(r, 1) for r in rates],
    }


def print_table(results: list[dict]) -> None:
    headers = ["variant", "params", "steps/s", "median", "compile s", "PureJaxRL, same run"]
    headers += ["larvax / PureJaxRL", "quoted"]
    rows = []
    for r in results:
        ref = ", ".join(f"{k}: {v:,}" for k, v in r.get("reference_steps_per_s", {}).items())
        if "error" in r:
            rows.append([r["variant"], "-", "error", "-", "-", "-", "-", r["error"][:60]])
            continue
        peer = r.get("purejaxrl") or {}
        peer_rate = (
            f"{peer['steps_per_s']:,.0f}" if "steps_per_s" in peer else peer.get("error", "-")
        )
        ratio = f"{r['steps_per_s'] / peer['steps_per_s']:.2f}x" if "steps_per_s" in peer else "-"
        rows.append([
            r["variant"], f"{r['parameters']:,}", f"{r['steps_per_s']:,.0f}",
            f"{r['steps_per_s_median']:,.0f}", str(r["compile_and_first_call_s"]),
            str(peer_rate)[:40], ratio, ref,
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
    parser.add_argument(
        "--purejaxrl",
        default=None,
        help="the purejaxrl folder of a PureJaxRL checkout: time its ppo.py / ppo_rnn.py right "
        f"after the larvax variant with the same network ({', '.join(PEERS)})",
    )
    parser.add_argument(
        "--peer-path", default=None, help="a folder with gymnax 0.0.8 for the PureJaxRL run"
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
        if args.purejaxrl and name in PEERS and "error" not in r:
            print(f"[ppo_throughput] PureJaxRL {PEERS[name]}.py", flush=True)
            try:
                r["purejaxrl"] = bench_purejaxrl(
                    PEERS[name], args.purejaxrl, args.peer_path or args.purejaxrl, updates, repeats
                )
                print(f"  {r['purejaxrl']['steps_per_s']:,.0f} steps/s", flush=True)
            except Exception as err:
                r["purejaxrl"] = {"error": f"{type(err).__name__}: {err}"}
                print(f"  error: {r['purejaxrl']['error']}", flush=True)
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
