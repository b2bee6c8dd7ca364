"""Video frames of a recorded Simfish episode (NumPy, text by Pillow); ``video_writer.py``
writes them as MP4 / GIF.

Frame layout (uint8 RGB, sides multiples of 16 for video codecs)::

    +----------------------+------------------------------------+
    | arena, top-down      | step, time, bout name, energy bar, |
    | (render.py): sand x  | reward, light/salt, events         |
    | sediment x light,    +------------------------------------+
    | salt, prey, predator,| left eye        | right eye        |
    | fish; the fish's     | UV              | UV               |  retina readings over
    | last ``trail`` moves | red 50 deg      | red 50 deg       |  the last ``window``
    | coloured by bout     | red 75 deg      | red 75 deg       |  steps, newest at the
    +----------------------+------------------------------------+  bottom
    | bout colour legend   | recurrent state PC1..3 (``pca``)   |
    +----------------------+------------------------------------+

:class:`FrameRenderer` prepares what does not change (background, retina images, path in
pixels, principal components) once; ``frame(t)`` then costs a few milliseconds.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np

from larvax.envs.simfish import render as arena_render
from larvax.envs.simfish.bouts import BOUT_NAMES
from larvax.evaluation.recorded import RecordedEpisode
from larvax.evaluation.style import BOUT_COLORS, bout_name

BACKGROUND = (24, 24, 28)
TEXT = (230, 230, 230)
STIMULUS_RIM = (255, 220, 0)  # scripted predator
PC_COLORS = ((0, 200, 255), (255, 80, 220), (255, 220, 0))
UV_COLOR = np.array([170, 60, 255], np.float32)
RED_COLOR = np.array([255, 40, 40], np.float32)
CHANNELS = ("UV", "red 50 deg", "red 75 deg")
EVENT_TEXT = {
    "consumed_prey": ("prey caught", (255, 255, 255)),
    "survived_predator": ("attack survived", (40, 200, 60)),
    "captured_by_predator": ("caught by predator", (255, 60, 60)),
}
EVENT_HOLD = 5  # steps an event's text stays up


@functools.lru_cache(maxsize=8)
def _font(size: int):
    from matplotlib import font_manager
    from PIL import ImageFont

    path = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans"))
    return ImageFont.truetype(path, size)


def draw_text(img: np.ndarray, items, size: int = 12) -> None:
    """Draw ``(x, y, text, rgb)`` items on ``img`` in place (Pillow, DejaVu Sans)."""
    from PIL import Image, ImageDraw

    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    for x, y, text, color in items:
        draw.text((x, y), text, fill=tuple(int(c) for c in color), font=_font(size))
    img[...] = np.asarray(pil)


def principal_components(states: np.ndarray, k: int = 3) -> np.ndarray:
    """The first ``k`` principal-component scores ``[T, k]`` of ``states`` ``[T, H]`` (NumPy
    SVD of the centred states; columns beyond the rank are 0)."""
    x = np.asarray(states, np.float64).reshape(len(states), -1)
    x = x - x.mean(axis=0, keepdims=True)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    scores = np.zeros((len(x), k))
    m = min(k, s.size)
    scores[:, :m] = u[:, :m] * s[:m]
    return scores


def _round16(n: int) -> int:
    return int(-(-n // 16) * 16)


def _polyline(img, xs, ys, colors, thickness: int = 2) -> None:
    """Segments ``(xs[i], ys[i]) -> (xs[i+1], ys[i+1])`` in ``colors[i]``, later ones on top."""
    xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    if xs.size < 2:
        return
    n = int(np.clip(np.ceil(np.max(np.hypot(np.diff(xs), np.diff(ys)))) + 2, 2, 400))
    s = np.linspace(0.0, 1.0, n)[None, :]
    px = xs[:-1, None] + s * np.diff(xs)[:, None]
    py = ys[:-1, None] + s * np.diff(ys)[:, None]
    col = np.broadcast_to(np.asarray(colors, np.uint8)[:, None, :], (*px.shape, 3))
    h, w = img.shape[:2]
    for dx in range(thickness):
        for dy in range(thickness):
            ix = np.floor(px).astype(np.int64) + dx - thickness // 2
            iy = np.floor(py).astype(np.int64) + dy - thickness // 2
            ok = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
            img[iy[ok], ix[ok]] = col[ok]


def _ring(img, cx: float, cy: float, r: float, width: float, color) -> None:
    """A ring of radius ``r`` (px) around ``(cx, cy)``, clipped to the image."""
    h, w = img.shape[:2]
    k = int(np.ceil(r + width)) + 1
    x0, x1 = max(int(cx) - k, 0), min(int(cx) + k + 1, w)
    y0, y1 = max(int(cy) - k, 0), min(int(cy) + k + 1, h)
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1]
    d = np.hypot(xx + 0.5 - cx, yy + 0.5 - cy)
    img[y0:y1, x0:x1][np.abs(d - r) <= width / 2] = color


class FrameRenderer:
    """Frames of one :class:`RecordedEpisode`.

    size: the arena panel's side (px); trail: moves of the path shown; window: steps of
    retina history shown; pca: add the recurrent state's first three principal components.
    """

    def __init__(
        self,
        episode: RecordedEpisode,
        size: int = 480,
        trail: int = 60,
        window: int = 48,
        pca: bool = False,
    ):
        if isinstance(size, bool) or not isinstance(size, int) or size < 64:
            raise ValueError(f"video size={size!r} is invalid; allowed: an int >= 64")
        self.ep, self.size, self.trail, self.window = episode, size, int(trail), int(window)
        p = episode.params
        self.sx, self.sy = size / p.arena_width, size / p.arena_height
        self.x0 = size + 12  # right column
        self.kw = 160  # retina image width per eye (px)
        self.row_px = 2  # px per step in the retina images
        self.pca = principal_components(episode.actor_state) if pca else None
        if pca and episode.actor_state is None:
            self.pca = np.zeros((0, 3))
        legend_rows = -(-len(BOUT_NAMES) // 4)
        self.legend_y = size + 6
        right_h = 92 + 14 + 3 * (14 + self.window * self.row_px) + (112 if pca else 0)
        self.height = _round16(max(size + 10 + 15 * legend_rows, right_h))
        self.width = _round16(self.x0 + 2 * self.kw + 12 + 8)
        self._prepare()

    # ------------------------------------------------------------------ once per episode
    def _prepare(self) -> None:
        ep, p = self.ep, self.ep.params
        sediment = ep.sediment
        if isinstance(sediment, np.ndarray):
            from larvax.envs.simfish import arena

            sediment = arena.sediment_from_array(sediment)
        self.background = arena_render.arena_background(p, sediment, None, self.size)
        self.path_x = ep.fish_xy[:, 0] * self.sx
        self.path_y = ep.fish_xy[:, 1] * self.sy
        self.path_colors = BOUT_COLORS[np.clip(ep.action, 0, len(BOUT_COLORS) - 1)]  # row 0 unused
        self.kymo = None
        if ep.visual is not None:
            v = np.asarray(ep.visual, np.float32)  # [T+1, G, 3, 2]
            cols = np.minimum(
                (np.arange(self.kw) * v.shape[1] / self.kw).astype(int), v.shape[1] - 1
            )
            t = np.clip(v[:, cols] / np.asarray(arena_render.STRIP_FULL)[None, None, :, None], 0, 1)
            color = np.stack([UV_COLOR, RED_COLOR, RED_COLOR])  # [3 channels, rgb]
            # [T+1, kw, channel, eye, rgb]
            self.kymo = (t[..., None] * color[None, None, :, None, :]).astype(np.uint8)
        if self.pca is not None and len(self.pca):
            self.pca_scale = np.max(np.abs(self.pca), axis=0)
            self.pca_scale[self.pca_scale == 0] = 1.0
        self.canvas = np.empty((self.height, self.width, 3), np.uint8)
        self.canvas[...] = BACKGROUND
        self._static_text()

    def _static_text(self) -> None:
        items = []
        for i, name in enumerate(BOUT_NAMES):  # legend: 4 columns
            x = 4 + (i % 4) * (self.size // 4)
            y = self.legend_y + (i // 4) * 15
            self.canvas[y + 3 : y + 12, x : x + 9] = BOUT_COLORS[i]
            items.append((x + 13, y, name, TEXT))
        ky = 92
        for e, label in enumerate(("left eye", "right eye")):
            items.append((self.x0 + e * (self.kw + 12), ky - 2, label, TEXT))
        for c, label in enumerate(CHANNELS):
            y = ky + 14 + c * (14 + self.window * self.row_px)
            for e in range(2):
                items.append((self.x0 + e * (self.kw + 12), y, label, (160, 160, 160)))
        if self.ep.visual is None:
            items.append((self.x0, ky + 40, "no visual observation recorded", TEXT))
        if self.pca is not None:
            y = ky + 14 + 3 * (14 + self.window * self.row_px) + 4
            if len(self.pca):
                items.append((self.x0, y, "recurrent state:", TEXT))
                for i in range(3):
                    items.append((self.x0 + 104 + 36 * i, y, f"PC{i + 1}", PC_COLORS[i]))
            else:
                items.append((self.x0, y, "no recurrent state recorded", TEXT))
        draw_text(self.canvas, items, size=11)

    # ------------------------------------------------------------------ per frame
    def arena(self, t: int) -> np.ndarray:
        """The arena panel at row ``t`` (uint8 ``[size, size, 3]``)."""
        ep = self.ep
        img = self.background.copy()
        lo = max(t - self.trail, 0)
        if t > lo:  # segment i -> i+1 coloured by the bout action[i+1] that made it
            _polyline(
                img,
                self.path_x[lo : t + 1],
                self.path_y[lo : t + 1],
                self.path_colors[lo + 1 : t + 1],
            )
        _ring(img, self.path_x[t], self.path_y[t], 12.0, 2.0, arena_render.FISH)  # find the fish
        prey = ep.prey_xy[t]
        state = SimpleNamespace(
            fish_xy=ep.fish_xy[t],
            fish_angle=ep.fish_angle[t],
            prey_xy=np.nan_to_num(prey),
            prey_alive=np.all(np.isfinite(prey), axis=-1),
            predator_present=ep.predator_present[t],
            predator_xy=ep.predator_xy[t],
            predator_radius=ep.params.predator_radius,
            salt_source_xy=ep.salt_location,
        )
        self._stimuli(img, t)
        return arena_render.draw_objects(img, state, ep.params)

    def _stimuli(self, img: np.ndarray, t: int) -> None:
        """Scripted stimuli (seen by the fish, not simulated): row ``t`` shows index
        ``t - 1``; prey as white rings, the predator as a dark disc with a yellow rim."""
        if t < 1:
            return
        p, ep = self.ep.params, self.ep
        for stim, is_pred in ((ep.stimulus_predator_xy, True), (ep.stimulus_prey_xy, False)):
            if stim is None or t - 1 >= stim.shape[1]:
                continue
            for x, y in stim[:, t - 1]:
                if not (np.isfinite(x) and np.isfinite(y)):
                    continue
                cx, cy = x * self.sx, y * self.sy
                if is_pred:
                    r = max(p.predator_radius * self.sx, 3.0)
                    _ring(img, cx, cy, r / 2, r, arena_render.PRED)  # a filled disc
                    _ring(img, cx, cy, r, 1.5, STIMULUS_RIM)
                else:
                    _ring(img, cx, cy, max(p.prey_radius * self.sx, 2.5), 1.0, arena_render.PREY)

    def _retinas(self, img: np.ndarray, t: int) -> None:
        if self.kymo is None:
            return
        w = self.window
        rows = np.arange(t - w + 1, t + 1)
        valid = rows >= 0
        for c in range(3):
            y = 92 + 14 + c * (14 + w * self.row_px) + 14
            for e in range(2):
                block = np.zeros((w, self.kw, 3), np.uint8)
                block[valid] = self.kymo[rows[valid], :, c, e]
                x = self.x0 + e * (self.kw + 12)
                img[y : y + w * self.row_px, x : x + self.kw] = np.repeat(block, self.row_px, 0)

    def _pcs(self, img: np.ndarray, t: int) -> None:
        if self.pca is None or not len(self.pca):
            return
        w, y0 = self.window, 92 + 14 + 3 * (14 + self.window * self.row_px) + 22
        ph, pw = 84, 2 * self.kw + 12
        img[y0 : y0 + ph, self.x0 : self.x0 + pw] = (40, 40, 46)
        # state row r read observation row r (a log has T rows: none after the last step)
        lo, hi = max(t - w + 1, 0), min(t, len(self.pca) - 1)
        scale = self.pca_scale
        xs = self.x0 + (np.arange(lo, hi + 1) - (t - w + 1)) * (pw - 1) / max(w - 1, 1)
        for i in range(3):
            ys = y0 + ph / 2 - self.pca[lo : hi + 1, i] / scale[i] * (ph / 2 - 3)
            colors = np.tile(np.asarray(PC_COLORS[i], np.uint8), (max(len(xs) - 1, 0), 1))
            _polyline(img, xs, ys, colors, thickness=2)

    def _header(self, img: np.ndarray, t: int) -> None:
        ep, p, x = self.ep, self.ep.params, 0  # img: the header strip of the right column
        a = int(ep.action[t])
        bout = "(reset)" if t == 0 else bout_name(a)
        bout_rgb = TEXT if t == 0 else BOUT_COLORS[np.clip(a, 0, len(BOUT_COLORS) - 1)]
        items = [
            (x, 4, f"step {t} / {ep.num_steps}   t = {t * p.step_duration_s:.1f} s", TEXT),
            (x, 22, "bout", TEXT),
            (x + 40, 22, bout, bout_rgb),
            (x, 40, "energy", TEXT),
        ]
        energy = ep.energy
        bar_x, bar_w = x + 60, 180
        img[43:53, bar_x : bar_x + bar_w] = (60, 60, 60)
        if energy is not None:
            e = float(energy[t])
            fill = int(round(np.clip(e, 0.0, 1.0) * bar_w))
            rgb = (60, 200, 80) if e > 0.5 else (240, 170, 40) if e > 0.2 else (230, 50, 40)
            img[43:53, bar_x : bar_x + fill] = rgb
            items.append((bar_x + bar_w + 6, 40, f"{e:.2f}", TEXT))
        else:
            items.append((bar_x + bar_w + 6, 40, "n/a", TEXT))
        line = f"reward {ep.reward[t]:+.2f}   return {np.sum(ep.reward[1 : t + 1]):+.2f}"
        if ep.internal is not None:
            # the internal state's flags as the fish reads them
            line += f"   in_light {ep.internal[t, 0]:.0f}   salt {ep.internal[t, 2]:.2f}"
        items.append((x, 58, line, TEXT))
        ex = x
        for key, (text, rgb) in EVENT_TEXT.items():
            if np.any(ep.events[key][max(t - EVENT_HOLD + 1, 0) : t + 1]):
                items.append((ex, 74, text, rgb))
                ex += 8 * len(text) + 8
        if ep.predator_present[t]:
            items.append((ex, 74, "predator", (200, 30, 30)))
        draw_text(img, items, size=12)

    def frame(self, t: int) -> np.ndarray:
        """The frame at row ``t`` (0 = reset), uint8 ``[height, width, 3]``."""
        t = int(t)
        if not 0 <= t <= self.ep.num_steps:
            raise ValueError(f"frame t={t} is out of range; allowed: 0..{self.ep.num_steps}")
        img = self.canvas.copy()
        img[: self.size, : self.size] = self.arena(t)
        header = img[:90, self.x0 :].copy()
        self._header(header, t)
        img[:90, self.x0 :] = header
        self._retinas(img, t)
        self._pcs(img, t)
        return img

    def frames(self, every: int = 1):
        """Frames of rows ``0, every, 2 every, ...`` and always the last row."""
        rows = list(range(0, self.ep.num_steps + 1, max(int(every), 1)))
        if rows[-1] != self.ep.num_steps:
            rows.append(self.ep.num_steps)
        for t in rows:
            yield self.frame(t)


__all__ = ["FrameRenderer", "draw_text", "principal_components"]
