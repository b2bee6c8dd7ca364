"""Ready-made models, all registered in ``larvax.networks.registry`` when imported.

Every model has the call signature of ``larvax.networks.network``::

    carry = model.initialize_carry((B,))
    carry, out = model(observation, prev_action, prev_reward, starts, carry)
    carry, out = model.step(obs [B, ...], prev_action [B], prev_reward [B], start [B], carry)

with ``observation`` a pytree of ``[B, T, ...]`` arrays, ``prev_action`` int32 ``[B, T]``
(``-1`` = none, embedded as zeros) or float32 ``[B, T, action_dim]``, ``prev_reward``
float32 ``[B, T]`` and ``starts`` bool ``[B, T]``. Models that do not use
``prev_action``/``prev_reward`` (``use_prev_action=False`` / ``use_prev_reward=False``)
accept and ignore them (None is fine then). For continuous actions there is no ``-1``:
pass zeros as the previous action on the first step of an episode.

Q-networks (``"r2d2_simfish"``, ``"recurrent_q"``) return ``out = q_values [B, T, A]``.
Actor-critics (``"shared_actor_critic"``, ``"actor_critic"``, ``"lstm_actor_critic"``,
``"mingru_actor_critic"``, ``"ppo_simfish"``) return ``out = (distribution, value [B, T])`` with a distrax
distribution of batch shape ``[B, T]`` (``Categorical`` for ``num_actions``, a diagonal
Gaussian, possibly through an action-space bijector, for ``action_dim``).

Generic models take the observation as ``obs_shape`` (a shape list, or a dict of shape
lists for dict observations, flattened and concatenated in sorted key order) or
``obs_dim`` (the flattened size), and choose their sequence model by name with
``torso=`` (``lstm, gru, mingru, lru, s5, mamba, attention, mlp``; ``mlp`` is a
feed-forward layer with the empty carry ``()``), ``hidden_size`` and ``torso_kwargs``.

This module defines the generic recurrent Q-network and gathers the others: the Simfish
network (``larvax.networks.simfish``) and the actor-critics
(``larvax.networks.actor_critic``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
from flax import nnx

from larvax.networks.actor_critic import (
    ActorCritic,
    LSTMActorCritic,
    MinGRUActorCritic,
    SharedActorCritic,
)
from larvax.networks.builders import check_bool, feature_extractor, obs_size
from larvax.networks.heads import DuellingQ
from larvax.networks.layers import positive_int
from larvax.networks.network import Network, make_torso
from larvax.networks.registry import register
from larvax.networks.simfish import PPOSimfishNetwork, R2D2SimfishNetwork, SimfishEmbedding


@register("recurrent_q")
class RecurrentQNetwork(Network):
    """Generic recurrent Q-network: flatten -> MLP -> [OAR] -> sequence model -> duelling Q.

    ``out = q_values [B, T, num_actions]``. ``mlp_hidden``: the observation MLP (activated);
    ``torso``/``hidden_size``/``torso_kwargs``: the sequence model; ``head_hidden``: the
    hidden layers of both duelling streams.
    """

    def __init__(
        self,
        num_actions: int,
        obs_shape: Any = None,
        obs_dim: int | None = None,
        torso: str = "lstm",
        hidden_size: int = 64,
        mlp_hidden: Sequence[int] = (64,),
        head_hidden: Sequence[int] = (64,),
        activation: str | Callable = "relu",
        use_prev_action: bool = True,
        use_prev_reward: bool = True,
        torso_kwargs: dict | None = None,
        *,
        rngs: nnx.Rngs,
    ):
        size = obs_size(obs_shape, obs_dim)
        num_actions = positive_int("num_actions", num_actions)
        check_bool("use_prev_action", use_prev_action)
        check_bool("use_prev_reward", use_prev_reward)
        fe = feature_extractor(
            size, mlp_hidden, activation, "discrete", num_actions, use_prev_action,
            use_prev_reward, None, rngs,
        )  # fmt: skip
        seq = make_torso(
            torso, fe.out_features, hidden_size, activation=activation, rngs=rngs,
            **(torso_kwargs or {}),
        )  # fmt: skip
        head = DuellingQ(seq.out_features, num_actions, head_hidden, activation, rngs=rngs)
        super().__init__(fe, seq, head)
        self.num_actions = num_actions


def count_parameters(model: nnx.Module) -> int:
    """Number of scalar parameters (``nnx.Param``) in ``model``."""
    return int(sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param))))


__all__ = [
    "ActorCritic",
    "LSTMActorCritic",
    "MinGRUActorCritic",
    "PPOSimfishNetwork",
    "R2D2SimfishNetwork",
    "RecurrentQNetwork",
    "SharedActorCritic",
    "SimfishEmbedding",
    "count_parameters",
]
