"""Precomputed visual feature stores: one (T, D) float32 array per video.

Three on-disk layouts are recognised by :func:`open_features`:

* a folder of ``{vid}.npy`` arrays (VSLNet / LGI / PLPNet I3D layout);
* a folder of ``{vid}.npz`` archives holding the array under ``features``
  (Moment-DETR / Lighthouse layout);
* one HDF5 file with an entry per video: a group holding a dataset (ActivityNet C3D:
  ``f[vid]["c3d_features"]``) or a plain dataset ``f[vid]``.

Arrays saved as ``(T, 1, ..., 1, D)`` (I3D exports often keep singleton axes) are read as
``(T, D)``; any other shape is an error. ``dim`` is read from the first video's file and every
array read later is checked against it. Resampling to a fixed length is
:func:`vidseek.spans.resample_features`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import os
from pathlib import Path

import numpy as np

NPZ_KEY = "features"  # Moment-DETR / Lighthouse archive key
HDF5_KEY = "c3d_features"  # ActivityNet C3D dataset inside each video group
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")


class MissingVideoError(KeyError):
    """A video id with no features in the store; the message names the id and the store."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0]) if self.args else ""


def _as_time_by_dim(array: np.ndarray, where: str) -> np.ndarray:
    """Return ``array`` as a float32 (T, D) array, squeezing singleton axes between T and D."""
    shape = array.shape
    if array.ndim > 2 and all(n == 1 for n in shape[1:-1]):
        array = array.reshape(shape[0], shape[-1])
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(f"{where}: expected a non-empty (T, D) feature array, got shape {shape}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{where}: expected numeric features, got dtype {array.dtype}")
    return np.asarray(array, dtype=np.float32)


class FeatureStore(ABC):
    """Read-only mapping ``vid -> (T, D) float32`` over one of the supported layouts.

    Subclasses implement ``_read(vid)`` (the raw array) and ``_where(vid)`` (a file description
    for messages); ids are listed once, when the store is opened.
    """

    layout = "feature"  # name of the on-disk layout, for messages

    def __init__(self, path: Path, vids: list[str]) -> None:
        if not vids:
            raise ValueError(f"{path}: no videos found; expected {self.layout} files")
        self.path = path
        self._vids = sorted(vids)
        self._known = frozenset(self._vids)
        self.dim = int(self._checked(self._vids[0], dim=None).shape[1])  # feature width, read from the data

    def vids(self) -> list[str]:
        """Video ids in the store, sorted."""
        return list(self._vids)

    def __len__(self) -> int:
        return len(self._vids)

    def __contains__(self, vid: object) -> bool:
        return vid in self._known

    def __getitem__(self, vid: str) -> np.ndarray:
        """Features of ``vid`` as a float32 (T, D) array; MissingVideoError if absent."""
        if vid not in self._known:
            raise MissingVideoError(
                f"video {vid!r} has no features in {self.path} ({self.layout} layout, {len(self)} videos); "
                "check the video ids of the annotation file against the feature files"
            )
        return self._checked(vid, dim=self.dim)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, videos={len(self)}, dim={self.dim})"

    def _checked(self, vid: str, dim: int | None) -> np.ndarray:
        """Read ``vid``, check the (T, D) shape and, when given, the width ``dim``."""
        where = self._where(vid)
        array = _as_time_by_dim(self._read(vid), where)
        if dim is not None and array.shape[1] != dim:
            raise ValueError(
                f"{where}: features have dimension {array.shape[1]} but the store's first video "
                f"({self._vids[0]}) has {dim}; all videos of a store must share one feature width"
            )
        return array

    @abstractmethod
    def _read(self, vid: str) -> np.ndarray:
        """The raw array of `vid` (each layout reads its own files)."""

    @abstractmethod
    def _where(self, vid: str) -> str:
        """Where `vid` is stored, for error messages."""


class NpyFolderStore(FeatureStore):
    """A folder of ``{vid}.npy`` arrays."""

    layout = ".npy folder"

    def __init__(self, path: Path) -> None:
        super().__init__(path, _stems(path, ".npy"))

    def _where(self, vid: str) -> str:
        return str(self.path / f"{vid}.npy")

    def _read(self, vid: str) -> np.ndarray:
        return np.load(self._where(vid), allow_pickle=False)


class NpzFolderStore(FeatureStore):
    """A folder of ``{vid}.npz`` archives with the array under ``key`` (default ``features``)."""

    layout = ".npz folder"

    def __init__(self, path: Path, key: str = NPZ_KEY) -> None:
        self.key = key
        super().__init__(path, _stems(path, ".npz"))

    def _where(self, vid: str) -> str:
        return str(self.path / f"{vid}.npz")

    def _read(self, vid: str) -> np.ndarray:
        with np.load(self._where(vid), allow_pickle=False) as archive:
            if self.key not in archive.files:
                raise ValueError(
                    f"{self._where(vid)}: no {self.key!r} array; it holds {archive.files}; "
                    "pass key= the name of the feature array"
                )
            return archive[self.key]


class Hdf5Store(FeatureStore):
    """One HDF5 file: ``f[vid]`` is a dataset, or a group holding ``key`` (default ``c3d_features``).

    The file is opened lazily once per process, so a store can be handed to DataLoader workers.
    """

    layout = "HDF5"

    def __init__(self, path: Path, key: str | None = None) -> None:
        self.path, self.key = path, key
        self._handle = None
        self._pid = None
        super().__init__(path, list(self._file().keys()))

    def _file(self):
        """The open h5py.File of this process."""
        import h5py

        if self._handle is None or self._pid != os.getpid():
            self._handle = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._handle

    def _where(self, vid: str) -> str:
        return f"{self.path}[{vid!r}]"

    def _read(self, vid: str) -> np.ndarray:
        import h5py

        entry = self._file()[vid]
        if isinstance(entry, h5py.Group):
            entry = entry[self._group_key(entry, vid)]
        return entry[()]

    def _group_key(self, group, vid: str) -> str:
        """Name of the feature dataset inside a video group."""
        names = list(group.keys())
        if self.key is not None:
            wanted = self.key
        elif HDF5_KEY in names:
            wanted = HDF5_KEY
        elif len(names) == 1:
            wanted = names[0]
        else:
            raise ValueError(
                f"{self._where(vid)}: a group with datasets {names} and no {HDF5_KEY!r}; "
                "pass key= the name of the feature dataset"
            )
        if wanted not in names:
            raise ValueError(f"{self._where(vid)}: no dataset {wanted!r}; it holds {names}")
        return wanted

    def close(self) -> None:
        """Close the HDF5 file (it reopens on the next read)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_handle"] = state["_pid"] = None  # h5py handles do not pickle
        return state


def _stems(folder: Path, suffix: str) -> list[str]:
    """Names (without suffix) of the regular files in ``folder`` ending in ``suffix``."""
    with os.scandir(folder) as entries:
        return [e.name[: -len(suffix)] for e in entries if e.name.endswith(suffix) and e.is_file()]


def open_features(path: str | Path, key: str | None = None) -> FeatureStore:
    """Open a feature store, detecting its layout from ``path``.

    ``path`` is a folder of ``.npy`` files, a folder of ``.npz`` files, or an HDF5 file.
    ``key`` names the array inside each ``.npz`` (default ``"features"``) or the dataset inside
    each HDF5 video group (default ``"c3d_features"``, or the group's only dataset).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no feature folder or file at {path}")
    if path.is_file():
        return _open_file(path, key)
    npy, npz = _stems(path, ".npy"), _stems(path, ".npz")
    if npy and npz:
        raise ValueError(
            f"{path}: holds both .npy ({len(npy)}) and .npz ({len(npz)}) files; "
            "keep one layout per folder"
        )
    if npy:
        if key is not None:
            raise ValueError(f"{path}: key={key!r} has no meaning for a folder of .npy arrays")
        return NpyFolderStore(path)
    if npz:
        return NpzFolderStore(path, key or NPZ_KEY)
    raise ValueError(
        f"{path}: no .npy or .npz files; expected per-video {{vid}}.npy or {{vid}}.npz features, "
        "or pass an HDF5 file"
    )


def _open_file(path: Path, key: str | None) -> Hdf5Store:
    """Open a single-file store; only HDF5 is supported."""
    import h5py

    if path.suffix.lower() not in HDF5_SUFFIXES and not h5py.is_hdf5(path):
        raise ValueError(
            f"{path}: not an HDF5 file; expected an HDF5 file or a folder of per-video .npy/.npz files"
        )
    return Hdf5Store(path, key)
