"""Agents: R2D2 (``larvax.agents.r2d2``) and recurrent PPO (``larvax.agents.ppo``).

Contract (DESIGN.md): an agent holds a frozen, validated config dataclass and offers
``init(key) -> TrainState``, ``train(state, num_updates) -> (state, metrics)`` (one
compiled scan) and ``act(...)`` for evaluation. See ``larvax.agents.base``.
"""
