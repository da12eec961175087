"""Read a video file as a sequence of frames sampled at a fixed rate (torch-free; numpy, decord, PyAV).

Sampling convention (the same as ``vidseek.spans`` and the synthetic features)
------------------------------------------------------------------------------
A video of ``duration`` seconds sampled at ``rate`` steps per second has
``T = max(1, round(duration * rate))`` steps. Step ``i`` covers ``[i / rate, (i + 1) / rate)`` and
is represented by the decoded frame whose timestamp is nearest to the step centre
``(i + 0.5) / rate``; an exact tie goes to the earlier frame (the one on screen at that instant), and
centres past the last frame take the last frame. Timestamps are seconds from the start of the video
stream. ``duration = n_frames / fps``, with ``fps`` the stream's average frame rate (measured from
the frame timestamps when the metadata is missing or disagrees with them, as in variable frame rate
files).

Decoding
--------
Frames are decoded sequentially from the start: frames that no step needs are decoded (later frames
depend on them) but never converted to RGB, and no step triggers a seek. Two decoders:

* ``"decord"``: fast on x86-64; not available on aarch64 (Jetson) where it has no wheels.
* ``"pyav"``: PyAV (FFmpeg) everywhere. Chooses frames by their presentation timestamps, so
  variable frame rate files and dropped frames are handled.
* ``"auto"`` (default): decord when importable, PyAV otherwise, and PyAV when decord fails on a
  file (before or during decoding).

Both give the same steps and, for the same ``size``, the same or nearly the same pixels (decoders
and scalers differ slightly between their bundled FFmpeg builds). Resizing happens in the decoder
(FFmpeg's bilinear scaler in both), before frames reach numpy.

Damaged files
-------------
A missing, empty, unreadable or video-less file raises :class:`VideoDecodeError` naming the file,
what is wrong and what to do. A truncated file (an interrupted download or recording) whose header
promises more video than its data holds is sampled over the part that is there: ``duration`` and
``T`` describe the decodable part, and a :class:`VideoDecodeWarning` says how much is missing. Make
it an error with ``warnings.simplefilter("error", VideoDecodeWarning)``. A truncated MP4 whose index
(the ``moov`` box, usually written last) is cut off cannot be read at all and raises.

>>> step_times(1.0, 5.0).tolist()
[0.1, 0.3, 0.5, 0.7, 0.9]
>>> step_frame_indices(step_times(1.0, 5.0), np.arange(25) / 25.0).tolist()  # 25 fps: ties -> earlier
[2, 7, 12, 17, 22]
"""

from __future__ import annotations

import contextlib

import logging
import math
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

DECODERS = ("auto", "decord", "pyav")
DEFAULT_RATE = 5.0  # steps per second, the ExCL setting
DEFAULT_CHUNK = 256  # steps per chunk in iter_sampled_chunks
# A frame stands for the time until the next one, but for at most this long: a longer gap between
# two frames (a paused camera, a file whose timestamps jump by hours) is not footage. Sampling skips
# it, so work and memory follow the frames that exist, never the time a file claims to span.
MAX_HOLD_S = 2.0

Size = tuple[int, int] | Callable[[int, int], tuple[int, int]] | None


class VideoDecodeError(Exception):
    """A video file cannot be read; the message names the file, the problem and what to do."""


class VideoDecodeWarning(UserWarning):
    """A video was read only in part (truncated file, undecodable packets); the message says how much."""


@dataclass(frozen=True)
class VideoInfo:
    """What sampling needs to know about a video file."""

    path: str
    fps: float  # average frame rate (metadata, or measured from frame timestamps)
    n_frames: int  # frames in the video stream (that are present in the file)
    duration: float  # seconds of footage: n_frames / fps, less the gaps
    width: int  # displayed size of the source frames (after any rotation in the metadata)
    height: int
    decoder: str  # "decord" or "pyav": the decoder that reads (or read) the frames
    gaps: tuple[tuple[float, float], ...] = ()  # (footage second where a gap is cut, file seconds skipped there)


@dataclass(frozen=True)
class SampledVideo:
    """A whole video sampled at a fixed rate."""

    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    times: np.ndarray  # (T,) float64 seconds, the step centres
    info: VideoInfo


# ----------------------------------------------------------------------------------------------
# The sampling convention


def num_steps(duration: float, rate: float = DEFAULT_RATE) -> int:
    """Number of steps T of a ``duration``-second video at ``rate`` steps/s: ``max(1, round(duration * rate))``.

    >>> num_steps(10.333, 5.0), num_steps(0.05, 5.0)
    (52, 1)
    """
    _check_rate(rate)
    if not (duration > 0 and math.isfinite(duration)):
        raise ValueError(f"duration must be a positive number of seconds, got {duration}")
    return max(1, int(round(duration * rate)))


def step_times(duration: float, rate: float = DEFAULT_RATE) -> np.ndarray:
    """(T,) centre times ``(i + 0.5) / rate`` of the steps of a ``duration``-second video.

    >>> step_times(0.9, 5.0).tolist()
    [0.1, 0.3, 0.5, 0.7]
    """
    return (np.arange(num_steps(duration, rate), dtype=np.float64) + 0.5) / rate


def file_times(footage: np.ndarray, gaps, ends: bool = False) -> np.ndarray:
    """File seconds of seconds of footage, given the ``gaps`` cut out of it ((footage second, seconds
    skipped), ascending): a time after a gap's cut is shifted by what was skipped there; one exactly
    at the cut is too, unless it is the end of a span (``ends``), which stays before the gap.

    >>> file_times(np.array([0.5, 2.0, 2.5, 4.0]), [(2.0, 100.0), (3.0, 50.0)]).tolist()
    [0.5, 102.0, 102.5, 154.0]
    >>> file_times(np.array([2.0]), [(2.0, 100.0)], ends=True).tolist()
    [2.0]
    """
    footage = np.asarray(footage, dtype=np.float64)
    if not len(gaps):
        return footage
    at, skipped = np.asarray(gaps, dtype=np.float64).T
    shift = np.concatenate([[0.0], np.cumsum(skipped)])
    return footage + shift[np.searchsorted(at, footage, side="left" if ends else "right")]


def footage_gaps(frame_times: np.ndarray, end: float) -> tuple[float, tuple[tuple[float, float], ...]]:
    """Seconds of footage of a stream whose frames start at ascending ``frame_times`` and whose last
    frame ends at ``end`` (file seconds), and the gaps cut out of it: every stretch of more than
    ``MAX_HOLD_S`` without a new frame (before the first frame too) keeps only its first ``MAX_HOLD_S``.

    >>> footage_gaps(np.array([0.0, 0.04, 18000.0]), 18000.04)
    (2.08, ((2.04, 17997.96),))
    >>> footage_gaps(np.arange(10) / 5, 2.0)
    (2.0, ())
    """
    starts = np.concatenate([[0.0], np.asarray(frame_times, dtype=np.float64)])
    ends = np.concatenate([starts[1:], [end]])
    gaps, skipped = [], 0.0
    for a, b in zip(starts, ends):
        if b - a > MAX_HOLD_S:
            gaps.append((round(float(a) + MAX_HOLD_S - skipped, 6), round(float(b - a) - MAX_HOLD_S, 6)))
            skipped += float(b - a) - MAX_HOLD_S
    return round(float(end) - skipped, 6), tuple(gaps)


def step_frame_indices(centres: np.ndarray, frame_times: np.ndarray) -> np.ndarray:
    """(T,) index of the frame nearest to each step centre, given ascending (N,) frame timestamps.

    Ties (within a tolerance that absorbs float32 timestamps) go to the earlier frame; centres past
    the last frame take the last frame.

    >>> step_frame_indices(np.array([0.1, 0.3, 0.5]), np.arange(6) / 6.0).tolist()  # 6 fps
    [1, 2, 3]
    >>> step_frame_indices(np.array([0.1, 0.3, 9.0]), np.array([0.0, 0.25, 0.3])).tolist()
    [0, 2, 2]
    """
    centres = np.asarray(centres, dtype=np.float64)
    ft = np.asarray(frame_times, dtype=np.float64)
    if ft.ndim != 1 or ft.size == 0:
        raise ValueError(f"frame_times must be a non-empty (N,) array, got shape {ft.shape}")
    j = np.searchsorted(ft, centres, side="left")  # first frame at or after each centre
    after = np.minimum(j, ft.size - 1)
    before = np.maximum(j - 1, 0)
    later = (j < ft.size) & ((j == 0) | ((ft[after] - centres) < (centres - ft[before]) - _tie_tolerance(centres)))
    return np.where(later, after, before).astype(np.int64)


def _tie_tolerance(t):
    """Seconds within which two distances count as equal: covers decord's float32 timestamps."""
    return 1e-4 + 2e-7 * np.abs(t)


def _check_rate(rate: float) -> None:
    if not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f"rate must be a positive number of steps per second, got {rate}")


# ----------------------------------------------------------------------------------------------
# Probing


@dataclass(frozen=True)
class _Source:
    """A probed video: its info plus what the decoders need."""

    info: VideoInfo
    frame_times: np.ndarray  # (n_frames,) ascending seconds from the stream start
    rotation: int  # counter-clockwise degrees from the display matrix (0, 90, 180, 270)
    truncated: bool  # the header promises more video than the data holds


@dataclass(frozen=True)
class _Header:
    """What PyAV reads from a file's header and first frame."""

    width: int  # displayed size (rotation applied)
    height: int
    rotation: int
    meta_fps: float | None
    declared_duration: float | None  # seconds the header claims for the video, None when unknown
    declared_frames: int | None


def probe(path: str | os.PathLike, decoder: str = "auto") -> VideoInfo:
    """Frame rate, frame count, duration and size of a video file, checking that it decodes.

    Reads the container index (the whole file is demuxed, not decoded) and decodes the first frame.
    Raises VideoDecodeError for a file that cannot be read and warns (VideoDecodeWarning) for a
    truncated one; see the module docstring.
    """
    return _probe(path, decoder).info


def _probe(path: str | os.PathLike, decoder: str) -> _Source:
    return _open(path, decoder, None)[0]


def _open(path: str | os.PathLike, decoder: str, size: Size):
    """Check and probe a file: ``(source, decord reader or None, PyAV header or None, output size)``.

    With decord chosen, its reader (opened at the output size) comes back ready to decode; None
    means PyAV decodes. In "auto", a file decord cannot open goes to PyAV.
    """
    path = _check_file(path)
    name = _choose_decoder(decoder)
    header = _pyav_header(path) if _importable("av") else None  # clear errors before decord sees the file
    if header is not None:  # a bad size is the caller's error, not a reason to fall back
        size = _resolve_size(size, header.width, header.height)
    if name == "decord":
        try:
            src, reader = _decord_open(path, header, size)
            src = _finish(src, header)
            if not (src.info.gaps and decoder == "auto" and header is not None):  # decord skips frames by
                return src, reader, header, _resolve_size(size, src.info.width, src.info.height)  # count: PyAV
            log.info("%s has gaps between its frames; using PyAV, which reads them by timestamp", path)
        except VideoDecodeError:
            raise
        except Exception as e:  # decord raises DECORDError / RuntimeError with FFmpeg's words
            if decoder == "decord" or header is None:
                raise VideoDecodeError(
                    f"{path}: decord cannot read this file ({_first_line(e)}); it is truncated, corrupt or in a "
                    f"format decord does not support. Try decoder='pyav'" + ("" if header else " (pip install av)")
                ) from e
            log.info("decord cannot read %s (%s); using PyAV", path, _first_line(e))
    src = _finish(_pyav_scan(path, header), header)
    return src, None, header, _resolve_size(size, src.info.width, src.info.height)


def _check_file(path: str | os.PathLike) -> str:
    p = Path(path)
    if not p.exists():
        where = "" if p.is_absolute() else f" (relative paths start at {Path.cwd()})"
        raise VideoDecodeError(f"{p}: file not found; check the path{where}")
    if not p.is_file():
        raise VideoDecodeError(f"{p}: not a file (a directory?); pass the path of one video file")
    if p.stat().st_size == 0:
        raise VideoDecodeError(f"{p}: empty file (0 bytes), not a video; the copy or download probably failed, "
                               "fetch it again")
    return str(p)


def _choose_decoder(decoder: str) -> str:
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
    if decoder == "auto":
        if _importable("decord"):
            return "decord"
        if _importable("av"):
            return "pyav"
        raise ImportError("reading video needs PyAV or decord: pip install av (and decord on x86-64)")
    module = "av" if decoder == "pyav" else "decord"
    if not _importable(module):
        hint = ("pip install decord (x86-64 only; no wheels for aarch64/Jetson, use decoder='pyav' there)"
                if module == "decord" else "pip install av")
        raise ImportError(f"decoder={decoder!r} needs the {module} package: {hint}")
    return decoder


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__


def _classify_open_error(path: str, e: Exception) -> VideoDecodeError:
    """Turn PyAV's error on opening a file into a message that says what is wrong and what to do."""
    with open(path, "rb") as f:
        head = f.read(12)
    if head[4:8] == b"ftyp":  # an MP4/MOV that FFmpeg cannot open: almost always a missing moov index
        return VideoDecodeError(
            f"{path}: truncated or corrupt MP4/MOV: it starts like one but FFmpeg cannot read its index ('moov' "
            f"box) ({_first_line(e)}). Usually a download, copy or recording that was cut short: fetch or copy it "
            "again; if only the index is missing, a recovery tool such as untrunc can rebuild it from a good file")
    return VideoDecodeError(
        f"{path}: not a video, or a corrupt one: FFmpeg does not recognise its contents ({_first_line(e)}). "
        "Pass a video file (mp4, mkv, webm, avi, mov ...)")


def _pyav_open(path: str):
    import av

    try:
        return av.open(path, metadata_errors="ignore")
    except av.FFmpegError as e:
        raise _classify_open_error(path, e) from e


def _video_stream(container, path: str):
    streams = container.streams
    if not streams.video:
        kinds = ", ".join(sorted({s.type for s in streams})) or "nothing"
        raise VideoDecodeError(f"{path}: no video stream (the file holds {kinds}); pass a file that has video")
    return streams.best("video") or streams.video[0]


def _declared(container, stream) -> tuple[float | None, int | None]:
    """Duration (s) and frame count the header promises for the video stream, when it says so reliably."""
    duration = None
    if stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif container.duration and container.format.name.startswith("matroska"):  # MKV/WebM: segment duration
        duration = container.duration / 1_000_000
    frames = int(stream.frames) if stream.frames and stream.frames > 0 else None
    return duration, frames


def _pyav_header(path: str) -> _Header:
    """Open with PyAV, find the video stream and decode its first frame (size, rotation)."""
    container = _pyav_open(path)
    with container:
        stream = _video_stream(container, path)
        first = _first_frame(container, stream, path)
        declared, frames = _declared(container, stream)
        rotation = _rotation(first)
        w, h = (first.height, first.width) if rotation in (90, 270) else (first.width, first.height)
        rate = stream.average_rate
        meta_fps = float(rate) if rate and rate > 0 else None
        return _Header(w, h, rotation, meta_fps, declared, frames)


def _first_frame(container, stream, path: str):
    import av

    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError:
                continue
            if frames:
                return frames[0]
    except av.FFmpegError as e:
        raise VideoDecodeError(f"{path}: truncated or corrupt: no frame decodes before the data ends "
                               f"({_first_line(e)}); fetch or copy the file again") from e
    raise VideoDecodeError(f"{path}: zero frames: the video stream holds no frame that decodes (an empty, "
                           "truncated or corrupt stream); fetch or copy the file again")


def _rotation(frame) -> int:
    try:
        r = int(round(frame.rotation)) % 360
    except (AttributeError, TypeError):
        return 0
    return r if r in (0, 90, 180, 270) else 0


def _pyav_scan(path: str, header: _Header | None) -> _Source:
    """Demux every packet of the video stream (no decoding) for the frame timestamps."""
    import av

    if header is None:
        header = _pyav_header(path)
    pts: list[int | None] = []
    with _pyav_open(path) as container:
        stream = _video_stream(container, path)
        tb = stream.time_base
        try:
            for packet in container.demux(stream):
                if packet.size and not packet.is_discard:
                    pts.append(packet.pts)
        except av.FFmpegError as e:  # a partial last packet; what came before is usable
            log.info("%s: demuxing stopped early (%s)", path, _first_line(e))
        origin = stream.start_time
    if not pts:
        raise VideoDecodeError(f"{path}: zero frames: the video stream has no packets; the file is empty or "
                               "truncated, fetch or copy it again")
    if tb and all(p is not None for p in pts):
        ticks = np.sort(np.asarray(pts, dtype=np.int64))
        ticks = ticks - (origin if origin is not None else ticks[0])
        times = ticks * tb.numerator / tb.denominator  # exact ticks, one rounding
    else:  # no timestamps (raw streams): assume a constant rate
        times = np.arange(len(pts)) / (header.meta_fps or 25.0)
    info = VideoInfo(path, 0.0, len(pts), 0.0, header.width, header.height, "pyav")
    return _Source(info, times, header.rotation, False)


def _finish(src: _Source, header: _Header | None) -> _Source:
    """Frame rate, footage and gaps from the timeline; warn when the header promises more than the data holds."""
    n, times = src.info.n_frames, src.frame_times
    if n and times[0] < 0:  # a timeline that starts before zero (decord on some files): the first frame is 0
        times = times - times[0]
    meta = header.meta_fps if header else (src.info.fps or None)
    fps = _frame_rate(n, times, meta, src.info.path)
    duration = n / fps
    gaps: tuple[tuple[float, float], ...] = ()
    if n and (times[0] > MAX_HOLD_S or (n >= 2 and float(np.diff(times).max()) > MAX_HOLD_S)):
        duration, gaps = footage_gaps(times, float(times[-1]) + min(1.0 / fps, MAX_HOLD_S))
        warnings.warn(f"{src.info.path}: {len(gaps)} gap(s) without frames, {sum(s for _, s in gaps):.0f} s in all "
                      f"(the longest {max(s for _, s in gaps):.0f} s): not footage, so sampled as {duration:.1f} s of "
                      f"video; moments are placed at their times in the file", VideoDecodeWarning, stacklevel=4)
    truncated = False
    if header is not None:
        declared = header.declared_duration or 0.0
        missing_s = declared - (duration + sum(s for _, s in gaps)) if declared else 0.0
        missing_f = header.declared_frames - n if header.declared_frames else 0
        if missing_s > max(1.0, 0.01 * declared) or missing_f > max(2, 0.01 * n):
            truncated = True
            said = (f"{header.declared_duration:.1f} s" if header.declared_duration
                    else f"{header.declared_frames} frames")
            warnings.warn(
                f"{src.info.path}: truncated: its header says {said} but the video data ends after {duration:.1f} s "
                f"({n} frames), probably an interrupted download, copy or recording. Sampling the {duration:.1f} s "
                "that are there; fetch or copy the file again for the rest",
                VideoDecodeWarning, stacklevel=4)
    info = replace(src.info, fps=fps, duration=duration, gaps=gaps)
    return replace(src, info=info, frame_times=times, truncated=truncated)


def _frame_rate(n: int, times: np.ndarray, meta: float | None, path: str) -> float:
    """The metadata's average rate when it agrees with the timestamps (2 %), else the measured one
    (over the stretches of footage: a gap of more than ``MAX_HOLD_S`` between frames does not count)."""
    intervals = np.diff(times) if n >= 2 else np.zeros(0)
    footage = intervals[intervals <= MAX_HOLD_S]
    span = float(footage.sum())
    measured = len(footage) / span if span > 0 else None
    if meta and math.isfinite(meta) and meta > 0:
        if measured is None or abs(meta / measured - 1.0) <= 0.02:
            return float(meta)
    if measured is not None:
        return measured
    raise VideoDecodeError(f"{path}: cannot tell the frame rate: one frame and no rate in the metadata; "
                           "re-encode it with a frame rate (ffmpeg -i IN -r 25 OUT.mp4)")


# ----------------------------------------------------------------------------------------------
# Sampling


def sample_frames(path: str | os.PathLike, rate: float = DEFAULT_RATE, size: Size = None,
                  decoder: str = "auto") -> SampledVideo:
    """Sample a whole video: ``frames`` (T, H, W, 3) uint8 RGB at the step centres ``times`` (T,).

    ``size`` is the output ``(width, height)``, or a function of the source ``(width, height)``
    returning it (``FrameSpec.decode_size``), or None for the source size. For long videos use
    :func:`iter_sampled_chunks`, which holds one chunk at a time.
    """
    chunks = iter_sampled_chunks(path, rate, size, DEFAULT_CHUNK, decoder)
    out = np.empty((chunks.n_steps, chunks.size[1], chunks.size[0], 3), np.uint8)  # (T, H, W, 3)
    done = 0
    for frames, _ in chunks:
        out[done:done + len(frames)] = frames
        done += len(frames)
    return SampledVideo(out, chunks.times, chunks.info)


def iter_sampled_chunks(path: str | os.PathLike, rate: float = DEFAULT_RATE, size: Size = None,
                        chunk: int = DEFAULT_CHUNK, decoder: str = "auto") -> SampledChunks:
    """Sample a video in chunks of at most ``chunk`` steps: iterate for ``(frames, times)`` pairs.

    ``frames`` is (C, H, W, 3) uint8 RGB and ``times`` (C,) the step centres in seconds. The file is
    probed on the call (errors raise here); ``.info``, ``.times`` and ``.n_steps`` are known before
    iterating. One pass of decoding; iterate once.
    """
    return SampledChunks(path, rate, size, chunk, decoder)


class SampledChunks:
    """The chunks of one sampled video (see :func:`iter_sampled_chunks`)."""

    def __init__(self, path: str | os.PathLike, rate: float = DEFAULT_RATE, size: Size = None,
                 chunk: int = DEFAULT_CHUNK, decoder: str = "auto") -> None:
        _check_rate(rate)
        if int(chunk) < 1:
            raise ValueError(f"chunk must be >= 1 step, got {chunk}")
        self.rate, self.chunk, self._backend = float(rate), int(chunk), decoder
        src, self._reader, self._header, self.size = _open(path, decoder, size)  # size: (w, h) of the output
        self._src = src
        self.info: VideoInfo = src.info
        # (T,) step centres, in file seconds: every 1 / rate seconds of footage, the gaps skipped
        self.times: np.ndarray = file_times(step_times(src.info.duration, rate), src.info.gaps)
        self.n_steps = len(self.times)
        self._used = False

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        if self._used:
            raise RuntimeError("a SampledChunks decodes once; call iter_sampled_chunks again to re-read the video")
        self._used = True
        done = 0
        if self._reader is not None:
            reader, self._reader = self._reader, None
            try:
                for frames, times in _decord_chunks(reader, self._src, self.times, self.chunk):
                    yield frames, times
                    done += len(frames)
                return
            except Exception as e:
                if self._backend == "decord" or self._header is None:
                    raise VideoDecodeError(
                        f"{self.info.path}: decord failed after {done} of {self.n_steps} steps ({_first_line(e)}); "
                        "the file is corrupt or truncated there. Try decoder='pyav'") from e
                log.info("decord failed on %s after %d steps (%s); continuing with PyAV",
                         self.info.path, done, _first_line(e))
            finally:
                del reader
        self.info = replace(self.info, decoder="pyav")
        yield from _pyav_chunks(self._src, self.times, self.size, self.chunk, start=done)


def _resolve_size(size: Size, src_w: int, src_h: int) -> tuple[int, int]:
    if size is None:
        return src_w, src_h
    w, h = size(src_w, src_h) if callable(size) else size
    if not (isinstance(w, (int, np.integer)) and isinstance(h, (int, np.integer)) and w >= 1 and h >= 1):
        raise ValueError(f"size must be (width, height) in whole pixels >= 1, got {(w, h)}")
    return int(w), int(h)


# ---- decord ------------------------------------------------------------------------------------


def _decord_open(path: str, header: _Header | None, size: Size):
    """A decord VideoReader at the output size, and the source as decord indexes it."""
    import decord

    if header is not None:
        src_w, src_h, rotation = header.width, header.height, header.rotation
    else:  # no PyAV: one extra open to learn the source size
        first = _np(decord.VideoReader(path, num_threads=1).next())
        src_h, src_w, rotation = first.shape[0], first.shape[1], 0
    out_w, out_h = _resolve_size(size, src_w, src_h)
    kw = {} if (out_w, out_h) == (src_w, src_h) else {"width": out_w, "height": out_h}
    reader = decord.VideoReader(path, **kw)
    n = len(reader)
    if n < 1:
        raise VideoDecodeError(f"{path}: zero frames: the video stream holds no frames; fetch or copy it again")
    stamps = reader.get_frame_timestamp(np.arange(n))  # (n, 2) float32 start/stop, from the stream start
    meta = float(reader.get_avg_fps())
    meta = meta if math.isfinite(meta) and meta > 0 else 0.0
    info = VideoInfo(path, meta, n, 0.0, src_w, src_h, "decord")
    return _Source(info, stamps[:, 0].astype(np.float64), rotation, False), reader


def _decord_chunks(reader, src: _Source, centres: np.ndarray, chunk: int):
    """Decode forward with ``skip_frames`` between the frames the steps need; never seek."""
    wanted = step_frame_indices(centres, src.frame_times)  # (T,)
    keys = np.asarray(reader.get_key_indices(), dtype=np.int64)
    cur, last_index, last = 0, -1, None  # cur: index of the next frame decord will decode
    buf: np.ndarray | None = None
    start = 0
    for k, j in enumerate(wanted):
        if j != last_index:
            cur = _decord_skip_to(reader, cur, int(j), keys)
            try:
                last = _np(reader.next())
            except StopIteration:
                raise VideoDecodeError(f"{src.info.path}: decord ran out of frames at frame {j} of "
                                       f"{src.info.n_frames}") from None
            cur, last_index = int(j) + 1, int(j)
        if buf is None:
            buf = np.empty((min(chunk, len(wanted) - start), *last.shape), np.uint8)
        buf[k - start] = last
        if k - start + 1 == len(buf):
            yield buf, centres[start:k + 1]
            start, buf = k + 1, None


def _decord_skip_to(reader, cur: int, target: int, keys: np.ndarray) -> int:
    """Advance from frame ``cur`` to ``target`` without seeking; returns ``target``.

    decord's ``skip_frames`` seeks when the skip crosses a keyframe, so a crossing is split: skip to
    the frame before the keyframe, then read that one frame (one wasted RGB conversion per keyframe).
    """
    while cur < target:
        i = int(np.searchsorted(keys, cur, side="right"))  # first keyframe after cur
        key = int(keys[i]) if i < keys.size else None
        if key is not None and key <= target:
            if key - 1 > cur:
                reader.skip_frames(key - 1 - cur)
            reader.next()
            cur = key
        else:
            reader.skip_frames(target - cur)
            cur = target
    return cur


def _np(frame) -> np.ndarray:
    """decord's NDArray (or a tensor, when a decord bridge is set elsewhere) as a numpy array."""
    return frame.asnumpy() if hasattr(frame, "asnumpy") else np.asarray(frame)


# ---- PyAV --------------------------------------------------------------------------------------


def _pyav_chunks(src: _Source, centres: np.ndarray, size: tuple[int, int], chunk: int, start: int = 0):
    """Decode forward; pick for each step the decoded frame whose timestamp is nearest to its centre."""
    import av
    from av.video.reformatter import VideoReformatter

    path, info = src.info.path, src.info
    rot = src.rotation
    out_w, out_h = size
    coded = (out_h, out_w) if rot in (90, 270) else (out_w, out_h)  # scale before rotating
    resize = coded != ((info.height, info.width) if rot in (90, 270) else (info.width, info.height))
    scaler = VideoReformatter()
    converted: tuple[object, np.ndarray] | None = None

    def rgb(frame) -> np.ndarray:
        nonlocal converted
        if converted is None or converted[0] is not frame:
            kw = {"width": coded[0], "height": coded[1], "interpolation": "BILINEAR"} if resize else {}
            arr = scaler.reformat(frame, format="rgb24", **kw).to_ndarray()
            if rot:
                arr = np.ascontiguousarray(np.rot90(arr, rot // 90))
            converted = (frame, arr)
        return converted[1]

    T = len(centres)
    k = start
    buf = np.empty((min(chunk, T - k), out_h, out_w, 3), np.uint8)
    filled = 0
    pending, pending_t = None, -math.inf
    errors: list[str] = []
    step = 1.0 / info.fps

    def emit(frame):
        nonlocal k, buf, filled
        buf[filled] = rgb(frame)
        filled += 1
        k += 1
        if filled == len(buf):
            out = (buf, centres[k - filled:k])
            buf = np.empty((min(chunk, T - k), out_h, out_w, 3), np.uint8) if k < T else buf
            filled = 0
            return out
        return None

    with _pyav_open(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        tb = stream.time_base
        origin = stream.start_time
        last_t = None

        def frame_time(frame) -> float:
            nonlocal origin, last_t
            if frame.pts is None or not tb:
                t = 0.0 if last_t is None else last_t + step
            else:
                if origin is None:
                    origin = frame.pts
                t = (frame.pts - origin) * tb.numerator / tb.denominator
            last_t = t
            return t

        def frames_of():
            packets = container.demux(stream)
            while True:
                try:
                    packet = next(packets)
                except StopIteration:
                    return
                except av.FFmpegError as e:  # data ends in a partial packet: drain the decoder
                    errors.append(_first_line(e))
                    with contextlib.suppress(av.FFmpegError):  # best effort: what the decoder still holds
                        yield from stream.codec_context.decode(None)
                    return
                try:
                    yield from packet.decode()
                except av.FFmpegError as e:
                    errors.append(_first_line(e))

        for frame in frames_of():
            t = frame_time(frame)
            while k < T and t >= centres[k]:
                c = centres[k]
                take_new = pending is None or (t - c) < (c - pending_t) - _tie_tolerance(c)
                out = emit(frame if take_new else pending)
                if out is not None:
                    yield out
            if k >= T:
                break
            pending, pending_t = frame, t
    if k < T and pending is None:
        raise VideoDecodeError(f"{path}: zero frames decoded ({'; '.join(errors[:1]) or 'empty stream'}); the file "
                               "is corrupt or truncated, fetch or copy it again")
    while k < T:  # centres past the last frame take the last frame
        out = emit(pending)
        if out is not None:
            yield out
    if errors and not (src.truncated and len(errors) <= 2):
        warnings.warn(f"{path}: {len(errors)} packet(s) of the video could not be decoded ({errors[0]}); the steps "
                      "around them use the nearest frame that did. Re-encode the file if results look wrong",
                      VideoDecodeWarning, stacklevel=3)
