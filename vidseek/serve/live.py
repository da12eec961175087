"""A library index held warm for a server, and kept up to date while ``vidseek index`` runs.

``LiveIndex`` owns one ``vidseek.Index`` and runs everything that touches its Searcher (opening it,
searching, curves, reading the index again) on one worker thread: a Searcher holds an SQLite
connection and memory maps that belong to one thread, so searches are served one at a time, in
the order they came (on a CPU the head's batch already uses the cores; more searches at once would
only share them). The HTTP server's event loop never waits on it.

A poller asks the Searcher every ``refresh_s`` whether an indexing run has changed the index
(``Index.refresh``: the catalog's SQLite data version and the files it writes) and, if so, lets it
read the index again, between two searches. Reading the index is safe at any moment of an indexing
run (the write protocol of ``vidseek.index``): a search sees the index as it was before the change
or after it, never half of it. When reading it fails (a ``--rebuild`` whose bundle is gone), the
Searcher keeps what it had, the failure is logged, and the next poll tries again.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from vidseek.engine.grounder import QUERY_SIDE
from vidseek.errors import VidseekError
from vidseek.library.api import Index
from vidseek.library.searcher import Searcher

log = logging.getLogger("vidseek.serve")
T = TypeVar("T")
REFRESH_S = 1.0  # how often the poller looks for a newer index


class LiveIndex:
    """An ``Index`` whose Searcher stays warm and follows indexing runs (see the module docstring)."""

    def __init__(self, index_dir: str | os.PathLike, backend: str = "onnxruntime", refresh_s: float = REFRESH_S):
        self.index = Index(index_dir, backend=backend)
        self.refresh_s = float(refresh_s)
        self.generation = 0  # how many times the Searcher has read the index (1 after start)
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="vidseek-search")
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._failed: str | None = None  # the last refresh failure logged (logged once until it changes)

    def start(self) -> None:
        """Open the Searcher (load the bundle, read the index) and start following the index. Raises
        what opening raises (``NoIndex`` when the folder holds no index)."""
        try:
            # the query-side graphs load now: a backend this machine lacks fails the start, not every search
            self.call(lambda searcher: searcher.grounder.warm(QUERY_SIDE))
        except BaseException:
            self._worker.shutdown(wait=False)
            raise
        self.generation = 1
        if self.refresh_s > 0 and self._poller is None:
            self._poller = threading.Thread(target=self._poll, name="vidseek-refresh", daemon=True)
            self._poller.start()

    def call(self, work: Callable[[Searcher], T]) -> T:
        """Run ``work(searcher)`` on the worker thread and return what it returns (or raise what it raises)."""
        return self._worker.submit(lambda: work(self.index.searcher)).result()

    def submit(self, work: Callable[[Searcher], T]):
        """``call`` without waiting: a ``concurrent.futures.Future`` (``asyncio.wrap_future`` awaits it)."""
        return self._worker.submit(lambda: work(self.index.searcher))

    def refresh(self) -> bool:
        """Read the index again now if it changed (on the worker thread); True when it did."""
        return self._worker.submit(self._refresh).result()

    def _refresh(self) -> bool:
        try:
            changed = self.index.refresh()
        except (VidseekError, OSError) as exc:
            if str(exc) != self._failed:
                log.warning("could not read the index again (searches use the index as it was): %s", exc)
                self._failed = str(exc)
            return False
        self._failed = None
        if changed:
            self.generation += 1
            log.info("read the index again: %d videos", len(self.index.searcher.videos))
        return changed

    def _poll(self) -> None:
        while not self._stop.wait(self.refresh_s):
            try:
                self.refresh()
            except RuntimeError:  # the worker was shut down: the server is stopping
                return

    def close(self) -> None:
        """Stop following the index and release the Searcher."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join()
        try:
            self._worker.submit(self.index.close).result()
        except RuntimeError:
            pass
        self._worker.shutdown()
