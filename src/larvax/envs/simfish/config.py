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
from dataclasses import dataclass

import jax

from larvax.validation import (
    Bool,
    ConfigValueError,
    Int,
    Number,
    Optional,
    fail,
    field,
    require,
    validate,
)

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


_POS_INT = Int(ge=1)
_NONNEG_INT = Int(ge=0)
_FRACTION = Number(ge=0.0, le=1.0)  # a probability or a fraction
_POSITIVE = Number(gt=0.0)
_NONNEG = Number(ge=0.0)
_DAMPING = Number(gt=0.0, le=1.0)
_NUMBER = Number()
_BOOL = Bool()
_OPT_NUMBER = Optional(Number())


@dataclass(frozen=True)
class SimfishParams:
    """All Simfish parameters (defaults = reference ``normal.yaml``).

    Static pytree: no field is traced; changing a field recompiles.
    """

    # ----------------------------------------------------------------- episode / time
    max_steps: int = field(1000, _POS_INT)  # steps per episode; reaching it is a *truncation*
    phys_substeps: int = field(100, _POS_INT)  # physics sub-steps per env step
    step_duration_s: float = field(0.2, _POSITIVE)  # simulated seconds per env step (dt = 0.002 s)
    phys_damping_per_s: float = field(
        0.7**50, _DAMPING
    )  # pymunk space.damping: velocity x this per second

    # ----------------------------------------------------------------- arena
    arena_width: int = field(2500, _POS_INT)  # px (x extent)
    arena_height: int = field(2500, _POS_INT)  # px (y extent)
    dark_fraction: float = field(0.3, _FRACTION)  # rows y < dark_fraction*height are dark
    light_gradient_px: int = field(
        20, _NONNEG_INT
    )  # width of the linear dark->light ramp (px rows)
    dark_gain: float = field(0.1, _FRACTION)  # luminance gain in the dark region
    light_decay_rate: float = field(
        0.01, _NONNEG
    )  # 1/px, light seen at distance r decays as exp(-rate*r)
    uv_object_intensity: float = field(1.2, _NONNEG)  # multiplier of the UV prey projection
    bottom_intensity: float = field(60.0, _NONNEG)  # max sediment intensity (photons)
    sediment_sigma_px: float = field(
        5.0, _NONNEG
    )  # Gaussian filter sigma of the sediment texture (px)
    water_uv_scatter: float = field(0.1, _NONNEG)  # multiplier of the UV background ray sum
    in_light_threshold_y: float = field(
        750.0, _NUMBER
    )  # internal state in_light = fish_y > this (px)

    # ----------------------------------------------------------------- fish body
    fish_mass: float = field(50.0, _POSITIVE)  # pymunk mass units
    fish_mouth_radius: float = field(2.0, _POSITIVE)  # px, circle at the body origin
    fish_head_radius: float = field(
        2.5, _NONNEG
    )  # px, circle centred head_offset px behind the mouth
    fish_head_offset: float = field(2.5, _NONNEG)  # px
    fish_tail_length: float = field(
        41.0, _NONNEG
    )  # px, tail triangle reaching back behind the head
    fish_start_margin: float = field(
        42.0, _NONNEG
    )  # px, start pose uniform in [margin, W - margin]^2
    deterministic_action: bool = field(
        False, _BOOL
    )  # bouts take the mean (d, angle) instead of a sample

    # ----------------------------------------------------------------- virtual experiments
    # (the reference's fish_init_x/y/angle, fish_paralyze, fish_fixed_energy_level and
    # fish_init_energy_level; the defaults leave the normal world unchanged)
    fish_init_x: float | None = field(None, _OPT_NUMBER)  # px start x; None: random start
    fish_init_y: float | None = field(None, _OPT_NUMBER)  # px start y; set with fish_init_x
    fish_init_angle: float | None = field(None, _OPT_NUMBER)  # rad start heading; None: random
    fish_paralyzed: bool = field(False, _BOOL)  # bouts are chosen but never move or turn the fish
    fish_fixed_energy: bool = field(False, _BOOL)  # energy stays at fish_init_energy
    fish_init_energy: float = field(1.0, Number(le=1.0))  # energy at reset

    # ----------------------------------------------------------------- eyes (vision)
    eyes_verg_angle_deg: float = field(77.0, _NUMBER)  # vergence (deg)
    eyes_visual_field_deg: float = field(163.0, _NUMBER)  # field per eye (deg)
    eyes_biasx: float = field(2.5, _NONNEG)  # px, eye offset left/right of the body origin
    eyes_shot_noise: bool = field(True, _BOOL)  # Poisson noise on photoreceptor readings
    uv_rf_size: float = field(0.0133, _NONNEG)  # rad, UV photoreceptor receptive field
    red_rf_size: float = field(0.0133, _NONNEG)  # rad, red photoreceptor receptive field
    sz_rf_spacing: float = field(0.04, _NUMBER)  # rad, UV spacing inside the strike zone
    sz_size: float = field(1.047, _NUMBER)  # rad, strike-zone angular size
    sz_oversampling_factor: float = field(
        2.5, _NUMBER
    )  # periphery spacing = sz_rf_spacing * this (0.1 rad)
    sz_edge_steepness: float = field(5.0, _NUMBER)  # sigmoid steepness of the spacing transition
    viewing_elevations_deg: tuple = (50.0, 75.0)  # red channels' viewing elevations (deg)
    fish_elevation_px: float = field(
        50.0, _POSITIVE
    )  # px, red circle radius = round(elev_px * tan(elevation))
    num_uv_receptors: int = field(42, _POS_INT)  # per eye
    num_red_receptors: int = field(42, _POS_INT)  # per eye
    obs_grid_size: int = field(139, _POS_INT)  # interpolation grid per eye (0.02 rad apart)

    # ----------------------------------------------------------------- capture
    capture_time_fraction: float = field(
        0.5, _FRACTION
    )  # capture window = sub-steps 1 .. 1 + int(100 * this)
    capture_permissive_angle: float = field(
        0.785, _NONNEG
    )  # rad, |bearing - heading| strictly below
    capture_energy_cost_scaling: float = field(
        5.0, _NONNEG
    )  # energy use x this for capture bouts (0, 1)

    # ----------------------------------------------------------------- prey
    prey_num: int = field(120, _NONNEG_INT)  # prey at reset (also the padded prey capacity P)
    prey_radius: float = field(1.0, _POSITIVE)  # px
    prey_mass: float = field(1.0, _POSITIVE)
    prey_start_margin: float = field(
        43.0, _NONNEG
    )  # px, prey start uniform in [margin, W - margin]^2
    prey_sensing_distance: float = field(100.0, _NONNEG)  # px, escape possible when fish nearer
    prey_max_turning_angle: float = field(0.15, _NONNEG)  # rad, per-step turn U(-a, a)
    prey_p_large_turn: float = field(0.04, _FRACTION)  # per step, extra U(-pi, pi) turn
    prey_p_slow: float = field(0.8, _FRACTION)  # gait probabilities at creation / switch
    prey_p_fast: float = field(0.2, _FRACTION)
    prey_p_switch: float = field(0.05, _FRACTION)  # per step
    prey_p_escape: float = field(0.3, _FRACTION)  # per *step* (per sub-step 1 - (1 - p)^(1/100))
    prey_velocity_slow: float = field(10.0, _NONNEG)  # px/s
    prey_velocity_fast: float = field(20.0, _NONNEG)  # px/s
    prey_velocity_jump: float = field(
        1800.0, _NONNEG
    )  # px/s, escape / failed-touch jump impulse (per mass)
    prey_cloud_num: int = field(0, _NONNEG_INT)  # 0: uniform placement; >0: clouds (sparse preset)
    prey_cloud_region_size: float = field(240.0, _NONNEG)  # px, side of a cloud's square region
    prey_reproduction_mode: bool = field(True, _BOOL)  # births / deaths (only used with clouds)
    prey_birth_rate: float = field(0.002, _FRACTION)  # per cloud per step, times (N0 - N)
    prey_safe_duration: int = field(100, _NONNEG_INT)  # steps of age before a prey can die
    prey_p_death: float = field(0.001, _FRACTION)  # per step after the safe duration

    # ----------------------------------------------------------------- predator
    predator_enabled: bool = field(True, _BOOL)
    predator_radius: float = field(64.0, _POSITIVE)  # px
    predator_velocity: float = field(90.0, _NONNEG)  # px/s
    predator_immunity_steps: int = field(200, _NONNEG_INT)  # no spawn / scoring before this step
    predator_distance_from_fish: float = field(180.0, _NONNEG)  # px, spawn distance
    predator_wall_margin: float = field(96.0, _NONNEG)  # px, never spawned nearer a wall
    predator_epoch_num: int = field(5, _NONNEG_INT)
    predator_epoch_duration: int = field(
        50, _POS_INT
    )  # steps; starts uniform in [immunity, max_steps - this)
    predator_probability_per_epoch_step: float = field(0.07, _FRACTION)

    # ----------------------------------------------------------------- salt
    salt_enabled: bool = field(True, _BOOL)
    salt_concentration_decay: float = field(0.002, _NONNEG)  # 1/px, conc = exp(-decay * distance)

    # ----------------------------------------------------------------- rewards
    reward_consumption: float = field(3.0, _NUMBER)  # per prey eaten
    reward_predator_caught: float = field(-2.0, _NUMBER)  # hit by the predator
    reward_predator_avoidance: float = field(2.0, _NUMBER)  # survived an attack
    reward_energy_use_factor: float = field(10.0, _NONNEG)  # reward -= factor * energy_use
    reward_wall_touch: float = field(-2.0, _NUMBER)  # once per step with a mouth-wall contact
    reward_salt_factor: float = field(-0.05, _NUMBER)  # reward += factor * salt concentration

    # ----------------------------------------------------------------- energy
    energy_distance_factor: float = field(0.00023, _NONNEG)  # per mm of bout distance
    energy_angle_factor: float = field(0.0001, _NONNEG)  # per rad of bout angle
    energy_baseline: float = field(0.00002, _NONNEG)  # per step
    energy_per_prey: float = field(1.0, _NONNEG)  # energy gained per prey, capped at 1

    # ----------------------------------------------------------------- physics approximation
    contact_candidates: int = field(
        8, _POS_INT
    )  # prey nearest the fish's path checked for contacts / escapes
    exact_substeps: bool = field(
        False, _BOOL
    )  # True: candidates simulated sub-step by sub-step (slower)

    # extra tags (free-form, ignored by the simulator)
    notes: tuple = ()

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
        validate(self)
        require(
            self,
            "prey_p_slow",
            abs(self.prey_p_slow + self.prey_p_fast - 1.0) <= 1e-6,
            f"prey_p_slow + prey_p_fast == 1 (prey_p_fast={self.prey_p_fast!r})",
        )
        smaller_side = min(self.arena_width, self.arena_height)
        for name in ("fish_start_margin", "prey_start_margin"):
            require(
                self,
                name,
                2 * getattr(self, name) < smaller_side,
                "less than half the smaller arena side",
            )
        require(
            self,
            "fish_init_y",
            (self.fish_init_x is None) == (self.fish_init_y is None),
            f"set together with fish_init_x (fish_init_x={self.fish_init_x!r})",
        )
        if self.fish_init_x is not None:
            for name, side in (
                ("fish_init_x", self.arena_width),
                ("fish_init_y", self.arena_height),
            ):
                require(
                    self, name, 0 <= getattr(self, name) <= side, f"inside the arena [0, {side}]"
                )
        elevations = self.viewing_elevations_deg
        require(
            self,
            "viewing_elevations_deg",
            isinstance(elevations, tuple)
            and len(elevations) == 2
            and all(_NUMBER.ok(e) for e in elevations),
            "a pair of elevations in degrees",
        )

    # ---------------------------------------------------------------- presets
    @classmethod
    def preset(cls, name: str = "normal", **overrides) -> SimfishParams:
        """The named preset (``normal``, ``sparse``, ``empty``, ``stage1``) with overrides."""
        if name not in _PRESETS:
            fail("Simfish", "preset", name, ", ".join(repr(k) for k in _PRESETS))
        _check_names(overrides)
        kwargs = {**_PRESETS[name], **overrides}
        if "viewing_elevations_deg" in kwargs:
            kwargs["viewing_elevations_deg"] = tuple(
                float(v) for v in kwargs["viewing_elevations_deg"]
            )
        return cls(**kwargs)

    def replace(self, **changes) -> SimfishParams:
        """A copy with some fields changed (validated)."""
        _check_names(changes)
        return dataclasses.replace(self, **changes)


def _check_names(changes: dict) -> None:
    """Every key of ``changes`` names a SimfishParams field."""
    fields = {f.name for f in dataclasses.fields(SimfishParams)}
    for key in changes:
        if key not in fields:
            raise ConfigValueError(
                f"SimfishParams has no field {key!r} (value {changes[key]!r}); "
                f"allowed: {sorted(fields)}"
            )


jax.tree_util.register_static(SimfishParams)

PRESETS = {k: dict(v) for k, v in _PRESETS.items()}
"""Preset name -> dict of overrides of the ``normal`` defaults (data, a copy)."""

__all__ = ["PIXELS_PER_MM", "PRESETS", "SimfishParams"]
