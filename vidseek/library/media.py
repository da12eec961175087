"""Pictures and pieces of indexed videos: a JPEG frame (``thumbnail``, cached on disk by
``cached_thumbnail``) and a moment cut into an MP4 of its own (``cut``). PyAV only; torch-free.

``indexed_file`` is the one way from a catalog row to a file on disk: the library root joined
with the row's path, resolved, and refused unless it is a regular file inside the resolved root (a
symbolic link that leads out of the library is not followed there). Nothing here opens a path that
did not come from the catalog.

Times are seconds in the file, from the start of its video stream, as moments give them.
Thumbnails are cached in ``INDEX_DIR/thumbnails/<id>-<content>-<ms>.jpg``: a video id and the
content hash of the file it was taken from (ids start again after a catalog is rebuilt; the hash
tells the files apart), and the time in milliseconds, rounded to ``THUMBNAIL_STEP_S``. A reader
that cannot write there (a read-only index folder) serves them uncached.
"""

from __future__ import annotations

import fractions
import os
import stat
from pathlib import Path

import numpy as np

from vidseek.atomic import atomic_write
from vidseek.errors import VidseekError
from vidseek.library.searcher import NotIndexed

THUMBNAIL_DIR = "thumbnails"  # inside the index folder
THUMBNAIL_WIDTH = 320  # pixels; the height keeps the picture's shape
THUMBNAIL_STEP_S = 0.1  # thumbnail times are rounded to this
THUMBNAIL_QUALITY = 4  # JPEG quantiser scale (FFmpeg's -q:v: 2 best .. 31 worst)
MAX_THUMBNAILS = 4096  # cached pictures kept; past this the oldest half is deleted
CLIP_PRESET, CLIP_CRF = "veryfast", "23"  # libx264 settings of a cut clip
_LAMBDA = 118  # FFmpeg's FF_QP2LAMBDA: global_quality is a quantiser scale times this


class MediaError(VidseekError, ValueError):
    """A time or span that the video does not have (negative, past its end, empty, too long)."""


class UnreadableVideo(VidseekError):
    """An indexed file that PyAV cannot decode now (changed, truncated or damaged since indexing)."""


def indexed_file(root: str | os.PathLike, path: str) -> Path:
    """The file of the catalog path ``path`` under the library ``root``, resolved; ``NotIndexed``
    when it is gone, not a regular file, or resolves to somewhere outside the resolved root."""
    base = os.path.realpath(root)
    real = os.path.realpath(os.path.join(base, path))
    if os.path.commonpath([base, real]) != base:
        raise NotIndexed(f"{path!r} leads out of the library ({base}), through a symbolic link: it is not served")
    try:
        st = os.stat(real)
    except OSError:
        raise NotIndexed(f"the file of {path!r} is gone from the library ({base}) since it was indexed: run "
                         f"`vidseek index {base}` to bring the index up to date") from None
    if not stat.S_ISREG(st.st_mode):
        raise NotIndexed(f"{path!r} is not a regular file any more: run `vidseek index {base}`")
    return Path(real)


def _open(path: Path):
    import av

    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, OSError) as exc:
        raise UnreadableVideo(f"{path} cannot be opened ({exc}); if it changed since it was indexed, run "
                              "`vidseek index` again") from None
    if not container.streams.video:
        container.close()
        raise UnreadableVideo(f"{path} has no video stream; run `vidseek index` again")
    return container


def _rotated(frame, width: int | None = None):
    """The frame as an RGB array of ``width`` pixels (the source's width when None), turned as its
    display matrix says (counter-clockwise degrees, as ``vidseek.engine.video`` reads them)."""
    from vidseek.engine.video import _rotation

    turn = _rotation(frame)
    w, h = (frame.height, frame.width) if turn in (90, 270) else (frame.width, frame.height)
    if width is not None and width < w:
        h, w = max(2, round(h * width / w)), width
    w, h = w - w % 2, h - h % 2  # even sizes, as 4:2:0 pictures need
    size = (h, w) if turn in (90, 270) else (w, h)
    rgb = frame.reformat(width=size[0], height=size[1], format="rgb24").to_ndarray()
    return np.ascontiguousarray(np.rot90(rgb, turn // 90)) if turn else rgb


def frame_at(path: str | os.PathLike, t: float, width: int | None = None) -> np.ndarray:
    """The picture on screen at second ``t`` of the file: (H, W, 3) uint8 RGB, ``width`` pixels wide
    at most; the last picture when ``t`` is past the end. Seeks to the key frame before ``t``."""
    import av

    if not (np.isfinite(t) and t >= 0):
        raise MediaError(f"a time in the video must be a number of seconds >= 0, got {t}")
    with _open(Path(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        origin = stream.start_time or 0
        target = origin + int(t / stream.time_base)
        chosen = None
        try:
            try:
                container.seek(target, stream=stream, backward=True)
            except av.FFmpegError:
                container.seek(0)
            for frame in container.decode(stream):
                if chosen is not None and frame.pts is not None and frame.pts > target:
                    break
                chosen = frame
        except av.FFmpegError as exc:
            if chosen is None:
                raise UnreadableVideo(f"{path}: no picture decodes near {t:.2f} s ({exc}); run `vidseek index` "
                                      "again if the file changed") from None
        if chosen is None:
            raise UnreadableVideo(f"{path}: no picture decodes at or before {t:.2f} s")
        return _rotated(chosen, width)


def jpeg(rgb: np.ndarray, quality: int = THUMBNAIL_QUALITY) -> bytes:
    """An (H, W, 3) uint8 RGB picture (even H and W) as JPEG bytes, encoded by FFmpeg's MJPEG encoder."""
    import av

    h, w = rgb.shape[:2]
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = w, h, "yuvj420p"
    codec.time_base = fractions.Fraction(1, 25)
    codec.qscale, codec.global_quality = True, quality * _LAMBDA
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(format="yuvj420p")
    return b"".join(bytes(p) for p in codec.encode(frame) + codec.encode(None))


def thumbnail(path: str | os.PathLike, t: float, width: int = THUMBNAIL_WIDTH) -> bytes:
    """The picture at second ``t`` of a video file as a JPEG, ``width`` pixels wide at most."""
    return jpeg(frame_at(path, t, width))


def thumbnail_key(video) -> str:
    """The cache name of a catalog row's pictures: its id and the start of its content hash (its size
    and modification time when it has none)."""
    content = (video.content_hash or f"{video.size}-{video.mtime_ns}")[:16]
    return f"{video.id}-{content}"


def thumbnail_time(t: float) -> float:
    """``t`` rounded to the thumbnail step (pictures are cached at these times).

    >>> thumbnail_time(12.345), thumbnail_time(0.04)
    (12.3, 0.0)
    """
    return round(round(t / THUMBNAIL_STEP_S) * THUMBNAIL_STEP_S, 3)


def cached_thumbnail(cache_dir: str | os.PathLike, key: str, path: str | os.PathLike, t: float) -> bytes:
    """``thumbnail(path, thumbnail_time(t))``, read from ``cache_dir/<key>-<ms>.jpg`` when it was made
    before, else made and stored there (atomically; not stored when the folder cannot be written).
    ``key`` must name the file's content (a video id and its content hash)."""
    t = thumbnail_time(t)
    cache_dir = Path(cache_dir)
    file = cache_dir / f"{key}-{round(t * 1000)}.jpg"
    try:
        return file.read_bytes()
    except OSError:
        pass
    data = thumbnail(path, t)
    try:
        atomic_write(file, lambda tmp: tmp.write_bytes(data))
        _prune(cache_dir)
    except OSError:
        pass  # a read-only index folder or a full disk: serve it uncached
    return data


def _prune(cache_dir: Path, keep: int = MAX_THUMBNAILS) -> None:
    """Delete the oldest half of the cached pictures when there are more than ``keep``."""
    with os.scandir(cache_dir) as it:
        files = [e for e in it if e.name.endswith(".jpg") and not e.name.startswith(".")]
    if len(files) <= keep:
        return
    files.sort(key=lambda e: e.stat().st_mtime_ns)
    for entry in files[: len(files) - keep // 2]:
        try:
            os.unlink(entry.path)
        except OSError:
            pass


def check_span(start: float, end: float, max_seconds: float | None = None) -> None:
    """``MediaError`` unless ``0 <= start < end`` (seconds) and the span lasts at most ``max_seconds``."""
    if not (np.isfinite(start) and np.isfinite(end) and 0 <= start < end):
        raise MediaError(f"a clip needs 0 <= start < end (seconds), got start={start}, end={end}")
    if max_seconds is not None and end - start > max_seconds:
        raise MediaError(f"a clip lasts at most {max_seconds:g} s, got {end - start:g} s; cut a shorter span")


def cut(path: str | os.PathLike, start: float, end: float, out: str | os.PathLike,
        max_seconds: float | None = None) -> Path:
    """Cut seconds ``start`` to ``end`` of a video file into the MP4 ``out`` (written atomically): its
    pictures re-encoded with H.264 from the first one on screen at ``start`` (so the cut is exact,
    not at a key frame) and its first audio stream, if any, with AAC. The MP4 starts with its index
    (``+faststart``) so that a browser plays it while it downloads. Returns ``out``."""
    import av

    check_span(start, end, max_seconds)
    path, out = Path(path), Path(out)
    with _open(path) as src:
        vin = src.streams.video[0]
        vin.thread_type = "AUTO"
        ain = src.streams.audio[0] if src.streams.audio else None
        origin_s = float((vin.start_time or 0) * vin.time_base)
        fps = vin.average_rate if vin.average_rate and vin.average_rate > 0 else fractions.Fraction(25)

        def write(tmp: Path) -> None:
            with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as dst:
                vout = dst.add_stream("libx264", rate=fps)
                vout.pix_fmt = "yuv420p"
                vout.time_base = vout.codec_context.time_base = fractions.Fraction(1, 1000)
                vout.options = {"preset": CLIP_PRESET, "crf": CLIP_CRF}
                aout = None
                if ain is not None and ain.codec_context.sample_rate:
                    aout = dst.add_stream("aac", rate=ain.codec_context.sample_rate)
                    aout.layout = ain.codec_context.layout
                _copy_span(src, vin, ain, vout, aout, dst, start, end, origin_s)

        try:
            atomic_write(out, write)
        except av.FFmpegError as exc:
            raise UnreadableVideo(f"{path}: cutting {start:g}-{end:g} s failed ({exc}); run `vidseek index` again "
                                  "if the file changed") from None
    return out


def _copy_span(src, vin, ain, vout, aout, dst, start: float, end: float, origin_s: float) -> None:
    """Decode the pictures (and sound) of ``src`` from ``start`` to ``end`` and encode them into ``dst``."""
    import av

    try:
        src.seek(int((start + origin_s) / vin.time_base), stream=vin, backward=True)
    except av.FFmpegError:
        src.seek(0)
    streams = [vin] + ([ain] if aout is not None else [])
    held = None  # the last picture before `start`: it is on screen at `start` when none starts there
    wrote = 0
    done = {vin: False, ain: aout is None}
    for packet in src.demux(*streams):
        if all(done.values()):
            break
        try:
            frames = packet.decode()
        except av.FFmpegError:
            continue
        for frame in frames:
            if frame.pts is None:
                continue
            t = float(frame.pts * frame.time_base) - origin_s
            if packet.stream is vin:
                if t >= end:
                    done[vin] = True
                    continue
                if t < start:
                    held = frame
                    continue
                if held is not None and t > start:  # the picture on screen at the start, shown from 0
                    wrote += _encode_picture(held, 0.0, vout, dst)
                held = None
                wrote += _encode_picture(frame, t - start, vout, dst)
            elif start <= t < end:
                frame.pts, frame.time_base = round((t - start) * frame.sample_rate), fractions.Fraction(1, frame.sample_rate)
                dst.mux(aout.encode(frame))
            elif t >= end:
                done[ain] = True
    if held is not None:
        wrote += _encode_picture(held, 0.0, vout, dst)
    if not wrote:
        raise MediaError(f"the video has no picture between {start:g} and {end:g} s (it is shorter?)")
    dst.mux(vout.encode())
    if aout is not None:
        dst.mux(aout.encode())


def _encode_picture(frame, at: float, vout, dst) -> int:
    """Encode one decoded picture, shown ``at`` seconds into the clip; the first sets the clip's size."""
    import av

    from vidseek.engine.video import _rotation

    picture = av.VideoFrame.from_ndarray(_rotated(frame), format="rgb24") if _rotation(frame) else frame
    if not vout.width:
        vout.width, vout.height = picture.width - picture.width % 2, picture.height - picture.height % 2
    picture = picture.reformat(width=vout.width, height=vout.height, format="yuv420p")
    picture.pts, picture.time_base = round(at * 1000), fractions.Fraction(1, 1000)
    dst.mux(vout.encode(picture))
    return 1
