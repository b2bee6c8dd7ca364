"""Agents: R2D2 (``larvax.agents.r2d2``) and recurrent PPO (``larvax.agents.ppo``).

Every agent follows one contract (``larvax.agents.base``): a frozen, validated config
dataclass, ``init(key) -> TrainState``, ``train(state, num_updates) -> (state, metrics)``
compiled as one scan, and ``act(...)`` for evaluation. Their pure maths (n-step double-Q
targets, priorities, importance weights, GAE, clipped surrogate) lives in
``larvax.agents.losses``; R2D2's prioritised sequence replay in ``larvax.agents.replay``.
"""
