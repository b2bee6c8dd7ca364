"""Validation of config dataclasses: rules declared beside the fields, one error format.

Every config error reads ``Owner.field=value is not allowed; allowed: what is``, so a user
sees the field, the value and the fix in one line. A field declares its rule with
:func:`field`; ``__post_init__`` calls :func:`validate` and adds cross-field checks with
:func:`require`::

    @dataclass(frozen=True)
    class MyConfig:
        steps: int = field(10, Int(ge=1))
        rate: float = field(0.1, Number(gt=0.0, le=1.0))
        mode: str = field("a", OneOf("a", "b"))

        def __post_init__(self):
            validate(self)
            require(self, "steps", self.steps % 2 == 0, "an even int")
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np


class ConfigValueError(ValueError):
    """A config field holds a value outside its allowed set."""


def fail(owner: Any, name: str, value: Any, allowed: str) -> NoReturn:
    """Raise the one-line config error for ``owner.name = value``."""
    owner_name = owner if isinstance(owner, str) else type(owner).__name__
    raise ConfigValueError(f"{owner_name}.{name}={value!r} is not allowed; allowed: {allowed}")


def require(owner: Any, name: str, ok: bool, allowed: str) -> None:
    """Raise the config error for field ``name`` of ``owner`` unless ``ok``."""
    if not ok:
        fail(owner, name, getattr(owner, name), allowed)


def _is_int(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _is_number(value) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _bounds_text(ge, gt, le, lt) -> str:
    parts = []
    if gt is not None:
        parts.append(f"> {gt}")
    if ge is not None:
        parts.append(f">= {ge}")
    if lt is not None:
        parts.append(f"< {lt}")
    if le is not None:
        parts.append(f"<= {le}")
    return " and ".join(parts)


def _in_bounds(value, ge, gt, le, lt) -> bool:
    return (
        (ge is None or value >= ge)
        and (gt is None or value > gt)
        and (le is None or value <= le)
        and (lt is None or value < lt)
    )


@dataclass(frozen=True)
class Int:
    """An int (not a bool) within optional bounds."""

    ge: int | None = None
    gt: int | None = None
    le: int | None = None
    lt: int | None = None

    def ok(self, value) -> bool:
        return _is_int(value) and _in_bounds(value, self.ge, self.gt, self.le, self.lt)

    def describe(self) -> str:
        bounds = _bounds_text(self.ge, self.gt, self.le, self.lt)
        return f"an int {bounds}" if bounds else "an int"


@dataclass(frozen=True)
class Number:
    """A finite real number (int or float, not a bool) within optional bounds."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def ok(self, value) -> bool:
        return (
            _is_number(value)
            and math.isfinite(float(value))
            and _in_bounds(float(value), self.ge, self.gt, self.le, self.lt)
        )

    def describe(self) -> str:
        bounds = _bounds_text(self.ge, self.gt, self.le, self.lt)
        return f"a finite number {bounds}" if bounds else "a finite number"


@dataclass(frozen=True)
class Bool:
    """True or False."""

    def ok(self, value) -> bool:
        return isinstance(value, bool | np.bool_)

    def describe(self) -> str:
        return "True or False"


class OneOf:
    """One of the listed values (compared with ``==`` and by type for bools)."""

    def __init__(self, *choices):
        self.choices = choices

    def ok(self, value) -> bool:
        for c in self.choices:
            if isinstance(c, bool) or isinstance(value, bool | np.bool_):
                if c is value or (isinstance(value, np.bool_) and bool(value) is c):
                    return True
            elif type(c) is type(value) and c == value:
                return True
        return False

    def describe(self) -> str:
        return ", ".join(repr(c) for c in self.choices)


class AnyOf:
    """Any value that one of the given rules allows (e.g. ``AnyOf(OneOf("auto"), Int(ge=1))``)."""

    def __init__(self, *rules):
        self.rules = rules

    def ok(self, value) -> bool:
        return any(r.ok(value) for r in self.rules)

    def describe(self) -> str:
        return " or ".join(r.describe() for r in self.rules)


class Optional(AnyOf):
    """None, or what ``rule`` allows."""

    def __init__(self, rule):
        super().__init__(OneOf(None), rule)

    def describe(self) -> str:
        return f"None or {self.rules[1].describe()}"


def field(default, rule, **kwargs):
    """A dataclass field with a validation ``rule`` (checked by :func:`validate`)."""
    metadata = dict(kwargs.pop("metadata", {}) or {})
    metadata["rule"] = rule
    if isinstance(default, list | dict | set):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata, **kwargs)


def validate(obj) -> None:
    """Check every field of the dataclass ``obj`` that declares a rule, in field order."""
    for f in dataclasses.fields(obj):
        rule = f.metadata.get("rule")
        if rule is not None:
            value = getattr(obj, f.name)
            if not rule.ok(value):
                fail(obj, f.name, value, rule.describe())


def from_dict(cls, config, what: str | None = None):
    """Build the dataclass ``cls`` from a mapping (or return an instance as is); unknown keys
    are a one-line error listing the allowed ones."""
    if config is None:
        return cls()
    if isinstance(config, cls):
        return config
    owner = what or cls.__name__
    if not isinstance(config, dict):
        raise ConfigValueError(
            f"{owner}: expected a mapping of field names to values, got {type(config).__name__}"
        )
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(config) - set(names))
    if unknown:
        raise ConfigValueError(f"{owner}: unknown field(s) {unknown}; allowed: {', '.join(names)}")
    return cls(**config)


__all__ = [
    "AnyOf",
    "Bool",
    "ConfigValueError",
    "Int",
    "Number",
    "OneOf",
    "Optional",
    "fail",
    "field",
    "from_dict",
    "require",
    "validate",
]
