"""The Simfish R2D2 network (``simfish_rl``) and its parts.

- ``Retina``: the binocular Conv1D torso, one weight set shared by both eyes.
- ``SimfishEmbedding``: Retina -> MLP[32], with the internal state appended.
- ``R2D2SimfishNetwork`` (registered as ``"r2d2_simfish"``): embedding + one-hot previous
  action + tanh previous reward -> LSTM(64) -> duelling Q-values.
- ``PPOSimfishNetwork`` (``"ppo_simfish"``): the same embedding and LSTM(64) with a policy
  head (softmax over the 21 bouts) and a value head, for recurrent PPO.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from larvax.networks.extractors import FeatureExtractor, OneHotAction, TanhReward
from larvax.networks.fast_ops import conv1d_same
from larvax.networks.heads import Categorical, DuellingQ, V
from larvax.networks.layers import MLP, int_tuple, positive_int
from larvax.networks.network import ActorCriticHead, Network
from larvax.networks.registry import register
from larvax.networks.sequence import LSTM

Array = jax.Array


class Retina(nnx.Module):
    """The Simfish binocular retina torso: a shared Conv1D stack applied to each eye.

    Input ``[..., P, C, 2]``: P = 139 positions, C = 3 channels (UV, red50, red75), the
    last axis is the eye (0 = left, 1 = right), values are photon counts 0..255.
    Per eye: Conv1D(8, k3, s1) - ReLU - Conv1D(8, k5, s2) - ReLU - Conv1D(8, k5, s2) -
    ReLU, SAME padding, over the position axis with the channels as input features.
    Both eyes use the **same** weights; the right eye is reversed along the position axis
    first, so both are read in the same (nasal/temporal) order and a left/right mirror
    image of the scene swaps the two eyes' features exactly.

    Output ``[..., 2 * P' * 8]`` with ``P' = ceil(ceil(P / 2) / 2)`` = 35 for P = 139,
    i.e. ``[..., 560]``: the
    flattened (position-major) left-eye features followed by the right-eye features
    (not yet activated again: the reference applies one more ReLU, a no-op after the
    last ReLU, before its MLP).

    Input scaling: ``input_scale`` multiplies the input. The reference network
    (``simfish_rl``, ``DeepSimfishTorso``) feeds the raw float photon counts, so the
    default is 1.0 (faithful); ``input_scale=1/255`` maps the readings to [0, 1].
    """

    def __init__(
        self,
        num_positions: int = 139,
        num_channels: int = 3,
        features: Sequence[int] = (8, 8, 8),
        kernel_sizes: Sequence[int] = (3, 5, 5),
        strides: Sequence[int] = (1, 2, 2),
        input_scale: float = 1.0,
        *,
        rngs: nnx.Rngs,
    ):
        self.num_positions = positive_int("Retina.num_positions", num_positions)
        self.num_channels = positive_int("Retina.num_channels", num_channels)
        features = int_tuple("Retina.features", features, allow_empty=False)
        kernel_sizes = int_tuple("Retina.kernel_sizes", kernel_sizes)
        strides = int_tuple("Retina.strides", strides)
        if not len(features) == len(kernel_sizes) == len(strides):
            raise ValueError(
                "Retina.features, kernel_sizes and strides must have the same length, got "
                f"{len(features)}, {len(kernel_sizes)}, {len(strides)}"
            )
        if not (isinstance(input_scale, int | float) and math.isfinite(input_scale)):
            raise ValueError(f"Retina.input_scale must be a finite number, got {input_scale!r}")
        self.input_scale = float(input_scale)
        convs = []
        c, p = self.num_channels, self.num_positions
        for f, k, s in zip(features, kernel_sizes, strides, strict=True):
            convs.append(nnx.Conv(c, f, kernel_size=(k,), strides=(s,), padding="SAME", rngs=rngs))
            c, p = f, math.ceil(p / s)
        self.convs = nnx.List(convs)
        self.features_per_eye = p * c
        self.out_features = 2 * self.features_per_eye

    def eye(self, x: Array) -> Array:
        """One eye ``[N, P, C] -> [N, P' * C']`` (no reversal); each Conv1D runs as
        ``fast_ops.conv1d_same`` (im2col), the function of ``nnx.Conv``."""
        for conv in self.convs:
            s = conv.strides[0] if isinstance(conv.strides, tuple | list) else int(conv.strides)
            x = jax.nn.relu(conv1d_same(x, conv.kernel[...], s) + conv.bias[...])
        return x.reshape((x.shape[0], -1))

    #: ``with_mirror=True`` is supported: see ``__call__`` and ``supports_mirror``.
    mirror_features = True

    def __call__(self, visual: Array, *, with_mirror: bool = False) -> Array:
        """``[..., P, C, 2] -> [..., 560]``; with ``with_mirror``, ``[B, ...] -> [2B, ...]``:
        the features of ``visual`` followed by those of its mirror image
        ``visual[..., ::-1, :, ::-1]`` (positions reversed, eyes swapped; Simfish's
        ``reflect_observation``). Because the right eye is read reversed with the left eye's
        weights, the mirror image's features are the two eyes' feature blocks swapped: they
        cost no second convolution and are bit-identical to convolving the reflected input.
        """
        expected = (self.num_positions, self.num_channels, 2)
        if visual.shape[-3:] != expected:
            raise ValueError(
                f"Retina input must have trailing shape {expected} (positions, channels, eyes), "
                f"got {visual.shape}"
            )
        lead = visual.shape[:-3]
        x = visual.astype(jnp.float32).reshape((-1, *expected)) * self.input_scale
        left = x[..., 0]
        right = x[:, ::-1, :, 1]  # reverse positions: read the right eye like the left
        n = x.shape[0]
        both = self.eye(jnp.concatenate([left, right], axis=0))  # one conv pass, shared weights
        out = jnp.concatenate([both[:n], both[n:]], axis=-1)
        if not with_mirror:
            return out.reshape((*lead, self.out_features))
        if not lead:
            raise ValueError(
                "Retina(with_mirror=True) needs a leading batch axis, got an unbatched input"
            )
        mirrored = jnp.concatenate([both[n:], both[:n]], axis=-1)
        shape = (*lead, self.out_features)
        return jnp.concatenate([out.reshape(shape), mirrored.reshape(shape)], axis=0)


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
        self.num_internal = positive_int("num_internal", num_internal)
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
        num_actions = positive_int("num_actions", num_actions)
        embed = SimfishEmbedding(visual_scale=visual_scale, rngs=rngs)
        fe = FeatureExtractor(
            observation=embed, action=OneHotAction(num_actions), reward=TanhReward()
        )
        torso = LSTM(fe.out_features, 64, rngs=rngs)
        head = DuellingQ(64, num_actions, hidden=(64,), activation="relu", rngs=rngs)
        super().__init__(fe, torso, head)
        self.num_actions = num_actions


@register("ppo_simfish")
class PPOSimfishNetwork(Network):
    """The Simfish actor-critic: the R2D2 network's embedding and LSTM(64), then a softmax
    policy over ``num_actions`` bouts (hidden [64], output gain ``actor_scale``) and a value
    head (hidden [64]): ``(distrax.Categorical [B, T], value [B, T])``.

    Observation, previous action and reward as for :class:`R2D2SimfishNetwork`.
    """

    action_kind = "discrete"

    def __init__(
        self,
        num_actions: int = 21,
        visual_scale: float = 1.0,
        actor_scale: float = 0.01,
        *,
        rngs: nnx.Rngs,
    ):
        num_actions = positive_int("num_actions", num_actions)
        embed = SimfishEmbedding(visual_scale=visual_scale, rngs=rngs)
        fe = FeatureExtractor(
            observation=embed, action=OneHotAction(num_actions), reward=TanhReward()
        )
        torso = LSTM(fe.out_features, 64, rngs=rngs)
        actor = Categorical(64, num_actions, hidden=(64,), scale=actor_scale, rngs=rngs)
        critic = V(64, hidden=(64,), rngs=rngs)
        super().__init__(fe, torso, ActorCriticHead(actor, critic))
        self.num_actions = num_actions


__all__ = ["PPOSimfishNetwork", "R2D2SimfishNetwork", "Retina", "SimfishEmbedding"]
