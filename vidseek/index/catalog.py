"""The catalog of an index: which videos it holds, their state, and what the index was built with.

``Catalog(index_dir)`` opens ``index_dir/catalog.sqlite`` (SQLite, WAL mode, so readers never block
the writer nor see a half-finished change; every change is one transaction). ``PRAGMA user_version``
is the schema version; a newer one is refused.

Table ``videos``: one row per video file, its ``path`` relative to the library root (POSIX
separators, never absolute, never ``..``), ``size``, ``mtime_ns``, ``content_hash``
(``content_hash``), ``duration`` (s), ``fps`` (the file's frame rate), ``steps`` (feature steps
cached), ``status`` (``ok`` | ``error`` | ``pending``), ``error`` (message) and ``added_at`` (unix
time). Ids come from AUTOINCREMENT and are never reused; ``record_pending`` gives every (re-)encoding
a fresh id, so a stale clip-index entry or cache file can never be taken for new content.

Table ``retired``: ids of ``ok`` rows that ``remove`` or ``record_pending`` replaced, with the time.
A search that listed such a video just before may still read its cache files, so the writer keeps
them ``RETAIN_RETIRED_S`` seconds before deleting them (``retired`` / ``forget_retired``).

Table ``gaps``: for a video whose file has stretches without frames (``vidseek.engine.video.MAX_HOLD_S``),
its id and the gaps cut out of its footage as JSON ``[[footage second, file seconds skipped], ...]``;
its steps cover the footage only, and search places moments at their times in the file.

Table ``settings``: key -> JSON value, the fields of ``vidseek.index.settings.IndexSettings``.

File names that are not valid UTF-8 (possible on Linux) are stored as BLOBs of their raw bytes and
come back as Python's surrogate-escaped ``str`` (``os.fsdecode``), so such files are indexed like
any other; ``printable`` shows such a name with its odd bytes as ``\\xNN``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
import stat
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from vidseek.atomic import disk_full
from vidseek.index import IndexStorageError
from vidseek.index.settings import IndexSettings

CATALOG_FILE = "catalog.sqlite"
SCHEMA_VERSION = 1
STATUSES = ("ok", "error", "pending")
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".wmv", ".flv")
BUSY_TIMEOUT_MS = 10_000  # how long a statement waits for another connection's lock
CHECKPOINT_WAIT_MS = 1_000  # how long the end-of-run checkpoint waits for readers' snapshots
OK_KEY_MODULUS = 65_521  # ok_key: squares below 2**32, so the sum stays an integer up to 2**31 videos
HASH_CHUNK = 1 << 20  # content_hash reads this much from the start and from the end of a file
# Cache files of a removed or re-encoded video are kept this long for searches that listed it
# before the change (a search opens the catalog, then reads the cache files of its candidates).
RETAIN_RETIRED_S = 600.0


_SCHEMA = """
CREATE TABLE videos (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    content_hash TEXT,
    duration REAL,
    fps REAL,
    steps INTEGER,
    status TEXT NOT NULL CHECK (status IN ('ok', 'error', 'pending')),
    error TEXT,
    added_at REAL NOT NULL
);
CREATE INDEX videos_status ON videos (status);
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS retired (id INTEGER PRIMARY KEY, retired_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS gaps (id INTEGER PRIMARY KEY, gaps TEXT NOT NULL);
"""
# Tables added after schema version 1 was released: catalogs made before get them on their next write
_ADDED = ("CREATE TABLE IF NOT EXISTS retired (id INTEGER PRIMARY KEY, retired_at REAL NOT NULL)",
          "CREATE TABLE IF NOT EXISTS gaps (id INTEGER PRIMARY KEY, gaps TEXT NOT NULL)")
# SQLite's errors; a damaged file can make even the error message undecodable (UnicodeDecodeError)
SQL_ERRORS = (sqlite3.Error, UnicodeDecodeError)
_COLUMNS = "id, path, size, mtime_ns, content_hash, duration, fps, steps, status, error, added_at"


class CatalogError(IndexStorageError):
    """A catalog that cannot be opened or written; the message says why and what to do."""


class IndexMismatch(CatalogError):
    """The index was built with other settings (model, root, windows) than the ones given."""


class UnsafePath(CatalogError):
    """A catalog path that is absolute or leaves the library root."""


# ---- files ---------------------------------------------------------------------------------------
def content_hash(path: str | Path, size: int | None = None) -> str:
    """A cheap content id of a video file: sha256 hex over ``b"vidseek-content-v1\\n"``, the size in
    bytes as decimal ASCII and ``b"\\n"``, then the first 1 MiB and the last 1 MiB of the file (the
    whole file when it is at most 2 MiB).

    Video containers keep their index (moov, cues) at the start or the end and any re-encode
    changes both, so this tells edits from ``touch`` after reading 2 MiB of any file; an edit
    confined to the middle of a file of unchanged size goes unnoticed (re-index with ``--rebuild``).
    """
    path = Path(path)
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size if size is None else size
        h = hashlib.sha256(b"vidseek-content-v1\n" + str(size).encode() + b"\n")
        if size <= 2 * HASH_CHUNK:
            h.update(fh.read())
        else:
            h.update(fh.read(HASH_CHUNK))
            fh.seek(size - HASH_CHUNK)
            h.update(fh.read(HASH_CHUNK))
    return h.hexdigest()


def check_relative(path: str) -> str:
    """``path`` as a normalised POSIX path relative to the library root; ``UnsafePath`` when it is
    empty, absolute, or has a ``..`` part (it would leave the root).

    >>> check_relative("a/./b.mp4")
    'a/b.mp4'
    >>> check_relative("../etc/passwd")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    vidseek.index.catalog.UnsafePath: catalog path '../etc/passwd' leaves the library root ...
    """
    text = str(path)
    pure = PurePosixPath(text)
    if not text or "\x00" in text or pure.is_absolute() or ".." in pure.parts or str(pure) in ("", "."):
        raise UnsafePath(f"catalog path {text!r} leaves the library root (absolute or with '..'); the catalog "
                         "was edited or is corrupt: re-index with `vidseek index --rebuild`")
    return str(pure)


def printable(text: str, lines: bool = False) -> str:
    """``text`` with the undecodable bytes of a non-UTF-8 file name shown as ``\\xNN`` (and any other
    lone surrogate as ``\\udNNN``), and every control or format character (escape sequences, BEL,
    newlines, bidirectional overrides) as its ``\\x``/``\\u`` escape: safe to print on a terminal
    and to store as SQLite text. With ``lines``, newlines are kept (a message of several lines).

    >>> printable(os.fsdecode(b"caf\\xe9.mp4")), printable("ok.mp4")
    ('caf\\\\xe9.mp4', 'ok.mp4')
    >>> printable("a\\x1b]0;owned\\x07\\nb.mp4")
    'a\\\\x1b]0;owned\\\\x07\\\\nb.mp4'
    """
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that no undecodable byte made
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if text.isprintable():  # the common case: nothing to escape
        return text
    return "".join(c if c.isprintable() or (lines and c == "\\n") or c == " " else
                   c.encode("unicode_escape").decode("ascii") for c in text)


def _db_path(path: str) -> str | bytes:
    """A catalog path as SQLite stores it: text, or the raw bytes of a name that is not UTF-8."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path)
    return path


def escapes(path: str) -> bool:
    """True when a stored catalog path is absolute or leaves the library root (``check_relative``)."""
    if path and "\x00" not in path and not path.startswith(("/", ".")) and ".." not in path:
        return False  # the common case, without parsing
    try:
        check_relative(path)
    except UnsafePath:
        return True
    return False


def _video(row: tuple) -> Video:
    """A ``videos`` row (``_COLUMNS``) as a ``Video``; a BLOB path becomes a surrogate-escaped str.

    A row whose path leaves the library root (an edited or damaged catalog) comes back as an
    ``error`` row saying so, whatever it says: nothing serves it, and the next indexing run,
    which finds no such file under the root, removes it.
    """
    path = row[1]
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    video = Video(row[0], path, *row[2:])
    if escapes(path):
        video = replace(video, status="error", error=(
            f"catalog path {printable(path)!r} leaves the library root (absolute or with '..'), so it is ignored: "
            "the catalog was edited or is damaged; the next `vidseek index` removes the row"))
    return video


@dataclass(frozen=True)
class FileState:
    """A video file as found on disk."""

    path: str  # relative to the library root, POSIX separators
    size: int  # bytes
    mtime_ns: int  # modification time, ns
    content_hash: str | None  # content_hash(); None when not computed
    video_id: int | None = None  # its catalog id, when the catalog knows the path


@dataclass(frozen=True)
class Video:
    """One row of the ``videos`` table."""

    id: int
    path: str  # relative to the library root
    size: int
    mtime_ns: int
    content_hash: str | None
    duration: float | None  # seconds
    fps: float | None  # the file's frame rate
    steps: int | None  # feature steps in cache/<id>.states.npy
    status: str  # ok | error | pending
    error: str | None
    added_at: float  # unix time

    def state(self) -> FileState:
        return FileState(self.path, self.size, self.mtime_ns, self.content_hash, self.id)


@dataclass
class ScanPlan:
    """What an indexing run has to do, from ``Catalog.scan``. Every list is sorted by path."""

    new: list[FileState] = field(default_factory=list)  # not in the catalog: encode
    changed: list[FileState] = field(default_factory=list)  # content differs, or pending/retried: re-encode
    unchanged: list[FileState] = field(default_factory=list)  # nothing to do
    deleted: list[Video] = field(default_factory=list)  # in the catalog, file gone: drop
    touched: list[FileState] = field(default_factory=list)  # subset of unchanged: same content, new size/mtime
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (path, error) of new files: record_error

    def summary(self) -> str:
        return (f"{len(self.new)} new, {len(self.changed)} changed, {len(self.unchanged)} unchanged, "
                f"{len(self.deleted)} deleted, {len(self.unreadable)} unreadable")


def _walk(root: Path, suffixes: tuple[str, ...], errors: list[str]) -> Iterator[str]:
    """Relative POSIX paths of the files under ``root`` with one of ``suffixes`` (any case), in
    sorted order; hidden files and folders (``.name``, such as ``.vidseek``) are skipped, and
    symlinked folders are not followed. Folders that cannot be listed go to ``errors``."""
    def onerror(exc: OSError) -> None:
        errors.append(Path(exc.filename).relative_to(root).as_posix() if exc.filename else str(exc))

    for folder, dirs, files in os.walk(root, onerror=onerror):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel = Path(folder).relative_to(root)
        for name in sorted(files):
            if not name.startswith(".") and name.lower().endswith(suffixes):
                yield (rel / name).as_posix()


def _unreadable(path: Path, exc: OSError) -> str:
    """Why a file found in the library cannot be read, and what to do."""
    reason = exc.strerror or str(exc)
    if path.is_symlink():
        try:
            target = printable(os.readlink(path))
        except OSError:
            target = "?"
        return (f"a symbolic link to {target} that cannot be followed ({reason}): fix or delete the link; "
                "it is skipped until it changes")
    return f"cannot read the file ({reason}): check its permissions; it is skipped until it changes"


# ---- the catalog ---------------------------------------------------------------------------------
class Catalog:
    """The SQLite catalog of one index folder.

    A writer must hold ``WriterLock(index_dir)``; readers open with ``readonly=True`` and see the
    last committed state. Not thread-safe (one connection).
    """

    def __init__(self, index_dir: str | Path, readonly: bool = False):
        self.index_dir = Path(index_dir)
        self.path = self.index_dir / CATALOG_FILE
        self.readonly = readonly
        if readonly and not self.path.is_file():
            raise CatalogError(f"no index at {self.index_dir} (no {CATALOG_FILE}); create one with "
                               f"`vidseek index VIDEO_DIR --index {self.index_dir}`")
        try:
            self._connect(immutable=False)
        except CatalogError:
            if not readonly:
                raise
            # A reader that cannot share the writer's WAL index (-shm): a read-only folder (a Jetson's
            # read-only partition, a shared network copy) or a full disk. It reads the database file as
            # it is, which holds everything a finished indexing run wrote (the writer checkpoints at its end).
            self._connect(immutable=True)

    def _connect(self, immutable: bool) -> None:
        """Open the connection and check the schema (``CatalogError`` when that fails)."""
        try:
            if self.readonly:
                mode = "?mode=ro&immutable=1" if immutable else "?mode=ro"
                self._db = sqlite3.connect(self.path.resolve().as_uri() + mode, uri=True, isolation_level=None)
            else:
                self.index_dir.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, isolation_level=None)
        except SQL_ERRORS as exc:
            raise _sql_error(exc, self.path, "open the catalog") from None
        except OSError as exc:
            raise CatalogError(f"cannot open {self.path}: {exc.strerror or exc}; "
                               "choose a writable --index folder") from None
        try:
            self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._open_schema()
            if self.readonly:  # the first read is what needs the WAL index
                self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except BaseException as exc:
            self._db.close()
            if isinstance(exc, SQL_ERRORS):
                raise _sql_error(exc, self.path, "open the catalog") from None
            raise

    def checkpoint(self) -> None:
        """Copy the WAL into the database file (a writer, at the end of a run), so that the file
        alone holds the index: a read-only copy of the folder, or a reader that cannot use the WAL,
        sees everything. An open Searcher's ``snapshot`` holds back the part written after it
        began; the checkpoint waits ``CHECKPOINT_WAIT_MS`` for it, then leaves that part to the
        next run's checkpoint rather than stall this one."""
        self._db.execute(f"PRAGMA busy_timeout = {CHECKPOINT_WAIT_MS}")
        try:
            self._rows("checkpoint the catalog", "PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    def snapshot(self) -> None:
        """Make every later read of this (read-only) connection see the catalog as it is now, until
        ``close``: one read transaction (SQLite's WAL keeps what writers commit meanwhile apart).
        A Searcher reads its rows when a search needs them, yet sees one consistent index."""
        self._rows("read the catalog", "BEGIN")
        self._rows("read the catalog", "SELECT count(*) FROM sqlite_master")

    def _open_schema(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise CatalogError(f"{self.path} has catalog schema version {version}, but this vidseek reads versions up "
                               f"to {SCHEMA_VERSION}: upgrade vidseek, or re-index with `vidseek index --rebuild`")
        if self.readonly:
            if version == 0:
                raise CatalogError(f"{self.path} is not an initialised vidseek catalog; re-run `vidseek index`")
            return
        mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise CatalogError(f"{self.path}: SQLite cannot use WAL mode here (got {mode!r}); keep the index on "
                               "a local disk (network file systems do not support it)")
        self._db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: consistent after a crash
        if version == SCHEMA_VERSION:
            try:  # catalogs made before the tables existed get them on their next write
                for statement in _ADDED:
                    self._db.execute(statement)
            except sqlite3.OperationalError as exc:
                if "readonly" not in str(exc).lower():
                    raise
        if version == 0:
            with self._write("create the catalog") as db:  # tables and version in one transaction
                if db.execute("PRAGMA user_version").fetchone()[0] != 0:
                    return  # created meanwhile by another process
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def _write(self, what: str) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it is committed, or none (errors name ``what`` failed)."""
        if self.readonly:
            raise CatalogError(f"cannot {what}: {self.path} was opened read-only")
        try:
            self._db.execute("BEGIN IMMEDIATE")
            yield self._db
            self._db.execute("COMMIT")
        except BaseException as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            if isinstance(exc, SQL_ERRORS):
                raise _sql_error(exc, self.path, what) from None
            raise

    def _rows(self, what: str, sql: str, params: tuple = (), table_may_be_missing: bool = False) -> list[tuple]:
        """The rows of one query; a damaged catalog (a page that does not decode, text that is not
        UTF-8) raises a ``CatalogError`` that names it and the fix, never SQLite's own exception.
        With ``table_may_be_missing``, a table that catalogs made before it lack gives no rows."""
        try:
            return self._db.execute(sql, params).fetchall()
        except SQL_ERRORS as exc:
            if table_may_be_missing and "no such table" in str(exc):
                return []
            raise _sql_error(exc, self.path, what) from None

    def require_sound(self) -> None:
        """Raise ``CatalogError`` unless the catalog passes SQLite's ``quick_check`` and every row
        reads back (a writer must not add to a damaged catalog; ``--rebuild`` starts a new one)."""
        problems = [r[0] for r in self._rows("check the catalog", "PRAGMA quick_check") if r[0] != "ok"]
        if problems:
            raise CatalogError(f"the catalog {self.path} is damaged (SQLite: {problems[0]}); nothing was written to "
                               f"it: index the library again from scratch with `vidseek index VIDEO_DIR --index "
                               f"{self.index_dir} --rebuild`")
        self.settings(), self.videos(), self.retired(), self.gaps()  # every row decodes, or CatalogError

    # ---- settings -------------------------------------------------------------------------------
    def settings(self) -> IndexSettings:
        """What the index was built with (``IndexSettings``; fields not yet stored are None)."""
        rows = self._rows("read the index settings", "SELECT key, value FROM settings")
        try:
            return IndexSettings.from_stored({k: json.loads(v) for k, v in rows})
        except (ValueError, TypeError) as exc:
            raise CatalogError(f"cannot read the index settings in {self.path} ({exc}): the catalog is damaged; "
                               "re-index with `vidseek index VIDEO_DIR --rebuild`") from None

    def update_settings(self, **values: Any) -> None:
        """Store settings (JSON-encodable values), e.g. ``update_settings(fingerprint=fp, rate=5.0)``."""
        unknown = sorted(set(values) - set(IndexSettings().to_dict()))
        if unknown:
            raise ValueError(f"unknown index settings {', '.join(unknown)}; the settings are the fields of IndexSettings")
        rows = [(k, json.dumps(v)) for k, v in values.items()]
        with self._write("store the index settings") as db:
            db.executemany("INSERT INTO settings (key, value) VALUES (?, ?) "
                           "ON CONFLICT(key) DO UPDATE SET value = excluded.value", rows)

    @property
    def root(self) -> Path | None:
        """The library root the paths are relative to (None before the first ``update_settings(root=...)``)."""
        root = self.settings().root
        return None if root is None else Path(root)

    def check_fingerprint(self, fingerprint: str) -> None:
        """Raise ``IndexMismatch`` when the index was built with another bundle (a fresh index passes)."""
        stored = self.settings().fingerprint
        if stored is not None and stored != fingerprint:
            raise IndexMismatch(
                f"index {self.index_dir} was built with the bundle of fingerprint {stored}, but the bundle given "
                f"has fingerprint {fingerprint}: their features and embeddings do not mix. Re-index with "
                f"`vidseek index VIDEO_DIR --index {self.index_dir} --rebuild`, or use the bundle with "
                f"fingerprint {stored}"
            )

    def check_settings(self, **expected: Any) -> None:
        """Raise ``IndexMismatch`` when a stored setting differs from ``expected`` (unset ones pass)."""
        stored = self.settings().to_dict()
        for key, want in expected.items():
            if stored[key] is not None and stored[key] != want:
                raise IndexMismatch(f"index {self.index_dir} was built with {key}={stored[key]!r}, but {key}={want!r} "
                                    "was given: re-index with `vidseek index --rebuild`, or use the same setting")

    # ---- paths ----------------------------------------------------------------------------------
    def resolve(self, path: str) -> Path:
        """The absolute file of a catalog path; ``UnsafePath`` when it would leave the root."""
        root = self.root
        if root is None:
            raise CatalogError(f"index {self.index_dir} has no library root yet; run `vidseek index VIDEO_DIR` first")
        return root / check_relative(path)

    def _relative(self, path: str | Path) -> str:
        """A catalog path from an absolute path under the root or a relative one."""
        if Path(path).is_absolute() and self.root is not None:
            try:
                path = Path(path).relative_to(self.root).as_posix()
            except ValueError:
                raise UnsafePath(f"{path} is outside the library root {self.root}") from None
        return check_relative(str(path))

    # ---- scanning -------------------------------------------------------------------------------
    def scan(self, root: str | Path, suffixes: Iterable[str] = VIDEO_SUFFIXES, retry_errors: bool = False) -> ScanPlan:
        """Compare the video files under ``root`` with the catalog (reads files, writes nothing).

        A known file whose size and mtime are unchanged is unchanged without being read. When
        either differs, it is changed only if its ``content_hash`` differs too; otherwise it is
        unchanged and listed in ``touched`` (``update_stat(plan.touched)`` records the new stat).
        ``pending`` rows (an encoding interrupted by a crash) are changed, and so are ``error``
        rows with ``retry_errors``. Known files that cannot be read now, or that lie in a folder
        that cannot be listed, stay unchanged (their cached features still serve).
        """
        root = Path(root).resolve()
        if not root.is_dir():
            raise CatalogError(f"library root {root} is not a folder")
        stored_root = self.root
        if stored_root is not None and stored_root != root:
            raise IndexMismatch(f"index {self.index_dir} holds the library at {stored_root}, not {root}: index "
                                f"{root} into another --index folder, or re-index with --rebuild")
        suffixes = tuple(s.lower() for s in suffixes)
        known = {v.path: v for v in self.videos()}
        plan, seen, folder_errors = ScanPlan(), set(), []
        for rel in _walk(root, suffixes, folder_errors):
            seen.add(rel)
            old = known.get(rel)
            try:
                st = os.stat(root / rel)
                if not stat.S_ISREG(st.st_mode):  # never opened: reading a FIFO or a device could block
                    if old is None:
                        plan.unreadable.append((rel, "not a regular file (a FIFO, socket or device), so not read"))
                    else:
                        plan.unchanged.append(old.state())
                    continue
                unchanged_stat = old is not None and old.size == st.st_size and old.mtime_ns == st.st_mtime_ns
                redo = old is not None and (old.status == "pending" or (retry_errors and old.status == "error"))
                if unchanged_stat and not redo:
                    plan.unchanged.append(old.state())
                    continue
                state = FileState(rel, st.st_size, st.st_mtime_ns, content_hash(root / rel, st.st_size),
                                  None if old is None else old.id)
            except OSError as exc:
                if old is None:
                    plan.unreadable.append((rel, _unreadable(root / rel, exc)))
                else:
                    plan.unchanged.append(old.state())
                continue
            if old is None:
                plan.new.append(state)
            elif redo or state.content_hash != old.content_hash:
                plan.changed.append(state)
            else:
                plan.unchanged.append(state)
                plan.touched.append(state)
        for folder in folder_errors:  # keep what we cannot see
            prefix = "" if folder in ("", ".") else folder.rstrip("/") + "/"
            seen.update(p for p in known if p.startswith(prefix))
        plan.deleted = [v for p, v in sorted(known.items()) if p not in seen]
        return plan

    # ---- recording ------------------------------------------------------------------------------
    def _upsert(self, db: sqlite3.Connection, file: FileState, status: str, duration=None, fps=None, steps=None,
                error: str | None = None) -> int:
        """Update the row of ``file.path`` (keeping its id) or insert one; returns the id."""
        path = self._relative(file.path)
        values = (int(file.size), int(file.mtime_ns), file.content_hash, duration, fps, steps, status, error)
        row = db.execute("SELECT id FROM videos WHERE path = ?", (_db_path(path),)).fetchone()
        if row is not None:
            db.execute("UPDATE videos SET size = ?, mtime_ns = ?, content_hash = ?, duration = ?, fps = ?, steps = ?, "
                       "status = ?, error = ? WHERE id = ?", (*values, row[0]))
            return int(row[0])
        cursor = db.execute(f"INSERT INTO videos ({_COLUMNS}) VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (_db_path(path), *values, time.time()))
        return int(cursor.lastrowid)

    def record_pending(self, file: FileState) -> int:
        """Start (re-)encoding ``file``: a ``pending`` row with a fresh id, returned. Write its cache
        files under that id, then ``record_ok``. A changed file's old row (``file.video_id``) is
        replaced: drop that old id from the clip index; an ok one is ``retired`` (its cache files are
        deleted once no search can still need them), any other can go from the cache at once."""
        path = self._relative(file.path)
        with self._write(f"record {printable(path)} as pending") as db:
            self._retire(db, path)
            return self._upsert(db, file, "pending")

    @staticmethod
    def _retire(db: sqlite3.Connection, path: str) -> int | None:
        """Delete the row of ``path`` (in the caller's transaction); an ok row goes to ``retired``.
        Returns the id deleted, or None."""
        row = db.execute("SELECT id, status FROM videos WHERE path = ?", (_db_path(path),)).fetchone()
        if row is None:
            return None
        if row[1] == "ok":
            db.execute("INSERT OR REPLACE INTO retired (id, retired_at) VALUES (?, ?)", (row[0], time.time()))
        db.execute("DELETE FROM videos WHERE id = ?", (row[0],))
        db.execute("DELETE FROM gaps WHERE id = ?", (row[0],))
        return int(row[0])

    def record_ok(self, file: FileState, *, duration: float, fps: float, steps: int,
                  gaps: Iterable[tuple[float, float]] = ()) -> int:
        """Mark ``file`` indexed: its ``steps`` (T) feature steps are in the cache, covering
        ``duration`` seconds of footage; ``gaps`` are the stretches without frames that sampling cut
        out ((footage second, file seconds skipped), ``vidseek.engine.video.footage_gaps``). Returns
        its id (the pending row's, or a new one)."""
        gaps = [(float(at), float(skipped)) for at, skipped in gaps]
        if not hasattr(steps, "__index__") or int(steps) < 1:
            raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
        for name, value in (("duration", duration), ("fps", fps)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0 (seconds / frames per second), got {value!r}")
        with self._write(f"record {printable(file.path)} as indexed") as db:
            vid = self._upsert(db, file, "ok", float(duration), float(fps), int(steps))
            if gaps:
                db.execute("INSERT OR REPLACE INTO gaps (id, gaps) VALUES (?, ?)", (vid, json.dumps(gaps)))
            return vid

    def record_error(self, file: FileState | str, error: str) -> int:
        """Mark a file that could not be indexed, with the error to show; it is skipped until it
        changes (or a scan with ``retry_errors``). ``file`` may be a catalog path. Returns its id."""
        if not isinstance(file, FileState):
            path, size, mtime_ns = self._relative(file), 0, 0
            try:
                st = os.stat(self.resolve(path))
                size, mtime_ns = st.st_size, st.st_mtime_ns
            except (OSError, CatalogError):
                pass  # recorded with size 0: any later readable state counts as changed
            file = FileState(path, size, mtime_ns, None)
        with self._write(f"record the error of {printable(file.path)}") as db:
            return self._upsert(db, file, "error", error=printable(str(error)))

    def update_stat(self, files: Iterable[FileState]) -> None:
        """Store the size and mtime of files whose content did not change (``ScanPlan.touched``)."""
        rows = [(int(f.size), int(f.mtime_ns), _db_path(self._relative(f.path))) for f in files]
        with self._write("update file times") as db:
            db.executemany("UPDATE videos SET size = ?, mtime_ns = ? WHERE path = ?", rows)

    def remove(self, paths: Iterable[str]) -> list[int]:
        """Delete the rows of these catalog paths (ok ones are ``retired``); returns the ids removed.
        A stored path that leaves the library root (``ScanPlan.deleted`` lists such rows) is removed
        as it is stored."""
        paths = [self._stored(p) for p in paths]
        with self._write(f"remove {len(paths)} videos") as db:
            removed = [self._retire(db, path) for path in paths]
        return [vid for vid in removed if vid is not None]

    def _stored(self, path: str | Path) -> str:
        """The catalog path of ``path`` (``_relative``), or a stored path that leaves the root as it is."""
        try:
            return self._relative(path)
        except UnsafePath:
            if isinstance(path, str) and escapes(path):
                return path
            raise

    def retired(self) -> dict[int, float]:
        """Ids whose ok row ``remove`` or ``record_pending`` deleted -> when (unix time). Their cache
        files may still serve a search that listed them; delete the files ``RETAIN_RETIRED_S``
        seconds later, then ``forget_retired`` the ids."""
        return dict(self._rows("read the retired videos", "SELECT id, retired_at FROM retired",
                               table_may_be_missing=True))  # a catalog from before the table, opened read-only

    def gaps(self) -> dict[int, list[tuple[float, float]]]:
        """The gaps cut out of the footage of each video that has any (``record_ok``), by id."""
        rows = self._rows("read the gaps of the videos", "SELECT id, gaps FROM gaps", table_may_be_missing=True)
        try:
            return {int(vid): [(float(a), float(s)) for a, s in json.loads(text)] for vid, text in rows}
        except (ValueError, TypeError) as exc:
            raise CatalogError(f"cannot read the gaps of the videos in {self.path} ({exc}): the catalog is damaged; "
                               "re-index with `vidseek index VIDEO_DIR --rebuild`") from None

    def forget_retired(self, ids: Iterable[int]) -> None:
        """Drop ids from ``retired`` (once their cache files are deleted)."""
        rows = [(int(v),) for v in ids]
        if rows:
            with self._write("forget deleted videos") as db:
                db.executemany("DELETE FROM retired WHERE id = ?", rows)

    # ---- reading --------------------------------------------------------------------------------
    def videos(self, status: str | None = None) -> list[Video]:
        """Rows ordered by id, all or those with ``status`` (ok | error | pending). A row whose path
        leaves the library root is an ``error`` row (see ``_video``), never an ``ok`` one."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"status {status!r}: expected one of {', '.join(STATUSES)}")
        videos = map(_video, self._rows("read the videos", f"SELECT {_COLUMNS} FROM videos ORDER BY id"))
        return [v for v in videos if status is None or v.status == status]

    def video(self, key: int | str) -> Video | None:
        """The row with this id (int) or catalog path (str), or None."""
        column, value = ("path", _db_path(check_relative(key))) if isinstance(key, str) else ("id", int(key))
        rows = self._rows("read a video", f"SELECT {_COLUMNS} FROM videos WHERE {column} = ?", (value,))
        return _video(rows[0]) if rows else None

    def ok_ids(self) -> list[int]:
        """Ids of the ``ok`` videos, ascending: the ok rows but those whose path leaves the root
        (``_video`` makes them errors). Two columns, no ``Video`` objects: ~0.8 s for a million."""
        rows = self._rows("read the video ids", "SELECT id, path FROM videos WHERE status = 'ok' ORDER BY id")
        return [int(vid) for vid, path in rows if not escapes(os.fsdecode(path) if isinstance(path, bytes) else path)]

    def ok_key(self) -> list[int]:
        """[count, sum, sum of (id mod OK_KEY_MODULUS) squared] of the ``ok`` ids, counted in SQLite
        (no row crosses into Python): a Searcher that finds its clip index's ``video_key`` (the
        same sums) equal knows the index holds exactly the catalog's videos without listing either.
        Equal keys mean equal sets but for contrived cases: ids only grow, so a set that kept its
        count yet changed has other ids, and rarely the same sum and square sum."""
        row = self._rows("read the video ids", "SELECT count(*), coalesce(sum(id), 0), "
                         f"coalesce(sum((id % {OK_KEY_MODULUS}) * (id % {OK_KEY_MODULUS})), 0) "
                         "FROM videos WHERE status = 'ok'")[0]
        return [int(v) for v in row]

    def data_version(self) -> int:
        """SQLite's ``PRAGMA data_version`` of this connection: it changes when another connection
        (an indexing run) commits a change, so a reader that compares two values knows whether it
        should read the catalog again. A reader opened on the immutable fallback never sees it change."""
        return int(self._rows("read the catalog's data version", "PRAGMA data_version")[0][0])

    def counts(self) -> dict[str, int]:
        """Number of videos per status (every status present, 0 when none)."""
        counts = dict.fromkeys(STATUSES, 0)
        for v in self.videos():
            counts[v.status] += 1
        return counts

    # ---- checking -------------------------------------------------------------------------------
    def sqlite_problems(self) -> list[str]:
        """What SQLite's ``PRAGMA integrity_check`` finds wrong with the catalog file (empty: none).
        The whole index folder is checked by ``vidseek.index.integrity.check``."""
        return [f"SQLite integrity check of {self.path}: {row[0]}"
                for row in self._rows("check the catalog", "PRAGMA integrity_check") if row[0] != "ok"]


def _sql_error(exc: Exception, path: Path, what: str) -> CatalogError:
    """A ``CatalogError`` that says why ``what`` failed and what to do."""
    text = str(exc)
    low = text.lower()
    if "full" in low or ("disk i/o error" in low and disk_full(path.parent)):
        hint = "the disk is full: free some space and re-run; the catalog keeps its last complete change"
    elif "disk i/o error" in low:
        hint = ("writing to the disk failed (a full disk, a file size limit or failing storage): free some space "
                "or check the disk, then re-run; the catalog keeps its last complete change")
    elif "readonly" in low or "read-only" in low:
        hint = "the index folder is read-only: make it writable or choose another --index folder"
    elif "locked" in low or "busy" in low:
        hint = "another process is writing the catalog: wait for it to finish"
    elif "not a database" in low or "malformed" in low or "corrupt" in low or "decode" in low:
        hint = "the catalog is damaged: re-index with `vidseek index --rebuild`"
    elif "unable to open" in low:
        hint = "check that the index folder exists and is readable"
    else:
        hint = "see the SQLite message"
    return CatalogError(f"cannot {what} in {path}: {text}; {hint}")
