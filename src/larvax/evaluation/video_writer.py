"""Write video frames as MP4 (H.264 through imageio's ffmpeg plugin) or GIF (Pillow), under
a temporary name renamed when complete; :func:`render_video` renders a recorded episode."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from larvax.evaluation.recorded import RecordedEpisode
from larvax.evaluation.video import FrameRenderer

VIDEO_EXTENSIONS = (".mp4", ".gif")


def check_output(path: str | Path) -> Path:
    """``path`` as a writable video file name (one-line ValueError otherwise)."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in VIDEO_EXTENSIONS:
        raise ValueError(
            f"--out {str(path)!r} has extension {ext or '(none)'!r}; allowed: "
            + ", ".join(VIDEO_EXTENSIONS)
        )
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"--out {str(path)!r}: directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ValueError(f"--out {str(path)!r} is not writable")
    existed = path.exists()
    try:  # a real open: os.access says yes to root where the file system still refuses
        with path.open("ab"):
            pass
    except OSError as err:
        raise ValueError(f"--out {str(path)!r} is not writable ({err.strerror})") from None
    if not existed:
        path.unlink(missing_ok=True)
    return path


class _GifWriter:
    """GIF through Pillow: each frame quantised on arrival (fast octree, 256 colours, no
    dithering: 1 byte a pixel kept, not 3), all written on close. About 3x faster than
    imageio's Pillow writer (median-cut quantisation of RGB frames held until the end) on
    these frames; see docs/render_plot.md."""

    def __init__(self, path: Path, fps: float):
        self.path, self.duration_ms, self.frames = path, 1000.0 / fps, []

    def append_data(self, frame: np.ndarray) -> None:
        from PIL import Image

        image = Image.fromarray(np.asarray(frame, np.uint8))
        self.frames.append(
            image.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
        )

    def close(self) -> None:
        if self.frames:
            first, *rest = self.frames
            first.save(
                self.path, format="GIF", save_all=True, append_images=rest,
                duration=self.duration_ms, loop=0,
            )  # fmt: skip


def write_video(frames, path: str | Path, fps: float = 10.0) -> int:
    """Write ``frames`` (uint8 RGB arrays of one shape) to ``path`` (.mp4: H.264 through
    imageio's ffmpeg plugin, x264 preset veryfast; .gif: Pillow, looping); returns the
    number of frames. The file appears under its name only when complete (written to a
    hidden temporary name, then renamed)."""
    import imageio.v2 as imageio

    path = check_output(path)
    if not fps > 0:
        raise ValueError(f"fps={fps!r} is invalid; allowed: a number > 0")
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    count = 0
    try:
        if path.suffix.lower() == ".mp4":
            with warnings.catch_warnings():  # ffmpeg is a subprocess (fork + exec at once)
                warnings.filterwarnings("ignore", "os.fork", RuntimeWarning)
                with imageio.get_writer(
                    tmp, format="FFMPEG", fps=fps, codec="libx264", quality=7,
                    macro_block_size=16, output_params=["-preset", "veryfast"],
                ) as writer:  # fmt: skip
                    for frame in frames:
                        writer.append_data(frame)
                        count += 1
        else:
            writer = _GifWriter(tmp, fps)
            for frame in frames:
                writer.append_data(frame)
                count += 1
            writer.close()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return count


def render_video(
    episode: RecordedEpisode, path, fps: float = 10.0, every: int = 1, pca: bool = False, size=480
) -> int:
    """Render ``episode`` to ``path`` (.mp4 or .gif); returns the number of frames."""
    check_output(path)
    renderer = FrameRenderer(episode, size=size, pca=pca)
    return write_video(renderer.frames(every), path, fps)


__all__ = ["VIDEO_EXTENSIONS", "check_output", "render_video", "write_video"]
