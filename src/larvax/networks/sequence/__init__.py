"""Sequence models (torsos) with one contract.

``carry = model.initialize_carry((B,))``; ``carry, y = model(x [B, T, F], starts [B, T], carry)``.
See :mod:`larvax.networks.sequence.base`. Linear-recurrent models (MinGRU, LRU, S5, Mamba)
use the reset-aware linear scans of :mod:`larvax.networks.sequence.scan`.
"""

from larvax.networks.sequence.attention import AttentionCache, SelfAttention
from larvax.networks.sequence.lru import LRU
from larvax.networks.sequence.mamba import Mamba
from larvax.networks.sequence.mingru import MinGRU
from larvax.networks.sequence.rnn import GRU, LSTM, RNN, SequenceModelWrapper
from larvax.networks.sequence.s5 import S5
from larvax.networks.sequence.scan import (
    linear_scan,
    linear_scan_fused,
    linear_scan_fused_packed,
    linear_scan_sequential,
)

__all__ = [
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
