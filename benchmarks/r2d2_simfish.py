"""R2D2 on Simfish: whole-training throughput, mirrored-state check, and learning to hunt.

Four measurements (``--mode``, default ``all``):

- ``throughput``: env steps/s of the whole training loop (acting with ``num_envs`` actors,
  insertion, and learning at samples-per-insert 1 with mirror augmentation), measured after
  compilation and after learning has started. Target (issue): >= 3,000 env steps/s on a
  2-core CPU (the reference's 15 actors at ~39 steps/s each top out below 600).
- ``mirror``: on a trained replay, Q-values of the mirrored batch after burn-in when the
  learner starts from the exact mirrored state (what larvax stores: the actors run the
  mirrored stream too) vs from the unmirrored state (what simfish_rl reuses): mean |dQ|,
  relative to mean |Q|, and how often the greedy action differs.
- ``replay``: the replay alone (add a chunk, sample a batch, set priorities) against
  flashbax's prioritised trajectory buffer holding the same data (time and bytes).
- ``learning``: for each seed, ``larvax train`` with ``--train-preset`` (default: the default
  preset ``r2d2-simfish``) and its budget (or ``--steps``), run in-process through the
  training loop into ``--runs-dir/seed<N>``; then a greedy evaluation of the final
  checkpoint over ``--eval-episodes`` episodes (prey caught and return per episode) against a
  uniformly random policy on the same episodes' seeds; mean and standard error over seeds,
  and a learning-curve PNG from the runs' ``metrics.csv``.

Usage::

    python benchmarks/r2d2_simfish.py --mode throughput --chunk 5 --timed-chunks 2
    python benchmarks/r2d2_simfish.py --mode learning     # default preset's budget x 3 seeds
    python benchmarks/r2d2_simfish.py --quick             # smoke run (a few minutes)
    python benchmarks/r2d2_simfish.py --mode learning --train-preset r2d2-simfish-normal \
        --seeds 1 --runs-dir runs/bench-normal --out benchmarks/results/r2d2_simfish_normal.json

Figures, commands and the machine: README (Benchmarks) and ``benchmarks/results/``. Most of
an update is the learner's Retina Conv1D stack and its gradient (online and target networks
over 84-step sequences), not the LSTM.

Writes ``benchmarks/results/r2d2_simfish.json`` (``r2d2_simfish_learning.json`` and
``r2d2_simfish_learning_curve.png`` for ``--mode learning``), or ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from _common import machine_info  # noqa: E402  (benchmarks/ is on sys.path)

RESULTS = Path(__file__).resolve().parent / "results"


def build(args, num_envs: int, extra: dict | None = None):
    import yaml

    from larvax.agents.r2d2 import make_agent
    from larvax.envs import make

    env_kwargs = {}
    for item in args.env or []:
        key, _, value = item.partition("=")
        env_kwargs[key] = yaml.safe_load(value)
    env, params = make("simfish", preset=args.preset, **env_kwargs)
    config = dict(
        num_envs=num_envs,
        replay_capacity=args.replay_capacity,
        min_replay_size=args.min_replay_size,
        mirror_update=args.mirror_update,
        mirror_carry=args.mirror_carry,
        mirror_features=False if args.mirror_features == "false" else "auto",
    )
    config.update(extra or {})
    return make_agent(env, params, {"name": args.network}, config)


# ----------------------------------------------------------------------------- throughput


def run_throughput(args) -> dict:
    agent = build(args, args.num_envs)
    c = agent.config
    state = agent.init(jax.random.key(0))
    chunk = args.chunk
    # updates until learning runs in every update of the timed chunks
    items_per_update = c.num_envs
    warm = math.ceil(c.sequence_length / c.period) + math.ceil(c.min_replay_size / items_per_update)
    warm_chunks = max(1, math.ceil(warm / chunk))
    t0 = time.perf_counter()
    state, m = agent.train(state, chunk)
    jax.block_until_ready(m)
    compile_s = time.perf_counter() - t0
    for _ in range(warm_chunks):
        state, m = agent.train(state, chunk)
    jax.block_until_ready(m)
    times = []
    learner_steps = []
    for _ in range(args.timed_chunks):
        t0 = time.perf_counter()
        state, m = agent.train(state, chunk)
        jax.block_until_ready(m)
        times.append(time.perf_counter() - t0)
        learner_steps.append(float(np.asarray(m["learner_steps"])[-1]))
    loss = np.asarray(m["loss"])
    steps = chunk * agent.env_steps_per_update
    sps = [steps / t for t in times]
    return {
        "num_envs": c.num_envs,
        "updates_per_chunk": chunk,
        "env_steps_per_chunk": steps,
        "learner_steps_per_update": c.learner_steps_per_update,
        "batch_size": c.batch_size,
        "sequence_length": c.sequence_length,
        "mirror": agent.mirror,
        "mirror_update": c.mirror_update,
        "mirror_carry": c.mirror_carry,
        "mirror_features": agent.mirror_features,
        "first_chunk_s_incl_compile": compile_s,
        "chunk_seconds": times,
        "env_steps_per_s": float(np.median(sps)),
        "env_steps_per_s_best": float(np.max(sps)),
        "learning_in_timed_chunks": bool(np.all(np.isfinite(loss))),
        "replay_bytes": agent.replay_nbytes(),
        "replay_capacity_items": c.replay_capacity,
        "target": 3000,
    }, (agent, state)


# ----------------------------------------------------------------------------- mirror check


def run_mirror_check(agent, state, batches: int = 4) -> dict:
    """|Q(mirrored batch | exact mirrored state) - Q(mirrored batch | unmirrored state)|."""
    from larvax.agents.r2d2 import mirror_batch

    c = agent.config
    if not agent.mirror or c.mirror_carry != "exact":
        return {"skipped": "needs mirror with mirror_carry='exact'"}

    @jax.jit
    def gap(state, key):
        sample, batch, _ = agent.learner_batch(state, key)
        mb = mirror_batch(batch, agent.env.reflect_observation, agent.mirror_actions)
        args = (mb.observation, mb.prev_action, mb.prev_reward, mb.start)

        def q_from(carry):
            return agent.apply(state.params, state.rest, *args, carry)[1][:, c.burn_in :]

        q_exact = q_from(sample.extras["carry_mirror"])
        q_reuse = q_from(sample.extras["carry"])
        q_zero = q_from(agent.initialize_carry(c.batch_size))
        mask = mb.has_action[:, c.burn_in :]
        m = mask[..., None].astype(jnp.float32)
        n = jnp.maximum(jnp.sum(m) * q_exact.shape[-1], 1.0)

        def mad(a, b):
            return jnp.sum(jnp.abs(a - b) * m) / n

        act_diff = jnp.sum((jnp.argmax(q_exact, -1) != jnp.argmax(q_reuse, -1)) * mask) / (
            jnp.maximum(jnp.sum(mask), 1)
        )
        return dict(
            mean_abs_q=jnp.sum(jnp.abs(q_exact) * m) / n,
            mean_abs_dq_reuse=mad(q_exact, q_reuse),
            mean_abs_dq_zero=mad(q_exact, q_zero),
            first_step_abs_dq_reuse=jnp.mean(jnp.abs(q_exact[:, 0] - q_reuse[:, 0])),
            greedy_action_differs=act_diff,
        )

    out = [jax.tree.map(float, gap(state, jax.random.key(i))) for i in range(batches)]
    res = {k: float(np.mean([o[k] for o in out])) for k in out[0]}
    res["relative_dq_reuse"] = res["mean_abs_dq_reuse"] / max(res["mean_abs_q"], 1e-12)
    res["burn_in"] = c.burn_in
    return res


# ----------------------------------------------------------------------------- replay


def run_replay_compare(args, iterations: int = 20) -> dict:
    """SequenceReplay vs flashbax's prioritised trajectory buffer, same data and sizes:
    per iteration add one chunk (``period`` steps of ``num_envs`` actors, Simfish-sized steps)
    then sample ``batch_size`` sequences and set their priorities, ``iterations`` of them in
    one jitted scan. flashbax needs the recurrent state in every stored step (it stores time
    steps, not items), larvax stores it once per item. Reports seconds per iteration and bytes.
    """
    try:
        import flashbax
    except ImportError:
        raise SystemExit(
            "--mode replay compares with flashbax, which is not installed; "
            "install the bench extra: pip install -e '.[bench]'"
        ) from None

    from larvax.agents.replay import SequenceReplay

    n, period, length, batch = args.num_envs, 20, 84, 32
    slots = max(args.replay_capacity // n, -(-length // period))
    ring = slots * period
    hidden = 64
    step = dict(
        visual=jnp.zeros((139, 3, 2), jnp.uint8),
        internal=jnp.zeros((3,), jnp.float32),
        action=jnp.int32(0),
        reward=jnp.float32(0),
    )
    carry = dict(c=jnp.zeros((2, 2, hidden), jnp.float32))  # (h, c) x (plain, mirrored)

    def chunk_data(i):
        v = jnp.full((n, period, 139, 3, 2), i % 255, jnp.uint8)
        return dict(
            visual=v,
            internal=jnp.zeros((n, period, 3)),
            action=jnp.zeros((n, period), jnp.int32),
            reward=jnp.zeros((n, period)),
        )

    ours = SequenceReplay(n, slots, period, length)

    def ours_iter(st, i):
        key = jax.random.fold_in(jax.random.key(0), i)
        st = ours.add(st, chunk_data(i), dict(c=jnp.zeros((n, 2, 2, hidden))))
        sm = ours.sample(st, key, batch, 0.9)
        st = ours.update_priorities(st, sm.env_index, sm.slot, jnp.ones((batch,)) * 0.5)
        return st, jnp.sum(sm.steps["visual"][:, 0, 0, 0, 0].astype(jnp.float32))

    fbx = flashbax.make_prioritised_trajectory_buffer(
        add_batch_size=n,
        sample_batch_size=batch,
        sample_sequence_length=length,
        period=period,
        min_length_time_axis=length,
        max_length_time_axis=ring,
        priority_exponent=0.9,
    )
    fstep = dict(step, c=carry["c"])

    def fbx_iter(st, i):
        key = jax.random.fold_in(jax.random.key(0), i)
        data = dict(chunk_data(i), c=jnp.zeros((n, period, 2, 2, hidden)))
        st = fbx.add(st, data)
        sm = fbx.sample(st, key)
        st = fbx.set_priorities(st, sm.indices, jnp.ones((batch,)) * 0.5)
        return st, jnp.sum(sm.experience["visual"][:, 0, 0, 0, 0].astype(jnp.float32))

    def timed(init_state, body, warm):
        run = jax.jit(lambda s, xs: jax.lax.scan(body, s, xs))
        s, _ = run(init_state, jnp.arange(warm))  # fill past one sequence, compile
        jax.block_until_ready(s)
        t0 = time.perf_counter()
        s, out = run(s, jnp.arange(warm, 2 * warm))
        jax.block_until_ready(out)
        return (time.perf_counter() - t0) / warm, s

    warm = iterations
    t_ours, s_ours = timed(ours.init(step, carry), ours_iter, warm)
    t_fbx, s_fbx = timed(fbx.init(fstep), fbx_iter, warm)
    nbytes = lambda t: int(sum(x.nbytes for x in jax.tree.leaves(t)))  # noqa: E731
    return {
        "num_envs": n,
        "ring_steps_per_env": ring,
        "batch_size": batch,
        "sequence_length": length,
        "larvax_s_per_iteration": t_ours,
        "flashbax_s_per_iteration": t_fbx,
        "larvax_bytes": nbytes(s_ours),
        "flashbax_bytes": nbytes(s_fbx),
    }


# ----------------------------------------------------------------------------- evaluation


def evaluate(agent, state, key, num_episodes: int, policy: str) -> dict:
    """One episode per parallel env (until its first end); greedy or uniformly random."""
    env, params = agent.env, agent.env_params
    max_steps = int(getattr(params, "max_steps", 1000))

    @jax.jit
    def run(key):
        k_reset, k_run = jax.random.split(key)
        env_state, ts = jax.vmap(lambda k: env.reset(k, params))(
            jax.random.split(k_reset, num_episodes)
        )
        n = num_episodes
        carry0 = (
            env_state,
            jax.tree.map(lambda x: x.astype(jnp.float32), ts.observation),
            agent.initialize_carry(n),
            jnp.full((n,), -1, jnp.int32),
            jnp.zeros((n,), jnp.float32),
            jnp.ones((n,), bool),
            jnp.zeros((n,), bool),  # done
            jnp.zeros((n,), jnp.float32),  # return
            jnp.zeros((n,), jnp.float32),  # prey
            jnp.zeros((n,), jnp.float32),  # length
        )

        def body(carry, k):
            es, obs, net, pa, pr, st, done, ret, prey, length = carry
            k_act, k_env = jax.random.split(k)
            net, q = agent._q_step(state.params, state.rest, obs, pa, pr, st, net)
            if policy == "greedy":
                a = jnp.argmax(q, -1).astype(jnp.int32)
            else:
                a = jax.random.randint(k_act, (n,), 0, agent.num_actions, jnp.int32)
            es, ts = jax.vmap(lambda kk, s, aa: env.step(kk, s, aa, params))(
                jax.random.split(k_env, n), es, a
            )
            alive = ~done
            ret = ret + jnp.where(alive, ts.reward, 0.0)
            prey = prey + jnp.where(alive, ts.info["prey_caught"].astype(jnp.float32), 0.0)
            length = length + alive.astype(jnp.float32)
            done = done | ts.terminated | ts.truncated
            obs = jax.tree.map(lambda x: x.astype(jnp.float32), ts.observation)
            return (es, obs, net, a, ts.reward, jnp.zeros_like(st), done, ret, prey, length), None

        out, _ = jax.lax.scan(body, carry0, jax.random.split(k_run, max_steps))
        return out[7], out[8], out[9]

    ret, prey, length = (np.asarray(x) for x in run(key))
    return {
        "episodes": num_episodes,
        "prey_caught_mean": float(prey.mean()),
        "prey_caught_per_episode": prey.tolist(),
        "return_mean": float(ret.mean()),
        "length_mean": float(length.mean()),
    }


def _curve(run_dir: Path) -> list[dict]:
    import csv

    def num(x):
        try:
            v = float(x)
        except (TypeError, ValueError):
            return None
        return v if np.isfinite(v) else None

    with open(run_dir / "metrics.csv") as f:
        return [
            dict(
                env_steps=num(r["env_steps"]),
                episode_return=num(r.get("episode_return")),
                prey_caught=num(r.get("prey_caught")),
                loss=num(r.get("loss")),
                wall_s=num(r.get("wall_time_s")),
            )
            for r in csv.DictReader(f)
        ]


def run_learning(args) -> dict:
    """``larvax train`` (the loop, in-process) per seed with ``--train-preset`` and ``--set``,
    then greedy and random evaluation of the final checkpoint. Finished seeds in
    ``--runs-dir`` are reused; interrupted ones are resumed."""
    from larvax.training import config as C
    from larvax.training import loop

    runs_dir = Path(args.runs_dir)
    runs, curves = [], []
    cfg = None
    for seed in range(args.seeds):
        cfg = C.resolve(args.train_preset, None, args.set or [], args.steps, seed)
        run_dir = runs_dir / f"seed{seed}"
        status = None
        if (run_dir / "run.json").exists():
            status = json.loads((run_dir / "run.json").read_text()).get("status")
        t0 = time.perf_counter()
        if status != "finished":
            if (run_dir / "config.yaml").exists():
                loop.run(None, run_dir=run_dir, resume=True, progress=args.verbose)
            else:
                loop.run(cfg, run_dir=run_dir, progress=args.verbose)
        train_s = time.perf_counter() - t0
        _, _, _, agent, state, record = loop.load_run(run_dir)
        key = jax.random.key(1000 + seed)
        greedy = evaluate(agent, state, key, args.eval_episodes, "greedy")
        rand = evaluate(agent, state, key, args.eval_episodes, "random")
        curve = _curve(run_dir)
        summary = json.loads((run_dir / "summary.json").read_text())
        runs.append(
            dict(seed=seed, run_dir=str(run_dir), env_steps=int(record["env_steps"]),
                 train_wall_s=summary.get("wall_time_s"), this_call_s=train_s,
                 devices=agent.num_devices, greedy=greedy, random=rand)
        )  # fmt: skip
        curves.append(curve)
        print(
            f"seed {seed}: greedy prey {greedy['prey_caught_mean']:.2f} "
            f"(return {greedy['return_mean']:.1f}), random prey "
            f"{rand['prey_caught_mean']:.2f} (return {rand['return_mean']:.1f})",
            flush=True,
        )

    def mean_se(xs):
        xs = np.asarray(xs, np.float64)
        se = float(xs.std(ddof=1) / np.sqrt(len(xs))) if len(xs) > 1 else float("nan")
        return float(xs.mean()), se

    out = {
        "train_preset": args.train_preset,
        "overrides": list(args.set or []),
        "config": cfg,
        "steps_per_seed": cfg["total_env_steps"],
        "seeds": args.seeds,
        "eval_episodes": args.eval_episodes,
        "runs": runs,
        "curves": curves,
    }
    for policy in ("greedy", "random"):
        for key in ("prey_caught_mean", "return_mean"):
            m, se = mean_se([r[policy][key] for r in runs])
            name = key.replace("_mean", "")
            out[f"{policy}_{name}_mean"] = m
            out[f"{policy}_{name}_se"] = se
    png = plot_curves(curves, args, title=f"R2D2 on Simfish ({args.train_preset})")
    out["curve_png"] = str(png) if png else None
    return out


def plot_curves(curves, args, title: str):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for seed, curve in enumerate(curves):
        for ax, key in zip(axes, ("prey_caught", "episode_return"), strict=True):
            pts = [(p["env_steps"], p[key]) for p in curve if p[key] is not None]  # chunks
            ax.plot([x for x, _ in pts], [y for _, y in pts], label=f"seed {seed}", alpha=0.8)
    for ax, label in zip(axes, ("prey caught / episode", "episode return"), strict=True):
        ax.set_xlabel("env steps")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(args.out).with_name(Path(args.out).stem + "_curve.png")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- main


def print_table(result: dict) -> None:
    rows = []
    t = result.get("throughput")
    if t:
        rows.append(("env steps/s (train, median)", f"{t['env_steps_per_s']:.0f} (target 3000)"))
        rows.append(("first chunk incl. compile (s)", f"{t['first_chunk_s_incl_compile']:.1f}"))
        rows.append(("replay bytes", f"{t['replay_bytes'] / 2**20:.1f} MiB"))
    mc = result.get("mirror_check")
    if mc and "skipped" not in mc:
        rows.append(("mirror: mean |dQ| reuse vs exact", f"{mc['mean_abs_dq_reuse']:.4g}"))
        rows.append(("mirror: relative |dQ|", f"{mc['relative_dq_reuse']:.3g}"))
        rows.append(("mirror: greedy action differs", f"{mc['greedy_action_differs']:.3f}"))
    rc = result.get("replay_compare")
    if rc:
        rows.append(
            (
                "replay add+sample+prio (ms): larvax / flashbax",
                f"{1e3 * rc['larvax_s_per_iteration']:.2f} / "
                f"{1e3 * rc['flashbax_s_per_iteration']:.2f}",
            )
        )
        rows.append(
            (
                "replay bytes: larvax / flashbax",
                f"{rc['larvax_bytes'] / 2**20:.1f} / {rc['flashbax_bytes'] / 2**20:.1f} MiB",
            )
        )
    lr = result.get("learning")
    if lr:
        for policy in ("greedy", "random"):
            rows.append(
                (
                    f"{policy}: prey caught / episode (mean +- se over seeds)",
                    f"{lr[f'{policy}_prey_caught_mean']:.2f} +- "
                    f"{lr[f'{policy}_prey_caught_se']:.2f}",
                )
            )
            rows.append(
                (
                    f"{policy}: return / episode",
                    f"{lr[f'{policy}_return_mean']:.1f} +- {lr[f'{policy}_return_se']:.1f}",
                )
            )
    try:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="R2D2 on Simfish")
        table.add_column("measure")
        table.add_column("value")
        for r in rows:
            table.add_row(*r)
        Console().print(table)
    except ImportError:  # pragma: no cover
        for r in rows:
            print(f"{r[0]:40s} {r[1]}")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="short smoke run")
    p.add_argument("--mode", choices=("all", "throughput", "learning", "replay"), default="all")
    p.add_argument("--preset", default="stage1")
    p.add_argument(
        "--env", action="append", metavar="KEY=VALUE", help="Simfish field (throughput world)"
    )
    p.add_argument("--network", default="r2d2_simfish")
    p.add_argument("--train-preset", default="r2d2-simfish", help="larvax train preset (learning)")
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="larvax train override (learning)"
    )
    p.add_argument(
        "--steps", type=int, default=None, help="env steps per seed (learning; default: preset)"
    )
    p.add_argument(
        "--runs-dir",
        default="runs/bench-r2d2-simfish",
        help="run directories of the learning runs (finished seeds are reused)",
    )
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--num-envs", type=int, default=64)
    p.add_argument("--chunk", type=int, default=20, help="updates per compiled train call")
    p.add_argument("--timed-chunks", type=int, default=3)
    p.add_argument("--replay-capacity", type=int, default=16384, help="sequence items")
    p.add_argument("--min-replay-size", type=int, default=1024)
    p.add_argument("--mirror-update", choices=("joint", "sequential"), default="joint")
    p.add_argument("--mirror-carry", choices=("exact", "reuse"), default="exact")
    p.add_argument(
        "--mirror-features",
        choices=("auto", "false"),
        default="auto",
        help="R2D2Config.mirror_features: 'false' convolves the reflected observations again",
    )
    p.add_argument(
        "--devices",
        type=int,
        default=1,
        help="JAX CPU devices to expose (as `larvax train --cpu-devices`); the agent uses as "
        "many as divide --num-envs and the batch size",
    )
    p.add_argument("--verbose", action="store_true")
    p.add_argument(
        "--out",
        default=None,
        help="JSON path (default results/r2d2_simfish.json; r2d2_simfish_learning.json for "
        "--mode learning); the curve PNG is written beside it as <stem>_curve.png",
    )
    args = p.parse_args(argv)
    if args.out is None:
        name = "r2d2_simfish_learning.json" if args.mode == "learning" else "r2d2_simfish.json"
        args.out = str(RESULTS / name)
    from larvax.devices import use_cpu_devices

    args.devices = use_cpu_devices(args.devices)
    if args.quick:
        args.steps = 64 * 20 * 6
        args.runs_dir = args.runs_dir + "-quick"
        args.seeds = min(args.seeds, 1)
        args.chunk = min(args.chunk, 3)
        args.timed_chunks = min(args.timed_chunks, 2)
        args.num_envs = min(args.num_envs, 32)
        args.replay_capacity = min(args.replay_capacity, 512)
        args.min_replay_size = min(args.min_replay_size, 64)
        args.eval_episodes = min(args.eval_episodes, 20)

    result: dict = {
        "benchmark": "r2d2_simfish",
        "command": " ".join([sys.executable, *sys.argv]),
        "args": vars(args),
        "machine": machine_info(),
    }
    if args.mode in ("all", "throughput"):
        result["throughput"], (agent, state) = run_throughput(args)
        result["mirror_check"] = run_mirror_check(agent, state)
        del agent, state
    if args.mode in ("all", "replay"):
        result["replay_compare"] = run_replay_compare(args)
    if args.mode in ("all", "learning"):
        result["learning"] = run_learning(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print_table(result)
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
