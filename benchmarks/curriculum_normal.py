"""A fish that hunts in the faithful world: train the curriculum preset, then evaluate the
final greedy fish in the unchanged ``normal`` world against uniformly random bouts.

    python benchmarks/curriculum_normal.py --seeds 0 1 2 --runs-dir /tmp/larvax-curriculum

For each seed: trains ``--preset`` (default ``r2d2-simfish-curriculum``) into
``RUNS_DIR/seed<k>`` through the training loop (an interrupted run is resumed, a finished
one is only evaluated), checks that the final checkpoint's world is exactly
``SimfishParams.preset("normal")``, then runs ``--episodes`` evaluation episodes twice on
the same episodes (same reset and environment keys, ``larvax.evaluation.evaluate``): the
greedy fish (epsilon 0) and uniformly random bouts (epsilon 1). Reports per seed and
policy: prey per episode (mean +- s.e.), return, episode length, starvation rate, predator
hits and avoidances, capture success (prey caught / capture bouts), bout usage by name;
per stage: env steps and training seconds. Writes JSON (machine, versions, command) to
``--out`` and the learning curves with stage boundaries to ``--curve``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine_info, rich_table  # noqa: E402


def train(preset: str, seed: int, run_dir: Path, overrides: list[str]) -> None:
    """Train (or resume, or leave alone when finished) one seed's run."""
    from larvax.training import config as C
    from larvax.training.loop import run

    status = run_dir / "run.json"
    if status.is_file() and json.loads(status.read_text()).get("status") == "finished":
        return
    if (run_dir / "config.yaml").is_file():
        run(None, run_dir=run_dir, resume=True, progress=True, log_every=60)
    else:
        cfg = C.resolve(preset, None, overrides, None, seed)
        run(cfg, run_dir=run_dir, progress=True, log_every=60)


def evaluate_policy(agent, state, env, params, episodes: int, epsilon: float, seed: int):
    """Per-episode metric rows and action counts of one policy (greedy or random)."""
    from larvax.envs.simfish.bouts import NUM_ACTIONS
    from larvax.evaluation.hdf5 import EpisodeWriter, env_variables
    from larvax.evaluation.loop import evaluate
    from larvax.evaluation.metrics import episode_metrics

    rows, counts = [], np.zeros(NUM_ACTIONS, np.int64)

    def on_episode(n, data):
        rows.append(episode_metrics(n, data))
        counts[:] += np.bincount(np.asarray(data["action"][1:]), minlength=NUM_ACTIONS)

    with tempfile.TemporaryDirectory() as tmp:
        writer = EpisodeWriter(tmp, {}, env_variables(params, {}), {}, on_episode=on_episode)
        for records in evaluate(agent, state, env, params, episodes, epsilon, batch=32,
                                chunk=100, seed=seed):  # fmt: skip
            writer.add(records)
    return sorted(rows, key=lambda r: r["episode"]), counts


def mean_se(values) -> dict:
    x = np.asarray(values, np.float64)
    se = float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("nan")
    return {"mean": float(x.mean()), "se": se}


def policy_summary(rows: list[dict], counts: np.ndarray) -> dict:
    from larvax.envs.simfish.bouts import BOUT_NAMES

    prey = sum(r["prey_caught"] for r in rows)
    bouts = sum(r["capture_bouts"] for r in rows)
    return {
        "episodes": len(rows),
        "prey_per_episode": mean_se([r["prey_caught"] for r in rows]),
        "return": mean_se([r["return"] for r in rows]),
        "episode_length": mean_se([r["length"] for r in rows]),
        "starvation_rate": float(np.mean([r["end_cause"] == "Starvation" for r in rows])),
        "predator_hits_per_episode": mean_se([r["predators_hit"] for r in rows]),
        "predators_avoided_per_episode": mean_se([r["predators_avoided"] for r in rows]),
        "capture_bouts_per_episode": mean_se([r["capture_bouts"] for r in rows]),
        "capture_success": prey / bouts if bouts else None,
        "bout_usage": {
            n: float(c / max(counts.sum(), 1)) for n, c in zip(BOUT_NAMES, counts, strict=True)
        },  # fmt: skip
    }


def evaluate_seed(run_dir: Path, episodes: int, seed: int, stage_names: list[str]) -> dict:
    """Greedy and random bouts in the unchanged normal world, whatever the stage of the
    run's newest checkpoint (recorded: ``checkpoint_world_changed_fields``)."""
    import dataclasses

    from larvax.envs import make
    from larvax.envs.simfish.config import SimfishParams
    from larvax.training.runs import load_run
    from larvax.training.stages import stage_spans

    cfg, _, trained_params, agent, state, record = load_run(run_dir)
    env, params = make("simfish", preset="normal")
    assert params == SimfishParams.preset("normal")
    changed = [f.name for f in dataclasses.fields(params)
               if getattr(trained_params, f.name) != getattr(params, f.name)]  # fmt: skip
    out = {
        "checkpoint_stage": record.get("stage"),
        "checkpoint_world_is_normal": not changed,
        "checkpoint_world_changed_fields": changed,
    }
    for policy, epsilon in (("greedy", 0.0), ("random", 1.0)):
        t0 = time.perf_counter()
        rows, counts = evaluate_policy(agent, state, env, params, episodes, epsilon, seed)
        out[policy] = policy_summary(rows, counts)
        out[policy]["eval_seconds"] = round(time.perf_counter() - t0, 1)
    rows = read_curve(run_dir)
    status = json.loads((run_dir / "run.json").read_text()).get("status")
    out["training"] = {
        "status": status,
        "env_steps": int(rows[-1]["env_steps"]),
        "wall_time_s": rows[-1]["wall_time_s"],
        "stages": stage_spans([{k: str(v) for k, v in r.items()} for r in rows], stage_names),
    }
    out["checkpoint_env_steps"] = int(record["env_steps"])
    return out


def read_curve(run_dir: Path) -> list[dict]:
    import csv

    with (run_dir / "metrics.csv").open() as f:
        return [{k: float(v) if v not in ("", "nan") else math.nan for k, v in r.items()}
                for r in csv.DictReader(f)]  # fmt: skip


def plot(curves: dict[int, list[dict]], stage_names: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from larvax.training.plots import stage_starts

    keys = (("prey_caught", "prey caught / training episode"), ("episode_return", "return"))
    fig, axes = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for i, (seed, rows) in enumerate(sorted(curves.items())):
        x = np.array([r["env_steps"] for r in rows])
        for ax, (key, label) in zip(axes, keys, strict=True):
            y = np.array([r.get(key, math.nan) for r in rows])
            ok = np.isfinite(y)
            ax.plot(x[ok], y[ok], lw=1.0, color=f"C{i}", label=f"seed {seed}")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
        for steps, stage in stage_starts([{k: str(v) for k, v in r.items()} for r in rows]):
            for ax in axes:
                if steps > 0:
                    ax.axvline(steps, color=f"C{i}", lw=0.8, ls="--", alpha=0.6)
            name = stage_names[stage] if stage < len(stage_names) else str(stage)
            axes[0].text(steps, 1.0 - 0.06 * i, f" {name}", fontsize=7, color=f"C{i}",
                         transform=axes[0].get_xaxis_transform(), va="top")  # fmt: skip
    axes[0].set_yscale("symlog", linthresh=1.0)
    axes[0].set_ylim(bottom=0)
    axes[0].legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("environment steps (training, all stages)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_tables(result: dict) -> None:
    rows = []
    for seed, r in sorted(result["seeds"].items()):
        for policy in ("greedy", "random"):
            p = r[policy]
            cs = p["capture_success"]
            rows.append([
                str(seed), policy,
                f"{p['prey_per_episode']['mean']:.2f} +- {p['prey_per_episode']['se']:.2f}",
                f"{p['return']['mean']:.1f}", f"{p['episode_length']['mean']:.0f}",
                f"{p['starvation_rate']:.2f}",
                f"{p['predator_hits_per_episode']['mean']:.2f}",
                f"{p['predators_avoided_per_episode']['mean']:.2f}",
                "-" if cs is None else f"{cs:.2f}",
            ])  # fmt: skip
    rich_table(
        "normal world, final fish vs random bouts (same episodes)",
        ["seed", "policy", "prey/episode", "return", "length", "starved", "pred. hit",
         "pred. avoided", "capture success"],
        rows,
    )  # fmt: skip
    stage_rows = []
    for seed, r in sorted(result["seeds"].items()):
        for s in r["training"]["stages"]:
            stage_rows.append(
                [str(seed), s["name"], f"{s['env_steps']:,}", f"{s['wall_time_s']:.0f}"]
            )
    rich_table("training per stage", ["seed", "stage", "env steps", "seconds"], stage_rows)


AGENT_TEXT = {
    "r2d2": "R2D2 (the Simfish R2D2 network: Retina -> MLP -> LSTM(64) -> duelling Q over the 21 "
    "bouts)",
    "ppo": "Recurrent PPO (the `ppo_simfish` network: Retina -> MLP -> LSTM(64) -> softmax over "
    "the 21 bouts and a value head; greedy = the most probable bout)",
}


def export(run_dir: Path, name: str, seed: int, evaluation: dict, preset: str, commit: str):
    """Ship ``run_dir``'s newest checkpoint as pretrained model ``name`` with its card."""
    from larvax import pretrained

    g, r = evaluation["greedy"], evaluation["random"]
    t = evaluation["training"]
    facts = {
        "name": name,
        "preset": preset,
        "seed": seed,
        "env_steps": t["env_steps"],
        "wall_time_s": t["wall_time_s"],
        "stages": t["stages"],
        "commit": commit,
        "evaluation_world": "normal (SimfishParams.preset('normal'), unchanged)",
        "evaluation_episodes": g["episodes"],
        "prey_per_episode": g["prey_per_episode"],
        "random_bouts_prey_per_episode": r["prey_per_episode"],
        "return": g["return"],
        "episode_length": g["episode_length"],
        "starvation_rate": g["starvation_rate"],
        "capture_success": g["capture_success"],
        "command": "python benchmarks/curriculum_normal.py --seeds "
        f"{seed} --export {name} --commit {commit}",
    }
    folder = pretrained.export(run_dir, name, facts)
    card = pretrained.card(name)
    stages = ", ".join(f"{s['name']} {s['env_steps'] / 1e6:.2f}M" for s in t["stages"])
    pm, rm = g["prey_per_episode"], r["prey_per_episode"]
    (folder / "MODEL_CARD.md").write_text(f"""# {name}

{AGENT_TEXT[pretrained.config(name)["agent"]]}
trained by the preset `{preset}` (seed {seed}) through its curriculum: {stages}.

- Training: {card["env_steps"]:,} env steps in {t["wall_time_s"] / 60:.0f} min of training on
  a 2-core CPU (the preset's one-hour limit), larvax commit {commit}.
- Evaluated in the unchanged `normal` world over {g["episodes"]} episodes of up to 1000 steps
  (greedy), against uniformly random bouts on the same episodes:
  prey per episode {pm["mean"]:.2f} +- {pm["se"]:.2f} (random {rm["mean"]:.2f} +- {rm["se"]:.2f});
  return {g["return"]["mean"]:.1f} (random {r["return"]["mean"]:.1f}); episode length
  {g["episode_length"]["mean"]:.0f} (random {r["episode_length"]["mean"]:.0f}); starved
  {g["starvation_rate"]:.0%} (random {r["starvation_rate"]:.0%}).
- Load: `larvax.pretrained.load("{name}")`; evaluate: `larvax eval --pretrained {name}`;
  fine-tune: `larvax train --init-from {name} ...`.
- Files: `network.npz` (weights by path, sha256 in `card.json`), `config.yaml` (the world of
  the last stage and the training settings), `card.json` (these facts).
- Reproduce: `{facts["command"]}`.
""")
    return folder


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="r2d2-simfish-curriculum")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--runs-dir", default="runs/curriculum-normal")
    p.add_argument("--set", action="append", default=[], help="training overrides")
    p.add_argument("--episodes", type=int, default=32)
    p.add_argument("--no-train", action="store_true", help="only evaluate the runs as they are")
    p.add_argument("--stage-names", nargs="+", help="stage names of runs of another config")
    p.add_argument("--title", help="title of the curve figure")
    p.add_argument("--export", metavar="NAME", help="ship the first seed's run as this model")
    p.add_argument("--commit", default="unknown", help="the commit that trained it (card)")
    p.add_argument("--out", default="benchmarks/results/curriculum_normal.json")
    p.add_argument("--curve", default="benchmarks/results/curriculum_normal_curve.png")
    args = p.parse_args(argv)
    from larvax.training import config as C
    from larvax.training.curriculum import parse_stages

    result = {
        "benchmark": "curriculum_normal",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "args": vars(args),
        "machine": machine_info(),
        "seeds": {},
    }
    curves = {}
    names = [s.name for s in parse_stages(C.load_preset(args.preset))]
    if args.stage_names:
        names = args.stage_names
    for seed in args.seeds:
        run_dir = Path(args.runs_dir) / f"seed{seed}"
        if not args.no_train:
            train(args.preset, seed, run_dir, args.set)
        result["seeds"][seed] = evaluate_seed(run_dir, args.episodes, 1000 + seed, names)
        curves[seed] = read_curve(run_dir)
    for policy in ("greedy", "random"):
        per_seed = [r[policy]["prey_per_episode"]["mean"] for r in result["seeds"].values()]
        result[f"{policy}_prey_per_episode_over_seeds"] = mean_se(per_seed)
    title = args.title or (
        f"{args.preset}: prey caught per training episode and return, stage boundaries dashed"
    )
    plot(curves, names, Path(args.curve), title)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print_tables(result)
    if args.export:
        seed = args.seeds[0]
        run_dir = Path(args.runs_dir) / f"seed{seed}"
        folder = export(run_dir, args.export, seed, result["seeds"][seed], args.preset, args.commit)
        print(f"pretrained model written to {folder}")
    return result


if __name__ == "__main__":
    main()
