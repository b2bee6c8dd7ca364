"""Evaluation episodes that record the world, the action and the agent's recurrent state.

``evaluate(agent, state, env, params, episodes, epsilon)`` runs ``episodes`` episodes of a
trained agent, ``batch`` of them side by side (``vmap``), ``chunk`` steps per compiled
``lax.scan``, and yields :class:`Records`: one with every episode's reset row, then one per
chunk of steps. Memory is bounded by ``batch x chunk`` steps; writers
(:mod:`larvax.evaluation.hdf5`) turn the records into files as episodes finish.

Rows (the reference's convention, see docs/evaluation.md): environment row 0 is the reset
state, row ``t`` the state after step ``t`` with the action, reward and events of step
``t``. Agent row ``t`` (Q-values or policy, recurrent state after reading observation
``t``) is what chose the action of step ``t + 1``.

Keys: episode ``n`` (1-based) uses ``fold_in(key(seed), n)``, split into the reset key and
a step root; step ``t`` uses ``split(fold_in(step_root, t))`` = (exploration key, env key).
The reset and env keys are recorded (``reset_key``, ``step_keys``) so a log can be
re-simulated exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from larvax.envs.core import Discrete

Array = jax.Array
PyTree = Any


# ----------------------------------------------------------------------------- the agent


@dataclass(frozen=True)
class Policy:
    """A trained agent seen by the evaluation: ``init_carry(B)`` and the pure ``step``.

    ``step(weights, obs [B, ...], carry, prev_action [B], prev_reward [B], start [B])``
    returns ``(carry, scores [B, A], outputs)``: the greedy action is ``argmax(scores)``,
    ``outputs`` the datasets to record (``q_values`` or ``policy_logits`` + ``value``).
    ``weights`` is the part of the agent's state the network needs (a jit argument).
    """

    kind: str
    weights: PyTree
    init_carry: Any
    step: Any


def make_policy(agent, state) -> Policy:
    """The :class:`Policy` of an R2D2 or PPO agent with its trained ``state``."""
    if hasattr(agent, "actor") and hasattr(agent.actor, "q_step"):  # R2D2
        actor = agent.actor

        def r2d2_step(w, obs, carry, prev_action, prev_reward, start):
            obs = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), obs)
            carry, q = actor.q_step(w[0], w[1], obs, prev_action, prev_reward, start, carry)
            return carry, q, {"q_values": q.astype(jnp.float32)}

        return Policy("r2d2", (state.params, state.rest), agent.initialize_carry, r2d2_step)
    if hasattr(agent, "network") and hasattr(agent, "initial_carry"):  # PPO
        if not getattr(agent, "discrete", False):
            raise ValueError("evaluation supports discrete action spaces only (PPO agent)")

        def ppo_step(w, obs, carry, prev_action, prev_reward, start):
            model = agent.network(w[0], w[1])
            one = jax.tree.map(lambda x: x[:, None], obs)
            carry, (dist, value) = model(
                one, prev_action[:, None], prev_reward[:, None], start[:, None], carry
            )
            logits = dist.logits[:, 0].astype(jnp.float32)
            return carry, logits, {"policy_logits": logits, "value": value[:, 0]}

        return Policy("ppo", (state.params, state.model_state), agent.initial_carry, ppo_step)
    raise ValueError(f"cannot evaluate agent {type(agent).__name__}; allowed: R2D2, PPO agents")


def carry_datasets(carry: PyTree) -> dict:
    """The recurrent carry ``[B, ...]`` as named datasets: an LSTM's ``(c, h)`` gives
    ``actor_state`` (h) and ``actor_cell_state`` (c), a single array ``actor_state``, any
    other carry one ``carry/<path>`` per leaf."""
    leaves = jax.tree.leaves(carry)
    if isinstance(carry, tuple) and len(carry) == 2 and len(leaves) == 2:
        c, h = carry
        if hasattr(c, "shape") and c.shape == h.shape and c.ndim == 2:
            return {"actor_state": h, "actor_cell_state": c}
    if len(leaves) == 1 and leaves[0].ndim == 2:
        return {"actor_state": leaves[0]}
    flat = jax.tree_util.tree_flatten_with_path(carry)[0]
    return {"carry/" + _path_name(path): leaf for path, leaf in flat}


def _path_name(path) -> str:
    name = jax.tree_util.keystr(path)
    for ch in "[]'.\"":
        name = name.replace(ch, "_" if ch in ".[" else "")
    return name.strip("_") or "leaf"


# ----------------------------------------------------------------------------- the world


def _is_simfish(env) -> bool:
    from larvax.envs.simfish.env import Simfish

    return isinstance(env, Simfish)


def simfish_rows(state, ts) -> dict:
    """One Simfish row (a state after reset or a step, and its TimeStep) by dataset name."""
    from larvax.envs.simfish.physics import REWARD_COMPONENTS

    info = ts.info
    pres = state.predator_present
    alive = state.prey_alive
    rows = {
        "fish_x": state.fish_xy[0],
        "fish_y": state.fish_xy[1],
        "fish_angle": state.fish_angle,
        "prey_x": jnp.where(alive, state.prey_xy[:, 0], jnp.nan),
        "prey_y": jnp.where(alive, state.prey_xy[:, 1], jnp.nan),
        "predator_x": jnp.where(pres, state.predator_xy[0], 0.0),
        "predator_y": jnp.where(pres, state.predator_xy[1], 0.0),
        "predator_present": pres,
        "event_consumed_prey": info["prey_caught"] > 0,
        "event_survived_predator": info["attack_survived"],
        "event_captured_by_predator": info["predator_hit"],
        "vis_observation": ts.observation["visual"],
        "internal_state": ts.observation["internal"],
        "energy": state.energy,
        "salt": state.salt,
        "prey_caught": info["prey_caught"],
        "wall_touch": info["wall_touch"],
        "bout_distance_mm": info["bout_distance_mm"],
        "bout_angle_rad": info["bout_angle_rad"],
        "energy_use": info["energy_use"],
        "end_cause": info["end_cause"],
    }
    for c in REWARD_COMPONENTS:
        rows[f"reward_{c}"] = info["reward_components"][c]
    return rows


def simfish_constants(params, state) -> dict:
    """Per-episode Simfish datasets of a reset state (salt source, sediment handle)."""
    salt = state.salt_source_xy if params.salt_enabled else jnp.full((2,), jnp.nan)
    return {
        "salt_location": salt.astype(jnp.float32),
        "sediment_texture_index": state.sediment.index,
        "sediment_shift_xy": state.sediment.shift_xy,
        "sediment_flip": state.sediment.flip,
    }


def generic_rows(state, ts) -> dict:
    """One row of any environment: its observation and info leaves."""
    rows = {}
    for prefix, tree in (("observation", ts.observation), ("info", ts.info)):
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
            rows[f"{prefix}/{_path_name(path)}"] = leaf
    return rows


# ----------------------------------------------------------------------------- the loop


class Records(NamedTuple):
    """What :func:`evaluate` yields (NumPy).

    episodes int ``[B]`` (1-based; lanes beyond the requested count are dropped);
    env: rows ``[B, C, ...]`` by dataset name; agent: agent rows ``[B, C, ...]`` (empty in
    the reset record); valid bool ``[B, C]`` (the step belongs to its episode); done bool
    ``[B]`` (the episode has ended by the end of these records); constants: per-episode
    datasets ``[B, ...]`` (reset record only, else empty).
    """

    episodes: np.ndarray
    env: dict
    agent: dict
    valid: np.ndarray
    done: np.ndarray
    constants: dict


class _Lanes(NamedTuple):
    env_state: PyTree
    obs: PyTree
    carry: PyTree
    prev_action: Array
    prev_reward: Array
    start: Array
    done: Array
    step_root: Array
    t: Array  # int32 [], steps taken


def _episode_keys(seed: int, episodes: Array):
    ep = jax.vmap(lambda n: jax.random.fold_in(jax.random.key(seed), n))(episodes)
    both = jax.vmap(jax.random.split)(ep)
    return both[:, 0], both[:, 1]


class _Runner:
    """The compiled reset and chunk of one evaluation (env, params, policy fixed)."""

    def __init__(self, env, params, policy: Policy, epsilon, max_steps, chunk, seed):
        self.env, self.params, self.policy = env, params, policy
        self.epsilon, self.max_steps, self.chunk, self.seed = epsilon, max_steps, chunk, seed
        self.simfish = _is_simfish(env)
        self.rows = simfish_rows if self.simfish else generic_rows
        space = env.action_space(params)
        if not isinstance(space, Discrete):
            raise ValueError(f"evaluation needs a Discrete action space, got {space!r}")
        self.num_actions = int(space.n)
        self.reset = jax.jit(self._reset)
        self.run_chunk = jax.jit(self._chunk)

    def _reset(self, episodes: Array):
        reset_keys, roots = _episode_keys(self.seed, episodes)
        env_state, ts = jax.vmap(self.env.reset, (0, None))(reset_keys, self.params)
        # row 0 carries zeros where a step's info would be (the reset has no step)
        step_ts = jax.eval_shape(
            lambda s, k: jax.vmap(self.env.step, (0, 0, 0, None))(
                k, s, jnp.zeros(episodes.shape, jnp.int32), self.params
            )[1],
            env_state,
            reset_keys,
        )
        info = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), step_ts.info)
        ts = ts.replace(info=info) if hasattr(ts, "replace") else ts._replace(info=info)
        b = episodes.shape[0]
        rows = jax.vmap(self.rows)(env_state, ts)
        rows.update(
            action=jnp.full((b,), -1, jnp.int32),
            reward=jnp.zeros((b,), jnp.float32),
            step_keys=jnp.zeros((b, 2), jnp.uint32),
        )
        constants = {"reset_key": jax.random.key_data(reset_keys)}
        if self.simfish:
            constants.update(jax.vmap(lambda s: simfish_constants(self.params, s))(env_state))
        lanes = _Lanes(
            env_state=env_state,
            obs=ts.observation,
            carry=self.policy.init_carry(b),
            prev_action=jnp.full((b,), -1, jnp.int32),
            prev_reward=jnp.zeros((b,), jnp.float32),
            start=jnp.ones((b,), bool),
            done=jnp.zeros((b,), bool),
            step_root=roots,
            t=jnp.zeros((), jnp.int32),
        )
        return lanes, rows, constants

    def _iteration(self, weights, lanes: _Lanes, _):
        p = self.policy
        carry, scores, outputs = p.step(
            weights, lanes.obs, lanes.carry, lanes.prev_action, lanes.prev_reward, lanes.start
        )
        greedy = jnp.argmax(scores, axis=-1).astype(jnp.int32)
        keys = jax.vmap(lambda r: jax.random.split(jax.random.fold_in(r, lanes.t + 1)))(
            lanes.step_root
        )
        k_eps, k_env = keys[:, 0], keys[:, 1]
        u = jax.vmap(lambda k: jax.random.uniform(jax.random.fold_in(k, 0)))(k_eps)
        rand = jax.vmap(
            lambda k: jax.random.randint(jax.random.fold_in(k, 1), (), 0, self.num_actions)
        )(k_eps)
        action = jnp.where(u < self.epsilon, rand.astype(jnp.int32), greedy)
        env_state, ts = jax.vmap(self.env.step, (0, 0, 0, None))(
            k_env, lanes.env_state, action, self.params
        )
        valid = ~lanes.done & (lanes.t < self.max_steps)
        agent_rows = {**carry_datasets(carry), **outputs, "greedy_action": greedy}
        rows = jax.vmap(self.rows)(env_state, ts)
        rows.update(
            action=action,
            reward=ts.reward.astype(jnp.float32),
            step_keys=jax.random.key_data(k_env),
            terminated=ts.terminated,
            truncated=ts.truncated,
        )
        ended = ts.terminated | ts.truncated | (lanes.t + 1 >= self.max_steps)
        new = _Lanes(
            env_state=env_state,
            obs=ts.observation,
            carry=carry,
            prev_action=action,
            prev_reward=ts.reward.astype(jnp.float32),
            start=jnp.zeros_like(lanes.start),
            done=lanes.done | (valid & ended),
            step_root=lanes.step_root,
            t=lanes.t + 1,
        )
        return new, (valid, rows, agent_rows)

    def _chunk(self, weights, lanes: _Lanes):
        lanes, (valid, rows, agent_rows) = jax.lax.scan(
            lambda c, x: self._iteration(weights, c, x), lanes, None, length=self.chunk
        )
        batch_major = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731
        return lanes, batch_major(valid), jax.tree.map(batch_major, (rows, agent_rows))


def _numpy(tree):
    return jax.tree.map(np.asarray, jax.device_get(tree))


def evaluate(
    agent,
    state,
    env,
    params,
    episodes: int,
    epsilon: float = 0.0,
    *,
    batch: int = 16,
    chunk: int = 100,
    seed: int = 0,
    max_steps: int | None = None,
    on_steps=None,
):
    """Run ``episodes`` episodes of ``agent`` (trained ``state``) and yield :class:`Records`.

    ``epsilon``: probability of a uniformly random action (0 = greedy). ``batch`` episodes
    run side by side, ``chunk`` steps per compiled scan; ``max_steps`` (default
    ``params.max_steps``) ends an episode that does not end itself. ``on_steps(n)`` is
    called with the number of steps recorded after each chunk (a progress bar).
    """
    for name, value, ok, allowed in (
        ("episodes", episodes, isinstance(episodes, int) and episodes >= 1, "an int >= 1"),
        ("epsilon", epsilon, isinstance(epsilon, int | float) and 0.0 <= epsilon <= 1.0,
         "a number from 0 to 1"),
        ("batch", batch, isinstance(batch, int) and batch >= 1, "an int >= 1"),
        ("chunk", chunk, isinstance(chunk, int) and chunk >= 1, "an int >= 1"),
    ):  # fmt: skip
        if not ok or isinstance(value, bool):
            raise ValueError(f"evaluate: {name}={value!r} is not allowed; allowed: {allowed}")
    max_steps = max_steps or getattr(params, "max_steps", None)
    if not max_steps:
        raise ValueError("evaluate: max_steps is needed (params have no max_steps)")
    policy = make_policy(agent, state)
    runner = _Runner(env, params, policy, float(epsilon), int(max_steps), chunk, seed)
    batch = min(batch, episodes)
    for first in range(1, episodes + 1, batch):
        ids = np.arange(first, first + batch)
        keep = ids <= episodes
        lanes, rows, constants = runner.reset(jnp.asarray(ids, jnp.int32))
        rows, constants = _numpy((rows, constants))
        yield Records(
            episodes=ids[keep],
            env={k: v[keep][:, None] for k, v in rows.items()},
            agent={},
            valid=np.ones((int(keep.sum()), 1), bool),
            done=np.zeros(int(keep.sum()), bool),
            constants={k: v[keep] for k, v in constants.items()},
        )
        while True:
            lanes, valid, (rows, agent_rows) = runner.run_chunk(policy.weights, lanes)
            valid, rows, agent_rows, done = _numpy((valid, rows, agent_rows, lanes.done))
            yield Records(
                episodes=ids[keep],
                env={k: v[keep] for k, v in rows.items()},
                agent={k: v[keep] for k, v in agent_rows.items()},
                valid=valid[keep],
                done=done[keep],
                constants={},
            )
            if on_steps is not None:
                on_steps(int(valid[keep].sum()))
            if done.all():
                break


__all__ = ["Policy", "Records", "carry_datasets", "evaluate", "make_policy", "simfish_rows"]
