"""Two Jina 3.34 costs worked around in the processes `app.py` starts (measured by `app.py bench`).

Applied before the flow forks its executors and gateway, so they inherit them. A gateway
started by other means (`jina gateway`, the Kubernetes images) runs Jina unpatched.
"""

import asyncio
import logging
from typing import Optional

logger = logging.getLogger(__name__)


def skip_empty_unknown_arg_warning() -> None:
    """``Flow.load_config`` builds Jina's whole command-line parser (~2 s of a 3-4 s start)
    to warn about unknown arguments, even when there are none; only warn when there are."""
    import jina.helper

    original = jina.helper.warn_unknown_args
    if getattr(original, "skips_empty", False):
        return

    def warn_unknown_args(unknown_args) -> None:
        if unknown_args:
            original(unknown_args)

    warn_unknown_args.skips_empty = True
    jina.helper.warn_unknown_args = warn_unknown_args


class _WakingCounter:
    """Jina's in-flight request counter, plus an event set whenever the count drops, so a
    waiter for a free prefetch slot sleeps until a response frees one instead of polling."""

    def __init__(self) -> None:
        self._count = 0
        self._freed: Optional[asyncio.Event] = None

    @property
    def count(self) -> int:
        return self._count

    @count.setter
    def count(self, value: int) -> None:
        if value < self._count and self._freed is not None:
            self._freed.set()
        self._count = value

    async def wait_below(self, limit: int) -> None:
        while self._count >= limit:
            self._freed = asyncio.Event()
            await self._freed.wait()


def gateway_waits_without_spinning() -> None:
    """The gateway waits for a free prefetch slot with ``await asyncio.sleep(0)`` in a loop:
    a busy wait that burnt ~0.75 of a core for as long as a client kept its requests in
    flight (22.6 s of CPU in a 30 s indexing run), CPU the encoder needed. Polling every 1 ms
    instead still cost ~3 ms of gateway CPU per image; now it sleeps until a response frees
    a slot (the counter Jina creates per stream wakes it)."""
    import jina.serve.stream
    from jina.serve.stream.helper import AsyncRequestsIterator

    original = AsyncRequestsIterator.__anext__
    if getattr(original, "waits_politely", False):
        return

    async def __anext__(self):
        prefetch = self._prefetch
        self._prefetch = 0  # take the next request without the original's spin...
        try:
            request = await original(self)
        finally:
            self._prefetch = prefetch
        counter = self._request_counter
        if prefetch > 0 and counter.count >= prefetch:  # ...then wait for a free slot, asleep
            if isinstance(counter, _WakingCounter):
                await counter.wait_below(prefetch)
            else:  # a counter made elsewhere: poll, gently
                while counter.count >= prefetch:
                    await asyncio.sleep(0.001)
        return request

    __anext__.waits_politely = True
    AsyncRequestsIterator.__anext__ = __anext__
    jina.serve.stream._RequestsCounter = _WakingCounter


def apply() -> None:
    skip_empty_unknown_arg_warning()
    gateway_waits_without_spinning()
