"""Two Jina 3.34 costs worked around, and the flow's gateway class that applies them.

The fixes patch private internals of exactly Jina 3.34, so :func:`apply` checks those
internals first and raises :class:`JinaPatchError` when they changed: start-up fails with a
clear message instead of the gateway quietly busy-waiting again.

Where they run:

- :class:`PatchedGRPCGateway` is the gateway of flows/index.yml (``gateway: uses:``), so a
  gateway started any way — ``app.py``'s flows, ``jina flow --uses flows/index.yml`` by hand,
  the Kubernetes gateway image (``jina gateway --uses executors/gateway/config.yml``) —
  patches its own process before it serves a request.
- ``app.py`` also calls :func:`apply` before ``Flow.load_config``, which is where the
  unknown-argument warning costs its time (``jina flow`` itself loads the YAML before any
  project code runs, so by hand that start stays slow; the gateway is patched all the same).

The upstream fixes, which would make this module unnecessary:

- ``jina/serve/stream/helper.py``: ``AsyncRequestsIterator.__anext__`` waits for a free
  prefetch slot with ``while counter.count >= prefetch: await asyncio.sleep(0)``. The
  counter should carry an ``asyncio.Condition`` (or an Event set when ``count`` drops) that
  the iterator awaits, as ``_WakingCounter`` does here.
- ``jina/helper.py``: ``warn_unknown_args`` should return at once when there are no
  unknown arguments, before it builds the whole CLI lookup table.
"""

import asyncio
import inspect
import logging
from typing import Any, Callable, Optional

import jina
import jina.helper
import jina.serve.stream
from jina.serve.runtimes.gateway.grpc import GRPCGateway
from jina.serve.stream.helper import AsyncRequestsIterator

logger = logging.getLogger(__name__)


class JinaPatchError(RuntimeError):
    """The installed Jina is not the one the fixes were written for."""


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise JinaPatchError(
            f"cannot apply imgsearch's Jina fixes (executors/gateway/jina_fixes.py): {what}. They patch "
            f"private internals of jina 3.34 (installed: {getattr(jina, '__version__', '?')}); install "
            "jina==3.34.0 as requirements.lock pins it, or port the fixes to this Jina."
        )


def _source(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return ""


def check_internals() -> None:
    """Raise JinaPatchError unless Jina's internals are the ones the patches expect."""
    stream = getattr(jina.serve.stream, "RequestStreamer", None)
    _require(hasattr(jina.serve.stream, "_RequestsCounter"), "jina.serve.stream._RequestsCounter is gone")
    _require(stream is not None and "_RequestsCounter()" in _source(getattr(stream, "_stream_requests", None)),
             "RequestStreamer._stream_requests no longer makes its request counter from _RequestsCounter()")
    params = set(inspect.signature(AsyncRequestsIterator.__init__).parameters)
    _require({"request_counter", "prefetch"} <= params,
             f"AsyncRequestsIterator.__init__ takes {sorted(params)}, not request_counter and prefetch")
    spin = _source(getattr(AsyncRequestsIterator.__anext__, "__wrapped__", AsyncRequestsIterator.__anext__))
    _require("self._prefetch" in spin and "self._request_counter.count" in spin,
             "AsyncRequestsIterator.__anext__ no longer waits on self._prefetch and self._request_counter")
    warn = getattr(jina.helper, "warn_unknown_args", None)
    _require(callable(warn) and len(inspect.signature(warn).parameters) == 1,
             "jina.helper.warn_unknown_args(unknown_args) is gone or takes other arguments")


def skip_empty_unknown_arg_warning() -> None:
    """``Flow.load_config`` builds Jina's whole command-line parser (most of a flow's start,
    docs/architecture.md) to warn about unknown arguments, even when there are none; only
    warn when there are."""
    original: Callable[[Any], None] = jina.helper.warn_unknown_args
    if hasattr(original, "__wrapped__"):
        return

    def warn_unknown_args(unknown_args: Any) -> None:
        if unknown_args:
            original(unknown_args)

    warn_unknown_args.__wrapped__ = original
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
    a busy wait that burns most of a core for as long as a client keeps its requests in
    flight, CPU the encoder needs. Now it sleeps until a response frees a slot (the counter
    Jina's request streamer creates per stream wakes it)."""
    original = AsyncRequestsIterator.__anext__
    if hasattr(original, "__wrapped__"):
        return

    async def __anext__(self: AsyncRequestsIterator) -> Any:
        prefetch = self._prefetch
        self._prefetch = 0  # take the next request without the original's spin...
        try:
            request = await original(self)
        finally:
            self._prefetch = prefetch
        counter = self._request_counter
        if prefetch > 0 and counter.count >= prefetch:  # ...then wait for a free slot, asleep
            if not isinstance(counter, _WakingCounter):  # check_internals rules this out
                raise JinaPatchError(f"a prefetch counter Jina made without the patch: {type(counter)!r}")
            await counter.wait_below(prefetch)
        return request

    __anext__.__wrapped__ = original
    AsyncRequestsIterator.__anext__ = __anext__
    jina.serve.stream._RequestsCounter = _WakingCounter


def apply() -> None:
    """Check Jina's internals (JinaPatchError if they changed), then patch; idempotent."""
    check_internals()
    skip_empty_unknown_arg_warning()
    gateway_waits_without_spinning()


class PatchedGRPCGateway(GRPCGateway):
    """Jina's gRPC gateway, in a process that runs the fixes (they apply before it serves)."""

    def __init__(self, **kwargs: Any) -> None:
        apply()
        super().__init__(**kwargs)
        self.logger.info("gateway: %s, Jina fixes applied (a free prefetch slot is awaited, not polled)",
                         type(self).__name__)
