"""Two Jina 3.34 costs worked around in the processes `app.py` starts (measured by `app.py bench`).

Applied before the flow forks its executors and gateway, so they inherit them. A gateway
started by other means (`jina gateway`, the Kubernetes images) runs Jina unpatched.
"""

import asyncio
import logging

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


def gateway_waits_without_spinning() -> None:
    """The gateway waits for a free prefetch slot with ``await asyncio.sleep(0)`` in a loop:
    a busy wait that burnt ~0.75 of a core for as long as a client kept its 4 requests in
    flight (22.6 s of CPU in a 30 s indexing run), CPU the encoder needed. Wait 1 ms a turn."""
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
        if prefetch > 0:  # ...then wait for a free slot the same way, sleeping
            while self._request_counter.count >= prefetch:
                await asyncio.sleep(0.001)
        return request

    __anext__.waits_politely = True
    AsyncRequestsIterator.__anext__ = __anext__


def apply() -> None:
    skip_empty_unknown_arg_warning()
    gateway_waits_without_spinning()
