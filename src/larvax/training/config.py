"""Run configuration: presets (YAML data), config files and ``--set key=value`` overrides.

A run config is a nested mapping with these top-level keys:

``description`` (str), ``agent`` ("r2d2" | "ppo"), ``env`` (``{"name": ..., **env kwargs}``,
passed to :func:`larvax.envs.make`), ``network`` (``{"name": registry name, **kwargs}``),
``agent_config`` (fields of the agent's config dataclass, validated there),
``total_env_steps`` (budget in environment steps, rounded up to whole chunks), ``seed``,
``chunk_updates`` (agent updates per compiled ``train`` call; Python logs only between
chunks; every chunk has the same size, so one compilation serves the whole run: a budget of
U updates runs ``ceil(U / c) * c`` updates with ``c = min(chunk_updates, U)``),
``checkpoint_every_seconds``, ``keep_checkpoints``, ``max_wall_time_s`` (stop after the
chunk that reaches this much training time, 0 = no limit; the budget in env steps still
caps the run), ``expected_steps_per_s`` (the preset's measured training rate on the machine
its comment names; the banner scales it by the budget to estimate the time, 0 = unknown),
``stages`` (optional: a curriculum, see ``larvax.training.curriculum``), ``init_from``
(optional: a run directory or pretrained name whose network starts the run,
``larvax train --init-from``).

Presets are YAML files in ``larvax/training/presets/``: data, not code paths.
A config file (``--config``) is merged over ``--preset``, or over the default preset without
one; a section that names another agent or component (``agent``, ``env.name``,
``network.name``) replaces the preset's (``agent_config``, ``env``, ``network``) instead of
being merged into it, and with another agent or environment the preset's ``description`` and
``expected_steps_per_s`` (which describe the preset's job) are dropped.
Overrides use dotted keys (``agent_config.batch_size=64``); a bare key that names exactly
one nested field is accepted as a shortcut (``torso=lru`` -> ``network.torso``). Values
are parsed as YAML scalars and must keep the type of the value they replace.
"""

from __future__ import annotations

import copy
import difflib
import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

TOP_LEVEL: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "description": str,
    "agent": str,
    "env": dict,
    "network": dict,
    "agent_config": dict,
    "total_env_steps": int,
    "seed": int,
    "chunk_updates": int,
    "checkpoint_every_seconds": (int, float),
    "keep_checkpoints": int,
    "max_wall_time_s": (int, float),
    "expected_steps_per_s": (int, float),
    "stages": list,
    "init_from": str,
}
OPTIONAL = ("stages", "init_from")  # absent unless given
DEFAULTS: dict[str, Any] = {
    "name": "run",
    "description": "",
    "agent_config": {},
    "seed": 0,
    "chunk_updates": 10,
    "checkpoint_every_seconds": 120,
    "keep_checkpoints": 3,
    "max_wall_time_s": 0.0,
    "expected_steps_per_s": 0.0,
}
DEFAULT_PRESET = "r2d2-simfish"


class ConfigError(ValueError):
    """A bad preset, key, value or combination; the message names it and what is allowed."""


def _preset_dir():
    return resources.files("larvax.training") / "presets"


def list_presets() -> dict[str, str]:
    """Preset name -> one-line description."""
    out = {}
    for entry in sorted(_preset_dir().iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".yaml"):
            data = yaml.safe_load(entry.read_text()) or {}
            out[entry.name[: -len(".yaml")]] = str(data.get("description", ""))
    return out


def load_preset(name: str) -> dict:
    presets = list_presets()
    if name not in presets:
        raise ConfigError(f"unknown preset {name!r}; allowed: {', '.join(presets)}")
    text = (_preset_dir() / f"{name}.yaml").read_text()
    return yaml.safe_load(text) or {}


def load_file(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(
            f"config file {str(path)!r} is not valid YAML: {_yaml_problem(err)}"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {str(path)!r} must hold a mapping, got {type(data).__name__}"
        )
    return data


def _yaml_problem(err: yaml.YAMLError) -> str:
    """A YAML parser error in one line: the problem and where (line, column; 1-based)."""
    problem = getattr(err, "problem", None)
    mark = getattr(err, "problem_mark", None)
    if not problem:
        return " ".join(str(err).split())
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    context = getattr(err, "context", None)
    return f"{context + ': ' if context else ''}{problem}{where}"


def merge(base: dict, update: dict, path: str = "") -> dict:
    """Recursive merge of ``update`` into a copy of ``base`` (mappings merge, values replace)."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value, f"{path}{key}.")
        else:
            out[key] = copy.deepcopy(value)
    return out


def merge_config_file(preset: dict, data: dict) -> dict:
    """A config file's mapping merged over a preset: sections merge, except that a section
    naming another agent/component replaces the preset's, and with another agent or
    environment the preset's description and measured rate are dropped."""
    base = copy.deepcopy(preset)
    other_agent = "agent" in data and data["agent"] != base.get("agent")
    if other_agent:
        base.pop("agent_config", None)
    other_env = False
    for section in ("env", "network"):
        new = data.get(section)
        if (
            isinstance(new, dict)
            and "name" in new
            and new["name"] != base.get(section, {}).get("name")
        ):
            base.pop(section, None)
            other_env = other_env or section == "env"
    if other_agent or other_env:
        base.pop("description", None)
        base.pop("expected_steps_per_s", None)
    return merge(base, data)


def _type_name(t) -> str:
    if isinstance(t, tuple):
        return " or ".join(x.__name__ for x in t)
    return t.__name__


def _coerce(key: str, text: str, old: Any) -> Any:
    """Parse ``text`` as YAML and check it against the type of ``old`` (if any)."""
    try:
        value = yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError:
        value = text
    if isinstance(value, str) and not isinstance(old, str):
        try:  # YAML 1.1 reads 1e3 as a string
            value = float(value.replace("_", ""))
        except ValueError:
            pass
    if old is None:
        return value
    if isinstance(old, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected a bool (true/false), got {text!r}")
    elif isinstance(old, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an int, got {text!r}")
    elif isinstance(old, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {text!r}")
        value = float(value)
    elif isinstance(old, str):
        value = text if not isinstance(value, str) else value
    elif isinstance(old, list):
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list like [64, 64], got {text!r}")
    elif isinstance(old, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping like {{a: 1}}, got {text!r}")
    return value


def _whole_number(value: Any) -> Any:
    """``1e6`` (a string to YAML 1.1) or ``1000000.0`` as the int it writes; else unchanged."""
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+(\.\d*)?[eE][+-]?\d+", value.strip()):
        value = float(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _leaf_paths(cfg: dict, prefix: tuple = ()) -> list[tuple]:
    out = []
    for k, v in cfg.items():
        out.append(prefix + (k,))
        if isinstance(v, dict):
            out.extend(_leaf_paths(v, prefix + (k,)))
    return out


def apply_override(cfg: dict, assignment: str) -> dict:
    """Apply one ``key=value`` override (dotted key, or a bare key naming one nested field)."""
    if "=" not in assignment:
        raise ConfigError(f"--set expects key=value, got {assignment!r}")
    key, text = assignment.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set expects key=value, got {assignment!r}")
    parts = tuple(key.split("."))
    if len(parts) == 1 and parts[0] not in TOP_LEVEL:
        matches = [p for p in _leaf_paths(cfg) if p[-1] == parts[0] and len(p) > 1]
        if len(matches) == 1:
            parts = matches[0]
        elif len(matches) > 1:
            options = ", ".join(".".join(m) for m in matches)
            raise ConfigError(f"--set {key}: ambiguous, write one of: {options}")
        elif parts[0] not in TOP_LEVEL:
            raise ConfigError(
                f"--set {key}: unknown key; allowed top-level keys: {', '.join(TOP_LEVEL)} "
                "(or section.field, e.g. agent_config.batch_size)"
            )
    if parts[0] not in TOP_LEVEL:
        raise ConfigError(
            f"--set {key}: unknown section {parts[0]!r}; allowed: {', '.join(TOP_LEVEL)}"
        )
    out = copy.deepcopy(cfg)
    node = out
    for p in parts[:-1]:
        nxt = node.get(p)
        if nxt is None:
            nxt = node[p] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"--set {key}: {p!r} is a value, not a section")
        node = nxt
    old = node.get(parts[-1])
    if len(parts) == 1:
        expected = TOP_LEVEL[parts[0]]
        if old is None and expected in (int, float, (int, float), str, bool):
            old = {int: 0, str: "", bool: False}.get(expected, 0.0)
    node[parts[-1]] = _coerce(key, text, old)
    return out


def validate(cfg: dict) -> dict:
    """Fill defaults and check the top level; the agent validates ``agent_config`` itself."""
    unknown = sorted(set(cfg) - set(TOP_LEVEL))
    if unknown:
        hints = [difflib.get_close_matches(k, TOP_LEVEL, n=1) for k in unknown]
        hint = (
            "".join(f" (did you mean {h[0]!r}?)" for h in hints if h) if len(unknown) == 1 else ""
        )
        raise ConfigError(f"unknown config key(s) {unknown}{hint}; allowed: {', '.join(TOP_LEVEL)}")
    out = merge(DEFAULTS, cfg)
    for key in ("agent", "env", "network", "total_env_steps"):
        if key not in out:
            raise ConfigError(f"config is missing the required key {key!r}")
    for key, expected in TOP_LEVEL.items():
        if expected is int and key in out:
            out[key] = _whole_number(out[key])
    for key, expected in TOP_LEVEL.items():
        if key in OPTIONAL and key not in out:
            continue
        value = out[key]
        bad = not isinstance(value, expected) or (expected is int and isinstance(value, bool))
        if bad:
            raise ConfigError(f"{key}: expected {_type_name(expected)}, got {value!r}")
    from larvax.agents.base import agent_names

    if out["agent"] not in agent_names():
        raise ConfigError(
            f"agent: unknown agent {out['agent']!r}; allowed: {', '.join(agent_names())}"
        )
    for section in ("env", "network"):
        if "name" not in out[section]:
            raise ConfigError(f"{section}.name is required (e.g. {section}: {{name: ...}})")
    for key in ("total_env_steps", "chunk_updates", "keep_checkpoints"):
        if out[key] < 1:
            raise ConfigError(f"{key}: must be >= 1, got {out[key]!r}")
    if out["seed"] < 0:
        raise ConfigError(f"seed: must be >= 0, got {out['seed']!r}")
    if out["max_wall_time_s"] < 0:
        raise ConfigError(
            f"max_wall_time_s: must be >= 0 (0 = no limit), got {out['max_wall_time_s']!r}"
        )
    if "stages" in out:
        from larvax.training.curriculum import CurriculumError, parse_stages

        try:
            parse_stages(out)
        except CurriculumError as err:
            raise ConfigError(str(err)) from None
    if out["checkpoint_every_seconds"] < 0:
        raise ConfigError(
            f"checkpoint_every_seconds: must be >= 0, got {out['checkpoint_every_seconds']!r}"
        )
    return out


def resolve(
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    steps: int | None = None,
    seed: int | None = None,
) -> dict:
    """Preset (the default one without ``preset``), then the config file merged over it
    (:func:`merge_config_file`), then ``--set`` overrides, then ``--steps``/``--seed``."""
    cfg = load_preset(preset or DEFAULT_PRESET)
    cfg.setdefault("name", preset or DEFAULT_PRESET)
    if config_file:
        data = load_file(config_file)
        cfg = merge_config_file(cfg, data)
        if "name" not in data and not preset:
            cfg["name"] = Path(config_file).stem
    cfg = merge(DEFAULTS, cfg)
    for assignment in overrides:
        cfg = apply_override(cfg, assignment)
    if steps is not None:
        if steps < 1:
            raise ConfigError(f"--steps must be >= 1, got {steps}")
        cfg["total_env_steps"] = int(steps)
    if seed is not None:
        cfg["seed"] = int(seed)
    return validate(cfg)
