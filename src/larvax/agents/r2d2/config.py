"""R2D2's hyper-parameters (``R2D2Config``), the actors' epsilons and the device count."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from larvax.validation import (
    AnyOf,
    Int,
    Number,
    OneOf,
    Optional,
    field,
    from_dict,
    require,
    validate,
)

AXIS = "devices"  # the data-parallel mesh axis: actors, replay rows and batch rows split on it


@dataclass(frozen=True)
class R2D2Config:
    """R2D2 hyper-parameters. Defaults: simfish_rl's, except where noted.

    burn_in, trace_length, period: replayed sequences have ``burn_in + trace_length + 1``
        steps and start every ``period`` steps (one update acts ``period`` steps per actor).
    n_step, discount: n-step double-Q targets, gamma per step.
    batch_size: sequences per learner step.
    learning_rate, adam_eps: Adam (optax). ``adam_eps`` 1e-3 as in the R2D2 paper.
    max_grad_norm: global-norm gradient clipping, None for none.
    target_update_period: learner steps between copies of the online network to the target.
    priority_exponent (alpha), importance_exponent (beta), max_priority_weight (eta):
        prioritised replay; priority = eta max|TD| + (1-eta) mean|TD|, P ~ p^alpha.
    samples_per_insert: sampled sequences per inserted sequence; with ``num_envs`` sequences
        inserted per update this gives ``samples_per_insert * num_envs / batch_size`` learner
        steps per update, which must be a whole number.
    num_envs: parallel actors.
    replay_capacity: sequence items kept (``num_envs`` must divide it); every item owns
        ``period`` stored steps, see ``larvax.agents.replay``. Simfish: a step is 868 bytes
        (uint8 visual 834, internal 12, action/reward/flags 22; 3,370 with float32 visual),
        an item's two LSTM(64) states 1,024, so C items cost C * (20 * 868 + 1,028) bytes:
        287 MiB at the default C = 16384 (``R2D2Agent.replay_nbytes()``).
    min_replay_size: sampleable sequences before learning starts.
    value_rescale_eps: eps of h(x) = sign(x)(sqrt(|x|+1)-1) + eps x.
    epsilon_max, epsilon_min: actor epsilons, log-spaced over the actors (one actor: max).
    mirror: "auto" (when the environment declares a mirror map), True or False.
    mirror_carry: "exact" (the actors also run the mirrored stream and store its state) or
        "reuse" (the mirrored batch starts from the unmirrored state, as simfish_rl does).
    mirror_update: "joint" (one gradient step on the batch and its mirror, one forward of
        2 x batch_size) or "sequential" (two Adam steps, the two halves in random order, as
        simfish_rl does).
    mirror_features: "auto" (when the network's observation module declares
        ``mirror_features``, e.g. the Simfish Retina, and its mirrored features match those of
        the environment's reflected observation on a random check at start-up: the mirrored
        half of each batch and of the actors' mirrored stream reuses the unmirrored
        convolution, ``Network(..., with_mirror=True)``), or False (always convolve the
        reflected observations). The same function either way; "auto" is ~2x cheaper in the
        Retina.
    compact_observations: "auto" (store Box(0, 255) observation leaves as uint8), or False.
    num_devices: data-parallel devices (``jax.devices()``): "auto" (the most devices, up to
        all, that divide both ``num_envs`` and ``batch_size``) or an int. Each device runs
        ``num_envs / D`` actors with their own replay rows and learns on ``batch_size / D``
        sequences drawn from them (prioritised within its rows, stratified over devices);
        gradients are averaged over devices (``lax.pmean``), so every device holds the same
        network. On a CPU, JAX has one device unless asked for more (``larvax train
        --cpu-devices N``; one is faster for R2D2 on a 2-core CPU, measured).
    """

    burn_in: int = field(8, Int(ge=0))
    trace_length: int = field(75, Int(ge=1))
    period: int = field(20, Int(ge=1))
    n_step: int = field(5, Int(ge=1))
    discount: float = field(0.997, Number(ge=0.0, le=1.0))
    batch_size: int = field(32, Int(ge=1))
    learning_rate: float = field(1e-4, Number(gt=0.0))
    adam_eps: float = field(1e-3, Number(ge=0.0))
    max_grad_norm: float | None = field(None, Optional(Number(gt=0.0)))
    target_update_period: int = field(1200, Int(ge=1))
    priority_exponent: float = field(0.9, Number(ge=0.0))
    importance_exponent: float = field(0.6, Number(ge=0.0, le=1.0))
    max_priority_weight: float = field(0.9, Number(ge=0.0, le=1.0))
    samples_per_insert: float = field(1.0, Number(gt=0.0))
    num_envs: int = field(64, Int(ge=1))
    replay_capacity: int = field(16384, Int(ge=1))
    min_replay_size: int = field(1024, Int(ge=1))
    value_rescale_eps: float = field(1e-3, Number(ge=0.0, le=1.0))
    epsilon_max: float = field(0.1, Number(ge=0.0, le=1.0))
    epsilon_min: float = field(0.001, Number(ge=0.0, le=1.0))
    mirror: Any = field("auto", OneOf("auto", True, False))
    mirror_carry: str = field("exact", OneOf("exact", "reuse"))
    mirror_update: str = field("joint", OneOf("joint", "sequential"))
    mirror_features: Any = field("auto", OneOf("auto", False))
    compact_observations: Any = field("auto", OneOf("auto", False))
    num_devices: Any = field("auto", AnyOf(OneOf("auto"), Int(ge=1)))

    def __post_init__(self):
        validate(self)
        self._check_exploration_and_devices()
        self._check_replay_and_batches()

    def _check_exploration_and_devices(self) -> None:
        require(
            self,
            "epsilon_min",
            self.epsilon_min <= self.epsilon_max,
            f"a number <= epsilon_max={self.epsilon_max}",
        )
        require(
            self,
            "epsilon_min",
            not (self.epsilon_min == 0.0 and self.num_envs > 1 and self.epsilon_max > 0),
            "a number > 0 (epsilons are log-spaced)",
        )
        require(
            self,
            "num_devices",
            self.num_devices == "auto"
            or not (self.num_envs % self.num_devices or self.batch_size % self.num_devices),
            f"a divisor of both num_envs={self.num_envs} and batch_size={self.batch_size}",
        )

    def _check_replay_and_batches(self) -> None:
        require(
            self,
            "n_step",
            self.n_step <= self.trace_length,
            f"an int <= trace_length={self.trace_length}",
        )
        require(
            self,
            "replay_capacity",
            self.replay_capacity % self.num_envs == 0,
            f"a multiple of num_envs={self.num_envs}",
        )
        length, period = self.sequence_length, self.period
        need = -(-length // period) * self.num_envs
        require(
            self,
            "replay_capacity",
            self.slots_per_env * period >= length,
            f">= {need} (each actor must keep one whole sequence of {length} steps = "
            f"ceil({length}/{period}) items of period {period})",
        )
        require(
            self,
            "min_replay_size",
            self.min_replay_size <= self.max_valid_items,
            f"<= {self.max_valid_items}, the sequences a full replay of capacity "
            f"{self.replay_capacity} can hold",
        )
        require(
            self,
            "batch_size",
            self.batch_size <= self.min_replay_size,
            f"<= min_replay_size={self.min_replay_size}",
        )
        steps = self.samples_per_insert * self.num_envs / self.batch_size
        require(
            self,
            "samples_per_insert",
            abs(steps - round(steps)) <= 1e-9 and round(steps) >= 1,
            f"a value making samples_per_insert * num_envs / batch_size "
            f"(= {steps:g} learner steps per update) a whole number >= 1",
        )

    @property
    def sequence_length(self) -> int:
        return self.burn_in + self.trace_length + 1

    @property
    def slots_per_env(self) -> int:
        return self.replay_capacity // self.num_envs

    @property
    def max_valid_items(self) -> int:
        return self.num_envs * (
            (self.slots_per_env * self.period - self.sequence_length) // self.period + 1
        )

    @property
    def learner_steps_per_update(self) -> int:
        return int(round(self.samples_per_insert * self.num_envs / self.batch_size))

    @classmethod
    def from_dict(cls, config: dict | None) -> R2D2Config:
        """A config from a dict of fields (unknown keys are an error naming the allowed)."""
        return from_dict(cls, config)


def actor_epsilons(num_envs: int, epsilon_max: float, epsilon_min: float) -> np.ndarray:
    """float32 [num_envs]: epsilons log-spaced from epsilon_max (actor 0) to epsilon_min."""
    if num_envs == 1:
        return np.array([epsilon_max], np.float32)
    if epsilon_max == 0.0:
        return np.zeros(num_envs, np.float32)
    return np.geomspace(epsilon_max, epsilon_min, num_envs).astype(np.float32)


def resolve_num_devices(config: R2D2Config, available: int) -> int:
    """How many of ``available`` devices an agent uses (see ``R2D2Config.num_devices``)."""
    c = config
    if c.num_devices == "auto":
        return max(
            d for d in range(1, available + 1) if c.num_envs % d == 0 and c.batch_size % d == 0
        )
    if c.num_devices > available:
        raise ValueError(
            f"R2D2Config.num_devices={c.num_devices} but JAX sees {available} device(s); "
            f"allowed: 'auto' or an int <= {available}"
        )
    return int(c.num_devices)
