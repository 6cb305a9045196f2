"""Three Jina 3.34 costs worked around, and the flow's gateway class that applies them.

The fixes patch private internals of Jina 3.34. :func:`apply` follows the project's policy for
such patches (executors/patches.py): on Jina 3.34 with the internals they expect they apply;
on any other Jina, or where those internals changed, Jina keeps its own behaviour and one
warning says why. tests/test_jina_fixes.py checks the pinned Jina still has them.

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
- ``jina/serve/runtimes/gateway/graph/topology_graph.py``: ``_get_all_endpoints`` asks every
  executor for its endpoints as soon as the gateway starts, alongside the executors; one
  not listening yet fails the call and leaves its gRPC channel in its 1 s reconnect backoff,
  so a flow's start waited a second on it (most of the time Jina's wait for a local flow
  takes). The gateway should wait for its executors' ports, as
  :meth:`PatchedGRPCGateway.setup_server` does.
"""

import asyncio
import functools
import inspect
import logging
import time
from typing import Any, Callable, Optional

import jina
import jina.helper
import jina.serve.stream
from jina.serve.runtimes.gateway.grpc import GRPCGateway
from jina.serve.stream.helper import AsyncRequestsIterator

from executors import limits
from executors.gateway import replicas
from executors.metrics.gateway import MetricsGateway
from executors.patches import should_apply

logger = logging.getLogger(__name__)


WRITTEN_FOR = ("3.34.",)


class JinaPatchError(RuntimeError):
    """A patched path met a Jina object the patch did not make (internals_changed rules it out)."""


def _source(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return ""


def internals_changed() -> list[str]:
    """What of Jina's internals the patches replace is not as they expect (empty: all is)."""
    changed: list[str] = []

    def _require(ok: bool, what: str) -> None:
        if not ok:
            changed.append(what)

    stream = getattr(jina.serve.stream, "RequestStreamer", None)
    _require(hasattr(jina.serve.stream, "_RequestsCounter"), "jina.serve.stream._RequestsCounter is gone")
    _require(
        stream is not None and "_RequestsCounter()" in _source(getattr(stream, "_stream_requests", None)),
        "RequestStreamer._stream_requests no longer makes its request counter from _RequestsCounter()",
    )
    params = set(inspect.signature(AsyncRequestsIterator.__init__).parameters)
    _require({"request_counter", "prefetch"} <= params, f"AsyncRequestsIterator.__init__ takes {sorted(params)}, not request_counter and prefetch")
    spin = _source(getattr(AsyncRequestsIterator.__anext__, "__wrapped__", AsyncRequestsIterator.__anext__))
    _require(
        "self._prefetch" in spin and "self._request_counter.count" in spin,
        "AsyncRequestsIterator.__anext__ no longer waits on self._prefetch and self._request_counter",
    )
    _require(
        "_get_endpoints_input_output_models" in _source(getattr(GRPCGateway, "setup_server", None)),
        "GRPCGateway.setup_server no longer asks the executors for their endpoints",
    )
    warn = getattr(jina.helper, "warn_unknown_args", None)
    _require(
        callable(warn) and len(inspect.signature(warn).parameters) == 1,
        "jina.helper.warn_unknown_args(unknown_args) is gone or takes other arguments",
    )
    return changed


def skip_empty_unknown_arg_warning() -> None:
    """``Flow.load_config`` builds Jina's whole command-line parser (most of a flow's start,
    docs/architecture.md) to warn about unknown arguments, even when there are none; only
    warn when there are."""
    original: Callable[[Any], None] = jina.helper.warn_unknown_args
    if hasattr(original, "__wrapped__"):
        return

    @functools.wraps(original)  # sets __wrapped__: applied once
    def warn_unknown_args(unknown_args: Any) -> None:
        if unknown_args:
            original(unknown_args)

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

    @functools.wraps(original)  # sets __wrapped__: applied once, and internals_changed reads the original
    async def __anext__(self: AsyncRequestsIterator) -> Any:
        prefetch = self._prefetch
        self._prefetch = 0  # take the next request without the original's spin...
        try:
            request = await original(self)
        finally:
            self._prefetch = prefetch
        counter = self._request_counter
        if prefetch > 0 and counter.count >= prefetch:  # ...then wait for a free slot, asleep
            if not isinstance(counter, _WakingCounter):  # internals_changed rules this out
                raise JinaPatchError(f"a prefetch counter Jina made without the patch: {type(counter)!r}")
            await counter.wait_below(prefetch)
        return request

    AsyncRequestsIterator.__anext__ = __anext__
    jina.serve.stream._RequestsCounter = _WakingCounter


def apply() -> bool:
    """Patch Jina where the policy allows (executors/patches.py); idempotent. False: Jina's own
    behaviour kept, with one warning."""
    if not should_apply("jina", WRITTEN_FOR, internals_changed, version=getattr(jina, "__version__", None)):
        return False
    skip_empty_unknown_arg_warning()
    gateway_waits_without_spinning()
    return True


# How long the gateway waits for its executors' ports before asking them for their endpoints
# (Jina's own retries take over after that: an executor still loading a large model).
EXECUTORS_LISTENING_WAIT_S = 30.0


def executor_addresses(deployments_addresses: Optional[str]) -> list[tuple[str, int]]:
    """(host, port) of every executor replica in the gateway's ``deployments_addresses``
    (addresses may carry a scheme)."""
    targets = (replicas.parse_target(a) for addresses in replicas.grpc_addresses(deployments_addresses).values() for a in addresses)
    return [(t.host, t.port) for t in targets if t is not None]


async def wait_listening(addresses: list[tuple[str, int]], limit_s: float, interval_s: float = 0.02) -> list:
    """Wait until every address accepts a TCP connection, at most ``limit_s``; the ones
    that still do not."""
    deadline = time.monotonic() + limit_s
    pending = list(addresses)
    while pending:
        still = []
        for host, port in pending:
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=1.0)
                writer.close()
            except (OSError, asyncio.TimeoutError):
                still.append((host, port))
        pending = still
        if not pending or time.monotonic() >= deadline:
            break
        await asyncio.sleep(interval_s)
    return pending


class PatchedGRPCGateway(MetricsGateway, GRPCGateway):
    """Jina's gRPC gateway, in a process that runs the fixes (they apply before it serves),
    with the project's authenticated metrics (executors/metrics/gateway.py)."""

    def __init__(self, **kwargs: Any) -> None:
        applied = apply()
        self._named = _expand_names(kwargs.get("runtime_args"))  # before Jina builds its connections
        super().__init__(**kwargs)
        self._replicas: Optional[replicas.ReplicaWatcher] = None
        self._given_counts: dict[str, int] = {}
        # The request size cap, whoever started this gateway (app.py's flows pass it; `jina
        # gateway` on Kubernetes does not): Jina's own default is no limit at all.
        given: Any = self.grpc_server_options  # type: ignore[has-type]  # jina leaves it unannotated: a dict, (name, value) pairs or None
        options = dict(given or {})
        options.setdefault("grpc.max_receive_message_length", limits.max_request_bytes())
        self.grpc_server_options = options
        self.logger.info(
            "gateway: %s, Jina fixes %s",
            type(self).__name__,
            "applied (a free prefetch slot is awaited, not polled)" if applied else "not applied (see the warning)",
        )

    async def setup_server(self) -> None:
        """Ask the executors for their endpoints once they listen, not before (see above)."""
        args = self.runtime_args
        raw = args.get("deployments_addresses") if isinstance(args, dict) else getattr(args, "deployments_addresses", None)
        silent = await wait_listening(executor_addresses(raw), EXECUTORS_LISTENING_WAIT_S)
        if silent:
            self.logger.info("executors not listening yet after %.0f s: %s", EXECUTORS_LISTENING_WAIT_S, ", ".join(f"{h}:{p}" for h, p in silent))
        self._balance_replicas(raw)
        self.count_requests()  # before Jina's setup registers the handler's methods with gRPC
        await super().setup_server()

    def _balance_replicas(self, deployments_addresses: Optional[str]) -> None:
        """Keep one connection per replica of every executor named by DNS (replicas.py), and
        tell clients asking an encoder's ``/info`` how many there are."""
        current = replicas.grpc_addresses(deployments_addresses)
        # Addresses per deployment: a local flow's Jina replicas are several; the watcher's names override.
        self._given_counts = {d: len(a) or 1 for d, a in current.items()}
        watcher = self._replicas = replicas.ReplicaWatcher(self.streamer._connection_pool, self._named, current, replicas.nameserver())
        watcher.start()
        handler = self._request_handler
        stream, single = handler.stream, handler.process_single_data

        async def stream_annotated(*args: Any, **kwargs: Any) -> Any:
            async for response in stream(*args, **kwargs):
                replicas.annotate_info(response, self.replica_counts)
                yield response

        async def single_annotated(*args: Any, **kwargs: Any) -> Any:
            response = await single(*args, **kwargs)
            replicas.annotate_info(response, self.replica_counts)
            return response

        handler.Call = stream_annotated  # what Jina registers as the gRPC servicer's methods
        handler.process_single_data = single_annotated

    def replica_counts(self) -> dict[str, int]:
        """Replicas per deployment the gateway sends requests to: its addresses (a local flow's
        Jina replicas are several), a name's as last looked up."""
        return {**self._given_counts, **(self._replicas.replicas() if self._replicas else {})}

    async def shutdown(self) -> None:
        if self._replicas:
            await self._replicas.stop()
        await super().shutdown()


def _expand_names(runtime_args: Any) -> dict[str, list[replicas.Target]]:
    """Replace the executor names in the gateway's ``deployments_addresses`` by every address
    they resolve to now (in place); the named targets, for the watcher that keeps them current."""
    if runtime_args is None:
        return {}
    is_dict = isinstance(runtime_args, dict)
    raw = runtime_args.get("deployments_addresses") if is_dict else getattr(runtime_args, "deployments_addresses", None)
    if not raw:
        return {}
    expanded, named = replicas.expand(raw, replicas.nameserver())
    if is_dict:
        runtime_args["deployments_addresses"] = expanded
    else:
        runtime_args.deployments_addresses = expanded
    return named
