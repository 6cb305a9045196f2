"""Scan pages of a bucket, listed as they are asked for: the loader's /scan over a URL.

A folder's walk is held whole (a list of paths, executors/loader/executor.py); a bucket may
hold millions of objects, so its listing is never held: the loader keeps one cursor per listing
(this class), which asks S3 for the next listing page (1,000 keys) only when the scan documents
it has are used up. The client asks for pages of documents in order (``offset`` = documents
answered so far); a page shorter than asked for is the last one. Memory: one scan page and one
listing page, whatever the bucket holds.

A page asked for again (a client that retried, or a read-ahead thrown away) starts the listing
over and skips what was answered: slower, never wrong, and the object cache
(storage.KnownObjects) saves fetching those objects twice.
"""

import logging
import threading
from collections import deque
from itertools import islice
from typing import Iterator, Optional

from executors.docs import ImageDoc
from executors.loader.storage import ObjectScanner, StoredObject, iter_objects

logger = logging.getLogger(__name__)


class ObjectPages:
    """Pages of scan documents of the objects under one URL, in listing order, by the count of
    documents answered before them."""

    def __init__(self, url: str, scanner: ObjectScanner):
        self.url = url
        self._scanner = scanner
        self._lock = threading.Lock()  # the handler and the read-ahead thread share the cursor
        self.restarts = -1  # listings started over (a page asked for again), for logs and tests
        self._objects: Iterator[StoredObject] = iter(())
        self._pending: deque[ImageDoc] = deque()  # inspected, not answered yet
        self._answered = 0
        self._exhausted = False
        self._restart()

    def _restart(self) -> None:
        self._objects = iter_objects(self.url)
        self._pending.clear()
        self._answered = 0
        self._exhausted = False
        self.restarts += 1

    def page(self, offset: int, limit: int, cancelled: Optional[threading.Event] = None) -> Optional[list[ImageDoc]]:
        """The scan documents from the ``offset``-th on, at most ``limit`` (fewer: the listing
        ended); None once ``cancelled`` is set (the read-ahead's page was given up: what it
        inspected stays here for the page asked for next)."""
        with self._lock:
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
