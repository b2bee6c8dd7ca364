"""HDF5 episode logs in the reference simulator's layout (docs/evaluation.md lists every
dataset with its shape, dtype, unit and frame).

``EpisodeWriter`` consumes the :class:`~larvax.evaluation.loop.Records` of
:func:`~larvax.evaluation.loop.evaluate` and writes ``logs_{n}.hdf5`` as soon as episode
``n`` ends. Every file is written atomically (:func:`write_atomic`): to a temporary name in
the same directory, flushed and fsynced, then renamed with ``os.replace``, so a kill never
leaves a partial file under a final name and never touches the files already written.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

# per-step datasets recorded but stored as one value per episode (their final row)
_PER_EPISODE_LAST = ("end_cause", "terminated", "truncated")
# datasets large enough to compress (gzip 4 + shuffle: lossless, readable by any HDF5 tool)
_COMPRESS_MIN_SIZE = 4096


def write_atomic(path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then move the finished file to ``path`` atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return path


# The reference's env_variables names (its YAML sections flattened as section_key) that
# differ from SimfishParams field names: reference name -> larvax field (or a constant).
# Fields whose names agree (arena_width, prey_num, reward_*, energy_*, ...) need no alias.
REFERENCE_NAMES = {
    "max_sim_steps_per_episode": "max_steps",
    "phys_steps_per_sim_step": "phys_substeps",
    "sim_step_duration_seconds": "step_duration_s",
    "arena_dark_fraction": "dark_fraction",
    "arena_light_gradient": "light_gradient_px",
    "arena_dark_gain": "dark_gain",
    "arena_light_decay_rate": "light_decay_rate",
    "arena_uv_object_intensity": "uv_object_intensity",
    "arena_bottom_intensity": "bottom_intensity",
    "arena_sediment_sigma": "sediment_sigma_px",
    "arena_water_uv_scatter": "water_uv_scatter",
    "fish_elevation": "fish_elevation_px",
    "fish_deterministic_action": "deterministic_action",
    "fish_fixed_energy_level": "fish_fixed_energy",
    "fish_init_energy_level": "fish_init_energy",
    "fish_paralyze": "fish_paralyzed",
    "eyes_verg_angle": "eyes_verg_angle_deg",
    "eyes_visual_field": "eyes_visual_field_deg",
    "eyes_uv_photoreceptor_rf_size": "uv_rf_size",
    "eyes_red_photoreceptor_rf_size": "red_rf_size",
    "eyes_sz_rf_spacing": "sz_rf_spacing",
    "eyes_sz_size": "sz_size",
    "eyes_sz_oversampling_factor": "sz_oversampling_factor",
    "eyes_sz_edge_steepness": "sz_edge_steepness",
    "eyes_viewing_elevations": "viewing_elevations_deg",
    "capture_swim_permissive_time_fraction": "capture_time_fraction",
    "capture_swim_permissive_angle": "capture_permissive_angle",
    "capture_swim_energy_cost_scaling": "capture_energy_cost_scaling",
}
REFERENCE_CONSTANTS = {"test_sensory_system": False, "arena_wall_bounce": False}


def env_variables(params, extra: dict | None = None) -> dict:
    """Every field of a parameter dataclass as an HDF5-friendly attribute value; for
    Simfish also the reference's names of the fields named differently (``REFERENCE_NAMES``),
    so the reference's analysis scripts find ``arena_dark_fraction`` and the like."""
    out = {}
    if dataclasses.is_dataclass(params):
        for f in dataclasses.fields(params):
            out[f.name] = _attr(getattr(params, f.name))
        if type(params).__name__ == "SimfishParams":
            out.update(REFERENCE_CONSTANTS)
            for ref, name in REFERENCE_NAMES.items():
                out[ref] = _attr(getattr(params, name))
    for k, v in (extra or {}).items():
        out[k] = _attr(v)
    return out


def _attr(value):
    if value is None:
        return "None"
    if isinstance(value, tuple | list):
        return np.asarray(value) if value and not isinstance(value[0], str) else str(value)
    return value


def write_episode(path, datasets: dict, attrs: dict | None = None, env_vars: dict | None = None):
    """Write one episode file atomically: ``datasets`` (name -> array; ``a/b`` names make
    groups), root ``attrs`` and the ``env_variables`` group's attributes."""
    import h5py

    def write(tmp: Path):
        with h5py.File(tmp, "w") as f:
            for name, value in datasets.items():
                arr = np.asarray(value)
                kwargs = {}
                if arr.ndim >= 1 and arr.size >= _COMPRESS_MIN_SIZE:
                    kwargs = dict(compression="gzip", compression_opts=4, shuffle=True)
                f.create_dataset(name, data=arr, **kwargs)
            for k, v in (attrs or {}).items():
                f.attrs[k] = _attr(v)
            group = f.create_group("env_variables")
            for k, v in (env_vars or {}).items():
                group.attrs[k] = v
            f.flush()

    return write_atomic(path, write)


def read_episode(path) -> dict:
    """All datasets of a log as NumPy arrays (``a/b`` for grouped ones), plus
    ``"attrs"`` (root attributes) and ``"env_variables"`` (that group's attributes)."""
    import h5py

    out: dict = {}
    with h5py.File(path, "r") as f:

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[()]

        f.visititems(visit)
        out["attrs"] = dict(f.attrs)
        out["env_variables"] = dict(f["env_variables"].attrs) if "env_variables" in f else {}
    return out


def regenerate_sediment(path) -> np.ndarray:
    """The exact sediment image ``[H, W]`` float32 (photons) the fish saw in a Simfish log,
    rebuilt from the pool seed and size (``env_variables``) and the episode's handle."""
    from larvax.envs.simfish.config import SimfishParams
    from larvax.envs.simfish.env import Simfish

    log = read_episode(path)
    ev = log["env_variables"]
    names = {f.name for f in dataclasses.fields(SimfishParams)}
    kwargs = {}
    for k, v in ev.items():
        if k in names:
            kwargs[k] = _param_value(v)
    params = SimfishParams(**kwargs)
    seed, num = int(ev["sediment_texture_seed"]), int(ev["sediment_num_textures"])
    # the environment's own pool, built the way it builds it (not bit-identical to a
    # jitted make_sediment_pool: float16 rounding of the eager and fused FFTs differs)
    pool = Simfish(params, num_textures=num, texture_seed=seed).sediment_textures
    handle = (log["sediment_texture_index"], log["sediment_shift_xy"], log["sediment_flip"])
    return sediment_image(pool, params, *handle)


def sediment_image(pool, params, index, shift_xy, flip) -> np.ndarray:
    """The arena's sediment ``[H, W]`` float32 (photons) for one handle into ``pool``."""
    import jax.numpy as jnp

    from larvax.envs.simfish import arena

    handle = arena.SedimentHandle(
        index=jnp.asarray(index, jnp.int32),
        shift_xy=jnp.asarray(shift_xy, jnp.int32),
        flip=jnp.asarray(flip, jnp.int32),
    )
    ys, xs = jnp.meshgrid(
        jnp.arange(params.arena_height), jnp.arange(params.arena_width), indexing="ij"
    )
    image = arena.sediment_at(arena.Sediment(jnp.asarray(pool), handle), xs, ys)
    return np.asarray(image, np.float32)


def _param_value(v):
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, str):
        if v == "None":
            return None
        if v.startswith("("):
            return tuple(eval_tuple(v))
        return v
    if isinstance(v, np.ndarray):
        return tuple(x.item() for x in v)
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def eval_tuple(text: str) -> tuple:
    """A tuple of plain literals written by ``str(tuple)`` (no code is evaluated)."""
    import ast

    return tuple(ast.literal_eval(text))


# ----------------------------------------------------------------------------- writer


def _crop_prey_columns(data: dict) -> None:
    """Cut ``prey_x`` / ``prey_y`` after the last column that ever holds a live prey."""
    if "prey_x" not in data:
        return
    live = ~np.isnan(data["prey_x"])
    used = np.nonzero(live.any(axis=0))[0]
    width = int(used[-1]) + 1 if used.size else 0
    data["prey_x"] = data["prey_x"][:, :width]
    data["prey_y"] = data["prey_y"][:, :width]


def episode_datasets(env_rows: dict, agent_rows: dict, constants: dict) -> dict:
    """The datasets of one episode file from its stacked rows (env ``[T+1, ...]``, agent
    ``[T, ...]``) and per-episode constants."""
    data = {}
    for name, rows in env_rows.items():
        if name in _PER_EPISODE_LAST:
            data[name] = np.asarray(rows[-1])
        else:
            data[name] = rows
    data.update(agent_rows)
    steps = len(env_rows["reward"]) - 1
    data["episode_length"] = np.int64(steps)
    data["episode_return"] = np.float64(np.sum(env_rows["reward"][1:], dtype=np.float64))
    for name in _PER_EPISODE_LAST:  # an episode stopped before any step
        data.setdefault(name, np.asarray(0 if name == "end_cause" else False))
    for name, value in constants.items():
        data[name] = value[None] if name == "salt_location" else value
    _crop_prey_columns(data)
    return data


class EpisodeWriter:
    """Collects :class:`Records` per episode and writes ``logs_{n}.hdf5`` when ``n`` ends.

    ``attrs``: root attributes of every file; ``env_vars``: the ``env_variables`` group;
    ``extra``: datasets added to every file (e.g. stimuli, a full sediment image);
    ``decorate(n, datasets)``: may add datasets of episode ``n`` before it is written;
    ``on_episode(n, datasets)``: called after each file is written (metrics).
    """

    def __init__(
        self, out_dir, attrs=None, env_vars=None, extra=None, decorate=None, on_episode=None
    ):
        self.out_dir = Path(out_dir)
        self.attrs, self.env_vars = dict(attrs or {}), dict(env_vars or {})
        self.extra = dict(extra or {})
        self.decorate, self.on_episode = decorate, on_episode
        self._open: dict[int, dict] = {}
        self._finished: set[int] = set()
        self.written: list[Path] = []
        self.steps_written = 0  # the reference's acme counter: steps of the episodes so far

    def add(self, records) -> None:
        for lane, n in enumerate(records.episodes):
            n = int(n)
            if n in self._finished:  # its lane runs on until the whole batch has ended
                continue
            ep = self._open.setdefault(n, {"env": {}, "agent": {}, "constants": {}})
            keep = records.valid[lane]
            for key, tree in (("env", records.env), ("agent", records.agent)):
                for name, rows in tree.items():
                    ep[key].setdefault(name, []).append(rows[lane][keep])
            for name, value in records.constants.items():
                ep["constants"][name] = value[lane]
            if records.done[lane]:
                self._finish(n)

    def _finish(self, n: int) -> None:
        ep = self._open.pop(n)
        self._finished.add(n)
        env_rows = {k: np.concatenate(v) for k, v in ep["env"].items()}
        agent_rows = {k: np.concatenate(v) for k, v in ep["agent"].items()}
        data = episode_datasets(env_rows, agent_rows, ep["constants"])
        data.update(self.extra)
        self.steps_written += int(data["episode_length"])
        data["actor_steps"] = np.int64(self.steps_written)
        data["actor_episodes"] = np.int64(len(self._finished))
        if self.decorate is not None:
            self.decorate(n, data)
        attrs = dict(self.attrs, episode=n)
        if "end_cause" in data and "fish_x" in data:
            from larvax.envs.simfish.physics import END_CAUSES

            cause = int(data["end_cause"])
            attrs["end_cause_name"] = END_CAUSES[cause] if cause else "stopped"
        path = write_episode(self.out_dir / f"logs_{n}.hdf5", data, attrs, self.env_vars)
        self.written.append(path)
        if self.on_episode is not None:
            self.on_episode(n, data)


__all__ = [
    "EpisodeWriter",
    "env_variables",
    "episode_datasets",
    "read_episode",
    "regenerate_sediment",
    "sediment_image",
    "write_atomic",
    "write_episode",
]
