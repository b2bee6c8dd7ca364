"""Feature extractors: MLP, CNN, Retina (weight sharing, eye reversal, SAME conv), OAR embedding."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from larvax.networks import activations, layers, simfish
from larvax.networks import extractors as ex


@pytest.fixture(scope="module")
def retina():
    return simfish.Retina(rngs=nnx.Rngs(0))


def _conv1d_same_np(x, kernel, bias, stride):
    """Reference SAME conv (TF/haiku convention): x [P, Cin], kernel [k, Cin, Cout]."""
    p, _ = x.shape
    k = kernel.shape[0]
    out_len = -(-p // stride)
    pad_total = max((out_len - 1) * stride + k - p, 0)
    lo = pad_total // 2
    xp = np.pad(x, ((lo, pad_total - lo), (0, 0)))
    out = np.stack(
        [np.einsum("kc,kco->o", xp[i * stride : i * stride + k], kernel) for i in range(out_len)]
    )
    return out + bias


def test_mlp_hand_computed():
    mlp = layers.MLP(2, [2, 1], activation="relu", activate_final=False, rngs=nnx.Rngs(0))
    mlp.layers[0].kernel[...] = jnp.array([[1.0, -1.0], [2.0, 0.5]])
    mlp.layers[0].bias[...] = jnp.array([0.0, -1.0])
    mlp.layers[1].kernel[...] = jnp.array([[1.0], [3.0]])
    mlp.layers[1].bias[...] = jnp.array([0.5])
    x = jnp.array([[[1.0, 1.0]], [[-1.0, 2.0]]])  # [B=2, T=1, 2]
    # layer 1: [1+2, -1+0.5-1] = [3, -1.5] -> relu [3, 0]; out 3 + 0 + 0.5 = 3.5
    # x2: [-1+4, 1+1-1] = [3, 1] -> [3, 1]; out 3 + 3 + 0.5 = 6.5
    np.testing.assert_allclose(mlp(x)[..., 0], [[3.5], [6.5]], rtol=1e-6)
    assert mlp.out_features == 1


def test_mlp_activate_final_and_identity():
    mlp = layers.MLP(3, [4], activation="tanh", activate_final=True, rngs=nnx.Rngs(1))
    y = mlp(jnp.full((5, 3), 10.0))
    assert np.all(np.abs(np.asarray(y)) <= 1.0)
    ident = layers.MLP(3, [], rngs=nnx.Rngs(1))
    np.testing.assert_array_equal(ident(jnp.arange(3.0)), jnp.arange(3.0))


def test_mlp_orthogonal_scale():
    mlp = layers.MLP(8, [4], scale=0.5, rngs=nnx.Rngs(2))
    k = np.asarray(mlp.layers[0].kernel[...])  # [8, 4], orthonormal columns times 0.5
    np.testing.assert_allclose(k.T @ k, 0.25 * np.eye(4), atol=1e-5)
    np.testing.assert_array_equal(mlp.layers[0].bias[...], 0.0)


def test_cnn_shape_and_leading_dims():
    cnn = layers.CNN(
        (8, 6, 2), features=(4, 3), kernel_sizes=(3, 3), strides=(2, 1), rngs=nnx.Rngs(0)
    )
    y = cnn(jnp.ones((2, 3, 8, 6, 2)))
    assert cnn.out_features == 4 * 3 * 3  # SAME, stride 2 then 1: 8x6 -> 4x3 -> 4x3, 3 channels
    assert y.shape == (2, 3, 36)


def test_retina_shape_and_parameter_count(retina):
    y = retina(jnp.ones((2, 3, 139, 3, 2)))
    assert y.shape == (2, 3, 560)  # 139 -> 139 -> 70 -> 35 positions, 8 channels, 2 eyes
    n = sum(x.size for x in jax.tree.leaves(nnx.state(retina, nnx.Param)))
    # ONE conv stack (shared by both eyes): 3*3*8+8 + 2*(5*8*8+8) = 80 + 656
    assert n == 736


def test_retina_matches_numpy_same_convolution(retina):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (139, 3, 2)).astype(np.float32)
    y = np.asarray(retina(jnp.asarray(x)[None]))[0]

    def eye(v):
        for conv, stride in zip(retina.convs, (1, 2, 2), strict=True):
            v = np.maximum(
                _conv1d_same_np(
                    v, np.asarray(conv.kernel[...]), np.asarray(conv.bias[...]), stride
                ),
                0,
            )
        return v.reshape(-1)

    np.testing.assert_allclose(y[:280], eye(x[:, :, 0]), rtol=2e-4, atol=1e-2)
    np.testing.assert_allclose(y[280:], eye(x[::-1, :, 1]), rtol=2e-4, atol=1e-2)


def test_retina_mirror_swaps_eye_features(retina):
    x = jax.random.uniform(jax.random.key(1), (4, 139, 3, 2), maxval=255.0)
    mirrored = x[:, ::-1, :, ::-1]  # reverse positions and swap the eyes
    y, ym = retina(x), retina(mirrored)
    np.testing.assert_allclose(ym[:, :280], y[:, 280:], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(ym[:, 280:], y[:, :280], rtol=1e-5, atol=1e-3)
    # and the features are not trivially symmetric
    assert float(jnp.abs(y[:, :280] - y[:, 280:]).max()) > 1.0


def test_retina_with_mirror_equals_convolving_the_reflected_input(retina):
    """``with_mirror=True``: [B, T] inputs give [2B, T] features, the first B those of the
    input, the last B those of its reflection (positions reversed, eyes swapped), exactly."""
    from larvax.envs.simfish.vision import reflect_observation

    x = jax.random.uniform(jax.random.key(5), (3, 2, 139, 3, 2), maxval=255.0)
    both = retina(x, with_mirror=True)
    assert both.shape == (6, 2, 560)
    np.testing.assert_array_equal(np.asarray(both[:3]), np.asarray(retina(x)))
    np.testing.assert_array_equal(np.asarray(both[3:]), np.asarray(retina(reflect_observation(x))))
    with pytest.raises(ValueError, match="leading batch axis"):
        retina(x[0, 0], with_mirror=True)


def test_simfish_network_with_mirror_equals_the_explicit_mirrored_batch():
    """The R2D2 Simfish network on [obs; reflect(obs)] equals its ``with_mirror`` call on obs
    alone (the mirrored rows given mirrored previous actions), for features, Q and carry."""
    from larvax.envs.simfish.vision import reflect_observation
    from larvax.networks.models import R2D2SimfishNetwork

    net = R2D2SimfishNetwork(visual_scale=0.03, rngs=nnx.Rngs(7))
    assert ex.supports_mirror(net) and ex.supports_mirror(net.feature_extractor)
    k1, k2, k3 = jax.random.split(jax.random.key(8), 3)
    obs = {
        "visual": jax.random.uniform(k1, (2, 5, 139, 3, 2), maxval=255.0),
        "internal": jax.random.uniform(k2, (2, 5, 3)),
    }
    mobs = {"visual": reflect_observation(obs["visual"]), "internal": obs["internal"]}
    both = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), obs, mobs)
    pa = jax.random.randint(k3, (4, 5), -1, 21)
    pr = jnp.linspace(-1.0, 2.0, 20).reshape(4, 5)
    st = jnp.zeros((4, 5), bool).at[:, 0].set(True).at[1, 3].set(True)
    c_fast, q_fast = net(obs, pa, pr, st, None, with_mirror=True)
    c_slow, q_slow = net(both, pa, pr, st, None)
    assert q_fast.shape == (4, 5, 21)
    np.testing.assert_allclose(q_fast, q_slow, rtol=1e-5, atol=1e-5)
    for a, b in zip(jax.tree.leaves(c_fast), jax.tree.leaves(c_slow), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    # the mirrored rows really differ from the unmirrored ones (no trivial symmetry)
    assert float(jnp.abs(q_fast[:2] - q_fast[2:]).max()) > 1e-4


def test_with_mirror_needs_a_module_that_declares_it():
    fe = ex.FeatureExtractor(observation=layers.MLP(4, [3], rngs=nnx.Rngs(0)))
    assert not ex.supports_mirror(fe)
    with pytest.raises(ValueError, match="mirror_features"):
        fe(jnp.ones((2, 1, 4)), with_mirror=True)


def test_retina_input_scale():
    a = simfish.Retina(input_scale=1.0, rngs=nnx.Rngs(3))
    b = simfish.Retina(input_scale=1 / 255, rngs=nnx.Rngs(3))
    x = jax.random.uniform(jax.random.key(2), (2, 139, 3, 2), maxval=255.0)
    np.testing.assert_allclose(b(x), a(x / 255.0), rtol=1e-5, atol=1e-6)


def test_retina_bad_input_shape(retina):
    with pytest.raises(ValueError, match=r"\(139, 3, 2\)"):
        retina(jnp.ones((2, 139, 2, 3)))


def test_one_hot_action_neutral_for_minus_one():
    emb = ex.OneHotAction(4)
    y = emb(jnp.array([[-1, 0, 3]]))
    np.testing.assert_array_equal(y[0, 0], np.zeros(4))
    np.testing.assert_array_equal(y[0, 1], [1, 0, 0, 0])
    np.testing.assert_array_equal(y[0, 2], [0, 0, 0, 1])
    with pytest.raises(ValueError, match="integer"):
        emb(jnp.zeros((1, 2)))


def test_feature_extractor_concatenates_in_order():
    fe = ex.FeatureExtractor(
        observation=ex.FlattenObservation(),
        action=ex.OneHotAction(3),
        reward=ex.TanhReward(),
        start=ex.StartFlag(),
        observation_features=5,
    )
    obs = {"b": jnp.full((1, 2, 3), 2.0), "a": jnp.ones((1, 2, 1, 2))}  # sorted: a then b
    y = fe(obs, jnp.array([[2, -1]]), jnp.array([[0.5, -100.0]]), jnp.array([[True, False]]))
    assert fe.out_features == 5 + 3 + 1 + 1
    np.testing.assert_allclose(y[0, 0], [1, 1, 2, 2, 2, 0, 0, 1, np.tanh(0.5), 1.0], rtol=1e-6)
    np.testing.assert_allclose(y[0, 1], [1, 1, 2, 2, 2, 0, 0, 0, -1.0, 0.0], rtol=1e-6)


def test_feature_extractor_ignores_inputs_without_module():
    fe = ex.FeatureExtractor(observation=ex.FlattenObservation(), observation_features=2)
    y = fe(jnp.ones((1, 1, 2)), jnp.array([[5]]), jnp.array([[1.0]]))
    assert y.shape == (1, 1, 2)
    fe2 = ex.FeatureExtractor(action=ex.OneHotAction(2))
    with pytest.raises(ValueError, match="action=None"):
        fe2(jnp.ones((1, 1, 2)))


def test_activation_resolution_and_paths():
    assert activations.resolve_activation("relu") is jax.nn.relu
    assert activations.resolve_activation("jax.nn.gelu") is jax.nn.gelu
    assert activations.callable_path(jax.nn.relu) == "jax.nn.relu"
    assert activations.callable_path(jnp.tanh) in ("jax.nn.tanh", "jax.numpy.tanh")
    with pytest.raises(ValueError, match="activation='relux'"):
        activations.resolve_activation("relux")
    with pytest.raises(ValueError, match="no importable path"):
        activations.callable_path(lambda x: x + 1)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: layers.MLP(0, [4], rngs=nnx.Rngs(0)), "MLP.in_features"),
        (lambda: layers.MLP(3, [4, -1], rngs=nnx.Rngs(0)), r"MLP.hidden\[1\]"),
        (lambda: simfish.Retina(features=(8, 8), rngs=nnx.Rngs(0)), "same length"),
        (lambda: simfish.Retina(input_scale=float("nan"), rngs=nnx.Rngs(0)), "input_scale"),
        (lambda: layers.CNN((8, 8), rngs=nnx.Rngs(0)), "input_shape"),
        (lambda: layers.CNN((8, 8, 1), padding="FULL", rngs=nnx.Rngs(0)), "padding"),
        (lambda: ex.OneHotAction(0), "num_actions"),
        (lambda: ex.FeatureExtractor(), "at least one"),
    ],
)
def test_bad_arguments(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_retina_on_golden_observations_and_env_reflection(retina, simfish_data_dir):
    """Reference Simfish observations: the env's mirror (reflect_observation) swaps the eyes'
    retina features exactly, and counts up to 255 give finite features."""
    from larvax.envs.simfish.vision import reflect_observation

    visual = jnp.asarray(np.load(simfish_data_dir / "observations.npz")["visual"][:16])
    assert visual.shape == (16, 139, 3, 2)
    y = retina(visual)
    ym = retina(reflect_observation(visual))
    assert bool(jnp.all(jnp.isfinite(y)))
    np.testing.assert_allclose(ym[:, :280], y[:, 280:], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(ym[:, 280:], y[:, :280], rtol=1e-5, atol=1e-3)


def test_mlp_rejects_wrong_feature_size():
    mlp = layers.MLP(3, [4], rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="expected in_features=3"):
        mlp(jnp.ones((2, 5, 4)))
