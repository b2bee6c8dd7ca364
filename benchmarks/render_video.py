"""Time ``larvax render``'s parts on one random-bout Simfish episode: simulating it, drawing
the frames, and writing MP4 (imageio-ffmpeg, H.264) and GIF (Pillow).

    python benchmarks/render_video.py [--preset normal] [--steps 1000] [--pca]

Prints a table and writes ``benchmarks/results/render_video.json`` (machine, versions,
command). Also saves the middle frame as ``docs/render_frame.png`` with ``--save-frame``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, rich_table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="normal")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pca", action="store_true", help="random stand-in recurrent state (64)")
    ap.add_argument("--save-frame", metavar="PNG", help="write the frame at --frame here")
    ap.add_argument("--frame", type=int, help="row of the saved frame (default: the middle)")
    args = ap.parse_args()

    import imageio.v2 as imageio

    from larvax.evaluation.recorded import random_episode
    from larvax.evaluation.video import FrameRenderer
    from larvax.evaluation.video_writer import write_video

    t0 = time.perf_counter()
    ep = random_episode(args.preset, args.seed, args.steps)
    t_sim = time.perf_counter() - t0
    if args.pca:  # a smooth stand-in: the random-bout episode has no network
        rng = np.random.default_rng(0)
        ep.actor_state = np.cumsum(rng.normal(size=(ep.num_steps, 64)), 0).astype(np.float32)
    t0 = time.perf_counter()
    renderer = FrameRenderer(ep, pca=args.pca)
    t_prep = time.perf_counter() - t0
    t0 = time.perf_counter()
    frames = [renderer.frame(t) for t in range(ep.num_steps + 1)]
    t_draw = time.perf_counter() - t0
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for ext in (".mp4", ".gif"):
            path = Path(tmp) / f"episode{ext}"
            t0 = time.perf_counter()
            n = write_video(iter(frames), path, fps=10)
            results[ext] = (time.perf_counter() - t0, os.path.getsize(path), n)
    if args.save_frame:
        row = ep.num_steps // 2 if args.frame is None else args.frame
        imageio.imwrite(args.save_frame, frames[row])

    per_frame_ms = 1e3 * t_draw / len(frames)
    rows = [
        ["simulate (compile + run)", f"{t_sim:.1f} s", f"{ep.num_steps} steps"],
        ["prepare (background, retinas)", f"{t_prep:.2f} s", ""],
        ["draw frames", f"{t_draw:.1f} s", f"{per_frame_ms:.1f} ms/frame"],
    ]
    for ext, (sec, size, n) in results.items():
        rows.append([f"write {ext}", f"{sec:.1f} s", f"{n} frames, {size / 1e6:.1f} MB"])
    shape = frames[0].shape
    rich_table(f"render {args.preset}, {shape[1]}x{shape[0]} px", ["part", "time", ""], rows)
    out = {
        "command": "python " + " ".join(sys.argv),
        "machine": machine_info(),
        "steps": ep.num_steps,
        "frame_shape": list(shape),
        "simulate_s": t_sim,
        "prepare_s": t_prep,
        "draw_s": t_draw,
        "draw_ms_per_frame": per_frame_ms,
        "write_s": {k: v[0] for k, v in results.items()},
        "bytes": {k: v[1] for k, v in results.items()},
        "render_mp4_total_s": t_prep + t_draw + results[".mp4"][0],
    }
    res = Path(__file__).resolve().parent / "results" / "render_video.json"
    res.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {res}")


if __name__ == "__main__":
    main()
