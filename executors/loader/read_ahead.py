"""The next page of a scan, worked out in the background while the client indexes this one.

`app.py index` alternates: /scan a page (read and hash up to 2,048 new files), then /index it
(decode, embed, store). Done in turn, the encoder waits for every page's hashing, which on a GPU
node, or for multi-megabyte photos, costs as long as embedding it. So once a page is answered,
the loader starts on the page after it; the client's next /scan takes that result, waiting only
for what is not done yet. A request for another page (another offset or size, a new listing)
drops it: the background work never answers a page it was not started for.
"""

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Generic, Hashable, Optional, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ReadAhead(Generic[T]):
    """At most one page in the background, keyed by what identifies it (listing, offset, size)."""

    def __init__(self, name: str = "read-ahead"):
        self._runner = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._next: Optional[tuple[Hashable, Future, threading.Event]] = None

    def start(self, key: Hashable, work: Callable[[threading.Event], T]) -> None:
        """Run ``work(cancelled)`` in the background for ``key``; it should stop early once
        ``cancelled`` is set (its result is then thrown away)."""
        self.drop()
        cancelled = threading.Event()
        self._next = (key, self._runner.submit(work, cancelled), cancelled)

    def take(self, key: Hashable) -> Optional[T]:
        """The background result for ``key`` (waiting for it to finish), or None if none was started
        for that key or it failed: the caller then works the page out itself."""
        if self._next is None:
            return None
        started_for, future, _ = self._next
        if started_for != key:
            self.drop()
            return None
        self._next = None
        try:
            return future.result()
        except Exception as exc:  # noqa: BLE001  worked out again in the foreground, where it is reported
            logger.warning("read-ahead of %s failed (%s); reading it now", key, exc)
            return None

    def drop(self) -> None:
        if self._next is not None:
            _, future, cancelled = self._next
            cancelled.set()
            future.cancel()
            self._next = None

    def close(self) -> None:
        self.drop()
        self._runner.shutdown(wait=False, cancel_futures=True)
