"""Where a run stands in its curriculum: the stage, since which env step, the stage's rows;
builds each stage's environment and agent once, and switches between them.

The rules (what a stage is, when it ends, what carries over) are in ``curriculum.py``; this
module applies them to one training session (``loop.py``). A run without ``stages`` has a
single implicit stage and writes no ``stage`` column.
"""

from __future__ import annotations

from collections.abc import Callable

import jax

from larvax.training.curriculum import (
    carry_over,
    check_compatible,
    check_rule_metric,
    parse_stages,
    per_env_value,
    stage_decision,
)

__all__ = ["StageTracker", "stage_spans"]


class StageTracker:
    """The curriculum position of a run (``build(cfg, i) -> (env, env_params, agent)``)."""

    def __init__(self, cfg: dict, build: Callable):
        self.cfg = cfg
        self.stages = parse_stages(cfg)
        self.curriculum = bool(cfg.get("stages"))
        self._build = build
        self._built: dict[int, tuple] = {}
        self.index = 0
        self.start_env_steps = 0
        self.rows: list[dict] = []

    # ------------------------------------------------------------------ building

    def built(self, index: int) -> tuple:
        if index not in self._built:
            self._built[index] = self._build(self.cfg, index)
        return self._built[index]

    @property
    def env(self):
        return self.built(self.index)[0]

    @property
    def agent(self):
        return self.built(self.index)[2]

    @property
    def label(self) -> str:
        return f"{self.stages[self.index].name} ({self.index + 1}/{len(self.stages)})"

    def check_all(self) -> None:
        """Build every stage and check it before training starts: advancement metrics the
        environment reports, ``per_env`` fields it has, carried shapes that match."""
        if not self.curriculum:
            return
        first_agent = self.built(0)[2]
        first = jax.eval_shape(first_agent.init, jax.random.key(0))
        for i, stage in enumerate(self.stages):
            env, env_params, agent = self.built(i)
            columns = ["episode_return", "episode_length"]
            columns += [m.name for m in getattr(env, "episode_metrics", ())]
            check_rule_metric(stage, i, columns)
            per_env_value(stage, i, env_params)
            if i:
                check_compatible(first_agent, first, agent, i, stage)

    def announce(self, report) -> None:
        if self.curriculum:
            names = ", ".join(s.name for s in self.stages)
            report(f"curriculum of {len(self.stages)} stages ({names}); now {self.label}")

    # ------------------------------------------------------------------ resume

    def record(self) -> dict:
        """What a checkpoint stores about the stage."""
        if not self.curriculum:
            return {}
        return {"stage": self.index, "stage_start_env_steps": self.start_env_steps}

    def restore(self, record: dict) -> None:
        self.index = int(record.get("stage", 0))
        self.start_env_steps = int(record.get("stage_start_env_steps", 0))
        self.rows = []

    def load_rows(self, rows: list[dict]) -> None:
        """The current stage's rows among the run's CSV rows (after a resume)."""
        if self.curriculum:
            self.rows = [r for r in rows if int(float(r.get("stage", 0))) == self.index]

    # ------------------------------------------------------------------ training

    def tag(self, row: dict) -> dict:
        if self.curriculum:
            row["stage"] = self.index
        return row

    def advance(self, state, row: dict, env_steps: int, report):
        """After a chunk's ``row``: ``(state, True)`` in the next stage if the current one
        ends (its rule holds or its budget is used), else ``(state, False)``."""
        if not self.curriculum or self.index >= len(self.stages) - 1:
            return state, False
        self.rows.append(row)
        stage = self.stages[self.index]
        per_env = per_env_value(stage, self.index, self.built(self.index)[1])
        reason = stage_decision(stage, self.rows, env_steps - self.start_env_steps, per_env)
        if reason is None:
            return state, False
        old_label, nxt = self.label, self.index + 1
        agent = self.built(nxt)[2]
        fresh = agent.init(jax.random.fold_in(jax.random.key(self.cfg["seed"]), nxt))
        state = carry_over(agent, state, fresh, self.stages[nxt].carry_replay)
        self.index, self.start_env_steps, self.rows = nxt, env_steps, []
        report(f"stage {old_label} ends at {env_steps:,} env steps ({reason}): now {self.label}")
        return state, True


def stage_spans(rows: list[dict], names: list[str]) -> list[dict]:
    """Per stage that ran: name, first and last env step and training seconds (from the
    ``stage`` column of metric rows)."""
    spans: list[dict] = []
    prev_steps = prev_wall = 0.0
    for row in rows:
        index = int(float(row.get("stage", 0)))
        steps, wall = float(row["env_steps"]), float(row["wall_time_s"])
        if not spans or spans[-1]["index"] != index:
            spans.append(
                {
                    "index": index,
                    "name": names[index] if index < len(names) else str(index),
                    "start_env_steps": int(prev_steps),
                    "env_steps": 0,
                    "wall_time_s": 0.0,
                }
            )
        span = spans[-1]
        span["env_steps"] += int(steps - prev_steps)
        span["wall_time_s"] = round(span["wall_time_s"] + wall - prev_wall, 3)
        prev_steps, prev_wall = steps, wall
    return spans
