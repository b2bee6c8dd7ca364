"""Heads: map torso features ``[..., F]`` to a policy, Q-values or a value.

Policy heads return distrax distributions whose batch shape is the leading shape of the
input (``[B, T]``); value heads return arrays.

- ``Categorical``: ``pi(a|s) = softmax(logits)_a``; entropy ``-sum_a p_a log p_a``.
- ``DiscreteQ``: ``Q(s, .) = MLP(s)``, ``[..., A]``.
- ``DuellingQ``: ``Q(s, a) = V(s) + A(s, a) - mean_a' A(s, a')`` (Wang et al. 2016,
  "Dueling Network Architectures", eq. 9); V and A are separate MLPs with the same
  ``hidden`` sizes (as acme's ``DuellingMLP``).
- ``Gaussian``: ``N(mu(s), diag sigma^2)`` with a learned state-independent ``log_std``
  or a state-dependent one (a second output layer); optionally pushed through an action
  space bijector (``larvax.networks.action_spaces``).
- ``SquashedGaussian``: ``Gaussian`` through ``Box(low, high)`` (tanh squashing, SAC).
- ``ContinuousQ``: ``Q(s, a) = MLP([s, a])``, ``[...]``.
- ``V``: ``V(s) = MLP(s)``, ``[...]``.

``scale`` arguments are orthogonal-init gains (None: Flax's default init).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import distrax
import jax
import jax.numpy as jnp
from flax import nnx

from larvax.networks.action_spaces import ActionSpace, Box, Free, SquashedPolicy, make_action_space
from larvax.networks.layers import MLP, int_tuple, linear, positive_int

Array = jax.Array


def _mlp_out(
    in_features: int,
    hidden: Sequence[int],
    out: int,
    activation,
    hidden_scale: float | None,
    out_scale: float | None,
    rngs: nnx.Rngs,
):
    """An activated hidden MLP (may be empty) followed by a linear output layer."""
    body = MLP(in_features, hidden, activation, activate_final=True, scale=hidden_scale, rngs=rngs)
    return body, linear(body.out_features, out, rngs=rngs, scale=out_scale)


class Categorical(nnx.Module):
    """Softmax policy over ``num_actions`` discrete actions: features -> ``distrax.Categorical``."""

    def __init__(
        self,
        in_features: int,
        num_actions: int,
        hidden: Sequence[int] = (),
        activation: str | Callable = "relu",
        *,
        scale: float | None = None,
        hidden_scale: float | None = None,
        rngs: nnx.Rngs,
    ):
        in_features = positive_int("Categorical.in_features", in_features)
        self.num_actions = positive_int("Categorical.num_actions", num_actions)
        self.body, self.logits = _mlp_out(
            in_features, hidden, self.num_actions, activation, hidden_scale, scale, rngs
        )

    def __call__(self, x: Array) -> distrax.Categorical:
        return distrax.Categorical(logits=self.logits(self.body(x)))


class DiscreteQ(nnx.Module):
    """Q-values of ``num_actions`` actions: ``[..., F] -> [..., A]``."""

    def __init__(
        self,
        in_features: int,
        num_actions: int,
        hidden: Sequence[int] = (),
        activation: str | Callable = "relu",
        *,
        rngs: nnx.Rngs,
    ):
        in_features = positive_int("DiscreteQ.in_features", in_features)
        self.num_actions = positive_int("DiscreteQ.num_actions", num_actions)
        self.body, self.out = _mlp_out(
            in_features, hidden, self.num_actions, activation, None, None, rngs
        )

    def __call__(self, x: Array) -> Array:
        return self.out(self.body(x))


class DuellingQ(nnx.Module):
    """Duelling Q-values ``Q = V + A - mean_a A``: ``[..., F] -> [..., A]``.

    Value stream ``MLP(hidden) -> 1`` and advantage stream ``MLP(hidden) -> A``, each
    with its own hidden layers (Wang et al. 2016, eq. 9). ``value(x)`` and
    ``advantages(x)`` give the two streams.
    """

    def __init__(
        self,
        in_features: int,
        num_actions: int,
        hidden: Sequence[int] = (),
        activation: str | Callable = "relu",
        *,
        rngs: nnx.Rngs,
    ):
        in_features = positive_int("DuellingQ.in_features", in_features)
        self.num_actions = positive_int("DuellingQ.num_actions", num_actions)
        hidden = int_tuple("DuellingQ.hidden", hidden)
        self.value_body, self.value_out = _mlp_out(
            in_features, hidden, 1, activation, None, None, rngs
        )
        self.advantage_body, self.advantage_out = _mlp_out(
            in_features, hidden, self.num_actions, activation, None, None, rngs
        )

    def value(self, x: Array) -> Array:
        """State value ``V(s)``, ``[...]``."""
        return self.value_out(self.value_body(x))[..., 0]

    def advantages(self, x: Array) -> Array:
        """Raw advantages ``A(s, .)`` before centring, ``[..., A]``."""
        return self.advantage_out(self.advantage_body(x))

    def __call__(self, x: Array) -> Array:
        a = self.advantages(x)
        return self.value(x)[..., None] + a - jnp.mean(a, axis=-1, keepdims=True)


class Gaussian(nnx.Module):
    """Diagonal Gaussian policy, optionally pushed through an action-space bijector.

    ``mu = Linear(MLP(x))``; ``log_std`` is a learned parameter vector (initialised to
    ``init_log_std``) or, if ``state_dependent_std``, a second linear output; it is
    clipped to ``[min_log_std, max_log_std]``. Returns ``distrax.MultivariateNormalDiag``
    (``action_space`` Free) or ``SquashedPolicy`` (any other action space), both with
    event shape ``[action_dim]``. Gaussian log-density:
    ``log N(a) = -1/2 sum_i ((a_i - mu_i)/sigma_i)^2 - sum_i log sigma_i - d/2 log(2 pi)``.
    """

    def __init__(
        self,
        in_features: int,
        action_dim: int,
        hidden: Sequence[int] = (),
        activation: str | Callable = "relu",
        *,
        state_dependent_std: bool = False,
        init_log_std: float = 0.0,
        min_log_std: float = -20.0,
        max_log_std: float = 2.0,
        action_space: str | dict | ActionSpace | None = None,
        scale: float | None = None,
        hidden_scale: float | None = None,
        rngs: nnx.Rngs,
    ):
        in_features = positive_int("Gaussian.in_features", in_features)
        self.action_dim = positive_int("Gaussian.action_dim", action_dim)
        if not (min_log_std < max_log_std):
            raise ValueError(
                f"Gaussian needs min_log_std < max_log_std, got {min_log_std} and {max_log_std}"
            )
        if not math.isfinite(init_log_std):
            raise ValueError(f"Gaussian.init_log_std must be finite, got {init_log_std!r}")
        self.min_log_std = float(min_log_std)
        self.max_log_std = float(max_log_std)
        self.state_dependent_std = bool(state_dependent_std)
        self.action_space = make_action_space(action_space)
        self.body, self.mean = _mlp_out(
            in_features, hidden, self.action_dim, activation, hidden_scale, scale, rngs
        )
        if self.state_dependent_std:
            self.log_std_layer = linear(
                self.body.out_features, self.action_dim, rngs=rngs, scale=scale
            )
            self.log_std_bias = float(init_log_std)
        else:
            self.log_std = nnx.Param(jnp.full((self.action_dim,), float(init_log_std), jnp.float32))

    def mean_and_std(self, x: Array) -> tuple[Array, Array]:
        """``(mu, sigma)`` of the base Gaussian, both ``[..., action_dim]``."""
        h = self.body(x)
        mu = self.mean(h)
        if self.state_dependent_std:
            log_std = self.log_std_layer(h) + self.log_std_bias
        else:
            log_std = jnp.broadcast_to(self.log_std[...], mu.shape)
        log_std = jnp.clip(log_std, self.min_log_std, self.max_log_std)
        return mu, jnp.exp(log_std)

    def __call__(self, x: Array) -> distrax.Distribution:
        mu, std = self.mean_and_std(x)
        base = distrax.MultivariateNormalDiag(loc=mu, scale_diag=std)
        if isinstance(self.action_space, Free):
            return base
        return SquashedPolicy(base, self.action_space)


class SquashedGaussian(Gaussian):
    """``Gaussian`` squashed onto ``[low, high]`` by a scaled tanh (``Box``), as in SAC."""

    def __init__(
        self,
        in_features: int,
        action_dim: int,
        hidden: Sequence[int] = (),
        activation: str | Callable = "relu",
        *,
        low: float | Sequence[float] = -1.0,
        high: float | Sequence[float] = 1.0,
        state_dependent_std: bool = True,
        init_log_std: float = 0.0,
        min_log_std: float = -20.0,
        max_log_std: float = 2.0,
        scale: float | None = None,
        hidden_scale: float | None = None,
        rngs: nnx.Rngs,
    ):
        super().__init__(
            in_features,
            action_dim,
            hidden,
            activation,
            state_dependent_std=state_dependent_std,
            init_log_std=init_log_std,
            min_log_std=min_log_std,
            max_log_std=max_log_std,
            action_space=Box(low, high),
            scale=scale,
            hidden_scale=hidden_scale,
            rngs=rngs,
        )


class ContinuousQ(nnx.Module):
    """``Q(s, a) = MLP([features, action])``: ``([..., F], [..., action_dim]) -> [...]``."""

    def __init__(
        self,
        in_features: int,
        action_dim: int,
        hidden: Sequence[int] = (64, 64),
        activation: str | Callable = "relu",
        *,
        rngs: nnx.Rngs,
    ):
        in_features = positive_int("ContinuousQ.in_features", in_features)
        self.action_dim = positive_int("ContinuousQ.action_dim", action_dim)
        self.body, self.out = _mlp_out(
            in_features + self.action_dim, hidden, 1, activation, None, None, rngs
        )

    def __call__(self, x: Array, action: Array) -> Array:
        action = jnp.asarray(action, x.dtype)
        if action.shape[-1:] != (self.action_dim,):
            raise ValueError(
                f"ContinuousQ expects action [..., {self.action_dim}], got {action.shape}"
            )
        return self.out(self.body(jnp.concatenate([x, action], axis=-1)))[..., 0]


class V(nnx.Module):
    """State value ``V(s) = MLP(s)``: ``[..., F] -> [...]``."""

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int] = (),
        activation: str | Callable = "relu",
        *,
        scale: float | None = None,
        hidden_scale: float | None = None,
        rngs: nnx.Rngs,
    ):
        in_features = positive_int("V.in_features", in_features)
        self.body, self.out = _mlp_out(
            in_features, hidden, 1, activation, hidden_scale, scale, rngs
        )

    def __call__(self, x: Array) -> Array:
        return self.out(self.body(x))[..., 0]


__all__ = [
    "Categorical",
    "ContinuousQ",
    "DiscreteQ",
    "DuellingQ",
    "Gaussian",
    "SquashedGaussian",
    "V",
]
