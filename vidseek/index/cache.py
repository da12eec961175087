"""Per-video feature cache: one ``.npy`` file per video and kind, written atomically.

``FeatureCache(index_dir)`` holds the video encoder's output ``(steps, H)`` that the head reads at
query time without decoding the video again; ``FeatureCache(index_dir, kind="clips")`` holds the
clip embeddings ``(windows, E)`` from which the FAISS index is rebuilt. Files are
``index_dir/cache/<video_id>.<kind>.npy``; ``get`` memory-maps them read-only.

Open memory maps are kept (a bounded least-recently-used set per ``FeatureCache``), because opening
one costs far more than reading a window from it: ``np.load(mmap_mode="r")`` parses the header with
``ast.literal_eval`` and maps the file (~0.3 ms on a busy 2-core machine), and a fresh map
page-faults on every page it touches. A kept map is revalidated with one ``os.stat`` per ``get``
(inode, size, mtime): a file replaced by ``put`` (``os.replace``, a new inode) or by another process
is opened again, so a reader never sees stale values. Headers that ``np.save`` writes for 2-D
float16 C-order arrays are parsed directly; anything else goes through ``np.load``.

States may be stored in fewer bytes (``PRECISIONS``; the index's ``states`` setting): ``int8``
keeps each step as 8-bit integers with one float32 scale (half the bytes of float16), ``int4`` as
packed 4-bit integers with one scale (a quarter). Each file says what it holds (its ``.npy`` dtype:
float16, int8, or uint8 for packed int4), and ``get`` gives quantized files back as
``QuantizedStates``, which read like the (T, H) array: a slice of rows is dequantized to float32
when it is read, so a search pays only for the windows it reads. Clip embeddings stay float16
(FAISS rebuilds and exact re-ranking read them whole).
"""

from __future__ import annotations


import errno
import os
import re
import resource
import stat
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from vidseek.atomic import atomic_save_npy

from vidseek.index import IndexStorageError

CACHE_DIR = "cache"
KINDS = ("states", "clips")
PRECISIONS = ("float16", "int8", "int4")  # how states are stored (the index's ``states`` setting)
_LEVELS = {"int8": 127, "int4": 7}  # symmetric integer range of each quantized precision
_SCALE_BYTES = 4  # the float32 scale at the end of every quantized row
_FLOAT16_MAX = float(np.finfo(np.float16).max)  # 65504
# Open memory maps kept per FeatureCache. Each holds one file descriptor (Python's mmap keeps a
# duplicate), so the bound also stays below a quarter of the process's descriptor limit.
MAX_OPEN_MAPS = 512
# The header np.save writes (format 1.0) for a C-order little-endian float16 (T, H) array.
_NPY_MAGIC_V1 = b"\x93NUMPY\x01\x00"
_NPY_FLOAT16_2D = re.compile(rb"^\{'descr': '<f2', 'fortran_order': False, 'shape': \((\d+), (\d+)\), \} *\n$")


class CacheError(IndexStorageError):
    """A cache file that is missing, unreadable, or not the shape the catalog expects."""


class StorageWriteError(IndexStorageError):
    """A write that failed (disk full, read-only folder, permissions); the previous file is intact."""


@contextmanager
def storage_errors(path: str | Path) -> Iterator[None]:
    """Turn an OSError raised while writing ``path`` (disk full, read-only folder, permissions) into
    a ``StorageWriteError`` that says what to do. Index files are written with
    ``vidseek.atomic.atomic_write``, so the previous file is then untouched; after a crash at most
    a ``.<name>.*.tmp`` file is left (``remove_temporaries`` deletes them)."""
    path = Path(path)
    try:
        yield
    except OSError as exc:
        reason = errno.errorcode.get(exc.errno, "") if exc.errno else ""
        hint = {
            "ENOSPC": "free some disk space",
            "EDQUOT": "free some disk space (quota exceeded)",
            "EROFS": "the file system is read-only: choose a writable --index folder",
            "EACCES": "make the index folder writable, or choose another --index folder",
            "EPERM": "make the index folder writable, or choose another --index folder",
        }.get(reason, "check the index folder")
        raise StorageWriteError(
            f"could not write {path}: {exc.strerror or exc} ({reason or type(exc).__name__}); "
            f"the previous {path.name} (if any) is unchanged; {hint}, then re-run"
        ) from exc


# The temporaries ``vidseek.atomic.atomic_write`` makes for the index's own files, by folder: those of
# clips.faiss in the index folder, those of <id>.states.npy and <id>.clips.npy in cache/.
_TEMPORARIES = {"": re.compile(r"^\.clips\.faiss\..+\.tmp$"),
                CACHE_DIR: re.compile(rf"^\.\d+\.(?:{'|'.join(KINDS)})\.npy\..+\.tmp$")}


def remove_temporaries(index_dir: str | Path) -> int:
    """Delete the temporary files a killed writer left of the index's own files (``_TEMPORARIES``:
    by their names, in the index folder and its cache folder only, never anything else a user keeps
    there); returns how many. Call it only while holding the writer lock (another writer's are live)."""
    count = 0
    for folder, pattern in _TEMPORARIES.items():
        place = Path(index_dir) / folder
        if not place.is_dir():
            continue
        for entry in os.scandir(place):
            if pattern.match(entry.name) and entry.is_file(follow_symlinks=False):
                Path(entry.path).unlink(missing_ok=True)
                count += 1
    return count


def default_max_open() -> int:
    """How many memory maps a ``FeatureCache`` keeps open: ``MAX_OPEN_MAPS``, or a quarter of the
    soft limit on open files when that is lower (each map holds a file descriptor)."""
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return MAX_OPEN_MAPS
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return MAX_OPEN_MAPS
    return max(0, min(MAX_OPEN_MAPS, soft // 4))


def state_bytes(steps: int, width: int, precision: str) -> int:
    """Bytes of the states of ``steps`` steps of ``width`` values stored as ``precision`` (no header).

    >>> state_bytes(166, 256, "float16"), state_bytes(166, 256, "int8"), state_bytes(166, 256, "int4")
    (84992, 43160, 21912)
    """
    per_step = {"float16": 2 * width, "int8": width + _SCALE_BYTES, "int4": width // 2 + _SCALE_BYTES}
    return steps * per_step[stored_as(precision, width)]


def stored_as(precision: str, width: int) -> str:
    """How states of ``width`` values are stored when ``precision`` is asked for: int4 packs pairs of
    values, so an odd width is stored as int8."""
    return "int8" if precision == "int4" and width % 2 else precision


def quantize(array: np.ndarray, precision: str) -> np.ndarray:
    """(T, H) floats -> the rows ``precision`` stores: int8 (T, H + 4) for ``int8``, uint8
    (T, H / 2 + 4) for ``int4`` (two values a byte, offset by 8); the last 4 bytes of a row are its
    float32 scale, max |x| / levels, so every step keeps its own range."""
    x = np.asarray(array, np.float32)
    levels = _LEVELS[precision]
    scale = np.abs(x).max(1, keepdims=True) / levels
    scale[scale == 0] = 1.0
    q = np.rint(x / scale).clip(-levels, levels).astype(np.int8)
    if precision == "int4":  # an even width (``stored_as``)
        u = (q + 8).astype(np.uint8)
        q = u[:, 0::2] | (u[:, 1::2] << 4)
    tail = scale.astype("<f4").view(q.dtype)  # (T, 4) bytes
    return np.ascontiguousarray(np.concatenate([q, tail], axis=1))


class QuantizedStates:
    """A quantized states file read like the (T, H) float array it stands for: ``x[a:b]`` gives
    those rows dequantized to float32; ``np.asarray(x)`` all of them."""

    dtype = np.dtype(np.float32)
    ndim = 2

    def __init__(self, raw: np.ndarray):
        self.raw = raw  # (T, cols) int8 or uint8, memory-mapped
        self.precision = "int8" if raw.dtype == np.int8 else "int4"
        width = raw.shape[1] - _SCALE_BYTES
        self.shape = (raw.shape[0], width if self.precision == "int8" else 2 * width)

    def __len__(self) -> int:
        return self.shape[0]

    def _rows(self, raw: np.ndarray) -> np.ndarray:
        cols = raw.shape[1] - _SCALE_BYTES
        scale = np.ascontiguousarray(raw[:, cols:]).view("<f4")  # (n, 1)
        q = raw[:, :cols]
        if self.precision == "int4":
            out = np.empty((len(q), 2 * cols), np.float32)
            out[:, 0::2] = (q & 0x0F).astype(np.float32) - 8
            out[:, 1::2] = (q >> 4).astype(np.float32) - 8
            return out * scale
        return q.astype(np.float32) * scale

    def __getitem__(self, key):
        if isinstance(key, slice):
            return self._rows(self.raw[key])
        if isinstance(key, (int, np.integer)):
            return self._rows(self.raw[key:key + 1 or None])[0]
        return np.asarray(self)[key]

    def __array__(self, dtype=None, copy=None):
        out = self._rows(self.raw)
        return out if dtype is None else out.astype(dtype)


def _map_array(path: Path) -> np.memmap | QuantizedStates:
    """A read-only memory map of the ``.npy`` file ``path`` as a 2-D float16 array, or as
    ``QuantizedStates`` over an int8 / uint8 (int4) one.

    The header np.save writes for such arrays is parsed here (a fixed pattern, no
    ``ast.literal_eval``); any other file goes through ``np.load`` and is refused unless it holds a
    2-D float16 array. Unreadable or truncated files raise ``CacheError``.
    """
    try:
        array = None
        with open(path, "rb") as fh:
            head = fh.read(10)
            if len(head) == 10 and head[:8] == _NPY_MAGIC_V1:
                header = fh.read(int.from_bytes(head[8:10], "little"))
                match = _NPY_FLOAT16_2D.match(header)
                if match is not None and int(match.group(1)) * int(match.group(2)) > 0:
                    shape = (int(match.group(1)), int(match.group(2)))
                    array = np.memmap(fh, dtype=np.float16, mode="r", offset=10 + len(header), shape=shape)
        if array is None:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # noqa: BLE001  a damaged file fails in many ways: OSError, ValueError, EOFError ...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CacheError(f"{path} is unreadable ({reason}); delete it and re-run `vidseek index`") from None
    if array.ndim == 2 and array.dtype in (np.int8, np.uint8) and array.shape[1] > _SCALE_BYTES:
        return QuantizedStates(array)
    if array.dtype != np.float16 or array.ndim != 2:
        raise CacheError(f"{path} holds a {array.dtype} array of shape {array.shape}; expected a "
                         "(T, H) float16 array: delete it and re-run `vidseek index`")
    return array


class FeatureCache:
    """Float16 arrays per video under ``index_dir/cache/``, one file per (video id, kind).

    >>> import tempfile, numpy as np
    >>> cache = FeatureCache(tempfile.mkdtemp())
    >>> _ = cache.put(7, np.ones((5, 3), np.float32))
    >>> cache.get(7, shape=(5, 3)).dtype, cache.video_ids()
    (dtype('float16'), [7])
    """

    def __init__(self, index_dir: str | Path, kind: str = "states", max_open: int | None = None,
                 precision: str = "float16"):
        """``max_open``: memory maps kept open for reuse (default ``default_max_open()``; 0 keeps none).
        ``precision``: how ``put`` stores states (``PRECISIONS``); any file is read whatever it holds."""
        if kind not in KINDS:
            raise ValueError(f"unknown cache kind {kind!r}; expected one of {', '.join(KINDS)}")
        if precision not in PRECISIONS or (kind != "states" and precision != "float16"):
            raise ValueError(f"cache {kind} cannot be stored as {precision!r}; states take one of {', '.join(PRECISIONS)}, "
                             "clips are float16")
        self.precision = precision
        self.folder = Path(index_dir) / CACHE_DIR
        self.kind = kind
        self.max_open = default_max_open() if max_open is None else max(0, int(max_open))
        self._pattern = re.compile(rf"^(\d+)\.{kind}\.npy$")
        self._prefix = os.path.join(str(self.folder), "")  # "…/cache/", for building paths cheaply in get
        # video id -> ((inode, size, mtime_ns) of the file mapped, the read-only map), oldest first
        self._open: OrderedDict[int, tuple[tuple[int, int, int], np.memmap]] = OrderedDict()

    def path(self, video_id: int) -> Path:
        if int(video_id) < 0:
            raise ValueError(f"video ids are >= 0, got {video_id}")
        return self.folder / f"{int(video_id)}.{self.kind}.npy"

    def has(self, video_id: int) -> bool:
        return self.path(video_id).is_file()

    def put(self, video_id: int, array: np.ndarray) -> Path:
        """Store ``array`` (T, H), any float dtype, as float16 or the cache's ``precision``
        (atomically replacing an older file).

        Refuses empty arrays, non-finite values and values beyond the float16 range (±65504),
        which would silently become inf.
        """
        array = np.asarray(array)
        if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
            raise CacheError(f"cache {self.kind} of video {video_id}: expected a non-empty (T, H) array, "
                             f"got shape {array.shape}")
        if not np.issubdtype(array.dtype, np.floating):
            raise CacheError(f"cache {self.kind} of video {video_id}: expected floating point values, "
                             f"got {array.dtype}")
        if not np.isfinite(array).all():
            raise CacheError(f"cache {self.kind} of video {video_id}: the array has NaN or inf values; "
                             "check the encoder output")
        peak = float(np.abs(array).max())
        if peak > _FLOAT16_MAX:
            raise CacheError(f"cache {self.kind} of video {video_id}: values up to {peak:g} exceed the "
                             f"float16 range (±{_FLOAT16_MAX:g}); scale or normalise the features first")
        if self.precision == "float16":
            data = np.ascontiguousarray(array, dtype=np.float16)
        else:
            data = quantize(array, stored_as(self.precision, array.shape[1]))
        self._open.pop(int(video_id), None)
        path = self.path(video_id)
        with storage_errors(path):
            return atomic_save_npy(path, data)

    def get(self, video_id: int, shape: tuple[int | None, int | None] | None = None) -> np.memmap | QuantizedStates:
        """The stored array (T, H), memory-mapped read-only: float16, or ``QuantizedStates`` for
        a quantized file.

        ``shape`` is the expected (T, H), ``None`` in a position accepting any size; a mismatch
        raises ``CacheError`` naming the file and both shapes. The map is kept open for the next
        call (see the module docstring) as long as the file is the same one.
        """
        video_id = int(video_id)
        if video_id < 0:
            raise ValueError(f"video ids are >= 0, got {video_id}")
        name = f"{self._prefix}{video_id}.{self.kind}.npy"
        try:
            st = os.stat(name)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise CacheError(f"{name} is unreadable ({exc.strerror or exc}); delete it and re-run `vidseek index`") from None
        if st is None or not stat.S_ISREG(st.st_mode):
            self._open.pop(video_id, None)
            raise CacheError(f"no cached {self.kind} for video {video_id}: {name} is missing; "
                             "re-run `vidseek index` to re-encode the video")
        identity = (st.st_ino, st.st_size, st.st_mtime_ns)
        kept = self._open.get(video_id)
        if kept is not None and kept[0] == identity:
            self._open.move_to_end(video_id)
            array = kept[1]
        else:
            array = _map_array(Path(name))
            if self.max_open:
                self._open[video_id] = (identity, array)
                self._open.move_to_end(video_id)
                while len(self._open) > self.max_open:
                    self._open.popitem(last=False)
        if shape is not None and any(want is not None and want != got for want, got in zip(shape, array.shape)):
            expected = tuple("any" if s is None else s for s in shape)
            raise CacheError(f"{name} has shape {array.shape} but the catalog expects {expected}; "
                             "the cache and catalog disagree: re-index with `vidseek index --rebuild`")
        return array

    def close(self) -> None:
        """Release every kept memory map (arrays already returned stay valid)."""
        self._open.clear()

    def remove(self, video_id: int) -> bool:
        """Delete the file of ``video_id``; True when there was one."""
        path = self.path(video_id)
        self._open.pop(int(video_id), None)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StorageWriteError(f"could not delete {path}: {exc.strerror or exc}; make the index "
                                    "folder writable, then re-run") from exc
        return True

    def video_ids(self) -> list[int]:
        """Ids of the videos with a file of this kind, sorted."""
        if not self.folder.is_dir():
            return []
        ids = (self._pattern.match(p.name) for p in self.folder.iterdir())
        return sorted(int(m.group(1)) for m in ids if m)
