"""R2D2: recurrent replay distributed DQN (Kapturowski et al., ICLR 2019), compiled end to end.

One transition's path, a file for each concern:

1. ``acting.py``: the actors act epsilon-greedily through the online network (and its
   mirrored stream), step their environments (dm_env final-observation ticks) and write one
   ``StoredStep`` per tick.
2. ``larvax.agents.replay``: the steps and the recurrent states held before them go into a
   prioritised sequence replay (one item of ``burn_in + trace_length + 1`` steps every
   ``period`` steps; photon counts stored as uint8).
3. ``learning.py``: sampled sequences run through the online and target networks after a
   burn-in; the TD maths (n-step double-Q targets with value rescaling, weighted TD loss,
   priorities, importance weights) are the pure functions of ``larvax.agents.losses``.
4. ``agent.py``: ``R2D2Agent`` wires them into ``init``, ``train`` (one ``jax.jit`` of one
   ``lax.scan`` over updates, under ``jax.shard_map`` over the devices) and ``act``.

``config.py`` holds ``R2D2Config`` and its documented defaults.
"""

from larvax.agents.losses import n_step_targets
from larvax.agents.r2d2.acting import (
    ActCarry,
    ActorState,
    StoredStep,
    compress_observation,
    decompress_observation,
    mirror_batch,
)
from larvax.agents.r2d2.agent import R2D2Agent, make_agent
from larvax.agents.r2d2.config import AXIS, R2D2Config, actor_epsilons, resolve_num_devices
from larvax.agents.r2d2.learning import LossOutput, TrainState, r2d2_loss

__all__ = [
    "AXIS",
    "ActCarry",
    "ActorState",
    "LossOutput",
    "R2D2Agent",
    "R2D2Config",
    "StoredStep",
    "TrainState",
    "actor_epsilons",
    "compress_observation",
    "decompress_observation",
    "make_agent",
    "mirror_batch",
    "n_step_targets",
    "r2d2_loss",
    "resolve_num_devices",
]
