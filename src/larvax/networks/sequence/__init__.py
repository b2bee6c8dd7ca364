"""Sequence models (torsos) with one contract.

``carry = model.initialize_carry((B,))``; ``carry, y = model(x [B, T, F], starts [B, T], carry)``.
See :mod:`larvax.networks.sequence.base`.
"""

from larvax.networks.sequence.rnn import GRU, LSTM, RNN, SequenceModelWrapper

__all__ = ["GRU", "LSTM", "RNN", "SequenceModelWrapper"]
