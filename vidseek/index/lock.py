"""The writer lock of an index folder: one writer at a time, readers never wait.

``WriterLock(index_dir)`` takes a non-blocking ``fcntl.flock`` on ``index_dir/.lock`` and writes its
pid, host and start time into the file. The kernel releases a flock when its process dies, even by
SIGKILL, so a crashed writer never leaves a stale lock behind. flock is advisory and may not work
across machines on network file systems (NFS): keep an index on a local disk when several machines
write to it. POSIX only (vidseek's index runs on Linux and macOS).
"""

from __future__ import annotations

import contextlib
import errno

import fcntl
import os
import socket
import stat
import time
from pathlib import Path

from vidseek.index import IndexStorageError

LOCK_FILE = ".lock"


class IndexLocked(IndexStorageError):
    """Another process is writing to the index; ``holder`` is what it wrote into the lock file."""

    def __init__(self, message: str, holder: dict[str, str]):
        super().__init__(message)
        self.holder = holder


def _read_holder(path: Path) -> dict[str, str]:
    """The ``key=value`` lines of a lock file (pid, host, since); empty when unreadable."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def current_writer(index_dir: str | Path) -> dict[str, str] | None:
    """What the lock file says about the process writing to ``index_dir`` now (pid, host, since), or
    None when no process holds the writer lock. Never takes the lock: on Linux it reads
    ``/proc/locks``; elsewhere it tries a shared lock and gives it back at once, which can make a
    writer starting in that instant fail with ``IndexLocked`` (it says to wait and re-run)."""
    path = Path(index_dir) / LOCK_FILE
    try:
        st = os.stat(path)
    except OSError:
        return None
    proc_locks = Path("/proc/locks")
    if proc_locks.is_file():
        device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        try:
            held = any(line.split()[1] == "FLOCK" and device in line.split() for line in proc_locks.read_text().splitlines()
                       if len(line.split()) > 5)
        except OSError:
            held = None
        if held is not None:
            return (_read_holder(path) or {"pid": "unknown"}) if held else None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    except BlockingIOError:
        return _read_holder(path) or {"pid": "unknown"}
    except OSError:
        return None
    finally:
        os.close(fd)


class WriterLock:
    """Exclusive writer lock of an index folder, as a context manager.

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with WriterLock(folder) as lock:
    ...     lock.held
    True
    """

    def __init__(self, index_dir: str | Path):
        self.path = Path(index_dir) / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> WriterLock:
        """Take the lock or raise ``IndexLocked`` (never waits); ``StorageWriteError`` when the
        folder cannot be written at all."""
        from vidseek.index.cache import StorageWriteError

        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this WriterLock")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # never through a link: a symlink planted as .lock would have the writer overwrite its target
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0),
                         0o644)
        except OSError as exc:
            if self.path.is_symlink() or exc.errno == errno.ELOOP:
                raise StorageWriteError(f"the index lock {self.path} is a symbolic link, which vidseek never writes "
                                        "through; delete it (`rm` the link, not its target) and re-run") from None
            raise StorageWriteError(f"cannot create the index lock {self.path}: {exc.strerror or exc}; the index "
                                    "folder must be writable to index (choose another --index folder)") from exc
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO or a device named .lock
            os.close(fd)
            raise StorageWriteError(f"the index lock {self.path} is not a regular file; delete it and re-run")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = _read_holder(self.path)
            pid = holder.get("pid", "unknown")
            where = f" on {holder['host']}" if holder.get("host") else ""
            since = f", writing since {holder['since']}" if holder.get("since") else ""
            raise IndexLocked(
                f"index {self.path.parent} is locked: another `vidseek index` (pid {pid}{where}{since}) is writing "
                f"to it. Wait for it to finish, or stop it (`kill {pid}`) and re-run; an interrupted run "
                "resumes where it stopped. Searching does not need the lock.",
                holder,
            ) from None
        except OSError as exc:
            os.close(fd)
            raise StorageWriteError(f"cannot lock {self.path}: {exc.strerror or exc}; the file system may not "
                                    "support flock (keep the index on a local disk)") from exc
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        with contextlib.suppress(OSError):  # who holds it, for the message a second writer gets; the lock works without it
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid={os.getpid()}\nhost={socket.gethostname()}\nsince={since}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Drop the lock (the file stays; its content only describes the last holder)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> WriterLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
