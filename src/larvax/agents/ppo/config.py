"""PPO's hyperparameters: a frozen dataclass validated with :mod:`larvax.validation`.

Fields that name the same thing as R2D2's (``num_envs``, ``discount``, ``learning_rate``,
``adam_eps``, ``max_grad_norm``) have the same names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from larvax.validation import (
    AnyOf,
    Bool,
    Int,
    Number,
    OneOf,
    field,
    from_dict,
    require,
    validate,
)

AXIS = "devices"  # the data-parallel mesh axis: environments and minibatch rows split on it

_POSITIVE_INT = Int(ge=1)
_FRACTION = Number(ge=0.0, le=1.0)
_POSITIVE = Number(gt=0.0)
_NON_NEGATIVE = Number(ge=0.0)


@dataclass(frozen=True)
class PPOConfig:
    """Hyperparameters of recurrent PPO (validated on construction).

    num_envs: parallel environments (B).
    rollout_length: environment steps per environment and update (T).
    num_epochs: passes over each rollout.
    num_minibatches: minibatches per epoch; they split the environments, so
        ``num_envs % num_minibatches == 0`` (each minibatch is ``num_envs /
        num_minibatches`` whole sequences of length T).
    discount: discount per step (gamma), in [0, 1].
    gae_lambda: GAE lambda, in [0, 1].
    clip_eps: PPO ratio clipping epsilon (> 0).
    vf_clip: value clipping range (PPO2); 0 disables clipping of the value loss.
    vf_coef, ent_coef: weights of the value loss and of the entropy bonus (>= 0).
    learning_rate: Adam learning rate (> 0); ``adam_eps`` its epsilon.
    anneal_lr: anneal the learning rate linearly to 0 over ``total_env_steps``.
    max_grad_norm: global-norm gradient clipping (> 0).
    normalize_advantages: normalise advantages per minibatch (zero mean, unit std).
    total_env_steps: the run's budget in environment steps; used only by the annealing
        schedule (the training loop decides how many updates to run).
    bootstrap_truncated: bootstrap truncated episodes from the value of the final
        observation (False treats truncation like termination; slightly cheaper).
    num_devices: data-parallel devices (``jax.devices()``, all processes): 1, an int, or
        "auto" (the most devices that divide both ``num_envs`` and the minibatch size
        ``num_envs / num_minibatches``). Each device steps ``num_envs / D`` environments; every
        minibatch is the one a single device would draw, split in D equal parts whose
        gradients are averaged (``lax.pmean``), so every device holds the same network.
    """

    num_envs: int = field(8, _POSITIVE_INT)
    rollout_length: int = field(128, _POSITIVE_INT)
    num_epochs: int = field(4, _POSITIVE_INT)
    num_minibatches: int = field(4, _POSITIVE_INT)
    discount: float = field(0.99, _FRACTION)
    gae_lambda: float = field(0.95, _FRACTION)
    clip_eps: float = field(0.2, _POSITIVE)
    vf_clip: float = field(0.2, _NON_NEGATIVE)
    vf_coef: float = field(0.5, _NON_NEGATIVE)
    ent_coef: float = field(0.01, _NON_NEGATIVE)
    learning_rate: float = field(3e-4, _POSITIVE)
    anneal_lr: bool = field(True, Bool())
    max_grad_norm: float = field(0.5, _POSITIVE)
    normalize_advantages: bool = field(True, Bool())
    total_env_steps: int = field(1_000_000, _POSITIVE_INT)
    adam_eps: float = field(1e-5, _POSITIVE)
    bootstrap_truncated: bool = field(True, Bool())
    num_devices: Any = field(1, AnyOf(OneOf("auto"), Int(ge=1)))

    def __post_init__(self):
        validate(self)
        require(
            self,
            "num_minibatches",
            self.num_envs % self.num_minibatches == 0,
            f"a divisor of num_envs={self.num_envs} (minibatches are groups of whole "
            "environment sequences)",
        )
        require(
            self,
            "num_devices",
            self.num_devices == "auto" or self.fits_devices(self.num_devices),
            f"a divisor of both num_envs={self.num_envs} and the minibatch size "
            f"{self.minibatch_size} (num_envs / num_minibatches), e.g. "
            f"{self.fitting_devices(self.num_devices if self.num_devices != 'auto' else 1)}",
        )

    @property
    def minibatch_size(self) -> int:
        """Environments (whole sequences) per minibatch."""
        return self.num_envs // self.num_minibatches

    def fits_devices(self, count: int) -> bool:
        """Whether ``count`` devices split the environments and every minibatch evenly."""
        return self.num_envs % count == 0 and self.minibatch_size % count == 0

    def fitting_devices(self, upto: int) -> list[int]:
        """The device counts up to ``upto`` (at least 1) that fit this config."""
        return [d for d in range(1, max(1, upto) + 1) if self.fits_devices(d)]

    def resolve_devices(self, available: int) -> int:
        """How many of ``available`` devices the agent uses (see ``num_devices``)."""
        if self.num_devices == "auto":
            return max(self.fitting_devices(available))
        if self.num_devices > available:
            raise ValueError(
                f"PPOConfig.num_devices={self.num_devices} but JAX sees {available} "
                f"device(s); allowed: 'auto' or one of {self.fitting_devices(available)}"
            )
        return int(self.num_devices)

    @property
    def env_steps_per_update(self) -> int:
        return self.num_envs * self.rollout_length

    @property
    def total_updates(self) -> int:
        """Updates the annealing schedule spans: ceil(total_env_steps / steps per update)."""
        return max(1, -(-self.total_env_steps // self.env_steps_per_update))

    @property
    def grad_steps_per_update(self) -> int:
        """Adam steps in one update: ``num_epochs * num_minibatches``."""
        return self.num_epochs * self.num_minibatches

    @classmethod
    def from_dict(cls, config: dict | PPOConfig | None) -> PPOConfig:
        """Build from a mapping (None: the defaults); unknown keys raise a ValueError listing
        the allowed ones."""
        return from_dict(cls, config)
