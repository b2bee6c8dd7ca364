"""Forward + backward throughput of every sequence model (larvax.networks.sequence).

For each model: one jitted ``jax.grad`` of ``mean(y)`` with respect to all parameters,
``x [B, T, F]`` with episode starts (probability 1/100 per step), from the initial carry.
Reports the median time per call over ``--repeats`` calls (after one compile call),
``steps/s = B * T / time`` and, at the longest T, each model's steps/s relative to LSTM.
The linear-recurrent models run with their default scan (MinGRU, LRU, S5: ``"fused"``, a
time loop with a hand-written reverse-recurrence backward pass; Mamba: ``"sequential"``)
and again as ``<name>[associative]`` (the parallel associative scan, for accelerators) and
``<name>[sequential]`` (the ``lax.scan`` reference); all compute the same function.

Full run (the measurement): ``python benchmarks/sequence_models.py``
    B = 64, F = hidden = 128, T in {128, 1024}, CPU.
Smoke run: ``python benchmarks/sequence_models.py --quick``.
Writes ``benchmarks/results/sequence_models.json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from _common import machine_info  # noqa: E402  (benchmarks/ is on sys.path)
from larvax.networks import blocks
from larvax.networks import sequence as seq

PARALLEL_SCAN_MODELS = ("MinGRU", "LRU", "S5", "Mamba")  # linear recurrences (scan= option)


def build_models(features: int, hidden: int, cache_size: int, heads: int) -> dict:
    """Name -> constructor of a model mapping [B, T, features] to [B, T, hidden]."""
    r = nnx.Rngs
    return {
        "LSTM": lambda: seq.LSTM(features, hidden, rngs=r(0)),
        "GRU": lambda: seq.GRU(features, hidden, rngs=r(1)),
        "RNN(nnx.LSTMCell)": lambda: seq.RNN(nnx.LSTMCell(features, hidden, rngs=r(2))),
        "RNN(nnx.GRUCell)": lambda: seq.RNN(nnx.GRUCell(features, hidden, rngs=r(3))),
        "MinGRU": lambda: seq.MinGRU(features, hidden, rngs=r(4)),
        "LRU": lambda: seq.LRU(features, hidden, rngs=r(5)),
        "S5": lambda: seq.S5(features, hidden, rngs=r(6)),
        "Mamba": lambda: seq.Mamba(features, hidden, rngs=r(7)),
        "MinGRU[associative]": lambda: seq.MinGRU(features, hidden, scan="associative", rngs=r(4)),
        "LRU[associative]": lambda: seq.LRU(features, hidden, scan="associative", rngs=r(5)),
        "S5[associative]": lambda: seq.S5(features, hidden, scan="associative", rngs=r(6)),
        "Mamba[associative]": lambda: seq.Mamba(features, hidden, scan="associative", rngs=r(7)),
        "MinGRU[sequential]": lambda: seq.MinGRU(features, hidden, scan="sequential", rngs=r(4)),
        "LRU[sequential]": lambda: seq.LRU(features, hidden, scan="sequential", rngs=r(5)),
        "S5[sequential]": lambda: seq.S5(features, hidden, scan="sequential", rngs=r(6)),
        "SelfAttention": lambda: seq.SelfAttention(hidden, heads, cache_size, rngs=r(8)),
        "Transformer(1 layer)": lambda: blocks.transformer(
            hidden, heads, cache_size, num_layers=1, rngs=r(9)
        ),
    }


def time_model(model, batch: int, length: int, features: int, repeats: int, seed: int = 0):
    """Compile once, then return (compile_s, [seconds per call])."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    carry = model.initialize_carry((batch,))

    def loss(params, rest, x, starts, carry):
        m = nnx.merge(graphdef, params, rest)
        _, y = m(x, starts, carry)
        return jnp.mean(y)

    grad = jax.jit(jax.grad(loss))
    kx, ks = jax.random.split(jax.random.key(seed))
    x = jax.random.normal(kx, (batch, length, features), jnp.float32)
    starts = jax.random.bernoulli(ks, 0.01, (batch, length)).at[:, 0].set(True)
    t0 = time.perf_counter()
    jax.block_until_ready(grad(params, rest, x, starts, carry))
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(grad(params, rest, x, starts, carry))
        times.append(time.perf_counter() - t0)
    return compile_s, times


def print_table(rows: list[dict], ratio_length: int) -> None:
    headers = [
        "model",
        "T",
        "time/call (ms)",
        "steps/s",
        "compile (s)",
        f"vs LSTM @T={ratio_length}",
    ]
    body = [
        [
            r["model"],
            str(r["T"]),
            f"{1e3 * r['time_s']:.1f}",
            f"{r['steps_per_s']:,.0f}",
            f"{r['compile_s']:.1f}",
            "" if r.get("ratio_to_lstm") is None else f"{r['ratio_to_lstm']:.2f}x",
        ]
        for r in rows
    ]
    try:
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        table = Table(title="Sequence models: forward + backward (jax.grad of mean(y))")
        for h in headers:
            if h == "model":
                table.add_column(h, justify="left", no_wrap=True, min_width=20)
            else:
                table.add_column(h, justify="right")
        for b in body:
            table.add_row(*(escape(c) for c in b))  # "[sequential]" is not markup
        Console().print(table)
    except ImportError:  # pragma: no cover
        print(" | ".join(headers))
        for b in body:
            print(" | ".join(b))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128, help="input features = hidden")
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 1024])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cache-size", type=int, default=128, help="attention window (steps)")
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--models", nargs="+", default=None, help="subset of model names")
    parser.add_argument("--note", default="", help="free text stored in the JSON (conditions)")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "sequence_models.json"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.hidden, args.lengths, args.repeats = 4, 16, [16, 64], 2
        args.cache_size, args.heads = 8, 2
    factories = build_models(args.hidden, args.hidden, args.cache_size, args.heads)
    names = args.models or list(factories)
    unknown = sorted(set(names) - set(factories))
    if unknown:
        raise ValueError(f"--models: unknown {unknown}; allowed: {list(factories)}")

    # warm-up (thread pools, allocator) so the first model measured is not penalised
    time_model(factories["GRU"](), args.batch, min(args.lengths), args.hidden, 1)
    rows = []
    for name in names:
        for length in args.lengths:
            model = factories[name]()
            compile_s, times = time_model(model, args.batch, length, args.hidden, args.repeats)
            t = statistics.median(times)
            rows.append(
                {
                    "model": name,
                    "T": length,
                    "B": args.batch,
                    "time_s": t,
                    "times_s": times,
                    "steps_per_s": args.batch * length / t,
                    "compile_s": compile_s,
                }
            )
            print(f"{name:>22s} T={length:5d}: {1e3 * t:9.1f} ms/call", flush=True)
    longest = max(args.lengths)
    lstm = {r["T"]: r["steps_per_s"] for r in rows if r["model"] == "LSTM"}
    for r in rows:
        r["ratio_to_lstm"] = (
            r["steps_per_s"] / lstm[longest] if (r["T"] == longest and longest in lstm) else None
        )
    print_table(rows, longest)
    result = {
        "benchmark": "sequence_models",
        "description": "forward+backward (jax.grad of mean(y), jitted) per call; "
        "steps/s = B*T/time; ratio_to_lstm at the longest T",
        "command": " ".join([sys.executable, *sys.argv]) if argv is None else " ".join(argv),
        "config": {
            "batch": args.batch,
            "features": args.hidden,
            "hidden": args.hidden,
            "lengths": args.lengths,
            "repeats": args.repeats,
            "attention_cache_size": args.cache_size,
            "attention_heads": args.heads,
            "start_probability": 0.01,
            "quick": args.quick,
        },
        "parallel_scan_models": [m for m in PARALLEL_SCAN_MODELS if m in names],
        "machine": machine_info(),
        "load_average_1_5_15min": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "note": args.note,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
