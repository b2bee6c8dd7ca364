"""``Simfish``: the larval-zebrafish hunting environment as pure JAX functions.

```
env = Simfish.preset("normal")            # or Simfish(SimfishParams(...))
params = env.default_params
state, ts = env.reset(key, params)
state, ts = env.step(key, state, action, params)   # action: int32 bout 0..20
ts.observation = {"visual": float32 [139, 3, 2], "internal": float32 [3]}
```

``internal = (in_light, energy, salt)``. ``jax.jit`` and ``jax.vmap(env.step, (0, 0, 0, None))``
work; ``params`` is a static pytree.

One step (0.2 s, 100 physics sub-steps of 2 ms), in the reference's order:

1. The bout: ``(d, theta)`` drawn (or the mean with ``deterministic_action``); the heading
   turns at once and the fish gets one impulse (``body.py``).
2. Predator spawn attempt (``predator.py``).
3. Prey per-step draws: gait switch, turn (``prey.py``).
4. Sub-steps (``substeps.py``): the fish and the predator move sub-step by sub-step (a
   ``lax.scan`` of 100 iterations), with the prey that can meet the fish in this step: the
   ``contact_candidates`` prey nearest to the fish's straight glide path (default 8,
   ``candidates.py``). All other prey move by the closed form
   :func:`larvax.envs.simfish.prey.free_step`, which is the sub-step loop exactly (they
   cannot touch the fish, and escape needs the fish within 100 px). If more than
   ``contact_candidates`` prey lie within reach, the farther ones neither escape nor get
   caught in that step (a documented approximation; its frequency is measured in
   docs/simfish.md).
5. Predator hit (-2) / survived attack (+2), energy, salt, wall penalty, cloud
   reproduction, step count, end of episode, observation.

End of episode (``info["end_cause"]``):

====  ===================  ==========================================
code  cause                reported as
====  ===================  ==========================================
0     (episode goes on)    -
1     starvation           ``terminated`` (energy < 0)
2     all prey eaten       ``terminated`` (a catch left no live prey)
3     time limit           ``truncated`` (``step == max_steps``)
====  ===================  ==========================================

Reward = sum of ``info["reward_components"]``: ``energy`` (-10 x energy use),
``consumption`` (+3 when any prey was caught this step, as the reference: once per step),
``salt`` (-0.05 x concentration), ``predator`` (-2 hit, +2 survived), ``wall`` (-2).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from larvax.envs.core import (
    Box,
    Dict,
    Discrete,
    Environment,
    EpisodeMetric,
    TimeStep,
    check_action,
    end_on_invalid_action,
)
from larvax.envs.simfish import arena, predator, prey, vision
from larvax.envs.simfish import bouts as bouts_lib
from larvax.envs.simfish.config import SimfishParams
from larvax.envs.simfish.physics import (
    END_CAUSES,
    END_NONE,
    END_PREY_ALL_EATEN,
    END_STARVATION,
    END_TIME,
    REWARD_COMPONENTS,
    physics_step,
)
from larvax.envs.simfish.state import SimfishState, make_state
from larvax.validation import Int, fail

Array = jax.Array


def internal_state(params: SimfishParams, state: SimfishState) -> Array:
    """``float32 [3] = (in_light, energy, salt)`` of a state."""
    return jnp.stack([arena.in_light(params, state.fish_xy[1]), state.energy, state.salt]).astype(
        jnp.float32
    )


class Simfish(Environment):
    """The Simfish environment (see the module docstring).

    Args:
        params: a :class:`SimfishParams` (default: the ``normal`` preset).
        sediment: the sediment textures, ``[H, W]`` or ``[K, H, W]`` (photons, 0..60), shared
            by every environment of a batch; default: a pool of ``num_textures`` periodic
            textures generated from ``texture_seed`` on first use (see ``arena.py``).
        num_textures, texture_seed: the default pool.
    """

    mirror_actions = bouts_lib.MIRROR_ACTIONS  # int32 [21] (NumPy: no device work at import)
    episode_metrics = (
        EpisodeMetric("prey_caught", "prey_caught", label="prey"),
        EpisodeMetric("predators_avoided", "attack_survived", label="pred. avoided"),
        EpisodeMetric("predators_hit", "predator_hit", label="pred. hit"),
        EpisodeMetric("wall_touches", "wall_touch", label="walls"),
        EpisodeMetric("end_starvation", "end_cause", "last", END_STARVATION),
        EpisodeMetric("end_prey_all_eaten", "end_cause", "last", END_PREY_ALL_EATEN),
        EpisodeMetric("end_time_limit", "end_cause", "last", END_TIME),
    )

    def __init__(
        self,
        params: SimfishParams | None = None,
        sediment=None,
        num_textures: int = 4,
        texture_seed: int = 0,
    ):
        if params is None:
            params = SimfishParams()
        if not isinstance(params, SimfishParams):
            fail("Simfish", "params", params, "a SimfishParams")
        if not Int(ge=1).ok(num_textures):
            fail("Simfish", "num_textures", num_textures, Int(ge=1).describe())
        self.params = params
        self._num_textures = num_textures
        self._texture_seed = int(texture_seed)
        self._textures = None
        if sediment is not None:
            tex = jnp.asarray(sediment)
            if tex.ndim == 2:
                tex = tex[None]
            if tex.ndim != 3:
                fail("Simfish", "sediment.shape", tuple(tex.shape), "[H, W] or [K, H, W]")
            self._textures = tex

    @classmethod
    def preset(cls, name: str = "normal", **overrides) -> Simfish:
        """``Simfish(SimfishParams.preset(name, **overrides))``."""
        return cls(SimfishParams.preset(name, **overrides))

    @property
    def default_params(self) -> SimfishParams:
        return self.params

    @property
    def sediment_textures(self) -> Array:
        """The shared sediment pool ``[K, H, W]`` (generated on first use)."""
        if self._textures is None:
            with jax.ensure_compile_time_eval():
                self._textures = arena.make_sediment_pool(
                    jax.random.key(self._texture_seed), self.params, self._num_textures
                )
        return self._textures

    # ------------------------------------------------------------------ contract
    def observation_space(self, params: SimfishParams | None = None) -> Dict:
        p = params or self.params
        return Dict(
            {
                "visual": Box(0.0, 255.0, (p.obs_grid_size, 3, 2), jnp.float32),
                "internal": Box(
                    np.array([0.0, -np.inf, 0.0]), np.array([1.0, 1.0, 1.0]), (3,), jnp.float32
                ),
            }
        )

    def action_space(self, params: SimfishParams | None = None) -> Discrete:
        return Discrete(bouts_lib.NUM_ACTIONS)

    def reflect_observation(self, observation):
        """Mirror an observation about the heading axis (the vision's ``reflect_observation``)."""
        return vision.reflect_observation(observation)

    def observe(self, key: Array, state: SimfishState, params: SimfishParams | None = None):
        """The observation dict of a state (shot noise per ``params.eyes_shot_noise``)."""
        p = params or self.params
        visual = vision.observe(p, vision.World.of_state(state, self.sediment_textures), key)
        return {"visual": visual, "internal": internal_state(p, state)}

    def init_state(self, key: Array, params: SimfishParams | None = None) -> SimfishState:
        """A fresh episode's state (what :meth:`reset` returns, without the observation)."""
        p = params or self.params
        kf, ka, kc, kp, ks, ke, kt = jax.random.split(key, 7)
        m = int(p.fish_mouth_radius + 40)
        hi = jnp.array([p.arena_width - m, p.arena_height - m])
        fish_xy = jax.random.randint(kf, (2,), m, hi).astype(jnp.float32)
        fish_angle = jax.random.uniform(ka, (), minval=0.0, maxval=2 * jnp.pi)
        if p.fish_init_x is not None:  # a fixed start (virtual experiments)
            fish_xy = jnp.array([p.fish_init_x, p.fish_init_y], jnp.float32)
        if p.fish_init_angle is not None:
            fish_angle = jnp.asarray(p.fish_init_angle, jnp.float32)
        state = make_state(p, fish_xy, fish_angle, energy=p.fish_init_energy)
        if p.prey_cloud_num > 0:
            clouds = prey.sample_cloud_centres(kc, p)
        else:
            clouds = state.prey_cloud_xy
        if p.prey_num > 0:
            pxy, pang, pgait = prey.spawn(kp, p, clouds)
            state = state.replace(
                prey_xy=pxy,
                prey_angle=pang.astype(jnp.float32),
                prey_gait=pgait,
                prey_alive=jnp.ones((p.prey_num,), bool),
            )
        if p.salt_enabled:
            src = arena.sample_salt_source(ks, p).astype(jnp.float32)
        else:
            src = jnp.zeros((2,), jnp.float32)
        tex = self.sediment_textures
        handle = arena.sample_sediment_handle(kt, tex.shape[0], tex.shape[1:])
        return state.replace(
            prey_cloud_xy=clouds,
            salt_source_xy=src,
            salt=arena.salt_concentration(p, src, fish_xy),
            predator_epoch_starts=predator.epoch_starts(ke, p),
            sediment=handle,
        )

    def reset(self, key: Array, params: SimfishParams | None = None):
        p = params or self.params
        k_state, k_obs = jax.random.split(key)
        state = self.init_state(k_state, p)
        obs = self.observe(k_obs, state, p)
        info = _zero_info()
        ts = TimeStep(obs, jnp.zeros((), jnp.float32), jnp.asarray(False), jnp.asarray(False), info)
        return state, ts

    def step(self, key: Array, state: SimfishState, action: Array, params=None):
        """One bout. An action outside 0..20 raises at once in an eager call; under a JAX
        transform it ends the episode with reward 0 and ``info["invalid_action"]``."""
        p = params or self.params
        invalid = check_action(self.action_space(p), action, "Simfish.step")
        k_phys, k_obs = jax.random.split(key)
        new_state, comps, events = physics_step(p, k_phys, state, action)
        obs = self.observe(k_obs, new_state, p)
        reward = sum(comps[c] for c in REWARD_COMPONENTS).astype(jnp.float32)
        info = {"reward_components": comps, **events}
        ts = TimeStep(obs, reward, events["terminated"], events["truncated"], info)
        return new_state, end_on_invalid_action(ts, invalid, flag=True)

    def step_autoreset(self, key: Array, state: SimfishState, action: Array, params=None):
        """``step`` that starts a new episode in the same call when this one ends.

        Cheaper than the generic ``AutoReset`` wrapper for Simfish: the reset state is built
        without an observation and only one observation (of the state returned) is computed,
        so under ``vmap`` the vision runs once per step instead of twice (or three times with
        ``final_observation``). The returned TimeStep has the new episode's first observation
        and the reward / terminated / truncated / info of the step that ended the old one.
        There is no ``final_observation`` (use the ``AutoReset`` wrapper when a truncated
        episode must bootstrap from its last observation).
        """
        p = params or self.params
        invalid = check_action(self.action_space(p), action, "Simfish.step_autoreset")
        k_phys, k_reset, k_obs = jax.random.split(key, 3)
        new_state, comps, events = physics_step(p, k_phys, state, action)
        done = events["terminated"] | events["truncated"] | invalid
        fresh = self.init_state(k_reset, p)
        new_state = jax.tree_util.tree_map(lambda a, b: jnp.where(done, a, b), fresh, new_state)
        obs = self.observe(k_obs, new_state, p)
        reward = sum(comps[c] for c in REWARD_COMPONENTS).astype(jnp.float32)
        info = {"reward_components": comps, **events}
        ts = TimeStep(obs, reward, events["terminated"], events["truncated"], info)
        return new_state, end_on_invalid_action(ts, invalid, flag=True)


def _zero_info() -> dict:
    z = jnp.zeros((), jnp.float32)
    f = jnp.asarray(False)
    return {
        "reward_components": {c: z for c in REWARD_COMPONENTS},
        "prey_caught": jnp.zeros((), jnp.int32),
        "predator_hit": f,
        "attack_survived": f,
        "wall_touch": f,
        "end_cause": jnp.zeros((), jnp.int32),
        "bout_distance_mm": z,
        "bout_angle_rad": z,
        "energy_use": z,
        "escape_jumps": jnp.zeros((), jnp.int32),
        "terminated": f,
        "truncated": f,
        "invalid_action": f,
    }


__all__ = [
    "END_CAUSES",
    "END_NONE",
    "END_PREY_ALL_EATEN",
    "END_STARVATION",
    "END_TIME",
    "REWARD_COMPONENTS",
    "Simfish",
    "SimfishState",
    "internal_state",
    "physics_step",
]
