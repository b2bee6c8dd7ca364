"""Simfish rendering: shape, dtype, objects drawn where they are, dark region darker."""

from __future__ import annotations

import numpy as np
import pytest

from larvax.envs.simfish import render
from larvax.envs.simfish.config import SimfishParams
from larvax.envs.simfish.state import make_state

PARAMS = SimfishParams()
SIZE = 250  # 10 arena px per image px


@pytest.fixture(scope="module")
def frame_and_state():
    tex = np.full((2500, 2500), 30.0, np.float32)
    state = make_state(
        PARAMS,
        (1500.0, 2000.0),
        0.0,  # heading +x
        prey_xy=np.array([[700.0, 1200.0], [1800.0, 1500.0]]),
        predator_xy=(1000.0, 1500.0),
        salt_source_xy=(300.0, 300.0),
    )
    visual = np.zeros((139, 3, 2), np.float32)
    visual[:, 0, 0] = 30.0  # left eye UV at full scale, everything else dark
    img = render.render(state, PARAMS, sediment=tex, observation={"visual": visual}, size=SIZE)
    return img, state


def test_frame_shape_and_dtype(frame_and_state):
    img, _ = frame_and_state
    assert img.dtype == np.uint8
    strip_h = 3 * 14 + 2
    assert img.shape == (SIZE + strip_h, SIZE, 3)


def test_fish_prey_predator_salt_drawn_where_they_are(frame_and_state):
    img, _ = frame_and_state
    # fish mouth at (1500, 2000) -> pixel (150, 200); its tail extends toward -x
    np.testing.assert_array_equal(img[200, 148], render.FISH)
    np.testing.assert_array_equal(img[200, 145], render.FISH)
    assert not np.array_equal(img[200, 160], render.FISH)  # nothing ahead but the tick
    # prey at (700, 1200) -> (70, 120): white
    np.testing.assert_array_equal(img[120, 70], render.PREY)
    # predator centre (1000, 1500) -> (100, 150): dark disc of radius 6.4 px, red rim
    np.testing.assert_array_equal(img[150, 100], render.PRED)
    assert np.any(np.all(img[150, 92:96] == render.PRED_RIM, axis=-1))
    # salt source ring around (30, 30)
    assert np.any(np.all(img[24:37, 24:37] == render.SALT, axis=-1))


def test_dark_region_darker(frame_and_state):
    img, _ = frame_and_state
    dark = img[5:60, 150:240].astype(float).mean()  # arena rows y < 600 (dark: y < 740)
    light = img[100:140, 150:240].astype(float).mean()  # rows 1000..1400
    assert dark < 0.5 * light


def test_strip_shows_the_observation(frame_and_state):
    img, _ = frame_and_state
    strip = img[SIZE:]
    uv_left = strip[2:14, 5 : SIZE // 2 - 5]
    uv_right = strip[2:14, SIZE // 2 + 5 : -5]
    red_left = strip[16:28, 5 : SIZE // 2 - 5]
    assert uv_left.mean() > 100 and uv_right.max() == 0 and red_left.max() == 0


def test_render_recomputes_observation_and_validates():
    state = make_state(PARAMS, (1250.0, 1800.0), 1.0)
    img = render.render(state, PARAMS, size=64)  # no sediment: flat sand, red channels 0
    assert img.shape == (64 + 44, 64, 3)
    uv_rows = img[64 + 2 : 64 + 14]
    assert uv_rows.max() > 0  # the UV background in full light is ~10 photons
    with pytest.raises(ValueError, match="size"):
        render.render(state, PARAMS, size=8)
    with pytest.raises(ValueError, match="visual shape"):
        render.observation_strip(np.zeros((139, 3)))
