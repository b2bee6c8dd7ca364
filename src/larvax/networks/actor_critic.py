"""Actor-critic models: ``out = (distribution, value [B, T])``.

- ``SharedActorCritic`` (``"shared_actor_critic"``): one feature extractor and torso
  shared by the actor and the critic. Its constructor is the one list of options.
- ``ActorCritic`` (``"actor_critic"``): the same options, separate extractors and torsos.
- ``LSTMActorCritic`` (``"lstm_actor_critic"``) and ``MinGRUActorCritic``
  (``"mingru_actor_critic"``): ``SharedActorCritic`` with the torso fixed.

The actor is ``Categorical`` for ``num_actions`` and a diagonal ``Gaussian`` (possibly
through an action-space bijector) for ``action_dim``; the critic is ``V``. Every Linear
layer computes its weight gradient with ``fast_ops.dense_matmul``.

``ActorCritic`` and the fixed-torso models take ``SharedActorCritic``'s arguments through
a signature derived from it (``_options_signature``), so the registry records, lists and
rebuilds them by exactly those arguments.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import jax
from flax import nnx

from larvax.networks.builders import check_actor_critic_args, feature_extractor
from larvax.networks.fast_ops import use_fast_dense
from larvax.networks.heads import Categorical, Gaussian, V
from larvax.networks.network import ActorCriticHead, Network, StepMixin, make_torso
from larvax.networks.registry import register

# the continuous-policy options given to Gaussian
_POLICY_OPTIONS = (
    "state_dependent_std",
    "init_log_std",
    "min_log_std",
    "max_log_std",
    "action_space",
)


def _actor_head(kind, n_act, in_features, actor_scale, policy: dict, rngs):
    if kind == "discrete":
        return Categorical(in_features, n_act, scale=actor_scale, rngs=rngs)
    return Gaussian(in_features, n_act, **policy, scale=actor_scale, rngs=rngs)


def _torso_branch(
    size, kind, n_act, hidden, activation, torso, hidden_size, torso_kwargs, torso_scale,
    use_prev_action, use_prev_reward, rngs,
) -> tuple[nnx.Module, nnx.Module]:  # fmt: skip
    """The feature extractor and torso of one branch (shared, actor or critic)."""
    fe = feature_extractor(
        size, hidden, activation, kind, n_act, use_prev_action, use_prev_reward,
        torso_scale, rngs,
    )  # fmt: skip
    seq = make_torso(
        torso, fe.out_features, hidden_size, activation=activation, scale=torso_scale,
        rngs=rngs, **(torso_kwargs or {}),
    )  # fmt: skip
    return fe, seq


@register("shared_actor_critic")
class SharedActorCritic(Network):
    """Actor and critic sharing one feature extractor and torso: ``(distribution, value)``.

    flatten -> MLP(``hidden``, orthogonal init gain ``torso_scale``) -> [previous action,
    tanh previous reward] -> ``torso`` (``hidden_size``) -> actor head (Categorical for
    ``num_actions``, Gaussian for ``action_dim``; output gain ``actor_scale``) and critic
    head ``V`` (gain ``critic_scale``). Continuous policies: ``state_dependent_std`` or a
    learned ``log_std`` initialised to ``init_log_std``, clipped to
    ``[min_log_std, max_log_std]``; ``action_space`` one of ``"free"``, ``"box"`` /
    ``{"name": "box", "low": .., "high": ..}``, ``{"name": "max_norm", "max_norm": ..}``.
    """

    def __init__(
        self,
        obs_shape: Any = None,
        obs_dim: int | None = None,
        num_actions: int | None = None,
        action_dim: int | None = None,
        hidden: Sequence[int] = (64, 64),
        activation: str | Callable = "tanh",
        torso: str = "mlp",
        hidden_size: int = 64,
        torso_kwargs: dict | None = None,
        torso_scale: float = 2.0**0.5,
        actor_scale: float = 0.01,
        critic_scale: float = 1.0,
        state_dependent_std: bool = False,
        init_log_std: float = 0.0,
        min_log_std: float = -20.0,
        max_log_std: float = 2.0,
        action_space: str | dict | None = "free",
        use_prev_action: bool = False,
        use_prev_reward: bool = False,
        *,
        rngs: nnx.Rngs,
    ):
        size, kind, n_act = check_actor_critic_args(
            obs_shape, obs_dim, num_actions, action_dim, action_space,
            use_prev_action=use_prev_action, use_prev_reward=use_prev_reward,
            state_dependent_std=state_dependent_std,
        )  # fmt: skip
        fe, seq = _torso_branch(
            size, kind, n_act, hidden, activation, torso, hidden_size, torso_kwargs,
            torso_scale, use_prev_action, use_prev_reward, rngs,
        )  # fmt: skip
        policy = dict(
            state_dependent_std=state_dependent_std, init_log_std=init_log_std,
            min_log_std=min_log_std, max_log_std=max_log_std, action_space=action_space,
        )  # fmt: skip
        actor = _actor_head(kind, n_act, seq.out_features, actor_scale, policy, rngs)
        critic = V(seq.out_features, scale=critic_scale, rngs=rngs)
        super().__init__(fe, seq, ActorCriticHead(actor, critic))
        self.action_kind = kind
        use_fast_dense(self)


def _options_signature(drop: Sequence[str] = (), **defaults) -> inspect.Signature:
    """``SharedActorCritic``'s constructor signature without ``drop``, with new ``defaults``."""
    base = inspect.signature(SharedActorCritic.__init__)
    params = [
        p.replace(default=defaults.get(p.name, p.default))
        for p in base.parameters.values()
        if p.name not in drop
    ]
    return base.replace(parameters=params)


def _bind(signature: inspect.Signature, self, args: tuple, kwargs: dict) -> dict:
    """The arguments of a call by ``signature`` as keywords, defaults filled in."""
    bound = signature.bind(self, *args, **kwargs)
    bound.apply_defaults()
    return {k: v for k, v in bound.arguments.items() if k != "self"}


def _fixed_torso_init(torso: str, drop: Sequence[str] = ()) -> Callable:
    """An ``__init__`` for a ``SharedActorCritic`` subclass whose torso is ``torso``: it takes
    ``SharedActorCritic``'s arguments except ``torso`` and ``drop``, with ``hidden=(64,)``."""
    signature = _options_signature(("torso", *drop), hidden=(64,))

    def __init__(self, *args, **kwargs):
        SharedActorCritic.__init__(self, torso=torso, **_bind(signature, self, args, kwargs))

    __init__.__signature__ = signature
    return __init__


_ACTOR_CRITIC_SIGNATURE = _options_signature()
# the options that build one branch's feature extractor and torso (see _torso_branch)
_BRANCH_OPTIONS = (
    "hidden",
    "activation",
    "torso",
    "hidden_size",
    "torso_kwargs",
    "torso_scale",
    "use_prev_action",
    "use_prev_reward",
    "rngs",
)


@register("actor_critic")
class ActorCritic(StepMixin, nnx.Module):
    """Actor and critic with separate feature extractors and torsos: ``(distribution, value)``.

    Same options as ``SharedActorCritic``; the carry is ``{"actor": .., "critic": ..}``.
    """

    def __init__(self, *args, **kwargs):
        o = _bind(_ACTOR_CRITIC_SIGNATURE, self, args, kwargs)
        size, kind, n_act = check_actor_critic_args(
            o["obs_shape"], o["obs_dim"], o["num_actions"], o["action_dim"], o["action_space"],
            use_prev_action=o["use_prev_action"], use_prev_reward=o["use_prev_reward"],
            state_dependent_std=o["state_dependent_std"],
        )  # fmt: skip
        branch = {k: o[k] for k in _BRANCH_OPTIONS}
        fe_a, seq_a = _torso_branch(size, kind, n_act, **branch)
        fe_c, seq_c = _torso_branch(size, kind, n_act, **branch)
        policy = {k: o[k] for k in _POLICY_OPTIONS}
        actor = _actor_head(kind, n_act, seq_a.out_features, o["actor_scale"], policy, o["rngs"])
        self.actor = Network(fe_a, seq_a, actor)
        critic = V(seq_c.out_features, scale=o["critic_scale"], rngs=o["rngs"])
        self.critic = Network(fe_c, seq_c, critic)
        self.action_kind = kind
        use_fast_dense(self)

    __init__.__signature__ = _ACTOR_CRITIC_SIGNATURE

    def initialize_carry(self, batch_shape: Sequence[int]) -> dict:
        return {
            "actor": self.actor.initialize_carry(batch_shape),
            "critic": self.critic.initialize_carry(batch_shape),
        }

    def __call__(self, observation, prev_action=None, prev_reward=None, starts=None, carry=None):
        if carry is None:
            b = jax.tree.leaves(observation)[0].shape[0]
            carry = self.initialize_carry((b,))
        ca, dist = self.actor(observation, prev_action, prev_reward, starts, carry["actor"])
        cc, value = self.critic(observation, prev_action, prev_reward, starts, carry["critic"])
        return {"actor": ca, "critic": cc}, (dist, value)


@register("lstm_actor_critic")
class LSTMActorCritic(SharedActorCritic):
    """``SharedActorCritic`` with an LSTM torso (``hidden_size`` units) shared by actor and critic.

    Takes ``SharedActorCritic``'s arguments except ``torso`` and ``torso_kwargs``;
    ``hidden`` defaults to ``(64,)``. Sequence mode: ``model(obs [B, T, ...], ...,
    starts [B, T], carry)`` from a given or zero carry, reset where ``starts``; single-step
    mode for rollouts: ``model.step(obs [B, ...], ..., start [B], carry)`` with a persistent
    carry reset where ``start`` is True. The two give the same outputs.
    """

    __init__ = _fixed_torso_init("lstm", drop=("torso_kwargs",))


@register("mingru_actor_critic")
class MinGRUActorCritic(SharedActorCritic):
    """``SharedActorCritic`` with a MinGRU torso (Feng et al. 2024, "Were RNNs all we needed?").

    Same options and modes as ``LSTMActorCritic``; ``torso_kwargs`` go to ``MinGRU``.
    """

    __init__ = _fixed_torso_init("mingru")


__all__ = ["ActorCritic", "LSTMActorCritic", "MinGRUActorCritic", "SharedActorCritic"]
