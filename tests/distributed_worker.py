"""One process of a multi-process test run (tests/test_distributed.py starts it).

``python tests/distributed_worker.py AGENT OUT PROCESS_ID NUM_PROCESSES PORT UPDATES``
joins ``NUM_PROCESSES`` CPU processes (one device each, gloo) through ``jax.distributed``
on ``localhost:PORT``, trains ``UPDATES`` updates of the tiny PPO or R2D2 test agent over
the global mesh, saves an orbax checkpoint from every process into ``OUT/ckpt`` and, on
process 0 only, the metrics and parameters into ``OUT/result.npz``.

AGENT ``loop-ppo`` / ``loop-r2d2`` runs the training loop instead (:func:`loop_config`, run
directory ``OUT/run``, ``UPDATES`` updates; a negative UPDATES resumes the run).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402


def tiny_agent(name: str, num_devices: int):
    """The tiny agents of test_ppo / test_r2d2 on ``num_devices`` devices."""
    if name == "ppo":
        from flax import nnx

        from larvax.agents.ppo import make_agent
        from test_ppo import CONFIG, CueEnv, TinyGRUActorCritic

        net = TinyGRUActorCritic(2, num_actions=2, rngs=nnx.Rngs(0))
        return make_agent(CueEnv(), None, net, dict(CONFIG, num_devices=num_devices))
    from larvax.agents.r2d2 import make_agent
    from test_r2d2 import CFG, CueEnv, tiny_net

    return make_agent(CueEnv(delay=3), None, tiny_net(), dict(CFG, num_devices=num_devices))


def loop_config(agent: str, updates: int) -> dict:
    """A tiny training-loop config (RepeatPreviousEasy) for ``updates`` updates."""
    if agent == "ppo":
        agent_config = dict(num_envs=4, rollout_length=8, num_epochs=1, num_minibatches=2)
        network = {"name": "shared_actor_critic", "torso": "gru", "hidden": [8], "hidden_size": 8}
        steps = 4 * 8
    else:
        from test_r2d2 import CFG

        agent_config = {k: v for k, v in CFG.items() if k not in ("learning_rate", "discount")}
        network = {"name": "recurrent_q", "hidden_size": 8, "mlp_hidden": [8], "head_hidden": [8]}
        steps = CFG["num_envs"] * CFG["period"]
    return {
        "name": f"{agent}-processes",
        "agent": agent,
        "env": {"name": "RepeatPreviousEasy"},
        "network": network,
        "agent_config": dict(agent_config, num_devices=len(jax.devices())),
        "total_env_steps": steps * updates,
        "seed": 0,
        "chunk_updates": 2,
        "checkpoint_every_seconds": 0,
        "keep_checkpoints": 3,
    }


def run_loop(agent: str, out: str, updates: int) -> None:
    from larvax.training import loop

    run_dir = Path(out) / "run"
    if updates < 0:
        loop.run(None, run_dir=run_dir, resume=True, progress=False)
    else:
        loop.run(loop_config(agent, updates), run_dir=run_dir, progress=False)


def main(agent_name, out, process_id, num_processes, port, updates):
    import numpy as np

    from larvax import distributed
    from larvax.training.checkpoint import Checkpointer

    jax.config.update("jax_num_cpu_devices", 1)
    if num_processes > 1:
        cluster = distributed.resolve(f"localhost:{port}", num_processes, process_id)
        distributed.initialize(cluster, timeout_s=120)
    if agent_name.startswith("loop-"):
        run_loop(agent_name[5:], out, updates)
        distributed.barrier("worker-done")
        return
    agent = tiny_agent(agent_name, len(jax.devices()))
    state, metrics = agent.train(agent.init(jax.random.key(0)), updates)
    metrics = distributed.to_host(metrics)
    params = distributed.to_host(state.params)
    ckpt = Checkpointer(Path(out) / "ckpt", keep=2)
    ckpt.save(updates, state, {"updates": updates})
    ckpt.close()
    if distributed.is_writer():
        leaves = {f"param_{i}": x for i, x in enumerate(jax.tree.leaves(params))}
        np.savez(
            Path(out) / "result.npz", **leaves, **{f"metric_{k}": v for k, v in metrics.items()}
        )
    distributed.barrier("worker-done")


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], a[1], int(a[2]), int(a[3]), int(a[4]), int(a[5]))
