"""Recurrent PPO (PureJaxRL style): one jitted function per training iteration.

One update, top to bottom (:func:`larvax.agents.ppo.learning.update`):

1. **Rollout** (``rollout.py``): ``lax.scan`` over ``rollout_length`` steps of
   ``num_envs`` vmapped, auto-resetting environments. The network's recurrent carry at the
   *start* of the rollout is stored; every step stores ``(observation, prev_action,
   prev_reward, starts, action, log_prob, value, reward, terminated, truncated,
   truncation_value)`` and the statistics of an episode that ended there.
2. **Advantages** (``learning.py``): GAE per environment
   (:func:`larvax.agents.losses.generalized_advantages`, vmapped): terminated steps do not
   bootstrap, truncated steps bootstrap from the value of ``info["final_observation"]``.
3. **Optimisation** (``learning.py``): ``num_epochs`` x ``num_minibatches`` Adam steps on
   minibatches of whole sequences replayed from the stored carry. Loss = clipped surrogate
   + ``vf_coef`` x clipped value loss - ``ent_coef`` x entropy, with advantages normalised
   per minibatch, global-norm gradient clipping and an optionally linearly annealed
   learning rate.

``train(state, num_updates)`` is a single ``lax.scan`` over updates inside one ``jit``: no
host synchronisation between updates. Its metrics (float32 ``[num_updates]``):
``env_steps``, ``episode_return``, ``episode_length`` and each metric the environment
declares in ``episode_metrics``, under its name (means over episodes that ended in the
update, NaN if none), ``episodes``, ``loss``, ``policy_loss``, ``value_loss``,
``entropy``, ``approx_kl``, ``clip_fraction``, ``grad_norm`` (means over the update's
gradient steps), ``value_mean``, ``advantage_mean``, ``learning_rate``.

Acting for evaluation: ``act(state, observation, carry, key, greedy=True, prev_action=...,
prev_reward=..., starts=...)``; networks built with ``use_prev_action`` /
``use_prev_reward`` need the previous action and reward passed (-1 / 0 on an episode's
first step, with ``starts=True``), exactly as the rollout feeds them.

The network is any Flax NNX module with the larvax actor-critic call signature::

    carry = net.initialize_carry(batch_shape)
    carry, (dist, value) = net(observation, prev_action, prev_reward, starts, carry)

(observation ``[B, T, ...]``, prev_action int32 ``[B, T]`` (-1 = none) or float32
``[B, T, act_dim]``, prev_reward float32 ``[B, T]``, starts bool ``[B, T]``; ``dist`` a
distrax distribution over ``[B, T]`` actions, value ``[B, T]``). A shared torso
(``SharedActorCritic``, ``LSTMActorCritic``) or separate actor and critic
(``ActorCritic``) is a choice of network, not of the agent.

Files: ``config.py`` (:class:`PPOConfig`), ``state.py`` (:class:`TrainState`,
:class:`Rollout`), ``rollout.py``, ``learning.py``, ``agent.py`` (:class:`PPOAgent`,
:func:`make_agent`).
"""

from larvax.agents.ppo.agent import PPOAgent, build_network, make_agent
from larvax.agents.ppo.config import PPOConfig
from larvax.agents.ppo.state import Rollout, TrainState

__all__ = [
    "PPOAgent",
    "PPOConfig",
    "Rollout",
    "TrainState",
    "build_network",
    "make_agent",
]
