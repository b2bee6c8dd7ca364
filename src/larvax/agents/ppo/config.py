"""PPO's hyperparameters: a frozen dataclass validated with :mod:`larvax.validation`.

Fields that name the same thing as R2D2's (``num_envs``, ``discount``, ``learning_rate``,
``adam_eps``, ``max_grad_norm``) have the same names.
"""

from __future__ import annotations

from dataclasses import dataclass

from larvax.validation import Bool, Int, Number, field, from_dict, require, validate

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

    def __post_init__(self):
        validate(self)
        require(
            self,
            "num_minibatches",
            self.num_envs % self.num_minibatches == 0,
            f"a divisor of num_envs={self.num_envs} (minibatches are groups of whole "
            "environment sequences)",
        )

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
