"""Acting and training throughput of the ready-made models (larvax.networks.models).

For each model two jitted functions are timed (median over ``--repeats`` calls after one
compile call):

- act: one step, ``T = 1``, ``B = --act-batch`` environments, from a carry (``model.step``).
- train: ``jax.value_and_grad`` of a scalar loss of the outputs (mean Q, or value and
  entropy for actor-critics) over ``[B = --train-batch, T = --seq-len]`` sequences with
  episode starts, with respect to all parameters.

Reported: ms per call and steps/s (``B * T / time``), and each model's parameter count.
Models: ``r2d2_simfish`` (Simfish observations [139, 3, 2] + internal [3]) and, on a
16-dimensional vector observation with 4 actions, ``recurrent_q`` with every torso and
``shared_actor_critic`` (mlp and lstm torsos, discrete and continuous).

Full run (the measurement): ``python benchmarks/networks.py``
    act B = 256; train B = 64, T = 80; 20 repeats.
Smoke run: ``python benchmarks/networks.py --quick``.
Writes ``benchmarks/results/networks.json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
from flax import nnx

import larvax
from larvax.networks import count_parameters, create

VECTOR_OBS = 16
NUM_ACTIONS = 4


def model_specs(quick: bool) -> list[tuple[str, dict]]:
    specs = [("r2d2_simfish", {})]
    torsos = (
        ["lstm", "mlp"]
        if quick
        else ["lstm", "gru", "mingru", "lru", "s5", "mamba", "attention", "mlp"]
    )
    for torso in torsos:
        specs.append(
            (
                "recurrent_q",
                dict(obs_dim=VECTOR_OBS, num_actions=NUM_ACTIONS, torso=torso, hidden_size=64),
            )
        )
    specs.append(
        ("shared_actor_critic", dict(obs_dim=VECTOR_OBS, num_actions=NUM_ACTIONS, torso="mlp"))
    )
    specs.append(
        ("shared_actor_critic", dict(obs_dim=VECTOR_OBS, num_actions=NUM_ACTIONS, torso="lstm"))
    )
    if not quick:
        specs.append(
            (
                "shared_actor_critic",
                dict(obs_dim=VECTOR_OBS, action_dim=2, torso="lstm", action_space="box"),
            )
        )
    return specs


def inputs(name: str, kwargs: dict, b: int, t: int, key):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    if name == "r2d2_simfish":
        obs = {
            "visual": jnp.floor(jax.random.uniform(k1, (b, t, 139, 3, 2), maxval=60.0)),
            "internal": jax.random.uniform(k2, (b, t, 3)),
        }
        n_act = 21
    else:
        obs = jax.random.normal(k1, (b, t, VECTOR_OBS))
        n_act = kwargs.get("num_actions")
    if n_act is None:
        prev_action = jax.random.normal(k3, (b, t, kwargs["action_dim"]))
    else:
        prev_action = jax.random.randint(k3, (b, t), -1, n_act)
    prev_reward = jax.random.normal(k4, (b, t))
    starts = jax.random.uniform(k2, (b, t)) < 0.01
    return obs, prev_action, prev_reward, starts


def loss_of(out) -> jax.Array:
    if isinstance(out, tuple):
        dist, value = out
        return jnp.mean(value**2) - jnp.mean(dist.entropy())
    return jnp.mean(out)


def timed(fn, args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))  # compile
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_one(name: str, kwargs: dict, args) -> dict:
    model = create(name, seed=0, **kwargs)
    graphdef, state = nnx.split(model)

    @jax.jit
    def act(state, obs, pa, pr, st, carry):
        m = nnx.merge(graphdef, state)
        carry, out = m.step(obs, pa, pr, st, carry)
        return carry, out[0].logits if isinstance(out, tuple) and hasattr(out[0], "logits") else out

    @jax.jit
    def train(state, obs, pa, pr, st, carry):
        def f(s):
            m = nnx.merge(graphdef, s)
            _, out = m(obs, pa, pr, st, carry)
            return loss_of(out)

        return jax.value_and_grad(f)(state)

    key = jax.random.key(0)
    obs, pa, pr, st = inputs(name, kwargs, args.act_batch, 1, key)
    act_args = (
        state,
        jax.tree.map(lambda x: x[:, 0], obs),
        pa[:, 0],
        pr[:, 0],
        st[:, 0],
        model.initialize_carry((args.act_batch,)),
    )
    t_act = timed(act, act_args, args.repeats)
    obs, pa, pr, st = inputs(name, kwargs, args.train_batch, args.seq_len, key)
    train_args = (state, obs, pa, pr, st, model.initialize_carry((args.train_batch,)))
    t_train = timed(train, train_args, args.repeats)
    label = name + "".join(
        f" {k}={v}" for k, v in kwargs.items() if k in ("torso", "action_space", "action_dim")
    )
    return {
        "model": label,
        "name": name,
        "kwargs": kwargs,
        "parameters": count_parameters(model),
        "act_ms": 1e3 * t_act,
        "act_steps_per_s": args.act_batch / t_act,
        "train_ms": 1e3 * t_train,
        "train_steps_per_s": args.train_batch * args.seq_len / t_train,
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short smoke run")
    p.add_argument("--act-batch", type=int, default=256)
    p.add_argument("--train-batch", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=80)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "networks.json"))
    args = p.parse_args(argv)
    if args.quick:
        args.act_batch, args.train_batch, args.seq_len, args.repeats = 8, 4, 8, 2

    rows = [bench_one(name, kwargs, args) for name, kwargs in model_specs(args.quick)]

    header = f"{'model':<48} {'params':>8} {'act ms':>8} {'act steps/s':>12} {'train ms':>9} {'train steps/s':>14}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['model']:<48} {r['parameters']:>8d} {r['act_ms']:>8.2f} {r['act_steps_per_s']:>12.0f} "
            f"{r['train_ms']:>9.2f} {r['train_steps_per_s']:>14.0f}"
        )
    import flax

    result = {
        "benchmark": "networks",
        "command": " ".join([sys.executable, *sys.argv]) if argv is None else " ".join(argv),
        "settings": {
            "quick": args.quick,
            "act_batch": args.act_batch,
            "train_batch": args.train_batch,
            "seq_len": args.seq_len,
            "repeats": args.repeats,
        },
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "jax_backend": jax.default_backend(),
            "devices": [str(d) for d in jax.devices()],
        },
        "versions": {
            "python": platform.python_version(),
            "jax": jax.__version__,
            "flax": flax.__version__,
            "larvax": larvax.__version__,
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
