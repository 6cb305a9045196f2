"""Where an executor process counts its requests, and why there.

Counting in the executor's handlers would miss every request that waits before them: in
Jina's dynamic-batching queue (the encoder's ``/search``), or for Jina's per-executor lock
(the loader, normalizer and indexer handlers are synchronous, so Jina runs one at a time).
Those waits are what grows when a pod falls behind. So a request is received where Jina's
gRPC servicer hands it to the request handler (``WorkerRequestHandler.process_data``, one call
per request, before any queue) and answered when that call returns; its work starts when the
handler runs: Stage.__acall__ for asynchronous handlers and batches, or once Jina's lock is
held for synchronous ones (:class:`StartsWork`). An encoder batch waiting for a free lane
(a thread of its own pool) is in flight but past its start: it shows in the latency and the
in-flight gauge, not in the queue time.

The hook goes in while Jina loads the executor: Stage.__init__ calls :func:`install`, which
wraps ``WorkerRequestHandler._init_monitoring`` (Jina calls it once the executor is loaded, on
the handler that will serve it). There, with the process's arguments at hand, the metrics
server starts on ``--port-monitoring`` at the executor's own host, and that handler's
``process_data`` is wrapped. Jina's own monitoring (``--monitoring``) would start an
unauthenticated server on the same port before any project code runs, so it must stay off
(the flows and the Kubernetes manifests never set it); if it is on, we say so and serve
nothing of ours.
"""

import functools
import inspect
import logging
from typing import Any, Optional

from executors.metrics.registry import CURRENT, REGISTRY, Tracker, docs_in, stage_label
from executors.metrics.server import serve
from executors.patches import should_apply

logger = logging.getLogger(__name__)

WRITTEN_FOR = ("3.34.",)
_tracker: Optional[Tracker] = None


def internals_changed() -> list[str]:
    """What of Jina's worker the hook relies on is not as it expects (empty: all is)."""
    from jina.serve.executors import BaseExecutor
    from jina.serve.runtimes.worker.request_handling import WorkerRequestHandler

    changed = []
    init = inspect.getsource(WorkerRequestHandler.__init__)
    if "self._init_monitoring(" not in init or init.index("self._load_executor(") > init.index("self._init_monitoring("):
        changed.append("WorkerRequestHandler.__init__ no longer calls _init_monitoring after _load_executor")
    if list(inspect.signature(WorkerRequestHandler.process_data).parameters)[:3] != ["self", "requests", "context"]:
        changed.append("WorkerRequestHandler.process_data(requests, context, ...) changed")
    if "self.process_data(" not in inspect.getsource(WorkerRequestHandler.process_single_data):
        changed.append("process_single_data no longer goes through process_data")
    if "async with self._lock" not in inspect.getsource(BaseExecutor.__acall_endpoint__):
        changed.append("BaseExecutor no longer runs synchronous handlers under self._lock")
    if "_batchqueue_config" not in init:
        changed.append("WorkerRequestHandler has no _batchqueue_config")
    return changed


def install() -> bool:
    """Hook the metrics into the Jina worker loading this executor (once per process)."""
    from jina.serve.runtimes.worker.request_handling import WorkerRequestHandler

    original = WorkerRequestHandler._init_monitoring
    if hasattr(original, "__wrapped__"):
        return True
    import jina

    if not should_apply("jina", WRITTEN_FOR, internals_changed, version=getattr(jina, "__version__", None)):
        return False

    @functools.wraps(original)
    def _init_monitoring(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        try:
            _serve(self)
        except OSError as exc:  # the port taken: the executor serves on, without metrics
            logger.error("metrics endpoint not started on port %s: %s", getattr(self.args, "port_monitoring", None), exc)
        return result

    WorkerRequestHandler._init_monitoring = _init_monitoring
    return True


def _serve(handler: Any) -> None:
    global _tracker
    args = handler.args
    stage = stage_label(getattr(args, "name", ""))
    if getattr(args, "monitoring", False):
        logger.error("%s: Jina's own monitoring is on (--monitoring) and serves its metrics without a token: turn it off", stage)
        return
    port = getattr(args, "port_monitoring", None)
    if not port:
        logger.info("%s: metrics endpoint not started: no --port-monitoring", stage)
        return
    if serve(str(getattr(args, "host", None) or "127.0.0.1"), int(port), lambda: [REGISTRY], stage) is None:
        return
    _tracker = Tracker(stage)
    _count_requests(handler, _tracker)


def _count_requests(handler: Any, tracker: Tracker) -> None:
    from jina.constants import __default_endpoint__
    from jina.proto import jina_pb2

    original = handler.process_data
    executor = handler._executor

    async def process_data(requests: list, context: Any, *args: Any, **kwargs: Any) -> Any:
        endpoint = requests[0].header.exec_endpoint
        handled = endpoint if endpoint in executor.requests else __default_endpoint__
        record = tracker.receive(endpoint, docs_in(requests[0]), batched=handled in handler._batchqueue_config)
        token = CURRENT.set(record)
        error = True
        try:
            result = await original(requests, context, *args, **kwargs)
            header = getattr(result, "header", None)
            error = header is not None and header.status.code == jina_pb2.StatusProto.ERROR
            return result
        finally:
            CURRENT.reset(token)
            tracker.answer(record, error)

    handler.process_data = process_data


def work_begins(endpoint: str, docs: int) -> None:
    """An executor's handler is entered for ``docs`` documents (Stage.__acall__)."""
    record = CURRENT.get()
    if _tracker is None or record is None:
        return
    if record.batched:  # a batch Jina's queue assembled: its task carries the first request's context
        _tracker.start_batch(endpoint, docs)
    else:
        Tracker.start(record)


class StartsWork:
    """Jina's per-executor lock (``BaseExecutor._lock``), marking the current request's work
    as begun once it holds the lock: a synchronous handler waits for it behind the others."""

    def __init__(self, lock: Any) -> None:
        self._lock = lock

    async def __aenter__(self) -> Any:
        held = await self._lock.__aenter__()
        record = CURRENT.get()
        if record is not None and not record.batched:
            Tracker.start(record)
        return held

    async def __aexit__(self, *exc: Any) -> Any:
        return await self._lock.__aexit__(*exc)
