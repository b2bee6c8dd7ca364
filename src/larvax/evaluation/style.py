"""Colours shared by episode videos and analysis plots: one per Simfish bout, one per event.

Bouts that come in a right/left pair share a hue (right darker, left lighter), so a path
coloured by bout shows turning direction at a glance; capture bouts (SCS, LCS) are red,
``Null`` (no movement) is black. Colours are uint8 RGB; :func:`bout_color_floats` gives
matplotlib's 0..1 floats.
"""

from __future__ import annotations

import numpy as np

from larvax.envs.simfish.bouts import BOUT_NAMES

# matplotlib's tab20 (10 hues, each dark then light), written out so no colormap is needed
_TAB20 = [
    (31, 119, 180), (174, 199, 232), (255, 127, 14), (255, 187, 120), (44, 160, 44),
    (152, 223, 138), (214, 39, 40), (255, 152, 150), (148, 103, 189), (197, 176, 213),
    (140, 86, 75), (196, 156, 148), (227, 119, 194), (247, 182, 210), (127, 127, 127),
    (199, 199, 199), (188, 189, 34), (219, 219, 141), (23, 190, 207), (158, 218, 229),
]  # fmt: skip

_BY_NAME = {
    "SCS": _TAB20[6], "LCS": _TAB20[7],
    "O-bend_R": _TAB20[0], "O-bend_L": _TAB20[1],
    "J-turn_R": _TAB20[2], "J-turn_L": _TAB20[3],
    "SLC_R": _TAB20[4], "SLC_L": _TAB20[5],
    "RT_R": _TAB20[8], "RT_L": _TAB20[9],
    "LLC_R": _TAB20[10], "LLC_L": _TAB20[11],
    "SAT_R": _TAB20[12], "SAT_L": _TAB20[13],
    "HAT_R": _TAB20[16], "HAT_L": _TAB20[17],
    "BS": _TAB20[18], "Slow1": _TAB20[19], "Slow2": _TAB20[14], "AS": _TAB20[15],
    "Null": (0, 0, 0),
}  # fmt: skip

BOUT_COLORS = np.array([_BY_NAME.get(n, (90, 90, 90)) for n in BOUT_NAMES], np.uint8)
"""uint8 ``[21, 3]``: the colour of each bout (index = action id)."""

# The events analysed around (name in plots, colour in videos)
EVENT_COLORS = {
    "prey consumed": (255, 255, 255),
    "predator appears": (200, 30, 30),
    "attack survived": (40, 200, 60),
    "caught": (255, 60, 60),
}


def bout_color_floats() -> np.ndarray:
    """float ``[21, 3]`` in 0..1 (matplotlib)."""
    return BOUT_COLORS.astype(np.float64) / 255.0


def bout_name(action: int) -> str:
    """The bout's name, or ``action <n>`` outside the 21 Simfish bouts."""
    a = int(action)
    return BOUT_NAMES[a] if 0 <= a < len(BOUT_NAMES) else f"action {a}"


__all__ = ["BOUT_COLORS", "EVENT_COLORS", "bout_color_floats", "bout_name"]
