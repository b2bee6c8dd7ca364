"""Networks: feature extractors, sequence models (torsos), heads, action spaces, models.

``Network = FeatureExtractor -> torso -> head``; every model is called as::

    carry = model.initialize_carry((B,))
    carry, out = model(observation, prev_action, prev_reward, starts, carry)

(see ``larvax.networks.network``). Ready-made models (``larvax.networks.models``) are
registered by name when this package is imported (``larvax.networks.registry``):
``create("r2d2_simfish", seed=0)``,
``create("recurrent_q", obs_dim=4, num_actions=2, torso="gru")``,
``create("shared_actor_critic", obs_dim=3, action_dim=1, action_space="box")``;
``save_model``/``load_model`` (``larvax.networks.serialization``) store them on disk.
"""

from larvax.networks.action_spaces import (
    ActionSpace,
    Box,
    Free,
    MaxNorm,
    SquashedPolicy,
    make_action_space,
)
from larvax.networks.activations import resolve_activation
from larvax.networks.blocks import FFN, PreNorm, Residual, Stack, transformer
from larvax.networks.extractors import (
    ContinuousAction,
    FeatureExtractor,
    FlattenObservation,
    OneHotAction,
    StartFlag,
    TanhReward,
    supports_mirror,
)
from larvax.networks.heads import (
    Categorical,
    ContinuousQ,
    DiscreteQ,
    DuellingQ,
    Gaussian,
    SquashedGaussian,
    V,
)
from larvax.networks.layers import CNN, MLP, Sequential

# importing the models registers them (larvax.networks.registry)
from larvax.networks.models import (
    ActorCritic,
    LSTMActorCritic,
    MinGRUActorCritic,
    PPOSimfishNetwork,
    R2D2SimfishNetwork,
    RecurrentQNetwork,
    SharedActorCritic,
    SimfishEmbedding,
    count_parameters,
)
from larvax.networks.network import TORSOS, ActorCriticHead, Network, make_torso
from larvax.networks.registry import (
    create,
    list_models,
    metadata,
    register,
    registered_models,
)
from larvax.networks.sequence import (
    GRU,
    LRU,
    LSTM,
    RNN,
    S5,
    AttentionCache,
    Mamba,
    MinGRU,
    SelfAttention,
    SequenceModelWrapper,
    linear_scan,
    linear_scan_fused,
    linear_scan_fused_packed,
    linear_scan_sequential,
)
from larvax.networks.serialization import load_model, save_model
from larvax.networks.simfish import Retina

__all__ = [
    "CNN",
    "MLP",
    "TORSOS",
    "ActionSpace",
    "ActorCritic",
    "ActorCriticHead",
    "Box",
    "Categorical",
    "ContinuousAction",
    "ContinuousQ",
    "DiscreteQ",
    "DuellingQ",
    "FeatureExtractor",
    "FlattenObservation",
    "Free",
    "Gaussian",
    "LSTMActorCritic",
    "MaxNorm",
    "MinGRUActorCritic",
    "Network",
    "OneHotAction",
    "PPOSimfishNetwork",
    "R2D2SimfishNetwork",
    "RecurrentQNetwork",
    "Retina",
    "Sequential",
    "SharedActorCritic",
    "SimfishEmbedding",
    "SquashedGaussian",
    "SquashedPolicy",
    "StartFlag",
    "TanhReward",
    "V",
    "count_parameters",
    "create",
    "list_models",
    "load_model",
    "make_action_space",
    "make_torso",
    "metadata",
    "register",
    "registered_models",
    "resolve_activation",
    "supports_mirror",
    "save_model",
    "FFN",
    "PreNorm",
    "Residual",
    "Stack",
    "transformer",
    "GRU",
    "LRU",
    "LSTM",
    "RNN",
    "S5",
    "AttentionCache",
    "Mamba",
    "MinGRU",
    "SelfAttention",
    "SequenceModelWrapper",
    "linear_scan",
    "linear_scan_fused",
    "linear_scan_fused_packed",
    "linear_scan_sequential",
]
