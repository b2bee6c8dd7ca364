"""R2D2: recurrent replay distributed DQN (Kapturowski et al., ICLR 2019), compiled end to end.

One transition's path, top to bottom in this file:

1. **Acting** (``_act_tick``): every actor runs its observation, previous action, previous
   reward and start flag through the online network (T = 1), acts epsilon-greedily
   (per-actor epsilons log-spaced from ``epsilon_max`` to ``epsilon_min``) and steps its
   environment. Episodes follow the dm_env convention: the tick after an episode's last
   environment step shows the *final observation* (no action is taken on it, ``has_action``
   is False) and the environment resets on the following tick (``start`` True). So the
   stored stream keeps the final observation that a truncated episode bootstraps from,
   without a second observation array.
   With mirror augmentation the actors also run the mirrored stream (reflected observations,
   mirrored previous actions) through the online network, so the mirrored recurrent state
   stored with every sequence is exact, not the unmirrored one reused. Networks that derive a
   mirror image's features from the unmirrored observation (``mirror_features``, e.g. the
   Simfish Retina: its eyes' feature blocks swapped) are called with ``with_mirror=True``
   instead of convolving the reflected observation again (here and in the joint learner step).
2. **Insertion**: one update acts ``period`` ticks, then adds those steps and the recurrent
   state(s) held before them to ``SequenceReplay`` (``larvax.agents.replay``): one item of
   ``burn_in + trace_length + 1`` steps starts every ``period`` steps. Observations whose
   space is ``Box(0, 255)`` (Simfish photon counts) are stored as uint8, exactly.
3. **Learning** (``r2d2_loss``): ``learner_steps_per_update`` sampled batches per update, the
   number fixed by ``samples_per_insert`` = sampled sequences / inserted sequences (every
   sequence is inserted once; a mirrored copy is augmentation, not a sample). Online and
   target networks start from the stored state, burn in ``burn_in`` steps under
   stop-gradient, then give n-step double-Q targets with value rescaling on the trace.
   Priorities ``0.9 max + 0.1 mean`` of |TD| go back to the replay; the target network is
   copied every ``target_update_period`` learner steps.

Sequences may cross episode starts: the ``start`` flag resets the recurrent state there, no
loss is taken on the final-observation ticks and n-step returns stop at an episode's final
observation (bootstrapping from it when truncated, not when terminated).

``train(state, num_updates)`` is one ``jax.jit`` of one ``lax.scan`` over updates.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import rlax
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from larvax.agents.replay import (
    ReplayState,
    SequenceReplay,
    importance_weights,
    sequence_priority,
)
from larvax.envs.core import Box, Dict, Discrete
from larvax.networks.extractors import supports_mirror

Array = jax.Array
PyTree = Any

AXIS = "devices"  # the data-parallel mesh axis: actors, replay rows and batch rows split on it


# ============================================================================= config


@dataclass(frozen=True)
class R2D2Config:
    """R2D2 hyper-parameters. Defaults: simfish_rl's, except where noted.

    burn_in, trace_length, period: replayed sequences have ``burn_in + trace_length + 1``
        steps and start every ``period`` steps (one update acts ``period`` steps per actor).
    n_step, discount: n-step double-Q targets, gamma per step.
    batch_size: sequences per learner step.
    learning_rate, adam_eps: Adam (optax). ``adam_eps`` 1e-3 as in the R2D2 paper.
    max_grad_norm: global-norm gradient clipping, None for none.
    target_update_period: learner steps between copies of the online network to the target.
    priority_exponent (alpha), importance_exponent (beta), max_priority_weight (eta):
        prioritised replay; priority = eta max|TD| + (1-eta) mean|TD|, P ~ p^alpha.
    samples_per_insert: sampled sequences per inserted sequence; with ``num_envs`` sequences
        inserted per update this gives ``samples_per_insert * num_envs / batch_size`` learner
        steps per update, which must be a whole number.
    num_envs: parallel actors.
    replay_capacity: sequence items kept (``num_envs`` must divide it); every item owns
        ``period`` stored steps, see ``larvax.agents.replay``. Simfish: a step is 868 bytes
        (uint8 visual 834, internal 12, action/reward/flags 22; 3,370 with float32 visual),
        an item's two LSTM(64) states 1,024, so C items cost C * (20 * 868 + 1,028) bytes:
        287 MiB at the default C = 16384 (``R2D2Agent.replay_nbytes()``).
    min_replay_size: sampleable sequences before learning starts.
    value_rescale_eps: eps of h(x) = sign(x)(sqrt(|x|+1)-1) + eps x.
    epsilon_max, epsilon_min: actor epsilons, log-spaced over the actors (one actor: max).
    mirror: "auto" (when the environment declares a mirror map), True or False.
    mirror_carry: "exact" (the actors also run the mirrored stream and store its state) or
        "reuse" (the mirrored batch starts from the unmirrored state, as simfish_rl does).
    mirror_update: "joint" (one gradient step on the batch and its mirror, one forward of
        2 x batch_size) or "sequential" (two Adam steps, the two halves in random order, as
        simfish_rl does).
    mirror_features: "auto" (when the network's observation module declares
        ``mirror_features``, e.g. the Simfish Retina, and its mirrored features match those of
        the environment's reflected observation on a random check at start-up: the mirrored
        half of each batch and of the actors' mirrored stream reuses the unmirrored
        convolution, ``Network(..., with_mirror=True)``), or False (always convolve the
        reflected observations). The same function either way; "auto" is ~2x cheaper in the
        Retina.
    compact_observations: "auto" (store Box(0, 255) observation leaves as uint8), or False.
    num_devices: data-parallel devices (``jax.devices()``): "auto" (the most devices, up to
        all, that divide both ``num_envs`` and ``batch_size``) or an int. Each device runs
        ``num_envs / D`` actors with their own replay rows and learns on ``batch_size / D``
        sequences drawn from them (prioritised within its rows, stratified over devices);
        gradients are averaged over devices (``lax.pmean``), so every device holds the same
        network. On a CPU, JAX has one device unless asked for more (``larvax train
        --cpu-devices N``; one is faster for R2D2 on a 2-core CPU, measured).
    """

    burn_in: int = 8
    trace_length: int = 75
    period: int = 20
    n_step: int = 5
    discount: float = 0.997
    batch_size: int = 32
    learning_rate: float = 1e-4
    adam_eps: float = 1e-3
    max_grad_norm: float | None = None
    target_update_period: int = 1200
    priority_exponent: float = 0.9
    importance_exponent: float = 0.6
    max_priority_weight: float = 0.9
    samples_per_insert: float = 1.0
    num_envs: int = 64
    replay_capacity: int = 16384
    min_replay_size: int = 1024
    value_rescale_eps: float = 1e-3
    epsilon_max: float = 0.1
    epsilon_min: float = 0.001
    mirror: Any = "auto"
    mirror_carry: str = "exact"
    mirror_update: str = "joint"
    mirror_features: Any = "auto"
    compact_observations: Any = "auto"
    num_devices: Any = "auto"

    def __post_init__(self):
        def fail(name, allowed):
            raise ValueError(
                f"R2D2Config.{name}={getattr(self, name)!r} is not allowed; allowed: {allowed}"
            )

        for name, lo in (
            ("burn_in", 0),
            ("trace_length", 1),
            ("period", 1),
            ("n_step", 1),
            ("batch_size", 1),
            ("target_update_period", 1),
            ("num_envs", 1),
            ("replay_capacity", 1),
            ("min_replay_size", 1),
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < lo:
                fail(name, f"an int >= {lo}")
        for name, lo, hi, lo_open in (
            ("discount", 0.0, 1.0, False),
            ("learning_rate", 0.0, math.inf, True),
            ("adam_eps", 0.0, math.inf, False),
            ("priority_exponent", 0.0, math.inf, False),
            ("importance_exponent", 0.0, 1.0, False),
            ("max_priority_weight", 0.0, 1.0, False),
            ("samples_per_insert", 0.0, math.inf, True),
            ("value_rescale_eps", 0.0, 1.0, False),
            ("epsilon_max", 0.0, 1.0, False),
            ("epsilon_min", 0.0, 1.0, False),
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float | np.number):
                fail(name, f"a number in {'(' if lo_open else '['}{lo}, {hi}]")
            if not (v > lo if lo_open else v >= lo) or not v <= hi:
                fail(name, f"a number in {'(' if lo_open else '['}{lo}, {hi}]")
        if self.max_grad_norm is not None and not (
            isinstance(self.max_grad_norm, int | float) and self.max_grad_norm > 0
        ):
            fail("max_grad_norm", "None or a number > 0")
        if self.epsilon_min > self.epsilon_max:
            fail("epsilon_min", f"a number <= epsilon_max={self.epsilon_max}")
        if self.epsilon_min == 0.0 and self.num_envs > 1 and self.epsilon_max > 0:
            fail("epsilon_min", "a number > 0 (epsilons are log-spaced)")
        if self.mirror not in ("auto", True, False):
            fail("mirror", "'auto', True, False")
        if self.mirror_carry not in ("exact", "reuse"):
            fail("mirror_carry", "'exact', 'reuse'")
        if self.mirror_update not in ("joint", "sequential"):
            fail("mirror_update", "'joint', 'sequential'")
        if self.mirror_features not in ("auto", False):
            fail("mirror_features", "'auto', False")
        if self.compact_observations not in ("auto", False):
            fail("compact_observations", "'auto', False")
        if self.num_devices != "auto" and (
            isinstance(self.num_devices, bool)
            or not isinstance(self.num_devices, int | np.integer)
            or self.num_devices < 1
        ):
            fail("num_devices", "'auto' or an int >= 1")
        if self.num_devices != "auto" and (
            self.num_envs % self.num_devices or self.batch_size % self.num_devices
        ):
            fail(
                "num_devices",
                f"a divisor of both num_envs={self.num_envs} and batch_size={self.batch_size}",
            )
        if self.n_step > self.trace_length:
            fail("n_step", f"an int <= trace_length={self.trace_length}")
        if self.replay_capacity % self.num_envs:
            fail("replay_capacity", f"a multiple of num_envs={self.num_envs}")
        slots = self.replay_capacity // self.num_envs
        if slots * self.period < self.sequence_length:
            need = -(-self.sequence_length // self.period) * self.num_envs
            fail(
                "replay_capacity",
                f">= {need} (each actor must keep one whole sequence of "
                f"{self.sequence_length} steps = ceil({self.sequence_length}/{self.period}) "
                f"items of period {self.period})",
            )
        if self.min_replay_size > self.max_valid_items:
            fail(
                "min_replay_size",
                f"<= {self.max_valid_items}, the sequences a full replay of "
                f"capacity {self.replay_capacity} can hold",
            )
        if self.batch_size > self.min_replay_size:
            fail("batch_size", f"<= min_replay_size={self.min_replay_size}")
        steps = self.samples_per_insert * self.num_envs / self.batch_size
        if abs(steps - round(steps)) > 1e-9 or round(steps) < 1:
            fail(
                "samples_per_insert",
                f"a value making samples_per_insert * num_envs / batch_size "
                f"(= {steps:g} learner steps per update) a whole number >= 1",
            )

    @property
    def sequence_length(self) -> int:
        return self.burn_in + self.trace_length + 1

    @property
    def slots_per_env(self) -> int:
        return self.replay_capacity // self.num_envs

    @property
    def max_valid_items(self) -> int:
        return self.num_envs * (
            (self.slots_per_env * self.period - self.sequence_length) // self.period + 1
        )

    @property
    def learner_steps_per_update(self) -> int:
        return int(round(self.samples_per_insert * self.num_envs / self.batch_size))

    @classmethod
    def from_dict(cls, config: dict | None) -> R2D2Config:
        config = dict(config or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - names)
        if unknown:
            raise ValueError(f"R2D2Config: unknown field(s) {unknown}; allowed: {sorted(names)}")
        return cls(**config)


def actor_epsilons(num_envs: int, epsilon_max: float, epsilon_min: float) -> np.ndarray:
    """float32 [num_envs]: epsilons log-spaced from epsilon_max (actor 0) to epsilon_min."""
    if num_envs == 1:
        return np.array([epsilon_max], np.float32)
    if epsilon_max == 0.0:
        return np.zeros(num_envs, np.float32)
    return np.geomspace(epsilon_max, epsilon_min, num_envs).astype(np.float32)


def resolve_num_devices(config: R2D2Config, available: int) -> int:
    """How many of ``available`` devices an agent uses (see ``R2D2Config.num_devices``)."""
    c = config
    if c.num_devices == "auto":
        return max(
            d for d in range(1, available + 1) if c.num_envs % d == 0 and c.batch_size % d == 0
        )
    if c.num_devices > available:
        raise ValueError(
            f"R2D2Config.num_devices={c.num_devices} but JAX sees {available} device(s); "
            f"allowed: 'auto' or an int <= {available}"
        )
    return int(c.num_devices)


# ============================================================================= losses


def n_step_targets(
    rewards: Array, discounts: Array, has_action: Array, values: Array, n: int, gamma: float
) -> Array:
    """n-step returns that stop at an episode's final observation and at the sequence end.

    For a sequence of T + 1 steps (index 0..T) and every t < T::

        K_t = min(n, T - t, e_t - t),  e_t = first j > t with has_action[j] False
        G_t = sum_{k<K_t} gamma^k (prod_{i<k} d_{t+i}) r_{t+k}
              + gamma^K_t (prod_{i<K_t} d_{t+i}) v_{t+K_t}

    rewards r, discounts d (0 after a terminal step, else 1), has_action: [B, T+1] (the reward
    and discount of step j belong to the transition out of step j; a step without action is an
    episode's final observation). values v [B, T+1]: bootstrap values (raw, not rescaled).
    Returns G [B, T] (entries with has_action[t] False are meaningless; mask them).
    """
    tp1 = rewards.shape[-1]
    t_len = tp1 - 1
    idx = jnp.arange(t_len)
    g = jnp.zeros(rewards.shape[:-1] + (t_len,), values.dtype)
    disc = jnp.ones_like(g)
    alive = has_action[..., :t_len]
    for k in range(n):
        j = idx + k  # <= T - 1 wherever alive
        jc = jnp.minimum(j, t_len - 1)
        nxt = jnp.minimum(j + 1, t_len)
        g = g + jnp.where(alive, disc * rewards[..., jc], 0.0)
        disc = jnp.where(alive, disc * gamma * discounts[..., jc], disc)
        alive_next = alive & has_action[..., nxt] & (j + 1 < t_len) & (k + 1 < n)
        stop = alive & ~alive_next
        g = g + jnp.where(stop, disc * values[..., nxt], 0.0)
        alive = alive_next
    return g


class LossOutput(NamedTuple):
    abs_td: Array  # [B, T]
    mask: Array  # [B, T] bool
    q_mean: Array  # scalar


def _apply(graphdef, params, rest, obs, prev_action, prev_reward, starts, carry, with_mirror=False):
    net = nnx.merge(graphdef, params, rest)
    if with_mirror:
        return net(obs, prev_action, prev_reward, starts, carry, with_mirror=True)
    return net(obs, prev_action, prev_reward, starts, carry)


def _slice_time(tree, start, stop):
    return jax.tree.map(lambda x: x[:, start:stop], tree)


def r2d2_loss(
    params,
    target_params,
    rest,
    graphdef,
    batch: dict,
    carry,
    weights: Array,
    *,
    burn_in: int,
    n_step: int,
    discount: float,
    value_rescale_eps: float,
    with_mirror: bool = False,
):
    """R2D2 sequence loss (Kapturowski et al. 2019, eq. 1 and sec. 2.3).

    Both networks start from the stored state ``carry`` and run the first ``burn_in`` steps
    under stop-gradient. On the remaining T + 1 steps, with h(x) = sign(x)(sqrt(|x|+1)-1)
    + eps x (``rlax.signed_hyperbolic``) and h^-1 (``rlax.signed_parabolic``)::

        a*_j = argmax_a Q(o_j, a; theta)                       (double Q)
        v_j  = h^-1(Q(o_j, a*_j; theta^-))
        y_t  = h(G_t)  with G_t the n-step return of ``n_step_targets``
        L    = mean_b w_b * 0.5 * mean_t [(Q(o_t, a_t; theta) - y_t)^2]   over steps with actions

    batch: dict of [B, L] arrays: observation (float pytree), prev_action, prev_reward, start,
    action, reward, discount, has_action. weights: importance weights [B].
    with_mirror: the batch is [B'] rows followed by their mirror images (B = 2B'), but the
    observation holds only the first B' rows (the network derives the mirrored features,
    ``Network(..., with_mirror=True)``).
    Returns (loss, LossOutput).
    """
    obs, pa, pr, st = (
        batch["observation"],
        batch["prev_action"],
        batch["prev_reward"],
        batch["start"],
    )
    length = pa.shape[1]
    bi = burn_in

    def run(p, c, lo, hi):
        return _apply(
            graphdef,
            p,
            rest,
            _slice_time(obs, lo, hi),
            pa[:, lo:hi],
            pr[:, lo:hi],
            st[:, lo:hi],
            c,
            with_mirror,
        )

    sg = jax.lax.stop_gradient
    if bi > 0:
        c_online, _ = run(sg(params), carry, 0, bi)
        c_online = sg(c_online)
        c_target, _ = run(target_params, carry, 0, bi)
    else:
        c_online = c_target = carry
    _, q = run(params, c_online, bi, length)  # [B, T+1, A]
    _, q_tgt = run(target_params, c_target, bi, length)
    q_tgt = sg(q_tgt)

    a_star = jnp.argmax(sg(q), axis=-1)
    v = rlax.signed_parabolic(
        jnp.take_along_axis(q_tgt, a_star[..., None], -1)[..., 0], value_rescale_eps
    )
    rew, disc, has = batch["reward"][:, bi:], batch["discount"][:, bi:], batch["has_action"][:, bi:]
    g = n_step_targets(rew, disc, has, v, n_step, discount)
    y = sg(rlax.signed_hyperbolic(g, value_rescale_eps))
    act = jnp.maximum(batch["action"][:, bi:-1], 0)
    q_a = jnp.take_along_axis(q[:, :-1], act[..., None], -1)[..., 0]
    mask = has[:, :-1]
    td = jnp.where(mask, q_a - y, 0.0)
    m = mask.astype(jnp.float32)
    per_seq = 0.5 * jnp.sum(td**2, axis=1) / jnp.maximum(jnp.sum(m, axis=1), 1.0)
    loss = jnp.mean(weights * per_seq)
    q_mean = jnp.sum(jnp.where(mask, q_a, 0.0)) / jnp.maximum(jnp.sum(m), 1.0)
    return loss, LossOutput(jnp.abs(td), mask, sg(q_mean))


# ============================================================================= state


class ActorState(NamedTuple):
    """Per-actor acting state, every leaf [N, ...].

    observation: the current observation o_t (float pytree). prev_action int32 (-1 none),
    prev_reward float32, start bool (o_t is an episode's first), last bool (o_t is an
    episode's final observation: the next tick resets). carry / carry_mirror: recurrent
    states before o_t. ep_return, ep_length, ep_info: running episode sums.
    """

    env_state: PyTree
    observation: PyTree
    prev_action: Array
    prev_reward: Array
    start: Array
    last: Array
    carry: PyTree
    carry_mirror: PyTree
    ep_return: Array
    ep_length: Array
    ep_info: dict


class TrainState(NamedTuple):
    """Everything ``train`` changes; a pytree of arrays (what a checkpoint stores)."""

    params: PyTree
    target_params: PyTree
    rest: PyTree
    opt_state: PyTree
    replay: Any
    actor: ActorState
    key: Array
    updates: Array  # int32, updates done
    learner_steps: Array  # int32, gradient batches done


class ActCarry(NamedTuple):
    """Carry of ``R2D2Agent.act``: network state, previous action, pending start flag."""

    net: PyTree
    prev_action: Array
    start: Array


# ============================================================================= observations


def _space_tree(space):
    if isinstance(space, Dict):
        return {k: _space_tree(v) for k, v in space.spaces.items()}
    return space


def _compact_mask(env, env_params, mode) -> PyTree:
    """Pytree of bools (like the observation): leaves stored as uint8 photon counts."""
    _, ts = jax.eval_shape(lambda k: env.reset(k, env_params), jax.random.key(0))
    obs_struct = ts.observation
    if mode is False:
        return jax.tree.map(lambda _: False, obs_struct)
    spaces = _space_tree(env.observation_space(env_params))

    def is_counts(s):
        return (
            isinstance(s, Box)
            and np.all(np.asarray(s.low) == 0)
            and np.all(np.asarray(s.high) == 255)
        )

    if isinstance(spaces, dict) and isinstance(obs_struct, dict):
        return {
            k: bool(is_counts(spaces.get(k))) and not isinstance(obs_struct[k], dict)
            for k in obs_struct
        }
    if not isinstance(spaces, dict) and len(jax.tree.leaves(obs_struct)) == 1:
        return jax.tree.map(lambda _: bool(is_counts(spaces)), obs_struct)
    return jax.tree.map(lambda _: False, obs_struct)


def compress_observation(obs: PyTree, mask: PyTree) -> PyTree:
    """uint8 for the masked leaves (values are integer counts in 0..255, so this is exact)."""
    return jax.tree.map(
        lambda x, m: jnp.clip(jnp.round(x), 0, 255).astype(jnp.uint8) if m else x, obs, mask
    )


def decompress_observation(obs: PyTree) -> PyTree:
    return jax.tree.map(lambda x: x.astype(jnp.float32) if x.dtype == jnp.uint8 else x, obs)


def _mirror_features_match(env, env_params, network, atol: float = 1e-4) -> bool:
    """Whether ``network.features(obs, ..., with_mirror=True)`` equals the features of
    ``obs`` and ``env.reflect_observation(obs)`` computed separately, on random observations
    (``observation_space.sample``). Checked once at
    start-up, eagerly on a tiny batch, so that a network whose declared mirror does not match
    this environment's reflection is never used with ``with_mirror``."""
    space = env.observation_space(env_params)
    samples = [space.sample(k) for k in jax.random.split(jax.random.key(1234), 2)]
    obs = jax.tree.map(lambda *x: jnp.stack(x).astype(jnp.float32)[:, None], *samples)
    mobs = jax.vmap(jax.vmap(env.reflect_observation))(obs)
    both = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), obs, mobs)
    pa = jnp.zeros((4, 1), jnp.int32)
    pr = jnp.zeros((4, 1), jnp.float32)
    st = jnp.ones((4, 1), bool)
    # Also with random parameters: the initial ones may hide a wrong mirror (dead units).
    graphdef, params, rest = nnx.split(network, nnx.Param, ...)
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(4321), len(leaves))
    noisy = [
        jax.random.normal(k, x.shape, x.dtype) * 0.5 for k, x in zip(keys, leaves, strict=True)
    ]
    for net in (network, nnx.merge(graphdef, jax.tree.unflatten(treedef, noisy), rest)):
        try:
            fast = net.features(obs, pa, pr, st, with_mirror=True)
        except (ValueError, TypeError):
            return False
        slow = net.features(both, pa, pr, st)
        scale = 1.0 + float(jnp.max(jnp.abs(slow)))
        if fast.shape != slow.shape or not bool(
            jnp.allclose(fast, slow, rtol=1e-5, atol=atol * scale)
        ):
            return False
    return True


def mirror_batch(batch: dict, reflect, mirror_actions: Array) -> dict:
    """The mirror image of a [B, L] batch: observations reflected, actions and previous actions
    mapped through ``mirror_actions`` (-1 = none stays -1); everything else unchanged."""
    obs = jax.vmap(jax.vmap(reflect))(batch["observation"])
    amap = jnp.asarray(mirror_actions, jnp.int32)

    def m(a):
        return jnp.where(a >= 0, amap[jnp.maximum(a, 0)], a)

    out = dict(batch)
    out.update(observation=obs, action=m(batch["action"]), prev_action=m(batch["prev_action"]))
    return out


# ============================================================================= agent


class R2D2Agent:
    """R2D2 with prioritised sequence replay and mirror augmentation (see module docstring).

    Built by ``make_agent``; ``init(key)``, ``train(state, num_updates)``, ``act(...)``.
    """

    def __init__(self, env, env_params, network, config: R2D2Config, network_spec=None):
        self.env = env
        self.env_params = env_params if env_params is not None else env.default_params
        self.config = config
        self.network_spec = network_spec
        space = env.action_space(self.env_params)
        if not isinstance(space, Discrete):
            raise ValueError(f"R2D2 needs a Discrete action space, got {space!r}")
        self.num_actions = int(space.n)
        c = config
        has_mirror = getattr(env, "mirror_actions", None) is not None
        if c.mirror is True and not has_mirror:
            raise ValueError(
                f"R2D2Config.mirror=True but environment {env.name} declares no "
                "mirror_actions; allowed: 'auto' or False"
            )
        self.mirror = bool(has_mirror and c.mirror in ("auto", True))
        self.mirror_actions = (
            jnp.asarray(np.asarray(env.mirror_actions), jnp.int32) if self.mirror else None
        )
        self.mirror_features = bool(
            self.mirror
            and c.mirror_features == "auto"
            and supports_mirror(network)
            and _mirror_features_match(env, self.env_params, network)
        )
        self.graphdef, params, rest = nnx.split(network, nnx.Param, ...)
        self._params0, self._rest0 = params, rest
        self._net0 = network
        self.compact_mask = _compact_mask(env, self.env_params, c.compact_observations)
        # Data parallelism: D devices, each with num_envs / D actors, their replay rows and
        # batch_size / D sequences per learner step; ``train`` runs under ``jax.shard_map``.
        self.num_devices = resolve_num_devices(c, len(jax.devices()))
        self.mesh = Mesh(np.array(jax.devices()[: self.num_devices]), (AXIS,))
        self.local_envs = c.num_envs // self.num_devices
        self.local_batch = c.batch_size // self.num_devices
        # The whole buffer (for inspection outside ``train``) and one device's rows.
        self.replay = SequenceReplay(c.num_envs, c.slots_per_env, c.period, c.sequence_length)
        self._local_replay = SequenceReplay(
            self.local_envs, c.slots_per_env, c.period, c.sequence_length
        )
        tx = [optax.adam(c.learning_rate, eps=c.adam_eps)]
        if c.max_grad_norm is not None:
            tx.insert(0, optax.clip_by_global_norm(c.max_grad_norm))
        self.optimizer = optax.chain(*tx)
        self.epsilons = actor_epsilons(c.num_envs, c.epsilon_max, c.epsilon_min)
        _, ts = jax.eval_shape(lambda k: env.reset(k, self.env_params), jax.random.key(0))
        self.info_keys = tuple(k for k in ("prey_caught",) if k in ts.info)
        self._train = jax.jit(self._train_impl, static_argnums=1, donate_argnums=0)
        self._learner_step = jax.shard_map(
            self._learner_step_local,
            mesh=self.mesh,
            in_specs=(self._state_specs(), P()),
            out_specs=(self._state_specs(), P()),
            check_vma=False,
        )
        self._act = jax.jit(self._act_impl, static_argnames=("greedy",))

    # -------------------------------------------------------------------- properties

    @property
    def env_steps_per_update(self) -> int:
        """Actor ticks per update summed over actors (a reset tick counts as a step)."""
        return self.config.num_envs * self.config.period

    def replay_nbytes(self) -> int:
        """Bytes of this agent's replay buffer (see ``larvax.agents.replay``)."""
        step, extras = self._replay_examples()
        return self.replay.nbytes(step, extras)

    # -------------------------------------------------------------------- network helpers

    def apply(self, params, rest, obs, prev_action, prev_reward, starts, carry, with_mirror=False):
        """carry, q [B, T, A] = net(obs [B, T, ...], prev_action, prev_reward, starts, carry)
        (``with_mirror``: see ``Network``)."""
        return _apply(
            self.graphdef, params, rest, obs, prev_action, prev_reward, starts, carry, with_mirror
        )

    def initialize_carry(self, batch_size: int):
        return self._net0.initialize_carry((batch_size,))

    def _replay_examples(self):
        _, ts = jax.eval_shape(lambda k: self.env.reset(k, self.env_params), jax.random.key(0))
        obs = compress_observation(
            jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), ts.observation), self.compact_mask
        )
        step = dict(
            observation=obs,
            prev_action=jnp.int32(0),
            prev_reward=jnp.float32(0),
            start=jnp.bool_(False),
            action=jnp.int32(0),
            reward=jnp.float32(0),
            discount=jnp.float32(0),
            has_action=jnp.bool_(False),
        )
        carry = jax.tree.map(lambda x: x[0], self.initialize_carry(1))
        extras = dict(carry=carry)
        if self.mirror and self.config.mirror_carry == "exact":
            extras["carry_mirror"] = carry
        return step, extras

    # -------------------------------------------------------------------- init

    def _params_for_key(self, key):
        spec = self.network_spec
        if spec is None:
            return self._params0, self._rest0
        from larvax.networks import registry

        # nnx.Rngs from the key itself, so init also works under jax.eval_shape / jit.
        kwargs = {k: v for k, v in spec.items() if k not in ("name", "seed")}
        net = registry.create(spec["name"], rngs=nnx.Rngs(key), **kwargs)
        _, params, rest = nnx.split(net, nnx.Param, ...)
        return params, rest

    def init(self, key: Array) -> TrainState:
        """A fresh TrainState: network from ``key`` (registry networks), envs reset."""
        c = self.config
        k_net, k_env, k_run = jax.random.split(key, 3)
        params, rest = self._params_for_key(k_net)
        params = jax.tree.map(jnp.asarray, params)
        rest = jax.tree.map(jnp.asarray, rest)
        env_keys = jax.random.split(k_env, c.num_envs)
        env_state, ts = jax.vmap(lambda k: self.env.reset(k, self.env_params))(env_keys)
        carry = self.initialize_carry(c.num_envs)
        n = c.num_envs
        actor = ActorState(
            env_state=env_state,
            observation=jax.tree.map(lambda x: x.astype(jnp.float32), ts.observation),
            prev_action=jnp.full((n,), -1, jnp.int32),
            prev_reward=jnp.zeros((n,), jnp.float32),
            start=jnp.ones((n,), bool),
            last=jnp.zeros((n,), bool),
            carry=carry,
            carry_mirror=carry if self.mirror else None,
            ep_return=jnp.zeros((n,), jnp.float32),
            ep_length=jnp.zeros((n,), jnp.int32),
            ep_info={k: jnp.zeros((n,), jnp.float32) for k in self.info_keys},
        )
        step, extras = self._replay_examples()
        replay = self.replay.init(step, extras)
        state = TrainState(
            params=params,
            target_params=jax.tree.map(jnp.copy, params),
            rest=rest,
            opt_state=self.optimizer.init(params),
            replay=replay,
            actor=actor,
            key=k_run,
            updates=jnp.zeros((), jnp.int32),
            learner_steps=jnp.zeros((), jnp.int32),
        )
        # Distinct buffers for every leaf: ``train`` donates its input state.
        state = jax.tree.map(lambda x: jnp.array(x, copy=True), state)
        return self.shard(state)

    # -------------------------------------------------------------------- devices

    def _state_specs(self) -> TrainState:
        """PartitionSpecs (a pytree prefix of TrainState): per-actor leaves split over the
        devices, the network, optimiser, RNG key and counters replicated."""
        d, r = P(AXIS), P()
        return TrainState(
            params=r,
            target_params=r,
            rest=r,
            opt_state=r,
            replay=ReplayState(steps=d, extras=d, priorities=d, max_priority=r, num_steps=r),
            actor=d,
            key=r,
            updates=r,
            learner_steps=r,
        )

    def state_shardings(self, state: TrainState) -> TrainState:
        """A NamedSharding for every leaf of ``state`` (arrays or ShapeDtypeStructs)."""
        return jax.tree.map(
            lambda spec, sub: jax.tree.map(lambda _: NamedSharding(self.mesh, spec), sub),
            self._state_specs(),
            state,
            is_leaf=lambda x: isinstance(x, P),
        )

    def shard(self, state: TrainState) -> TrainState:
        """``state`` laid out over this agent's devices (a no-op when it already is)."""
        return jax.device_put(state, self.state_shardings(state))

    def _rows(self, x: Array) -> Array:
        """This device's rows of a per-actor array [num_envs, ...] (inside ``shard_map``)."""
        i = jax.lax.axis_index(AXIS)
        return jax.lax.dynamic_slice_in_dim(x, i * self.local_envs, self.local_envs, 0)

    # -------------------------------------------------------------------- acting

    def _q_step(self, params, rest, obs, prev_action, prev_reward, start, carry, with_mirror=False):
        """One tick for a batch [B]: returns (carry, q [B, A])."""
        ex = jax.tree.map(lambda x: x[:, None], (obs, prev_action, prev_reward, start))
        carry, q = self.apply(params, rest, *ex, carry, with_mirror)
        return carry, q[:, 0]

    def _act_tick(self, params, rest, actor: ActorState, key: Array):
        """One tick of all actors. Returns (new actor state, stored step, episode stats)."""
        c = self.config
        n = self.local_envs  # this device's actors; random draws are made for all num_envs
        # actors and sliced, so an actor's stream does not depend on the number of devices
        k_eps, k_rand, k_env, k_reset = jax.random.split(key, 4)
        if self.mirror and c.mirror_carry == "exact":
            mobs = jax.vmap(self.env.reflect_observation)(actor.observation)
            mpa = jnp.where(
                actor.prev_action >= 0, self.mirror_actions[jnp.maximum(actor.prev_action, 0)], -1
            )
            both = jax.tree.map(
                lambda a, b: jnp.concatenate([a, b]),
                (actor.observation, actor.prev_action, actor.prev_reward, actor.start, actor.carry),
                (mobs, mpa, actor.prev_reward, actor.start, actor.carry_mirror),
            )
            if self.mirror_features:  # the network derives the mirrored observation's features
                both = (actor.observation, *both[1:])
            carry2, q2 = self._q_step(params, rest, *both, with_mirror=self.mirror_features)
            q = q2[:n]
            carry = jax.tree.map(lambda x: x[:n], carry2)
            carry_m = jax.tree.map(lambda x: x[n:], carry2)
        else:
            carry, q = self._q_step(
                params,
                rest,
                actor.observation,
                actor.prev_action,
                actor.prev_reward,
                actor.start,
                actor.carry,
            )
            carry_m = actor.carry_mirror
        greedy = jnp.argmax(q, axis=-1).astype(jnp.int32)
        rand = self._rows(jax.random.randint(k_rand, (c.num_envs,), 0, self.num_actions, jnp.int32))
        explore = self._rows(jax.random.uniform(k_eps, (c.num_envs,))) < self._rows(
            jnp.asarray(self.epsilons)
        )
        action = jnp.where(explore, rand, greedy)
        has_action = ~actor.last
        action = jnp.where(has_action, action, 0)

        env_keys = self._rows(jax.random.split(k_env, c.num_envs))
        s_env, ts = jax.vmap(lambda k, s, a: self.env.step(k, s, a, self.env_params))(
            env_keys, actor.env_state, action
        )
        reset_keys = self._rows(jax.random.split(k_reset, c.num_envs))

        def do_reset(_):
            return jax.vmap(lambda k: self.env.reset(k, self.env_params))(reset_keys)

        def no_reset(_):
            return s_env, ts

        r_env, r_ts = jax.lax.cond(jnp.any(actor.last), do_reset, no_reset, None)

        def sel(a, b):
            m = jnp.reshape(actor.last, actor.last.shape + (1,) * (a.ndim - 1))
            return jnp.where(m, a, b)

        env_state = jax.tree.map(sel, r_env, s_env)
        obs = jax.tree.map(
            sel,
            jax.tree.map(lambda x: x.astype(jnp.float32), r_ts.observation),
            jax.tree.map(lambda x: x.astype(jnp.float32), ts.observation),
        )
        reward = jnp.where(has_action, ts.reward.astype(jnp.float32), 0.0)
        terminated = has_action & ts.terminated
        ended = has_action & (ts.terminated | ts.truncated)

        step = dict(
            observation=compress_observation(actor.observation, self.compact_mask),
            prev_action=actor.prev_action,
            prev_reward=actor.prev_reward,
            start=actor.start,
            action=action,
            reward=reward,
            discount=1.0 - terminated.astype(jnp.float32),
            has_action=has_action,
        )
        ep_return = actor.ep_return + reward
        ep_length = actor.ep_length + has_action.astype(jnp.int32)
        ep_info = {
            k: actor.ep_info[k] + jnp.where(has_action, ts.info[k], 0.0).astype(jnp.float32)
            for k in self.info_keys
        }
        stats = dict(ended=ended, ep_return=ep_return, ep_length=ep_length, **ep_info)
        zero_f = jnp.zeros_like(ep_return)
        new = ActorState(
            env_state=env_state,
            observation=obs,
            prev_action=jnp.where(actor.last, -1, action),
            prev_reward=reward,
            start=actor.last,
            last=ended,
            carry=carry,
            carry_mirror=carry_m,
            ep_return=jnp.where(ended, zero_f, ep_return),
            ep_length=jnp.where(ended, 0, ep_length),
            ep_info={k: jnp.where(ended, zero_f, v) for k, v in ep_info.items()},
        )
        return new, step, stats

    # -------------------------------------------------------------------- learning

    def _loss(self, params, target_params, rest, batch, carry, weights, with_mirror=False):
        c = self.config
        return r2d2_loss(
            params,
            target_params,
            rest,
            self.graphdef,
            batch,
            carry,
            weights,
            burn_in=c.burn_in,
            n_step=c.n_step,
            discount=c.discount,
            value_rescale_eps=c.value_rescale_eps,
            with_mirror=with_mirror,
        )

    def _grad_step(
        self, params, target_params, rest, opt_state, batch, carry, weights, with_mirror=False
    ):
        """One Adam step on this device's rows; gradients averaged over the devices."""
        (loss, out), grads = jax.value_and_grad(self._loss, has_aux=True)(
            params, target_params, rest, batch, carry, weights, with_mirror
        )
        grads = jax.lax.pmean(grads, AXIS)
        loss = jax.lax.pmean(loss, AXIS)
        updates, opt_state = self.optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, out

    def _sample(self, replay: SequenceReplay, replay_state, key: Array, batch_size: int):
        sample = replay.sample(replay_state, key, batch_size, self.config.priority_exponent)
        batch = dict(sample.steps)
        batch["observation"] = decompress_observation(batch["observation"])
        return sample, batch

    def learner_batch(self, ts: TrainState, key: Array):
        """Sample a batch from the whole buffer (outside ``train``): (Sample, batch dict with
        float observations, importance weights)."""
        c = self.config
        sample, batch = self._sample(self.replay, ts.replay, key, c.batch_size)
        w = importance_weights(sample.probability, sample.num_valid, c.importance_exponent)
        return sample, batch, w

    def learner_step(self, ts: TrainState, key: Array):
        """One learner step on the whole state (all devices): see ``_learner_step_local``."""
        return self._learner_step(ts, key)

    def _learner_step_local(self, ts: TrainState, key: Array):
        """One learner step on one device's rows (inside ``shard_map``): sample, (mirror,)
        gradient step(s) with device-averaged gradients, priorities, target copy.

        Each device draws ``batch_size / D`` sequences from its own rows, prioritised within
        them. The importance weight of an item drawn with probability P from n valid local
        items is (n P)^-beta (with D devices its chance per draw of the global batch is P / D
        among D n items: the same product), normalised by the largest over all devices.
        """
        c = self.config
        k_sample, k_order = jax.random.split(key)
        k_sample = jax.random.fold_in(k_sample, jax.lax.axis_index(AXIS))
        sample, batch = self._sample(self._local_replay, ts.replay, k_sample, self.local_batch)
        w = jnp.power(
            sample.num_valid.astype(jnp.float32) * sample.probability, -c.importance_exponent
        )
        w = w / jax.lax.pmax(jnp.max(w), AXIS)
        carry = sample.extras["carry"]
        params, opt_state = ts.params, ts.opt_state
        if not self.mirror:
            params, opt_state, loss, out = self._grad_step(
                params, ts.target_params, ts.rest, opt_state, batch, carry, w
            )
            abs_td, mask = out.abs_td, out.mask
            q_mean = out.q_mean
        else:
            mbatch = mirror_batch(batch, self.env.reflect_observation, self.mirror_actions)
            mcarry = sample.extras["carry_mirror"] if c.mirror_carry == "exact" else carry
            if c.mirror_update == "joint":
                cat = functools.partial(jnp.concatenate, axis=0)
                if self.mirror_features:  # mirrored features derived, not convolved again
                    mbatch = dict(mbatch, observation=None)
                    big = jax.tree.map(
                        lambda a, b: cat([a, b]), dict(batch, observation=None), mbatch
                    )
                    big["observation"] = batch["observation"]
                else:
                    big = jax.tree.map(lambda a, b: cat([a, b]), batch, mbatch)
                bigc = jax.tree.map(lambda a, b: cat([a, b]), carry, mcarry)
                params, opt_state, loss, out = self._grad_step(
                    params,
                    ts.target_params,
                    ts.rest,
                    opt_state,
                    big,
                    bigc,
                    cat([w, w]),
                    self.mirror_features,
                )
                b = self.local_batch
                abs_td = jnp.concatenate([out.abs_td[:b], out.abs_td[b:]], axis=1)
                mask = jnp.concatenate([out.mask[:b], out.mask[b:]], axis=1)
                q_mean = out.q_mean
            else:
                stacked = jax.tree.map(
                    lambda a, b: jnp.stack([a, b]), (batch, carry), (mbatch, mcarry)
                )
                flip = jax.random.bernoulli(k_order)  # the same order on every device
                order = jax.tree.map(lambda x: jnp.where(flip, x[::-1], x), stacked)

                def body(carry_, xs):
                    p, o = carry_
                    bt, cr = xs
                    p, o, loss_, out_ = self._grad_step(p, ts.target_params, ts.rest, o, bt, cr, w)
                    return (p, o), (loss_, out_)

                (params, opt_state), (losses, outs) = jax.lax.scan(body, (params, opt_state), order)
                loss = jnp.mean(losses)
                abs_td = jnp.concatenate([outs.abs_td[0], outs.abs_td[1]], axis=1)
                mask = jnp.concatenate([outs.mask[0], outs.mask[1]], axis=1)
                q_mean = jnp.mean(outs.q_mean)
        prio = sequence_priority(abs_td, mask, c.max_priority_weight)
        replay = self._local_replay.update_priorities(
            ts.replay, sample.env_index, sample.slot, prio
        )
        replay = replay._replace(max_priority=jax.lax.pmax(replay.max_priority, AXIS))
        learner_steps = ts.learner_steps + 1
        copy = learner_steps % c.target_update_period == 0
        target = jax.tree.map(lambda p, t: jnp.where(copy, p, t), params, ts.target_params)
        m = mask.astype(jnp.float32)
        metrics = dict(
            loss=loss,
            q_mean=jax.lax.pmean(q_mean, AXIS),
            td_abs=jax.lax.psum(jnp.sum(abs_td * m), AXIS)
            / jnp.maximum(jax.lax.psum(jnp.sum(m), AXIS), 1.0),
            priority_mean=jax.lax.pmean(jnp.mean(prio), AXIS),
            priority_max=jax.lax.pmax(jnp.max(prio), AXIS),
        )
        ts = ts._replace(
            params=params,
            target_params=target,
            opt_state=opt_state,
            replay=replay,
            learner_steps=learner_steps,
        )
        return ts, metrics

    # -------------------------------------------------------------------- one update

    def _num_valid(self, replay_state) -> Array:
        """Sampleable sequences over all devices (rows advance in lock-step)."""
        return self._local_replay.num_valid(replay_state) * self.num_devices

    def update(self, ts: TrainState, _=None):
        """One update on one device's rows (inside ``shard_map``): ``period`` acting ticks,
        insertion, then the learner steps."""
        c = self.config
        key, k_act, k_learn = jax.random.split(ts.key, 3)
        actor0 = ts.actor
        extras = dict(carry=actor0.carry)
        if self.mirror and c.mirror_carry == "exact":
            extras["carry_mirror"] = actor0.carry_mirror

        actor, (steps, stats) = jax.lax.scan(
            lambda a, k: self._tick(ts, a, k), actor0, jax.random.split(k_act, c.period)
        )
        steps = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), steps)  # [N / D, period, ...]
        replay = self._local_replay.add(ts.replay, steps, extras)
        ts = ts._replace(actor=actor, replay=replay, key=key)

        nan = jnp.float32(jnp.nan)
        empty = dict(loss=nan, q_mean=nan, td_abs=nan, priority_mean=nan, priority_max=nan)

        def learn(ts_):
            ts_, ms = jax.lax.scan(
                self._learner_step_local,
                ts_,
                jax.random.split(k_learn, c.learner_steps_per_update),
            )
            return ts_, jax.tree.map(jnp.mean, ms)

        ready = self._num_valid(replay) >= c.min_replay_size
        ts, lm = jax.lax.cond(ready, learn, lambda t: (t, empty), ts)

        ended = stats["ended"].astype(jnp.float32)
        n_ended = jax.lax.psum(jnp.sum(ended), AXIS)

        def ep_mean(x):
            total = jax.lax.psum(jnp.sum(x * ended), AXIS)
            return jnp.where(n_ended > 0, total / jnp.maximum(n_ended, 1.0), nan)

        ts = ts._replace(updates=ts.updates + 1)
        metrics = dict(
            env_steps=(ts.updates * self.env_steps_per_update).astype(jnp.float32),
            episode_return=ep_mean(stats["ep_return"]),
            episode_length=ep_mean(stats["ep_length"].astype(jnp.float32)),
            episodes=n_ended,
            epsilon=jnp.float32(np.mean(self.epsilons)),
            learner_steps=ts.learner_steps.astype(jnp.float32),
            replay_size=self._num_valid(replay).astype(jnp.float32),
            **lm,
        )
        for k in self.info_keys:
            metrics[k] = ep_mean(stats[k])
        metrics = {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
        return ts, metrics

    def _tick(self, ts, actor, key):
        new, step, stats = self._act_tick(ts.params, ts.rest, actor, key)
        return new, (step, stats)

    def _train_impl(self, ts: TrainState, num_updates: int):
        specs = self._state_specs()
        run = jax.shard_map(
            lambda t: jax.lax.scan(self.update, t, None, length=num_updates),
            mesh=self.mesh,
            in_specs=(specs,),
            out_specs=(specs, P()),
            check_vma=False,  # replicated outputs are made so by pmean/psum/pmax (tested)
        )
        return run(ts)

    def train(self, state: TrainState, num_updates: int):
        """``num_updates`` updates in one compiled scan (one ``shard_map`` over the agent's
        devices). The input state is donated (do not reuse it). Returns (state, metrics:
        dict of float32 [num_updates])."""
        if isinstance(num_updates, bool) or not isinstance(num_updates, int) or num_updates < 1:
            raise ValueError(f"train: num_updates must be an int >= 1, got {num_updates!r}")
        return self._train(self.shard(state), num_updates)

    # -------------------------------------------------------------------- evaluation

    def initial_act_carry(self, batch_size: int) -> ActCarry:
        """Carry for ``act`` at the start of episodes (batch of ``batch_size``)."""
        return ActCarry(
            self.initialize_carry(batch_size),
            jnp.full((batch_size,), -1, jnp.int32),
            jnp.ones((batch_size,), bool),
        )

    def _act_impl(self, state, observation, carry, key, prev_reward, start, greedy):
        b = carry.prev_action.shape[0]
        st = carry.start if start is None else jnp.asarray(start, bool)
        pr = (
            jnp.zeros((b,), jnp.float32)
            if prev_reward is None
            else jnp.asarray(prev_reward, jnp.float32)
        )
        obs = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), observation)
        pa = jnp.where(st, -1, carry.prev_action)
        net, q = self._q_step(state.params, state.rest, obs, pa, pr, st, carry.net)
        action = jnp.argmax(q, axis=-1).astype(jnp.int32)
        if not greedy:
            k1, k2 = jax.random.split(key)
            rand = jax.random.randint(k1, (b,), 0, self.num_actions, jnp.int32)
            eps = self.config.epsilon_min
            action = jnp.where(jax.random.uniform(k2, (b,)) < eps, rand, action)
        return ActCarry(net, action, jnp.zeros((b,), bool)), action

    def act(
        self,
        state: TrainState,
        observation,
        carry: ActCarry | None,
        key: Array,
        greedy: bool = True,
        *,
        prev_reward=None,
        start=None,
    ):
        """One evaluation step for a batch [B]: returns (carry, action int32 [B]).

        ``carry`` from ``initial_act_carry(B)`` (or None for that); it remembers the previous
        action. Pass ``prev_reward`` [B] (the reward that came with ``observation``) and
        ``start`` [B] (True where ``observation`` begins a new episode; default: True on the
        first call only). ``greedy=False`` explores with epsilon = ``epsilon_min``.
        """
        if carry is None:
            b = jax.tree.leaves(observation)[0].shape[0]
            carry = self.initial_act_carry(b)
        return self._act(state, observation, carry, key, prev_reward, start, greedy=greedy)


def _space_shape(space) -> Any:
    if isinstance(space, Dict):
        return {k: _space_shape(v) for k, v in space.spaces.items()}
    return list(space.shape)


def network_kwargs(env, env_params, network: dict) -> dict:
    """The registry kwargs of a network dict, with ``num_actions`` (from the Discrete action
    space) and ``obs_shape`` (from the observation space) filled in where the model's
    constructor takes them and the dict sets neither them nor ``obs_dim``."""
    import inspect

    from larvax.networks import registry

    if "name" not in network:
        raise ValueError(f"make_agent: network dict needs a 'name', got {network!r}")
    space = env.action_space(env_params)
    if not isinstance(space, Discrete):
        raise ValueError(f"R2D2 needs a Discrete action space, got {space!r}")
    kwargs = {k: v for k, v in network.items() if k not in ("name", "seed")}
    accepted = inspect.signature(registry.get_class(network["name"]).__init__).parameters
    if "num_actions" in accepted:
        kwargs.setdefault("num_actions", int(space.n))
    if "obs_shape" in accepted and "obs_shape" not in kwargs and "obs_dim" not in kwargs:
        kwargs["obs_shape"] = _space_shape(env.observation_space(env_params))
    return kwargs


def make_agent(env, env_params, network, config: dict | R2D2Config | None) -> R2D2Agent:
    """Build an R2D2 agent.

    network: ``{"name": registry name, "seed": int (default 0), **kwargs}`` (``num_actions``
        and ``obs_shape`` are filled in from the environment's spaces, see
        ``network_kwargs``), or an already built NNX module following the network call
        signature ``carry, q = net(obs, prev_action, prev_reward, starts, carry)``.
    config: a dict of ``R2D2Config`` fields (or an ``R2D2Config``).

    With a network dict, ``init(key)`` builds fresh parameters from ``key``; with a module,
    ``init`` starts from the module's parameters.
    """
    cfg = config if isinstance(config, R2D2Config) else R2D2Config.from_dict(config)
    params = env_params if env_params is not None else env.default_params
    spec = None
    if isinstance(network, dict):
        from larvax.networks import registry

        spec = {
            "name": network["name"] if "name" in network else None,
            **network_kwargs(env, params, network),
        }
        kwargs = {k: v for k, v in spec.items() if k != "name"}
        network = registry.create(spec["name"], seed=int(network.get("seed", 0)), **kwargs)
    return R2D2Agent(env, params, network, cfg, network_spec=spec)


__all__ = [
    "ActCarry",
    "ActorState",
    "R2D2Agent",
    "R2D2Config",
    "TrainState",
    "actor_epsilons",
    "make_agent",
    "mirror_batch",
    "network_kwargs",
    "n_step_targets",
    "r2d2_loss",
]
