"""Ready-made models, all registered in ``larvax.networks.registry``.

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
``"mingru_actor_critic"``) return ``out = (distribution, value [B, T])`` with a distrax
distribution of batch shape ``[B, T]`` (``Categorical`` for ``num_actions``, a diagonal
Gaussian, possibly through an action-space bijector, for ``action_dim``).

Generic models take the observation as ``obs_shape`` (a shape list, or a dict of shape
lists for dict observations, flattened and concatenated in sorted key order) or
``obs_dim`` (the flattened size), and choose their sequence model by name with
``torso=`` (``lstm, gru, mingru, lru, s5, mamba, attention, mlp``; ``mlp`` is a
feed-forward layer with the empty carry ``()``), ``hidden_size`` and ``torso_kwargs``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from larvax.networks.extractors import (
    MLP,
    ContinuousAction,
    FeatureExtractor,
    FlattenObservation,
    OneHotAction,
    Retina,
    Sequential,
    TanhReward,
    _positive_int,
    observation_size,
)
from larvax.networks.heads import Categorical, DuellingQ, Gaussian, V
from larvax.networks.network import ActorCriticHead, Network, StepMixin, make_torso
from larvax.networks.registry import register
from larvax.networks.sequence import LSTM

Array = jax.Array

# ----------------------------------------------------------------------------- Simfish R2D2


class SimfishEmbedding(nnx.Module):
    """Simfish observation ``{"visual": [..., 139, 3, 2], "internal": [..., 3]}`` -> ``[..., 35]``.

    ``Retina`` (both eyes, 560 features) -> ReLU -> ``Linear(560, 32)`` -> ReLU, then the
    internal state (in_light, energy, salt) is appended unchanged.
    """

    def __init__(
        self,
        mlp_hidden: Sequence[int] = (32,),
        visual_scale: float = 1.0,
        num_internal: int = 3,
        *,
        rngs: nnx.Rngs,
    ):
        self.retina = Retina(input_scale=visual_scale, rngs=rngs)
        self.mlp = MLP(self.retina.out_features, mlp_hidden, "relu", activate_final=True, rngs=rngs)
        self.num_internal = _positive_int("num_internal", num_internal)
        self.out_features = self.mlp.out_features + self.num_internal

    #: ``with_mirror=True`` is supported (the Retina's swapped eye features).
    mirror_features = True

    def __call__(self, observation: dict, *, with_mirror: bool = False) -> Array:
        """``[B, ...] -> [B, ..., 35]``; with ``with_mirror``, ``[2B, ..., 35]``: the features of
        the observation followed by those of its mirror image (``reflect_observation``: the
        visual field reversed and the eyes swapped, ``internal`` unchanged), for one Retina
        pass (see ``Retina``)."""
        if not isinstance(observation, dict) or not {"visual", "internal"} <= set(observation):
            got = (
                sorted(observation) if isinstance(observation, dict) else type(observation).__name__
            )
            raise ValueError(
                f"the Simfish observation must be a dict with keys 'visual' and 'internal', got {got}"
            )
        internal = jnp.asarray(observation["internal"], jnp.float32)
        if internal.shape[-1] != self.num_internal:
            raise ValueError(
                f"observation['internal'] must have {self.num_internal} values on its last axis, "
                f"got shape {internal.shape}"
            )
        v = jax.nn.relu(self.retina(observation["visual"], with_mirror=with_mirror))
        if with_mirror:
            internal = jnp.concatenate([internal, internal], axis=0)
        return jnp.concatenate([self.mlp(v), internal], axis=-1)


@register("r2d2_simfish")
class R2D2SimfishNetwork(Network):
    """The Simfish R2D2 network (``simfish_rl``): Retina -> MLP[32] -> OAR -> LSTM(64) -> duelling Q.

    Observation ``{"visual": [B, T, 139, 3, 2] float (photon counts 0..255; multiplied by
    ``visual_scale``, 1.0 as in the reference), "internal": [B, T, 3]}``; previous action
    int32 ``[B, T]`` one-hot over ``num_actions`` (-1 -> zeros); previous reward
    ``tanh``-squashed. Embedding = [MLP(ReLU(Retina)) (32), internal (3), one-hot
    (21), tanh reward (1)] = 57 features -> LSTM(64) -> DuellingQ(hidden [64]) -> ``[B, T, 21]``.

    Parameters (num_actions = 21): 59,670 =
    retina 736 (Conv1D 3->8 k3: 80, 8->8 k5: 328, 8->8 k5: 328)
    + Linear(560, 32) 17,952
    + LSTM(57 -> 64) 31,232 (input 57*256+256, recurrent 64*256)
    + duelling head 9,750 (value 64*64+64 + 64+1 = 4,225; advantage 4,160 + 64*21+21 = 5,525).
    The same count as the reference haiku network (about 59.7k).
    """

    def __init__(self, num_actions: int = 21, visual_scale: float = 1.0, *, rngs: nnx.Rngs):
        num_actions = _positive_int("num_actions", num_actions)
        embed = SimfishEmbedding(visual_scale=visual_scale, rngs=rngs)
        fe = FeatureExtractor(
            observation=embed, action=OneHotAction(num_actions), reward=TanhReward()
        )
        torso = LSTM(fe.out_features, 64, rngs=rngs)
        head = DuellingQ(64, num_actions, hidden=(64,), activation="relu", rngs=rngs)
        super().__init__(fe, torso, head)
        self.num_actions = num_actions


# ----------------------------------------------------------------------------- shared builders


def _obs_size(obs_shape: Any, obs_dim: Any) -> int:
    if (obs_shape is None) == (obs_dim is None):
        raise ValueError(
            f"give exactly one of obs_shape (a shape list or a dict of them) or obs_dim (an int); "
            f"got obs_shape={obs_shape!r}, obs_dim={obs_dim!r}"
        )
    if obs_dim is not None:
        return _positive_int("obs_dim", obs_dim)
    return observation_size(obs_shape)


def _check_actor_critic_args(
    obs_shape, obs_dim, num_actions, action_dim, action_space, **flags
) -> tuple[int, str, int]:
    """Shared argument checks of the actor-critics: ``(obs size, action kind, n actions)``."""
    size = _obs_size(obs_shape, obs_dim)
    kind, n_act = _action_kind(num_actions, action_dim)
    for name, value in flags.items():
        _check_bool(name, value)
    if kind == "discrete" and action_space not in (None, "free", {"name": "free"}):
        raise ValueError(f"action_space={action_space!r} needs action_dim (continuous actions)")
    return size, kind, n_act


def _action_kind(num_actions: Any, action_dim: Any) -> tuple[str, int]:
    if (num_actions is None) == (action_dim is None):
        raise ValueError(
            "give exactly one of num_actions (discrete) or action_dim (continuous); got "
            f"num_actions={num_actions!r}, action_dim={action_dim!r}"
        )
    if num_actions is not None:
        return "discrete", _positive_int("num_actions", num_actions)
    return "continuous", _positive_int("action_dim", action_dim)


def _feature_extractor(
    obs_size: int,
    hidden: Sequence[int],
    activation,
    kind: str,
    n_act: int,
    use_prev_action: bool,
    use_prev_reward: bool,
    scale: float | None,
    rngs: nnx.Rngs,
) -> FeatureExtractor:
    """Flatten -> MLP(hidden, activated) [-> previous action embedding] [-> tanh reward]."""
    flatten = FlattenObservation(num_leading=2)
    hidden = tuple(hidden)
    if hidden:
        mlp = MLP(obs_size, hidden, activation, activate_final=True, scale=scale, rngs=rngs)
        obs = Sequential(flatten, mlp, out_features=mlp.out_features)
    else:
        obs = Sequential(flatten, out_features=obs_size)
    action = None
    if use_prev_action:
        action = OneHotAction(n_act) if kind == "discrete" else ContinuousAction(n_act)
    reward = TanhReward() if use_prev_reward else None
    return FeatureExtractor(observation=obs, action=action, reward=reward)


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


# ----------------------------------------------------------------------------- recurrent Q


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
        size = _obs_size(obs_shape, obs_dim)
        num_actions = _positive_int("num_actions", num_actions)
        _check_bool("use_prev_action", use_prev_action)
        _check_bool("use_prev_reward", use_prev_reward)
        fe = _feature_extractor(
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


# ----------------------------------------------------------------------------- fast dense


@jax.custom_vjp
def _dense_matmul(x: Array, w: Array) -> Array:
    """``x [..., K] @ w [K, N]``; the backward pass computes ``dw`` as ``x^T [K, rows] @ dy``
    with ``x^T`` materialised (an optimisation barrier keeps XLA from folding the transpose
    into the dot): XLA's CPU backend runs the folded dot, which contracts the leading axis
    of both operands, ~3x slower (PPO's minibatches of 256 steps, 128 x 128 layers)."""
    return x @ w


def _dense_matmul_fwd(x, w):
    return x @ w, (x, w)


def _dense_matmul_bwd(residuals, dy):
    x, w = residuals
    x2 = x.reshape(-1, x.shape[-1])
    dw = jax.lax.optimization_barrier(x2.T) @ dy.reshape(-1, dy.shape[-1])
    return dy @ w.T, dw


_dense_matmul.defvjp(_dense_matmul_fwd, _dense_matmul_bwd)


def _dense_dot_general(lhs, rhs, dimension_numbers, precision=None, **kwargs):
    """``lax.dot_general`` for ``nnx.Linear``; its plain ``x @ kernel`` uses ``_dense_matmul``."""
    (lhs_contract, rhs_contract), (lhs_batch, rhs_batch) = dimension_numbers
    plain = (
        tuple(lhs_contract) == (lhs.ndim - 1,) and tuple(rhs_contract) == (0,) and rhs.ndim == 2
        and not lhs_batch and not rhs_batch and precision is None
        and all(v is None for v in kwargs.values()) and lhs.dtype == rhs.dtype
    )  # fmt: skip
    if plain:
        return _dense_matmul(lhs, rhs)
    return jax.lax.dot_general(lhs, rhs, dimension_numbers, precision=precision, **kwargs)


def _use_fast_dense(module: nnx.Module) -> None:
    """Make every ``nnx.Linear`` in ``module`` use ``_dense_dot_general`` (the same values
    and gradients; forward-mode differentiation, ``jax.jvp``, is then not supported)."""
    for _, sub in nnx.iter_graph(module):
        if isinstance(sub, nnx.Linear) and sub.dot_general is jax.lax.dot_general:
            sub.dot_general = _dense_dot_general


# ----------------------------------------------------------------------------- actor-critics


def _actor_head(kind, n_act, in_features, actor_scale, policy: dict, rngs):
    if kind == "discrete":
        return Categorical(in_features, n_act, scale=actor_scale, rngs=rngs)
    return Gaussian(
        in_features,
        n_act,
        state_dependent_std=policy["state_dependent_std"],
        init_log_std=policy["init_log_std"],
        min_log_std=policy["min_log_std"],
        max_log_std=policy["max_log_std"],
        action_space=policy["action_space"],
        scale=actor_scale,
        rngs=rngs,
    )


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
        size, kind, n_act = _check_actor_critic_args(
            obs_shape, obs_dim, num_actions, action_dim, action_space,
            use_prev_action=use_prev_action, use_prev_reward=use_prev_reward,
            state_dependent_std=state_dependent_std,
        )  # fmt: skip
        fe = _feature_extractor(
            size, hidden, activation, kind, n_act, use_prev_action, use_prev_reward,
            torso_scale, rngs,
        )  # fmt: skip
        seq = make_torso(
            torso, fe.out_features, hidden_size, activation=activation, scale=torso_scale,
            rngs=rngs, **(torso_kwargs or {}),
        )  # fmt: skip
        policy = dict(
            state_dependent_std=state_dependent_std, init_log_std=init_log_std,
            min_log_std=min_log_std, max_log_std=max_log_std, action_space=action_space,
        )  # fmt: skip
        actor = _actor_head(kind, n_act, seq.out_features, actor_scale, policy, rngs)
        critic = V(seq.out_features, scale=critic_scale, rngs=rngs)
        super().__init__(fe, seq, ActorCriticHead(actor, critic))
        self.action_kind = kind
        _use_fast_dense(self)


@register("actor_critic")
class ActorCritic(StepMixin, nnx.Module):
    """Actor and critic with separate feature extractors and torsos: ``(distribution, value)``.

    Same options as ``SharedActorCritic``; the carry is ``{"actor": .., "critic": ..}``.
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
        size, kind, n_act = _check_actor_critic_args(
            obs_shape, obs_dim, num_actions, action_dim, action_space,
            use_prev_action=use_prev_action, use_prev_reward=use_prev_reward,
            state_dependent_std=state_dependent_std,
        )  # fmt: skip
        policy = dict(
            state_dependent_std=state_dependent_std, init_log_std=init_log_std,
            min_log_std=min_log_std, max_log_std=max_log_std, action_space=action_space,
        )  # fmt: skip

        def branch():
            fe = _feature_extractor(
                size, hidden, activation, kind, n_act, use_prev_action, use_prev_reward,
                torso_scale, rngs,
            )  # fmt: skip
            seq = make_torso(
                torso, fe.out_features, hidden_size, activation=activation, scale=torso_scale,
                rngs=rngs, **(torso_kwargs or {}),
            )  # fmt: skip
            return fe, seq

        fe_a, seq_a = branch()
        fe_c, seq_c = branch()
        self.actor = Network(
            fe_a, seq_a, _actor_head(kind, n_act, seq_a.out_features, actor_scale, policy, rngs)
        )
        self.critic = Network(fe_c, seq_c, V(seq_c.out_features, scale=critic_scale, rngs=rngs))
        self.action_kind = kind
        _use_fast_dense(self)

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

    Sequence mode: ``model(obs [B, T, ...], ..., starts [B, T], carry)`` from a given or zero
    carry, reset where ``starts``; single-step mode for rollouts: ``model.step(obs [B, ...],
    ..., start [B], carry)`` with a persistent carry reset where ``start`` is True. The two
    give the same outputs.
    """

    def __init__(
        self,
        obs_shape: Any = None,
        obs_dim: int | None = None,
        num_actions: int | None = None,
        action_dim: int | None = None,
        hidden: Sequence[int] = (64,),
        activation: str | Callable = "tanh",
        hidden_size: int = 64,
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
        super().__init__(
            obs_shape=obs_shape, obs_dim=obs_dim, num_actions=num_actions, action_dim=action_dim,
            hidden=hidden, activation=activation, torso="lstm", hidden_size=hidden_size,
            torso_scale=torso_scale, actor_scale=actor_scale, critic_scale=critic_scale,
            state_dependent_std=state_dependent_std, init_log_std=init_log_std,
            min_log_std=min_log_std, max_log_std=max_log_std, action_space=action_space,
            use_prev_action=use_prev_action, use_prev_reward=use_prev_reward, rngs=rngs,
        )  # fmt: skip


@register("mingru_actor_critic")
class MinGRUActorCritic(SharedActorCritic):
    """``SharedActorCritic`` with a MinGRU torso (Feng et al. 2024, "Were RNNs all we needed?").

    Same options and modes as ``LSTMActorCritic``; ``torso_kwargs`` go to ``MinGRU``.
    """

    def __init__(
        self,
        obs_shape: Any = None,
        obs_dim: int | None = None,
        num_actions: int | None = None,
        action_dim: int | None = None,
        hidden: Sequence[int] = (64,),
        activation: str | Callable = "tanh",
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
        super().__init__(
            obs_shape=obs_shape, obs_dim=obs_dim, num_actions=num_actions, action_dim=action_dim,
            hidden=hidden, activation=activation, torso="mingru", hidden_size=hidden_size,
            torso_kwargs=torso_kwargs, torso_scale=torso_scale, actor_scale=actor_scale,
            critic_scale=critic_scale, state_dependent_std=state_dependent_std,
            init_log_std=init_log_std, min_log_std=min_log_std, max_log_std=max_log_std,
            action_space=action_space, use_prev_action=use_prev_action,
            use_prev_reward=use_prev_reward, rngs=rngs,
        )  # fmt: skip


def count_parameters(model: nnx.Module) -> int:
    """Number of scalar parameters (``nnx.Param``) in ``model``."""
    return int(sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param))))


__all__ = [
    "ActorCritic",
    "LSTMActorCritic",
    "MinGRUActorCritic",
    "R2D2SimfishNetwork",
    "RecurrentQNetwork",
    "SharedActorCritic",
    "SimfishEmbedding",
    "count_parameters",
]
