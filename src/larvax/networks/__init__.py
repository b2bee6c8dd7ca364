"""Networks: feature extractors, sequence models (torsos), heads, action spaces, models.

``Network = FeatureExtractor -> torso -> head``; every model is called as::

    carry = model.initialize_carry((B,))
    carry, out = model(observation, prev_action, prev_reward, starts, carry)

(see ``larvax.networks.network``). Ready-made models are registered by name
(``larvax.networks.registry``): ``create("r2d2_simfish", seed=0)``,
``create("recurrent_q", obs_dim=4, num_actions=2, torso="gru")``,
``create("shared_actor_critic", obs_dim=3, action_dim=1, action_space="box")``.
"""

import importlib as _importlib

from larvax.networks import sequence as _sequence
from larvax.networks.action_spaces import (
    ActionSpace,
    Box,
    Free,
    MaxNorm,
    SquashedPolicy,
    make_action_space,
)
from larvax.networks.extractors import (
    CNN,
    MLP,
    ContinuousAction,
    FeatureExtractor,
    FlattenObservation,
    OneHotAction,
    Retina,
    Sequential,
    StartFlag,
    TanhReward,
    resolve_activation,
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
from larvax.networks.models import (
    ActorCritic,
    LSTMActorCritic,
    MinGRUActorCritic,
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
    load_model,
    metadata,
    register,
    registered_models,
    save_model,
)

# Re-export the sequence models (LSTM, GRU, MinGRU, LRU, S5, Mamba, SelfAttention, RNN,
# SequenceModelWrapper, ...) and the blocks, whichever this installation provides.
_sequence_names = list(getattr(_sequence, "__all__", []))
globals().update({name: getattr(_sequence, name) for name in _sequence_names})
try:
    _blocks = _importlib.import_module("larvax.networks.blocks")
except ModuleNotFoundError as _err:  # blocks.py not written yet
    if _err.name != "larvax.networks.blocks":
        raise
    _block_names: list[str] = []
else:
    _block_names = list(getattr(_blocks, "__all__", []))
    globals().update({name: getattr(_blocks, name) for name in _block_names})

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
    *_sequence_names,
    *_block_names,
]
