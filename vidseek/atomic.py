"""Atomic file writes shared by every part that writes (numpy/stdlib only).

A write goes to a temporary file in the target's folder, is flushed to disk, given the permissions a
plain ``open()`` would give (mkstemp's 0600 would make bundles unreadable to other users), and then
replaces the target with ``os.replace``: readers see the old file or the new one, never half of one.

A full disk must not slip through as a short file: some writers report it without an errno (numpy's
"N requested and M written") or as their own exception (faiss's RuntimeError), and some swallow it
(faiss only prints a failed ``fclose``). So a write that fails, or seems to succeed, while the
file system has no free block left counts as failed with ``ENOSPC``, and the target stays as it was.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (best effort: some file systems cannot fsync a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def disk_full(folder: str | os.PathLike) -> bool:
    """True when the file system of ``folder`` has no free block left for this process (root may
    also use the blocks reserved for it). False when that cannot be told."""
    if not hasattr(os, "statvfs"):  # not POSIX
        return False
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    free = st.f_bfree if os.geteuid() == 0 else st.f_bavail
    return st.f_blocks > 0 and free == 0


def _no_space(path: Path) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` to produce the content, then move it onto ``path`` atomically.

    A crash leaves at most a ``.<name>.*.tmp`` file beside `path`; an error leaves `path` as it was.
    A write that fails or ends while the disk is full raises ``OSError(ENOSPC)`` (module docstring).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        try:
            write(Path(tmp))
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        except Exception as exc:
            if not (isinstance(exc, OSError) and exc.errno) and disk_full(path.parent):
                raise _no_space(path) from exc
            raise
        if disk_full(path.parent):  # the writer may have lost the end of the file without saying so
            raise _no_space(path)
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Create or replace the text file ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_save_npy(path: str | os.PathLike, array) -> Path:
    """Create or replace the ``.npy`` file ``path`` atomically with ``array`` (no pickles)."""
    import numpy as np

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.save would add ".npy" to the temporary's name
            np.save(fh, array, allow_pickle=False)

    return atomic_write(path, write)
