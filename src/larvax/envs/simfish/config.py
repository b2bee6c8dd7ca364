"""Simfish configuration: ``SimfishParams`` (static, hashable) and the presets.

Every number of the reference's ``env_config/normal.yaml`` (Simfish 2.0) lives here under a
clear name, with its unit. ``SimfishParams`` is a frozen dataclass registered as a *static*
JAX pytree (no leaves), so it can be closed over, passed to ``jax.jit`` as an argument or to
``jax.vmap`` with ``in_axes=None`` without being traced, and it is hashable.

Presets are data (dicts of overrides of the ``normal`` defaults)::

    params = SimfishParams.preset("stage1", max_steps=500)

Units: px (10 px = 1 mm), s, rad unless a name says ``_deg`` or ``_mm``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import jax

PIXELS_PER_MM = 10.0

_PRESETS: dict[str, dict] = {
    # The reference's normal.yaml.
    "normal": {},
    # 30 prey in 3 clouds of 240 px with local reproduction.
    "sparse": {"prey_num": 30, "prey_cloud_num": 3, "prey_reproduction_mode": True},
    # No prey, a large arena.
    "empty": {"prey_num": 0, "arena_width": 5000, "arena_height": 5000},
    # Curriculum stage 1: consumption worth more, walls punished harder.
    "stage1": {"reward_consumption": 12.0, "reward_wall_touch": -10.0},
}


@dataclass(frozen=True)
class SimfishParams:
    """All Simfish parameters (defaults = reference ``normal.yaml``).

    Static pytree: no field is traced; changing a field recompiles.
    """

    # ----------------------------------------------------------------- episode / time
    max_steps: int = 1000  # steps per episode; reaching it is a *truncation*
    phys_substeps: int = 100  # physics sub-steps per env step
    step_duration_s: float = 0.2  # simulated seconds per env step (dt = 0.002 s)
    phys_damping_per_s: float = 0.7**50  # pymunk space.damping: velocity x this per second

    # ----------------------------------------------------------------- arena
    arena_width: int = 2500  # px (x extent)
    arena_height: int = 2500  # px (y extent)
    dark_fraction: float = 0.3  # rows y < dark_fraction*height are dark
    light_gradient_px: int = 20  # width of the linear dark->light ramp (px rows)
    dark_gain: float = 0.1  # luminance gain in the dark region
    light_decay_rate: float = 0.01  # 1/px, light seen at distance r decays as exp(-rate*r)
    uv_object_intensity: float = 1.2  # multiplier of the UV prey projection
    bottom_intensity: float = 60.0  # max sediment intensity (photons)
    sediment_sigma_px: float = 5.0  # Gaussian filter sigma of the sediment texture (px)
    water_uv_scatter: float = 0.1  # multiplier of the UV background ray sum
    in_light_threshold_y: float = 750.0  # internal state in_light = fish_y > this (px)

    # ----------------------------------------------------------------- fish body
    fish_mass: float = 50.0  # pymunk mass units
    fish_mouth_radius: float = 2.0  # px, circle at the body origin
    fish_head_radius: float = 2.5  # px, circle centred head_offset px behind the mouth
    fish_head_offset: float = 2.5  # px
    fish_tail_length: float = 41.0  # px, tail triangle reaching back behind the head
    fish_start_margin: float = 42.0  # px, start pose uniform in [margin, W - margin]^2
    deterministic_action: bool = False  # bouts take the mean (d, angle) instead of a sample

    # ----------------------------------------------------------------- eyes (vision)
    eyes_verg_angle_deg: float = 77.0  # vergence (deg)
    eyes_visual_field_deg: float = 163.0  # field per eye (deg)
    eyes_biasx: float = 2.5  # px, eye offset left/right of the body origin
    eyes_shot_noise: bool = True  # Poisson noise on photoreceptor readings
    uv_rf_size: float = 0.0133  # rad, UV photoreceptor receptive field
    red_rf_size: float = 0.0133  # rad, red photoreceptor receptive field
    sz_rf_spacing: float = 0.04  # rad, UV spacing inside the strike zone
    sz_size: float = 1.047  # rad, strike-zone angular size
    sz_oversampling_factor: float = 2.5  # periphery spacing = sz_rf_spacing * this (0.1 rad)
    sz_edge_steepness: float = 5.0  # sigmoid steepness of the spacing transition
    viewing_elevations_deg: tuple = (50.0, 75.0)  # red channels' viewing elevations (deg)
    fish_elevation_px: float = 50.0  # px, red circle radius = round(elev_px * tan(elevation))
    num_uv_receptors: int = 42  # per eye
    num_red_receptors: int = 42  # per eye
    obs_grid_size: int = 139  # interpolation grid per eye (0.02 rad apart)

    # ----------------------------------------------------------------- capture
    capture_time_fraction: float = 0.5  # capture window = sub-steps 1 .. 1 + int(100 * this)
    capture_permissive_angle: float = 0.785  # rad, |bearing - heading| strictly below
    capture_energy_cost_scaling: float = 5.0  # energy use x this for capture bouts (0, 1)

    # ----------------------------------------------------------------- prey
    prey_num: int = 120  # prey at reset (also the padded prey capacity P)
    prey_radius: float = 1.0  # px
    prey_mass: float = 1.0
    prey_start_margin: float = 43.0  # px, prey start uniform in [margin, W - margin]^2
    prey_sensing_distance: float = 100.0  # px, escape possible when fish nearer
    prey_max_turning_angle: float = 0.15  # rad, per-step turn U(-a, a)
    prey_p_large_turn: float = 0.04  # per step, extra U(-pi, pi) turn
    prey_p_slow: float = 0.8  # gait probabilities at creation / switch
    prey_p_fast: float = 0.2
    prey_p_switch: float = 0.05  # per step
    prey_p_escape: float = 0.3  # per *step* (per sub-step 1 - (1 - p)^(1/100))
    prey_velocity_slow: float = 10.0  # px/s
    prey_velocity_fast: float = 20.0  # px/s
    prey_velocity_jump: float = 1800.0  # px/s, escape / failed-touch jump impulse (per mass)
    prey_cloud_num: int = 0  # 0: uniform placement; >0: clouds (sparse preset)
    prey_cloud_region_size: float = 240.0  # px, side of a cloud's square region
    prey_reproduction_mode: bool = True  # births / deaths (only used with clouds)
    prey_birth_rate: float = 0.002  # per cloud per step, times (N0 - N)
    prey_safe_duration: int = 100  # steps of age before a prey can die
    prey_p_death: float = 0.001  # per step after the safe duration

    # ----------------------------------------------------------------- predator
    predator_enabled: bool = True
    predator_radius: float = 64.0  # px
    predator_velocity: float = 90.0  # px/s
    predator_immunity_steps: int = 200  # no spawn / scoring before this step
    predator_distance_from_fish: float = 180.0  # px, spawn distance
    predator_wall_margin: float = 96.0  # px, never spawned nearer a wall
    predator_epoch_num: int = 5
    predator_epoch_duration: int = 50  # steps; starts uniform in [immunity, max_steps - this)
    predator_probability_per_epoch_step: float = 0.07

    # ----------------------------------------------------------------- salt
    salt_enabled: bool = True
    salt_concentration_decay: float = 0.002  # 1/px, conc = exp(-decay * distance)

    # ----------------------------------------------------------------- rewards
    reward_consumption: float = 3.0  # per prey eaten
    reward_predator_caught: float = -2.0  # hit by the predator
    reward_predator_avoidance: float = 2.0  # survived an attack
    reward_energy_use_factor: float = 10.0  # reward -= factor * energy_use
    reward_wall_touch: float = -2.0  # once per step with a mouth-wall contact
    reward_salt_factor: float = -0.05  # reward += factor * salt concentration

    # ----------------------------------------------------------------- energy
    energy_distance_factor: float = 0.00023  # per mm of bout distance
    energy_angle_factor: float = 0.0001  # per rad of bout angle
    energy_baseline: float = 0.00002  # per step
    energy_per_prey: float = 1.0  # energy gained per prey, capped at 1

    # ----------------------------------------------------------------- physics approximation
    contact_candidates: int = 8  # prey nearest the fish's path checked for contacts / escapes
    exact_substeps: bool = False  # True: candidates simulated sub-step by sub-step (slower)

    # extra tags (free-form, ignored by the simulator)
    notes: tuple = field(default=())

    # ---------------------------------------------------------------- derived
    @property
    def phys_dt(self) -> float:
        """Physics sub-step (s)."""
        return self.step_duration_s / self.phys_substeps

    @property
    def substep_damping(self) -> float:
        """Velocity factor per sub-step: damping^dt (0.7^0.1 for the defaults)."""
        return self.phys_damping_per_s**self.phys_dt

    @property
    def capture_end_substep(self) -> int:
        """Last sub-step (inclusive) of the capture window (51 for the defaults)."""
        return 1 + int(self.phys_substeps * self.capture_time_fraction)

    @property
    def prey_p_escape_substep(self) -> float:
        """Per-sub-step escape jump probability 1 - (1 - p_escape)^(1/substeps)."""
        return 1.0 - (1.0 - self.prey_p_escape) ** (1.0 / self.phys_substeps)

    @property
    def dark_rows(self) -> int:
        """int(dark_fraction * height) (750): the ramp covers rows [this - g/2, this + g/2)."""
        return int(self.dark_fraction * self.arena_height)

    # ---------------------------------------------------------------- validation
    def __post_init__(self):
        def bad(name, allowed):
            value = getattr(self, name)
            raise ValueError(f"SimfishParams.{name}={value!r} is invalid; allowed: {allowed}")

        for name in (
            "max_steps",
            "phys_substeps",
            "arena_width",
            "arena_height",
            "num_uv_receptors",
            "num_red_receptors",
            "obs_grid_size",
            "predator_epoch_duration",
            "contact_candidates",
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                bad(name, "an int >= 1")
        for name in ("prey_num", "prey_cloud_num", "predator_epoch_num", "prey_safe_duration"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                bad(name, "an int >= 0")
        for name in ("predator_immunity_steps", "light_gradient_px"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                bad(name, "an int >= 0")
        for name in (
            "dark_fraction",
            "dark_gain",
            "prey_p_large_turn",
            "prey_p_slow",
            "prey_p_fast",
            "prey_p_switch",
            "prey_p_escape",
            "prey_p_death",
            "prey_birth_rate",
            "predator_probability_per_epoch_step",
            "capture_time_fraction",
        ):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not (0.0 <= v <= 1.0) or math.isnan(v):
                bad(name, "a probability/fraction in [0, 1]")
        if abs(self.prey_p_slow + self.prey_p_fast - 1.0) > 1e-6:
            raise ValueError(
                f"SimfishParams.prey_p_slow + prey_p_fast = {self.prey_p_slow + self.prey_p_fast!r}"
                " is invalid; allowed: they must sum to 1"
            )
        for name in (
            "step_duration_s",
            "fish_mass",
            "fish_mouth_radius",
            "prey_radius",
            "prey_mass",
            "predator_radius",
            "fish_elevation_px",
        ):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not v > 0:
                bad(name, "a number > 0")
        if not (0.0 < self.phys_damping_per_s <= 1.0):
            bad("phys_damping_per_s", "a number in (0, 1]")
        for name in (
            "light_decay_rate",
            "uv_object_intensity",
            "bottom_intensity",
            "sediment_sigma_px",
            "water_uv_scatter",
            "fish_head_radius",
            "fish_head_offset",
            "fish_tail_length",
            "fish_start_margin",
            "eyes_biasx",
            "uv_rf_size",
            "red_rf_size",
            "prey_start_margin",
            "prey_sensing_distance",
            "prey_max_turning_angle",
            "prey_velocity_slow",
            "prey_velocity_fast",
            "prey_velocity_jump",
            "prey_cloud_region_size",
            "predator_velocity",
            "predator_distance_from_fish",
            "predator_wall_margin",
            "salt_concentration_decay",
            "reward_energy_use_factor",
            "energy_distance_factor",
            "energy_angle_factor",
            "energy_baseline",
            "energy_per_prey",
            "capture_permissive_angle",
            "capture_energy_cost_scaling",
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                bad(name, "a number >= 0")
        for name in (
            "deterministic_action",
            "eyes_shot_noise",
            "prey_reproduction_mode",
            "predator_enabled",
            "salt_enabled",
            "exact_substeps",
        ):
            if not isinstance(getattr(self, name), bool):
                bad(name, "True or False")
        if 2 * self.fish_start_margin >= min(self.arena_width, self.arena_height):
            bad("fish_start_margin", "less than half the smaller arena side")
        if 2 * self.prey_start_margin >= min(self.arena_width, self.arena_height):
            bad("prey_start_margin", "less than half the smaller arena side")
        if len(tuple(self.viewing_elevations_deg)) != 2:
            bad("viewing_elevations_deg", "a pair of elevations in degrees")
        if self.contact_candidates < 1:
            bad("contact_candidates", "an int >= 1")

    # ---------------------------------------------------------------- presets
    @classmethod
    def preset(cls, name: str = "normal", **overrides) -> SimfishParams:
        """The named preset (``normal``, ``sparse``, ``empty``, ``stage1``) with overrides."""
        if name not in _PRESETS:
            raise ValueError(f"Simfish preset={name!r} is unknown; allowed: {sorted(_PRESETS)}")
        fields = {f.name for f in dataclasses.fields(cls)}
        for key in overrides:
            if key not in fields:
                raise ValueError(
                    f"SimfishParams has no field {key!r} (value {overrides[key]!r}); "
                    f"allowed: {sorted(fields)}"
                )
        kwargs = {**_PRESETS[name], **overrides}
        if "viewing_elevations_deg" in kwargs:
            kwargs["viewing_elevations_deg"] = tuple(
                float(v) for v in kwargs["viewing_elevations_deg"]
            )
        return cls(**kwargs)

    def replace(self, **changes) -> SimfishParams:
        """A copy with some fields changed (validated)."""
        fields = {f.name for f in dataclasses.fields(self)}
        for key in changes:
            if key not in fields:
                raise ValueError(
                    f"SimfishParams has no field {key!r} (value {changes[key]!r}); "
                    f"allowed: {sorted(fields)}"
                )
        return dataclasses.replace(self, **changes)


jax.tree_util.register_static(SimfishParams)

PRESETS = {k: dict(v) for k, v in _PRESETS.items()}
"""Preset name -> dict of overrides of the ``normal`` defaults (data, a copy)."""

__all__ = ["PIXELS_PER_MM", "PRESETS", "SimfishParams"]
