"""R2D2's learner: burn-in on sampled sequences, the gradient step, priorities, target copies.

One learner step on one device's replay rows (inside ``shard_map``):

1. sample ``batch_size / D`` sequences of :class:`StoredStep` (prioritised within the rows),
   with importance weights normalised over all devices;
2. ``r2d2_loss``: online and target networks start from the stored recurrent state, burn in
   ``burn_in`` steps under stop-gradient, then give Q-values on the trace; the TD maths
   (n-step double-Q targets with value rescaling, the weighted squared TD loss) are the pure
   functions of ``larvax.agents.losses``;
3. with mirror augmentation, the mirror image of the batch (from the stored mirrored state,
   or the unmirrored one with ``mirror_carry="reuse"``) joins the step: one gradient step on
   both halves (``"joint"``) or two Adam steps in random order (``"sequential"``);
4. gradients are averaged over devices (``lax.pmean``); priorities ``eta max + (1-eta) mean``
   of |TD| go back to the replay; the target network is copied every
   ``target_update_period`` learner steps.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from larvax.agents.losses import (
    importance_weights,
    rescaled_double_q_targets,
    sequence_priority,
    sequence_td_loss,
)
from larvax.agents.r2d2.acting import (
    ActorState,
    StoredStep,
    apply_network,
    decompress_observation,
    mirror_batch,
)
from larvax.agents.r2d2.config import AXIS, R2D2Config
from larvax.agents.replay import SequenceReplay

Array = jax.Array
PyTree = Any


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


class LossOutput(NamedTuple):
    abs_td: Array  # [B, T]
    mask: Array  # [B, T] bool
    q_mean: Array  # scalar


def _slice_time(tree, start, stop):
    return jax.tree.map(lambda x: x[:, start:stop], tree)


def unroll_q(
    params, target_params, rest, graphdef, batch: StoredStep, carry, burn_in: int, with_mirror
):
    """Online and target Q-values [B, T+1, A] on the trace after ``burn_in`` steps.

    Both networks start from the stored state ``carry``; the burn-in runs under
    stop-gradient (no gradient reaches the burn-in steps or the stored state), and the
    target's Q-values are under stop-gradient too.
    """
    obs, pa, pr, st = batch.observation, batch.prev_action, batch.prev_reward, batch.start
    length = pa.shape[1]

    def run(p, c, lo, hi):
        return apply_network(
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
    if burn_in > 0:
        c_online, _ = run(sg(params), carry, 0, burn_in)
        c_online = sg(c_online)
        c_target, _ = run(target_params, carry, 0, burn_in)
    else:
        c_online = c_target = carry
    _, q = run(params, c_online, burn_in, length)
    _, q_tgt = run(target_params, c_target, burn_in, length)
    return q, sg(q_tgt)


def r2d2_loss(
    params,
    target_params,
    rest,
    graphdef,
    batch: StoredStep,
    carry,
    weights: Array,
    *,
    burn_in: int,
    n_step: int,
    discount: float,
    value_rescale_eps: float,
    with_mirror: bool = False,
):
    """R2D2 sequence loss (Kapturowski et al. 2019, eq. 1 and sec. 2.3) of a sampled batch.

    Runs the networks (``unroll_q``), then ``losses.rescaled_double_q_targets`` and
    ``losses.sequence_td_loss`` on the T + 1 trace steps; no loss on steps without action.

    batch: ``StoredStep`` of [B, L] arrays (float observations). weights: importance weights
    [B]. with_mirror: the batch is [B'] rows followed by their mirror images (B = 2B'), but
    the observation holds only the first B' rows (the network derives the mirrored features,
    ``Network(..., with_mirror=True)``). Returns (loss, LossOutput).
    """
    bi = burn_in
    q, q_tgt = unroll_q(params, target_params, rest, graphdef, batch, carry, bi, with_mirror)
    has = batch.has_action[:, bi:]
    y = rescaled_double_q_targets(
        q,
        q_tgt,
        batch.reward[:, bi:],
        batch.discount[:, bi:],
        has,
        n_step,
        discount,
        value_rescale_eps,
    )
    act = jnp.maximum(batch.action[:, bi:-1], 0)
    q_a = jnp.take_along_axis(q[:, :-1], act[..., None], -1)[..., 0]
    mask = has[:, :-1]
    loss, td = sequence_td_loss(q_a, y, mask, weights)
    m = mask.astype(jnp.float32)
    q_mean = jnp.sum(jnp.where(mask, q_a, 0.0)) / jnp.maximum(jnp.sum(m), 1.0)
    return loss, LossOutput(jnp.abs(td), mask, jax.lax.stop_gradient(q_mean))


def sample_batch(replay: SequenceReplay, replay_state, key: Array, batch_size: int, alpha):
    """(Sample, its StoredStep with float observations) drawn from ``replay_state``."""
    sample = replay.sample(replay_state, key, batch_size, alpha)
    batch = sample.steps._replace(observation=decompress_observation(sample.steps.observation))
    return sample, batch


class Learner:
    """The learner of one device: ``loss``, ``grad_step`` and ``step`` (one learner step,
    inside ``shard_map`` over ``AXIS``).

    ``replay``: the device's rows; ``local_batch``: sequences it samples per step;
    ``mirror_actions``/``reflect``: None/None without mirror augmentation;
    ``mirror_features``: the network derives the mirrored half's features (joint update).
    """

    def __init__(
        self,
        graphdef,
        config: R2D2Config,
        optimizer,
        replay: SequenceReplay,
        *,
        local_batch: int,
        mirror_actions: Array | None,
        reflect,
        mirror_features: bool,
    ):
        self.graphdef, self.config, self.optimizer = graphdef, config, optimizer
        self.replay = replay
        self.local_batch = local_batch
        self.mirror_actions, self.reflect = mirror_actions, reflect
        self.mirror_features = mirror_features

    def loss(self, params, target_params, rest, batch, carry, weights, with_mirror=False):
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

    def grad_step(
        self, params, target_params, rest, opt_state, batch, carry, weights, with_mirror=False
    ):
        """One Adam step on this device's rows; gradients averaged over the devices.
        Returns (params, opt_state, loss, LossOutput)."""
        (loss, out), grads = jax.value_and_grad(self.loss, has_aux=True)(
            params, target_params, rest, batch, carry, weights, with_mirror
        )
        grads = jax.lax.pmean(grads, AXIS)
        loss = jax.lax.pmean(loss, AXIS)
        updates, opt_state = self.optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, out

    def _joint(self, ts: TrainState, batch, carry, mbatch, mcarry, w):
        """One gradient step on the batch and its mirror image (2 x local_batch rows)."""
        cat = functools.partial(jnp.concatenate, axis=0)
        if self.mirror_features:  # mirrored features derived, not convolved again
            big = jax.tree.map(
                lambda a, b: cat([a, b]),
                batch._replace(observation=None),
                mbatch._replace(observation=None),
            )
            big = big._replace(observation=batch.observation)
        else:
            big = jax.tree.map(lambda a, b: cat([a, b]), batch, mbatch)
        bigc = jax.tree.map(lambda a, b: cat([a, b]), carry, mcarry)
        params, opt_state, loss, out = self.grad_step(
            ts.params,
            ts.target_params,
            ts.rest,
            ts.opt_state,
            big,
            bigc,
            cat([w, w]),
            self.mirror_features,
        )
        b = self.local_batch
        abs_td = jnp.concatenate([out.abs_td[:b], out.abs_td[b:]], axis=1)
        mask = jnp.concatenate([out.mask[:b], out.mask[b:]], axis=1)
        return params, opt_state, loss, LossOutput(abs_td, mask, out.q_mean)

    def _sequential(self, ts: TrainState, batch, carry, mbatch, mcarry, w, key):
        """Two Adam steps, the batch and its mirror image in random order (the same order on
        every device: ``key`` is replicated)."""
        stacked = jax.tree.map(lambda a, b: jnp.stack([a, b]), (batch, carry), (mbatch, mcarry))
        flip = jax.random.bernoulli(key)
        order = jax.tree.map(lambda x: jnp.where(flip, x[::-1], x), stacked)

        def body(carry_, xs):
            p, o = carry_
            bt, cr = xs
            p, o, loss_, out_ = self.grad_step(p, ts.target_params, ts.rest, o, bt, cr, w)
            return (p, o), (loss_, out_)

        (params, opt_state), (losses, outs) = jax.lax.scan(body, (ts.params, ts.opt_state), order)
        abs_td = jnp.concatenate([outs.abs_td[0], outs.abs_td[1]], axis=1)
        mask = jnp.concatenate([outs.mask[0], outs.mask[1]], axis=1)
        return params, opt_state, jnp.mean(losses), LossOutput(abs_td, mask, jnp.mean(outs.q_mean))

    def _update_networks(self, ts: TrainState, sample, batch, w, k_order):
        """The gradient step(s) on the sampled batch (and its mirror image)."""
        c = self.config
        carry = sample.extras["carry"]
        if self.mirror_actions is None:
            return self.grad_step(
                ts.params, ts.target_params, ts.rest, ts.opt_state, batch, carry, w
            )
        mbatch = mirror_batch(batch, self.reflect, self.mirror_actions)
        mcarry = sample.extras["carry_mirror"] if c.mirror_carry == "exact" else carry
        if c.mirror_update == "joint":
            return self._joint(ts, batch, carry, mbatch, mcarry, w)
        return self._sequential(ts, batch, carry, mbatch, mcarry, w, k_order)

    def step(self, ts: TrainState, key: Array):
        """One learner step on this device's rows: sample, (mirror,) gradient step(s),
        priorities, target copy. Returns (TrainState, metrics).

        Each device draws ``batch_size / D`` sequences from its own rows, prioritised within
        them. The importance weight of an item drawn with probability P from n valid local
        items is (n P)^-beta (with D devices its chance per draw of the global batch is P / D
        among D n items: the same product), normalised by the largest over all devices.
        """
        c = self.config
        k_sample, k_order = jax.random.split(key)
        k_sample = jax.random.fold_in(k_sample, jax.lax.axis_index(AXIS))
        sample, batch = sample_batch(
            self.replay, ts.replay, k_sample, self.local_batch, c.priority_exponent
        )
        w = importance_weights(
            sample.probability, sample.num_valid, c.importance_exponent, axis_name=AXIS
        )
        params, opt_state, loss, out = self._update_networks(ts, sample, batch, w, k_order)
        prio = sequence_priority(out.abs_td, out.mask, c.max_priority_weight)
        replay = self.replay.update_priorities(ts.replay, sample.env_index, sample.slot, prio)
        replay = replay._replace(max_priority=jax.lax.pmax(replay.max_priority, AXIS))
        learner_steps = ts.learner_steps + 1
        copy = learner_steps % c.target_update_period == 0
        target = jax.tree.map(lambda p, t: jnp.where(copy, p, t), params, ts.target_params)
        m = out.mask.astype(jnp.float32)
        metrics = dict(
            loss=loss,
            q_mean=jax.lax.pmean(out.q_mean, AXIS),
            td_abs=jax.lax.psum(jnp.sum(out.abs_td * m), AXIS)
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
