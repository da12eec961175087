"""A PNG contact sheet of the world: a few frames per video with the action being performed.

No image library is needed: a 5x7 bitmap font for the labels and a minimal PNG writer (zlib).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from vidseek.synth.config import SynthConfig
from vidseek.synth.verbs import VERBS

# 5x7 glyphs: seven rows of five bits, most significant bit on the left.
GLYPHS = {
    "A": "0E 11 11 1F 11 11 11", "B": "1E 11 11 1E 11 11 1E", "C": "0E 11 10 10 10 11 0E",
    "D": "1C 12 11 11 11 12 1C", "E": "1F 10 10 1E 10 10 1F", "F": "1F 10 10 1E 10 10 10",
    "G": "0E 11 10 17 11 11 0F", "H": "11 11 11 1F 11 11 11", "I": "0E 04 04 04 04 04 0E",
    "J": "07 02 02 02 02 12 0C", "K": "11 12 14 18 14 12 11", "L": "10 10 10 10 10 10 1F",
    "M": "11 1B 15 15 11 11 11", "N": "11 11 19 15 13 11 11", "O": "0E 11 11 11 11 11 0E",
    "P": "1E 11 11 1E 10 10 10", "Q": "0E 11 11 11 15 12 0D", "R": "1E 11 11 1E 14 12 11",
    "S": "0F 10 10 0E 01 01 1E", "T": "1F 04 04 04 04 04 04", "U": "11 11 11 11 11 11 0E",
    "V": "11 11 11 11 11 0A 04", "W": "11 11 11 15 15 15 0A", "X": "11 11 0A 04 0A 11 11",
    "Y": "11 11 11 0A 04 04 04", "Z": "1F 01 02 04 08 10 1F", "0": "0E 11 13 15 19 11 0E",
    "1": "04 0C 04 04 04 04 0E", "2": "0E 11 01 02 04 08 1F", "3": "1F 02 04 02 01 11 0E",
    "4": "02 06 0A 12 1F 02 02", "5": "1F 10 1E 01 01 11 0E", "6": "06 08 10 1E 11 11 0E",
    "7": "1F 01 02 04 08 08 08", "8": "0E 11 11 0E 11 11 0E", "9": "0E 11 11 0F 01 02 0C",
    " ": "00 00 00 00 00 00 00", ".": "00 00 00 00 00 0C 0C", ":": "00 0C 0C 00 0C 0C 00",
    "-": "00 00 00 1F 00 00 00", "_": "00 00 00 00 00 00 1F", "/": "00 01 02 04 08 10 00",
    "(": "02 04 08 08 08 04 02", ")": "08 04 02 02 02 04 08", ",": "00 00 00 00 0C 04 08",
}


def text_bitmap(text: str) -> np.ndarray:
    """(7, 6 * len(text)) boolean bitmap of ``text`` (upper-cased; unknown characters are blank)."""
    cols = []
    for ch in text.upper():
        rows = [int(v, 16) for v in GLYPHS.get(ch, GLYPHS[" "]).split()]
        g = np.array([[(r >> (4 - i)) & 1 for i in range(5)] + [0] for r in rows], bool)
        cols.append(g)
    return np.concatenate(cols, axis=1) if cols else np.zeros((7, 0), bool)


def put_text(img: np.ndarray, x: int, y: int, text: str, color=(255, 255, 255), scale: int = 1) -> None:
    """Write text into a uint8 RGB image at (x, y), clipped at the borders."""
    bm = text_bitmap(text).repeat(scale, 0).repeat(scale, 1)
    h, w = bm.shape
    h, w = min(h, img.shape[0] - y), min(w, img.shape[1] - x)
    if h > 0 and w > 0:
        img[y:y + h, x:x + w][bm[:h, :w]] = color


def write_png(path: str | Path, img: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 image as an 8-bit RGB PNG, choosing the None / Sub / Up filter per row."""
    img = np.ascontiguousarray(img, np.uint8)
    h, w, _ = img.shape
    flat = img.reshape(h, w * 3).astype(np.int16)
    left = np.concatenate([np.zeros((h, 3), np.int16), flat[:, :-3]], axis=1)
    up = np.concatenate([np.zeros((1, w * 3), np.int16), flat[:-1]], axis=0)
    options = np.stack([flat, flat - left, flat - up]) % 256  # filter types 0, 1, 2
    signed = np.where(options > 127, 256 - options, options).sum(axis=2)  # (3, h): the usual heuristic
    best = signed.argmin(axis=0)
    rows = options[best, np.arange(h)].astype(np.uint8)
    raw = b"".join(bytes([int(best[y])]) + rows[y].tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    Path(path).write_bytes(png)


def _label(video, action) -> str:
    person = video.scene.people[action.actor]
    what = VERBS[action.verb].label
    if action.prop is not None:
        what += f" {video.scene.props[action.prop].color_name} {action.obj}"
    return f"{person.shirt_name} shirt {what}"


def contact_sheet(path: str | Path, seed: int = 0, n_videos: int = 4, frames_per_video: int = 5,
                  config: SynthConfig | None = None, scale: int = 2, start_index: int = 0) -> np.ndarray:
    """Render a grid of frames (rows: videos; columns: successive actions) to a PNG and return it.

    Each cell is a frame 60 % into an action, as it decodes from the H.264 the dataset writes,
    labelled with the acting person's shirt colour, the action and the time.
    """
    from vidseek.synth.video import make_video

    cfg = config or SynthConfig()
    rows = []
    for i in range(start_index, start_index + n_videos):
        video = make_video(seed, i, cfg)
        actions = video.timeline.actions[:frames_per_video]
        times = [a.start + 0.6 * (a.end - a.start) for a in actions]
        frames = _decoded_frames(video, times, cfg)
        cells = [_cell(f.repeat(scale, 0).repeat(scale, 1), f"{t:.1f}S {_label(video, a)}")
                 for f, t, a in zip(frames, times, actions)]
        while len(cells) < frames_per_video:
            cells.append(np.full_like(cells[0], 24))
        header = np.full((12, sum(c.shape[1] for c in cells) + 2 * (len(cells) - 1), 3), 16, np.uint8)
        put_text(header, 2, 3, f"{video.vid}  {video.duration:.1f}S  {len(video.scene.people)} PEOPLE  "
                              f"{len(video.timeline.actions)} ACTIONS", (255, 220, 120))
        gap = np.full((cells[0].shape[0], 2, 3), 16, np.uint8)
        body = np.concatenate([x for c in cells for x in (c, gap)][:-1], axis=1)
        rows.append(np.concatenate([header, body], axis=0))
    sheet = np.concatenate([x for r in rows for x in (r, np.full((4, r.shape[1], 3), 16, np.uint8))][:-1], axis=0)
    write_png(path, sheet)
    return sheet


def _decoded_frames(video, times: list[float], cfg: SynthConfig) -> list[np.ndarray]:
    """Frames at ``times`` as they come out of the dataset's encoder (each coded on its own)."""
    import tempfile

    import av

    from vidseek.synth.render import Renderer
    from vidseek.synth.writer import encode_video

    renderer = Renderer(video)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"frame{cfg.suffix}"
        for t in times:
            frame = renderer.frame_at(t, int(t * video.fps))
            encode_video(path, [frame], video.fps, video.width, video.height, cfg.container, cfg.crf)
            with av.open(str(path)) as c:
                out.append(next(c.decode(video=0)).to_ndarray(format="rgb24"))
    return out


def _cell(frame: np.ndarray, label: str) -> np.ndarray:
    strip = np.full((11, frame.shape[1], 3), 0, np.uint8)
    put_text(strip, 2, 2, label[: frame.shape[1] // 6], (255, 255, 255))
    return np.concatenate([strip, frame], axis=0)
