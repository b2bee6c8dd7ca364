"""Episode videos and analysis plots, on small hand-written HDF5 logs in the documented layout
(docs/evaluation.md), written here with h5py so the tests do not depend on the log writer."""

from __future__ import annotations

import csv

import h5py
import imageio.v2 as imageio
import numpy as np
import pytest

from larvax.cli import main
from larvax.envs.simfish import render
from larvax.evaluation import plots
from larvax.evaluation.recorded import read_episode
from larvax.evaluation.video import FrameRenderer, principal_components
from larvax.evaluation.video_writer import write_video

ARENA = 500  # px, square
SIZE = 250  # arena panel side: 0.5 image px per arena px


def write_log(
    path, fish_xy, action, *, prey=None, predator_present=None, events=None, h=4, extra=None
):
    """A Simfish episode log with T + 1 = len(fish_xy) rows, reference dataset names."""
    fish_xy = np.asarray(fish_xy, np.float32)
    rows = len(fish_xy)
    prey = np.full((rows, 2, 2), np.nan, np.float32) if prey is None else prey
    present = np.zeros(rows, bool) if predator_present is None else predator_present
    events = events or {}
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f["fish_x"], f["fish_y"] = fish_xy[:, 0], fish_xy[:, 1]
        f["fish_angle"] = np.zeros(rows, np.float32)  # heading +x: the tail points to -x
        f["prey_x"], f["prey_y"] = prey[..., 0], prey[..., 1]
        f["predator_x"] = np.where(present, 250.0, 0.0).astype(np.float32)
        f["predator_y"] = np.where(present, 100.0, 0.0).astype(np.float32)
        f["predator_present"] = present
        for name in ("consumed_prey", "survived_predator", "captured_by_predator"):
            f[f"event_{name}"] = events.get(name, np.zeros(rows, bool))
        f["action"] = np.asarray(action, np.int32)
        f["reward"] = np.linspace(-1, 1, rows).astype(np.float32)
        f["reward_energy"] = np.full(rows, -0.01, np.float32)
        f["reward_consumption"] = 3.0 * f["event_consumed_prey"][()].astype(np.float32)
        f["vis_observation"] = rng.uniform(0, 30, (rows, 139, 3, 2)).astype(np.float32)
        f["internal_state"] = np.stack(
            [np.ones(rows), np.linspace(1, 0.5, rows), np.zeros(rows)], -1
        ).astype(np.float32)
        f["actor_state"] = rng.normal(size=(rows - 1, h)).astype(np.float32)
        f["episode_length"] = np.int64(rows - 1)
        f["salt_location"] = np.full((1, 2), np.nan, np.float32)
        for name, value in (extra or {}).items():
            f[name] = value
        env = f.create_group("env_variables")
        env.attrs["arena_width"] = ARENA
        env.attrs["arena_height"] = ARENA
        env.attrs["salt_enabled"] = False
    return path


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("eval")
    t = 6
    xy = np.stack([np.linspace(100, 400, t + 1), np.full(t + 1, 300.0)], -1)
    consumed = np.zeros(t + 1, bool)
    consumed[3] = True
    prey = np.full((t + 1, 2, 2), np.nan, np.float32)
    prey[:3, 0] = (200.0, 300.0)
    write_log(
        d / "logs_1.hdf5",
        xy,
        [-1, 3, 4, 0, 9, 9, 20],
        prey=prey,
        events={"consumed_prey": consumed},
    )
    present = np.array([0, 0, 1, 1, 0, 0, 0], bool)
    write_log(d / "logs_2.hdf5", xy[::-1], [-1, 5, 5, 6, 7, 0, 1], predator_present=present)
    return d


def test_frame_shows_the_fish_at_its_recorded_position(tmp_path):
    fish = (123.0, 321.0)
    path = write_log(tmp_path / "logs_1.hdf5", [(400.0, 60.0), fish], [-1, 3])
    renderer = FrameRenderer(read_episode(path), size=SIZE)
    img = renderer.frame(1)
    arena = img[:SIZE, :SIZE]
    is_fish = np.all(arena == render.FISH, axis=-1)
    ys, xs = np.nonzero(is_fish)
    px, py = fish[0] * SIZE / ARENA, fish[1] * SIZE / ARENA  # (61.5, 160.5)
    dist = np.hypot(xs + 0.5 - px, ys + 0.5 - py)
    assert dist.min() <= 3.0  # the head is drawn at the recorded mouth position
    # nothing fish-coloured farther than the drawn body: head offset + tail (2.5 + 41 px)
    # at 0.5 image px per px, tail toward -x, plus the 1 px half-width of its line
    body = (2.5 + 41.0) * SIZE / ARENA
    assert dist.max() <= body + 2.0
    ring = np.abs(dist - 12.0) <= 1.5  # the marker ring (radius 12 px) centred on the fish
    assert ring.sum() > 50
    assert np.all(xs[~ring] + 0.5 <= px + 4.0)  # heading +x: the body lies behind the mouth
    # at the reset row the fish is at (400, 60) -> (200, 30), not at the later position
    first = np.all(renderer.frame(0)[:SIZE, :SIZE] == render.FISH, axis=-1)
    ys0, xs0 = np.nonzero(first)
    assert np.hypot(xs0 + 0.5 - 200, ys0 + 0.5 - 30).min() <= 3.0 and not first[160, 61]


def test_scripted_predator_drawn_at_its_stimulus_index(tmp_path):
    # log row t shows stimulus index t - 1 (docs/evaluation.md): index 1 -> row 2 only
    stim = np.full((1, 3, 2), np.nan, np.float32)
    stim[0, 1] = (300.0, 300.0)  # -> image pixel (150, 150); radius 64 px -> 32
    fish = [(100.0, 100.0)] * 4
    path = write_log(
        tmp_path / "logs_1.hdf5", fish, [-1, 0, 0, 0], extra={"stimulus_predator_xy": stim}
    )
    renderer = FrameRenderer(read_episode(path), size=SIZE)
    shown = [bool(np.all(renderer.frame(t)[150, 150] == render.PRED)) for t in range(4)]
    assert shown == [False, False, True, False]


def test_frame_layout_and_pca_panel(eval_dir):
    ep = read_episode(eval_dir / "logs_1.hdf5")
    renderer = FrameRenderer(ep, size=SIZE, pca=True)
    img = renderer.frame(ep.num_steps)
    assert img.dtype == np.uint8 and img.shape == (renderer.height, renderer.width, 3)
    assert img.shape[0] % 16 == 0 and img.shape[1] % 16 == 0  # video codecs' blocks
    with pytest.raises(ValueError, match=r"allowed: 0\.\.6"):
        renderer.frame(7)


def test_principal_components_of_a_rank_one_state():
    # states along one direction: PC1 carries everything, PC2 and PC3 are zero
    s = np.arange(5.0)[:, None] * np.array([[1.0, 2.0, 2.0]])
    pcs = principal_components(s)
    centred = (np.arange(5.0) - 2.0) * 3.0  # |(1, 2, 2)| = 3
    np.testing.assert_allclose(np.abs(pcs[:, 0]), np.abs(centred), atol=1e-9)
    np.testing.assert_allclose(pcs[:, 1:], 0.0, atol=1e-9)


def test_written_gif_and_mp4_read_back_with_the_right_number_of_frames(eval_dir, tmp_path):
    ep = read_episode(eval_dir / "logs_1.hdf5")
    renderer = FrameRenderer(ep, size=128)
    n = write_video(renderer.frames(), tmp_path / "ep.gif", fps=5)
    assert n == ep.num_steps + 1
    frames = imageio.mimread(tmp_path / "ep.gif")
    assert len(frames) == ep.num_steps + 1
    assert frames[0].shape[:2] == (renderer.height, renderer.width)
    assert n == 7 and not list(tmp_path.glob(".*"))  # no temporary file left behind
    # every 4th row and always the last: rows 0, 4, 6
    assert write_video(renderer.frames(every=4), tmp_path / "sub.gif") == 3
    pytest.importorskip("imageio_ffmpeg")
    assert write_video(renderer.frames(), tmp_path / "ep.mp4", fps=5) == 7
    with imageio.get_reader(tmp_path / "ep.mp4", format="FFMPEG") as reader:
        assert reader.count_frames() == 7


def test_event_triggered_bout_proportions_equal_hand_computed_values():
    actions = [np.array([-1, 3, 4, 5, 3, 0]), np.array([-1, 0, 0])]
    events = [np.array([2]), np.array([1])]
    lags, props, counts = plots.event_triggered_bouts(actions, events, 1, 2, num_actions=6)
    np.testing.assert_array_equal(lags, [-1, 0, 1, 2])
    # lag -1: ep1 row 1 (bout 3); ep2 row 0 is the reset (no bout)
    # lag 0: bouts 4 and 0; lag 1: bouts 5 and 0; lag 2: ep1 row 4 (3), ep2 row 3 is past T
    np.testing.assert_array_equal(counts, [1, 2, 2, 1])
    expected = np.zeros((4, 6))
    expected[0, 3] = 1.0
    expected[1, [0, 4]] = 0.5
    expected[2, [0, 5]] = 0.5
    expected[3, 3] = 1.0
    np.testing.assert_allclose(props, expected)


def test_event_rows_and_bout_counts(eval_dir):
    ep1, ep2 = (read_episode(eval_dir / f"logs_{n}.hdf5") for n in (1, 2))
    rows = plots.event_rows(ep2)
    np.testing.assert_array_equal(rows["predator appears"], [2])
    np.testing.assert_array_equal(plots.event_rows(ep1)["prey consumed"], [3])
    counts = plots.bout_counts([ep1, ep2])  # action[1:], reset rows (-1) excluded
    assert counts.sum() == 12 and counts[0] == 2 and counts[5] == 2 and counts[9] == 2


def test_plots_write_the_expected_png_files(eval_dir, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("env:\n  name: simfish\n  preset: stage1\n")
    with (run / "metrics.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["update", "env_steps", "episode_return", "prey_caught", "loss"])
        for i in range(8):
            w.writerow([i, 100 * i, "nan" if i == 0 else i * 0.5, i % 3, 0.1])
    out = tmp_path / "plots"
    assert main(["plot", str(run), "--out", str(out)]) == 0
    assert (out / "learning_curves.png").is_file()
    assert main(["plot", str(eval_dir), "--out", str(out)]) == 0
    expected = {
        "bout_usage.png",
        "prey_per_episode.png",
        "reward_composition.png",
        "event_bouts.png",
        "trajectories.png",
        "learning_curves.png",
    }
    assert {p.name for p in out.glob("*.png")} == expected
    for name in expected:
        img = imageio.imread(out / name)
        assert img.ndim == 3 and min(img.shape[:2]) > 100


def _one_line_error(capsys, argv, *fragments):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("larvax: error:"), err
    for fragment in fragments:
        assert fragment in err, err


def test_bad_arguments_give_one_line_errors(eval_dir, tmp_path, capsys):
    gif = str(tmp_path / "x.gif")
    _one_line_error(capsys, ["render", "--log", str(tmp_path / "no.hdf5"), "--out", gif], "exist")
    _one_line_error(capsys, ["render", str(tmp_path / "norun"), "--out", gif], "does not exist")
    _one_line_error(
        capsys, ["render", "--log", str(eval_dir), "--episode", "5", "--out", gif], "allowed: 1..2"
    )
    bad_dir = str(tmp_path / "missing" / "x.mp4")
    _one_line_error(capsys, ["render", "--log", str(eval_dir), "--out", bad_dir], "does not exist")
    avi = str(tmp_path / "x.avi")
    _one_line_error(capsys, ["render", "--random", "--out", avi], ".avi", ".mp4", ".gif")
    _one_line_error(capsys, ["render", "--out", gif], "exactly one of")
    _one_line_error(capsys, ["plot", str(tmp_path / "nothing")], "is not a directory")
    _one_line_error(capsys, ["plot", str(tmp_path)], "neither metrics.csv")
    assert not (tmp_path / "x.gif").exists()


@pytest.mark.slow
def test_random_episode_renders(tmp_path):
    from larvax.evaluation.recorded import random_episode

    ep = random_episode("stage1", seed=1, max_steps=20)
    assert ep.num_steps == 20 and ep.visual.shape == (21, 139, 3, 2)
    assert np.all(ep.action[1:] >= 0) and ep.action[0] == -1
    assert write_video(FrameRenderer(ep, size=128).frames(), tmp_path / "r.gif") == 21
