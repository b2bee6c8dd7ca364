"""PPO split over two JAX CPU devices (``jax.shard_map``, conftest.py exposes two): the same
rollouts and updates as on one device, and one network on both devices.

Tolerance: two devices draw the same random numbers and see the same minibatches, but sum
the loss in two halves and average the gradients (``pmean``), so results differ from one
device by float32 rounding only: after 3 updates we measured at most 2.4e-7 on the metrics
and 3e-8 on the parameters; the tests allow rtol 1e-5 and atol 1e-6.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from larvax.agents.ppo import PPOConfig, make_agent
from larvax.agents.ppo.config import AXIS
from test_ppo import CONFIG, CueEnv, TinyGRUActorCritic

UPDATES = 3
RTOL, ATOL = 1e-5, 1e-6


def _agent(num_devices):
    net = TinyGRUActorCritic(2, num_actions=2, rngs=nnx.Rngs(0))
    return make_agent(CueEnv(), None, net, dict(CONFIG, num_devices=num_devices))


def _plain(tree):
    return jax.tree.map(
        lambda x: (
            jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x
        ),
        tree,
    )


@pytest.fixture(scope="module")
def trained():
    assert len(jax.devices()) >= 2, "conftest.py should expose two CPU devices"
    out = []
    for d in (1, 2):
        agent = _agent(d)
        state0 = agent.init(jax.random.key(3))
        state, metrics = agent.train(state0, UPDATES)
        out.append((agent, state0, state, jax.device_get(metrics)))
    return out


def test_device_count_is_validated():
    with pytest.raises(ValueError, match=r"num_devices=2.*minibatch size 1.*e\.g\. \[1\]"):
        PPOConfig(num_envs=4, num_minibatches=4, num_devices=2)
    with pytest.raises(ValueError, match=r"num_devices=3.*num_envs=4.*e\.g\. \[1, 2\]"):
        PPOConfig(num_envs=4, num_minibatches=1, num_devices=3)
    with pytest.raises(ValueError, match=r"num_devices=4 but JAX sees 2 device"):
        make_agent(
            CueEnv(),
            None,
            TinyGRUActorCritic(2, num_actions=2, rngs=nnx.Rngs(0)),
            dict(CONFIG, num_envs=8, num_devices=4),
        )
    assert _agent("auto").num_devices == 2  # the most devices that fit (num_envs 4, mb 2)
    odd = make_agent(
        CueEnv(),
        None,
        TinyGRUActorCritic(2, num_actions=2, rngs=nnx.Rngs(0)),
        dict(CONFIG, num_envs=6, num_minibatches=2, num_devices="auto"),
    )
    assert odd.num_devices == 1  # minibatches of 3 environments do not split in two


def test_two_device_chunk_equals_one_device(trained):
    (a1, _, s1, m1), (a2, _, s2, m2) = trained
    assert (a1.num_devices, a2.num_devices) == (1, 2)
    shard = s2.observation.sharding
    assert shard.spec == P(AXIS) and len(shard.device_set) == 2
    assert sorted(m1) == sorted(m2)
    for k in m1:
        np.testing.assert_allclose(m1[k], m2[k], rtol=RTOL, atol=ATOL, err_msg=k)
    for x, y in zip(jax.tree.leaves(_plain(s1)), jax.tree.leaves(_plain(s2)), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=RTOL, atol=ATOL)
    # the update learned something and episodes ended (the comparison is not vacuous)
    assert float(np.sum(m1["episodes"])) > 0
    moved = [
        float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
        for a, b in zip(
            jax.tree.leaves(trained[0][1].params), jax.tree.leaves(s1.params), strict=True
        )
    ]
    assert max(moved) > 1e-4


def test_parameters_are_identical_on_both_devices(trained):
    state = trained[1][2]
    for leaf in jax.tree.leaves((state.params, state.opt_state)):
        shards = [np.asarray(s.data) for s in leaf.addressable_shards]
        assert len(shards) == 2
        np.testing.assert_array_equal(shards[0], shards[1])
    # the environments are split: each device holds two of the four
    rows = [s.data.shape[0] for s in state.prev_reward.addressable_shards]
    assert rows == [2, 2]


def test_two_device_training_continues_from_its_state(trained):
    """A second chunk from a sharded state (as the training loop calls train) still matches."""
    (a1, _, s1, _), (a2, _, s2, _) = trained
    _, m1 = a1.train(s1, UPDATES)
    _, m2 = a2.train(s2, UPDATES)
    for k in m1:
        np.testing.assert_allclose(np.asarray(m1[k]), np.asarray(m2[k]), rtol=RTOL, atol=ATOL)
