"""Scan pages of a bucket, listed as they are asked for: the loader's /scan over a URL.

A folder's walk is held whole (a list of paths, executors/loader/executor.py); a bucket may
hold millions of objects, so its listing is never held: the loader keeps one cursor per listing
(this class), which asks S3 for the next listing page (1,000 keys) only when the scan documents
it has are used up. The client asks for pages of documents in order (``offset`` = documents
answered so far); a page shorter than asked for is the last one. Memory: one scan page and one
listing page, whatever the bucket holds.

The last page stays at hand, so a page the read-ahead worked out and the client's request did
not take (another client's request came between) is answered again without listing. A page
asked for further back starts the listing over and skips what was answered: slower, never wrong,
and the object cache (storage.KnownObjects) saves fetching those objects twice. Several clients
scanning at once (the cluster's loader serves every encoder's gateway) each continue a cursor of
their own (:class:`ObjectListings`).
"""

import logging
import threading
from collections import deque
from itertools import count, islice
from typing import Iterator, Optional

from executors.docs import ImageDoc
from executors.loader.storage import ObjectScanner, StoredObject, iter_objects

logger = logging.getLogger(__name__)

_serials = count()  # names a cursor for the read-ahead (an id() may be reused once one is dropped)


class ObjectPages:
    """Pages of scan documents of the objects under one URL, in listing order, by the count of
    documents answered before them."""

    def __init__(self, url: str, scanner: ObjectScanner):
        self.url = url
        self.serial = next(_serials)
        self._scanner = scanner
        self._lock = threading.Lock()  # the handler and the read-ahead thread share the cursor
        self.restarts = -1  # listings started over (a page asked for again), for logs and tests
        self._objects: Iterator[StoredObject] = iter(())
        self._pending: deque[ImageDoc] = deque()  # inspected, not answered yet
        self._answered = 0
        self._exhausted = False
        self._last: Optional[tuple[int, int, list[ImageDoc]]] = None  # (offset, limit, documents)
        self._restart()

    def serves(self, offset: int) -> bool:
        """Whether the page at ``offset`` follows on (or repeats the last) without listing again."""
        with self._lock:
            return offset == self._answered or (self._last is not None and self._last[0] == offset)

    def _restart(self) -> None:
        self._objects = iter_objects(self.url)
        self._pending.clear()
        self._answered = 0
        self._exhausted = False
        self._last = None
        self.restarts += 1

    def page(self, offset: int, limit: int, cancelled: Optional[threading.Event] = None) -> Optional[list[ImageDoc]]:
        """The scan documents from the ``offset``-th on, at most ``limit`` (fewer: the listing
        ended); None once ``cancelled`` is set (the read-ahead's page was given up: what it
        inspected stays here for the page asked for next)."""
        with self._lock:
            if self._last is not None and self._last[:2] == (offset, limit):
                return self._last[2]
            if offset < self._answered:
                logger.info("scan page at %d asked for again (the cursor is at %d): listing %s over", offset, self._answered, self.url)
                self._restart()
            while self._answered < offset:  # pages skipped: inspected and dropped
                if not self._pending and not self._fill(offset - self._answered):
                    break
                for _ in range(min(len(self._pending), offset - self._answered)):
                    self._pending.popleft()
                    self._answered += 1
            while len(self._pending) < limit and not self._exhausted:
                if cancelled is not None and cancelled.is_set():
                    return None
                self._fill(limit - len(self._pending))
            out = [self._pending.popleft() for _ in range(min(limit, len(self._pending)))]
            self._last = (offset, limit, out)
            self._answered += len(out)
            return out

    def _fill(self, want: int) -> bool:
        """Inspect up to ``want`` more objects (listing the next page when needed); False at the end."""
        objects = list(islice(self._objects, max(want, 1)))
        if len(objects) < max(want, 1):
            self._exhausted = True
        if objects:
            self._pending.extend(self._scanner.inspect(objects))
        return bool(objects)


class ObjectListings:
    """The loader's open cursors, a few at most (the oldest dropped): a client's next page
    continues the cursor that answered its last one; a new scan (/scan_total) opens one."""

    def __init__(self, scanner: ObjectScanner, keep: int = 4):
        self._scanner, self._keep = scanner, keep
        self._cursors: list[ObjectPages] = []
        self._lock = threading.Lock()

    def fresh(self, url: str) -> ObjectPages:
        with self._lock:
            cursor = ObjectPages(url, self._scanner)
            self._cursors = [*self._cursors, cursor][-self._keep :]
            return cursor

    def for_page(self, url: str, offset: int) -> ObjectPages:
        """The cursor that answers ``offset`` of ``url`` without listing again, the newest first;
        else a new one (listed from the start)."""
        with self._lock:
            found = next((c for c in reversed(self._cursors) if c.url == url and c.serves(offset)), None)
            if found is not None:
                self._cursors = [c for c in self._cursors if c is not found] + [found]
                return found
        return self.fresh(url)
