"""Curricula as data: a run config may list ``stages``, each an environment (and optionally
agent settings) with an env-step budget and/or an advancement rule.

::

    stages:
      - name: dish                    # shown in the progress display, plots, notes
        env: {arena_width: 500, prey_num: 500}   # merged over the run's ``env``
        agent_config: {epsilon_max: 0.4}         # merged over the run's ``agent_config``
        max_env_steps: 2000000        # the stage's budget (the last stage: the run's rest)
        advance:                      # optional: move on earlier once this holds
          metric: prey_caught         # a CSV episode column of the environment
          per_env: prey_num           # optional: divide by this env field (caught / available)
          threshold: 20
          episodes: 256               # over at least the last 256 training episodes
        carry_replay: true            # R2D2's replay moves into this stage (default)

One run directory holds the whole curriculum. Between stages the network, the optimiser
state, the counters and (``carry_replay``) the replay carry over; what belongs to the world
(environment states, observations, recurrent carries of the actors) starts fresh from the
new environment, with a key derived from the run seed and the stage index, so a resumed run
switches exactly as an uninterrupted one. ``metrics.csv`` gets a ``stage`` column (the
stage index); the advancement rule reads only the rows of the current stage, so it is a
function of the CSV rows, and a resume after a kill re-decides every switch identically.

The rule is checked after every chunk: a stage ends after the first chunk at which its
env-step budget is used up, or at which the episode-weighted mean of ``metric`` over the
most recent rows of this stage that together hold at least ``episodes`` finished episodes is
at least ``threshold``. Stages may change any agent setting that keeps the carried state's
shapes and the env steps per update (epsilons, learning rate, samples per insert, ...).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import jax
import numpy as np

__all__ = [
    "Advance",
    "CurriculumError",
    "Stage",
    "carry_over",
    "check_compatible",
    "check_rule_metric",
    "parse_stages",
    "per_env_value",
    "stage_config",
    "stage_decision",
]

STAGE_KEYS = ("name", "env", "agent_config", "max_env_steps", "advance", "carry_replay")
ADVANCE_KEYS = ("metric", "threshold", "episodes", "per_env")


class CurriculumError(ValueError):
    """A bad stage list (one-line message naming the field, the value and what is allowed)."""


@dataclass(frozen=True)
class Advance:
    metric: str
    threshold: float
    episodes: int = 100
    per_env: str | None = None


@dataclass(frozen=True)
class Stage:
    name: str
    env: dict
    agent_config: dict
    max_env_steps: int | None
    advance: Advance | None
    carry_replay: bool = True


def _bad(where: str, value, allowed: str) -> CurriculumError:
    return CurriculumError(f"{where}={value!r} is not allowed; allowed: {allowed}")


def _parse_advance(where: str, raw) -> Advance | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _bad(where, raw, "a mapping {metric, threshold, episodes, per_env}")
    unknown = sorted(set(raw) - set(ADVANCE_KEYS))
    if unknown:
        raise _bad(f"{where}.{unknown[0]}", raw[unknown[0]], f"keys {', '.join(ADVANCE_KEYS)}")
    metric = raw.get("metric")
    if not isinstance(metric, str) or not metric:
        raise _bad(f"{where}.metric", metric, "the name of an episode column (e.g. prey_caught)")
    threshold = raw.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise _bad(f"{where}.threshold", threshold, "a number")
    episodes = raw.get("episodes", 100)
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise _bad(f"{where}.episodes", episodes, "an int >= 1")
    per_env = raw.get("per_env")
    if per_env is not None and not isinstance(per_env, str):
        raise _bad(f"{where}.per_env", per_env, "the name of a numeric env field (e.g. prey_num)")
    return Advance(metric, float(threshold), episodes, per_env)


def parse_stages(cfg: dict) -> list[Stage]:
    """The validated stages of a run config (one implicit stage without ``stages``)."""
    raw = cfg.get("stages")
    if raw is None:
        return [Stage("main", {}, {}, None, None)]
    if not isinstance(raw, list) or not raw:
        raise _bad("stages", raw, "a non-empty list of stage mappings")
    stages, names = [], set()
    for i, item in enumerate(raw):
        where = f"stages[{i}]"
        if not isinstance(item, dict):
            raise _bad(where, item, "a mapping with keys " + ", ".join(STAGE_KEYS))
        unknown = sorted(set(item) - set(STAGE_KEYS))
        if unknown:
            raise _bad(f"{where}.{unknown[0]}", item[unknown[0]], f"keys {', '.join(STAGE_KEYS)}")
        name = item.get("name", f"stage{i}")
        if not isinstance(name, str) or not name or name in names:
            raise _bad(f"{where}.name", name, "a non-empty name not used by another stage")
        names.add(name)
        env = item.get("env", {}) or {}
        if not isinstance(env, dict):
            raise _bad(f"{where}.env", env, "a mapping of env settings")
        if "name" in env and env["name"] != cfg["env"]["name"]:
            raise _bad(f"{where}.env.name", env["name"], f"{cfg['env']['name']!r} (the run's env)")
        agent = item.get("agent_config", {}) or {}
        if not isinstance(agent, dict):
            raise _bad(f"{where}.agent_config", agent, "a mapping of agent settings")
        budget = item.get("max_env_steps")
        last = i == len(raw) - 1
        if budget is None and not last:
            raise _bad(f"{where}.max_env_steps", budget, "an int >= 1 (every stage but the last)")
        if budget is not None and (
            isinstance(budget, bool) or not isinstance(budget, int) or budget < 1
        ):
            raise _bad(f"{where}.max_env_steps", budget, "an int >= 1")
        carry = item.get("carry_replay", True)
        if not isinstance(carry, bool):
            raise _bad(f"{where}.carry_replay", carry, "true or false")
        advance = _parse_advance(f"{where}.advance", item.get("advance"))
        stages.append(Stage(name, env, agent, budget, advance, carry))
    return stages


def stage_config(cfg: dict, stage: Stage) -> dict:
    """The run config as the agent of ``stage`` sees it (its env and agent settings merged)."""
    out = copy.deepcopy(cfg)
    out.pop("stages", None)
    out["env"] = {**out["env"], **stage.env}
    out["agent_config"] = {**out.get("agent_config", {}), **stage.agent_config}
    return out


def _rule_value(rows: list[dict], rule: Advance, per_env: float | None) -> tuple[float, float]:
    """(mean of ``rule.metric`` over the newest rows holding >= ``rule.episodes`` episodes,
    episodes counted); NaN while fewer episodes have finished in the stage."""
    total = weighted = 0.0
    for row in reversed(rows):
        n = float(row.get("episodes", 0) or 0)
        value = float(row.get(rule.metric, "nan"))
        if n > 0 and np.isfinite(value):
            total += n
            weighted += n * value
        if total >= rule.episodes:
            break
    if total < rule.episodes:
        return float("nan"), total
    mean = weighted / total
    return (mean / per_env if per_env else mean), total


def stage_decision(
    stage: Stage, stage_rows: list[dict], stage_env_steps: int, per_env: float | None = None
) -> str | None:
    """Why ``stage`` ends after these rows (a one-line reason), or None to stay in it.
    ``per_env``: the value of ``stage.advance.per_env`` in the stage's environment."""
    if stage.advance is not None:
        value, episodes = _rule_value(stage_rows, stage.advance, per_env)
        if np.isfinite(value) and value >= stage.advance.threshold:
            what = stage.advance.metric
            if stage.advance.per_env:
                what += f" / {stage.advance.per_env}"
            return (
                f"{what} {value:.3g} >= {stage.advance.threshold:g} over the last "
                f"{episodes:.0f} episodes"
            )
    if stage.max_env_steps is not None and stage_env_steps >= stage.max_env_steps:
        return f"its budget of {stage.max_env_steps:,} env steps is used"
    return None


def per_env_value(stage: Stage, index: int, env_params) -> float | None:
    """The env field a rule divides by (``advance.per_env``), read from the stage's env
    parameters; a missing or non-positive field is a CurriculumError."""
    rule = stage.advance
    if rule is None or rule.per_env is None:
        return None
    value = getattr(env_params, rule.per_env, None)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise _bad(
            f"stages[{index}].advance.per_env",
            rule.per_env,
            "a positive numeric field of the stage's environment parameters (e.g. prey_num)",
        )
    return float(value)


def check_rule_metric(stage: Stage, index: int, episode_columns: list[str]) -> None:
    """An advancement metric must be an episode column this environment reports."""
    if stage.advance is not None and stage.advance.metric not in episode_columns:
        raise _bad(f"stages[{index}].advance.metric", stage.advance.metric,
                   ", ".join(episode_columns))  # fmt: skip


def check_compatible(first_agent, first_abstract, agent, index: int, stage: Stage) -> None:
    """Stage ``index`` must keep the env steps per update and the carried state's shapes
    (``first_abstract``: ``jax.eval_shape`` of the first stage's ``init``)."""
    if int(first_agent.env_steps_per_update) != int(agent.env_steps_per_update):
        raise CurriculumError(
            f"stages[{index}] ({stage.name}) changes the env steps per update "
            f"({first_agent.env_steps_per_update} -> {agent.env_steps_per_update}); allowed: "
            "stages that keep num_envs and the agent's steps per update"
        )
    abstract = jax.eval_shape(agent.init, jax.random.key(0))
    for field_name in _carried_fields(agent, stage.carry_replay, abstract):
        a = jax.tree.map(lambda x: (x.shape, x.dtype), getattr(first_abstract, field_name))
        b = jax.tree.map(lambda x: (x.shape, x.dtype), getattr(abstract, field_name))
        same = jax.tree.structure(a) == jax.tree.structure(b)
        if not same or jax.tree.leaves(a) != jax.tree.leaves(b):
            raise CurriculumError(
                f"stages[{index}] ({stage.name}) changes the shape of the carried "
                f"{field_name!r}; allowed: stage settings that keep the network, the "
                "observation shape and the replay's size (e.g. epsilons, learning rate, "
                "rewards, arena, prey)"
            )


def _carried_fields(agent, carry_replay: bool, state) -> list[str]:
    """The TrainState fields that move into the next stage: all but the agent's declared
    ``environment_fields`` (and its ``replay_fields`` unless ``carry_replay``)."""
    if not hasattr(state, "_fields"):
        raise CurriculumError(
            f"{type(agent).__name__}'s training state is not a NamedTuple: it cannot be "
            "carried between stages"
        )
    fresh = set(getattr(agent, "environment_fields", ()))
    if not carry_replay:
        fresh |= set(getattr(agent, "replay_fields", ()))
    return [f for f in state._fields if f not in fresh]


def carry_over(new_agent, old_state, fresh_state, carry_replay: bool):
    """``fresh_state`` (the new stage's ``init``) with the learner's side of ``old_state``."""
    keep = _carried_fields(new_agent, carry_replay, fresh_state)
    state = fresh_state._replace(**{f: getattr(old_state, f) for f in keep})
    if hasattr(new_agent, "shard"):
        state = new_agent.shard(state)
    return state
