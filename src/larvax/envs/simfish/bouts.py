"""The 21 Simfish bouts (``bouts.json``, packaged data from the reference's
``actions_all_bouts_with_null.h5``) and bout sampling.

A bout is a bivariate normal over ``(distance_mm, angle_rad)``: the env draws
``(d, theta) ~ N(mean[a], cov[a])`` each step (or takes the mean when
``deterministic_action``), turns the heading by ``theta`` at once and gives one impulse of
``d * DISTANCE_TO_IMPULSE`` (pymunk units, mass 50) along the new heading.

Module constants (NumPy, float64; index = action id 0..20):

* ``BOUT_NAMES`` list[str]
* ``BOUT_MEAN`` [21, 2] (distance_mm, angle_rad)
* ``BOUT_COV`` [21, 2, 2] (mm^2, mm*rad, rad^2)
* ``BOUT_CHOL`` [21, 2, 2] lower Cholesky factors of ``BOUT_COV``
* ``IS_CAPTURE`` [21] bool (0 SCS, 1 LCS), ``IS_TURN`` [21] bool
* ``MIRROR_ACTIONS`` [21] int32: the left/right twin of each action (3<->4, 5<->6, ...)
* ``DISTANCE_TO_IMPULSE`` 8759.726 = 10 * 50 * (1 - 0.7^(50*0.002)) / 0.002
"""

from __future__ import annotations

import json
from importlib import resources

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def _load() -> dict:
    text = resources.files("larvax.envs.simfish").joinpath("bouts.json").read_text()
    return json.loads(text)


BOUTS = _load()
NUM_ACTIONS = len(BOUTS["actions"])
BOUT_NAMES = [a["name"] for a in BOUTS["actions"]]
BOUT_MEAN = np.array([a["mean"] for a in BOUTS["actions"]], np.float64)
BOUT_COV = np.array([a["cov"] for a in BOUTS["actions"]], np.float64)


def _chol(c: np.ndarray) -> np.ndarray:
    # Null (a degenerate, all-zero covariance) and any singular one: eigen square root.
    try:
        return np.linalg.cholesky(c)
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(c)
        return v @ np.diag(np.sqrt(np.clip(w, 0.0, None)))


BOUT_CHOL = np.stack([_chol(c) for c in BOUT_COV])
IS_CAPTURE = np.array([bool(a["is_capture"]) for a in BOUTS["actions"]])
IS_TURN = np.array([bool(a["is_turn"]) for a in BOUTS["actions"]])
MIRROR_ACTIONS = np.array([int(BOUTS["mirror_map"][str(i)]) for i in range(NUM_ACTIONS)], np.int32)
DISTANCE_TO_IMPULSE = float(BOUTS["distance_to_impulse_factor"])
ENERGY_PARAMS = dict(BOUTS["energy_params"])


def sample_bout(key: Array, action: Array, deterministic: bool = False) -> tuple[Array, Array]:
    """Draw one bout of ``action`` (int32 scalar, 0..20).

    Returns ``(distance_mm, angle_rad)`` float32 scalars: ``mean + L @ z`` with ``z`` standard
    normal and ``L`` the Cholesky factor of the bout covariance, or the mean when
    ``deterministic``. (The same distribution as the reference's
    ``rng.multivariate_normal(mean, cov)``, not the same random stream.)
    """
    action = jnp.asarray(action, jnp.int32)
    mean = jnp.asarray(BOUT_MEAN, jnp.float32)[action]
    if deterministic:
        return mean[0], mean[1]
    z = jax.random.normal(key, (2,), jnp.float32)
    chol = jnp.asarray(BOUT_CHOL, jnp.float32)[action]  # [2, 2], written out (no tiny matmul)
    x = mean + jnp.stack(
        [chol[0, 0] * z[0] + chol[0, 1] * z[1], chol[1, 0] * z[0] + chol[1, 1] * z[1]]
    )
    return x[0], x[1]


def energy_use(
    distance_mm: Array,
    angle_rad: Array,
    action: Array,
    distance_factor: float = 0.00023,
    angle_factor: float = 0.0001,
    baseline: float = 0.00002,
    capture_scaling: float = 5.0,
) -> Array:
    """Energy used by a bout (dimensionless; the fish starts with 1).

    ``E = (distance_factor*|d_mm| + angle_factor*|theta| + baseline) * (capture_scaling if
    the bout is a capture bout, SCS=0 or LCS=1, else 1)`` on the *sampled* (d, theta).
    """
    e = distance_factor * jnp.abs(distance_mm) + angle_factor * jnp.abs(angle_rad) + baseline
    cap = jnp.asarray(IS_CAPTURE)[jnp.asarray(action, jnp.int32)]
    return jnp.where(cap, e * capture_scaling, e).astype(jnp.float32)


__all__ = [
    "BOUTS",
    "BOUT_CHOL",
    "BOUT_COV",
    "BOUT_MEAN",
    "BOUT_NAMES",
    "DISTANCE_TO_IMPULSE",
    "ENERGY_PARAMS",
    "IS_CAPTURE",
    "IS_TURN",
    "MIRROR_ACTIONS",
    "NUM_ACTIONS",
    "energy_use",
    "sample_bout",
]
