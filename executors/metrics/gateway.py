"""Where the gateway counts its requests, and why there.

A client's request is received when the gateway's gRPC servicer reads it off the client's
stream (``JinaRPC.Call``) or call (``process_single_data``): that is before the gateway waits
for a free prefetch slot (jina_fixes.py takes the request, then waits), so requests held back
by the prefetch limit are in flight. Its work starts when Jina's request streamer hands it to
the flow (``GatewayStreamer._streamer._request_handler``), and it is answered when its response is
written back. The servicer methods are wrapped on the gateway's own handler instance (only
PatchedGRPCGateway does this), not on Jina's classes.

Jina's own gateway metrics (``jina_*``, with ``--monitoring``) are served through the same
authenticated endpoint: PatchedGRPCGateway replaces the step that would start Jina's
unauthenticated server (:func:`setup_monitoring`).
"""

import logging
from typing import Any, AsyncIterator, Optional

from prometheus_client import CollectorRegistry

from executors.metrics.registry import REGISTRY, Record, Tracker, docs_in
from executors.metrics.server import MetricsServer, serve

logger = logging.getLogger(__name__)

STAGE = "gateway"


def setup_monitoring(host: str, monitoring: bool, port_monitoring: Any) -> tuple[Optional[MetricsServer], Optional[CollectorRegistry]]:
    """Our metrics server on ``port_monitoring`` (when a token is configured) and the registry
    Jina's own metrics go to (only with ``--monitoring``, and only when served)."""
    if not port_monitoring:
        logger.info("gateway: metrics endpoint not started: no --port-monitoring")
        return None, None
    jina_registry = CollectorRegistry() if monitoring else None
    registries = [REGISTRY] + ([jina_registry] if jina_registry is not None else [])
    try:
        server = serve(host, int(port_monitoring), lambda: registries, STAGE)
    except OSError as exc:
        logger.error("gateway: metrics endpoint not started on port %s: %s", port_monitoring, exc)
        return None, None
    return server, jina_registry if server is not None else None


def _is_error(response: Any, context: Any) -> bool:
    from jina.proto import jina_pb2

    header = getattr(response, "header", None)
    if header is not None and header.status.code == jina_pb2.StatusProto.ERROR:
        return True
    try:
        code = context.code() if context is not None else None
    except Exception:  # a context that does not tell
        code = None
    return code is not None and getattr(code, "name", "OK") != "OK"


class GatewayCounter:
    """Wraps one gateway's request handler (``GatewayRequestHandler``)."""

    def __init__(self) -> None:
        self.tracker = Tracker(STAGE)
        self._by_id: dict[str, Record] = {}  # received, not answered: to mark their start

    def install(self, handler: Any) -> None:
        # Call is what gRPC registers; another wrapper of the handler may already sit there,
        # or read ``stream`` after us: both names get ours, so either order chains.
        call, single = handler.Call, handler.process_single_data
        streamer: Any = getattr(getattr(handler, "streamer", None), "_streamer", None)  # GatewayStreamer's RequestStreamer
        to_flow: Any = getattr(streamer, "_request_handler", None)

        def request_handler(*args: Any, **kwargs: Any) -> Any:
            request = kwargs.get("request", args[0] if args else None)
            Tracker.start(self._by_id.get(getattr(getattr(request, "header", None), "request_id", "")))
            return to_flow(*args, **kwargs)

        async def stream(request_iterator: Any, context: Any = None, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            pending: dict[str, Record] = {}

            async def received() -> AsyncIterator[Any]:
                async for request in request_iterator:
                    pending[request.header.request_id] = self._receive(request)
                    yield request

            try:
                async for response in call(received(), context, *args, **kwargs):
                    record = pending.pop(response.header.request_id, None)
                    if record is not None:
                        self._answer(response.header.request_id, record, _is_error(response, context))
                    yield response
            finally:  # the stream ended or broke: what was not answered failed
                for request_id, record in pending.items():
                    self._answer(request_id, record, True)

        async def process_single_data(request: Any, context: Any = None) -> Any:
            request_id = request.header.request_id
            record = self._receive(request)
            error = True
            try:
                response = await single(request, context)
                error = _is_error(response, context)
                return response
            finally:
                self._answer(request_id, record, error)

        if to_flow is not None:
            streamer._request_handler = request_handler
        else:  # another Jina: requests are still counted, their queue time is not
            logger.warning("gateway: Jina's request streamer is not the one expected; imgsearch_queue_seconds stays empty")
        handler.stream = handler.Call = stream
        handler.process_single_data = process_single_data

    def _receive(self, request: Any) -> Record:
        record = self.tracker.receive(request.header.exec_endpoint, docs_in(request))
        self._by_id[request.header.request_id] = record
        return record

    def _answer(self, request_id: str, record: Record, error: bool) -> None:
        if self._by_id.get(request_id) is record:
            del self._by_id[request_id]
        self.tracker.answer(record, error)


class MetricsGateway:
    """Mixin for a Jina gateway class (before it in the bases): our authenticated endpoint
    instead of Jina's, and the client's requests counted (``count_requests`` before the
    gRPC server registers the handler)."""

    metrics_server: Optional[MetricsServer] = None
    metrics_registry: Optional[CollectorRegistry]

    def _setup_monitoring(self, monitoring: bool, port_monitoring: Any) -> None:
        """Replaces Jina's MonitoringMixin._setup_monitoring, which starts an unauthenticated server."""
        host = getattr(self.runtime_args, "host", None) or "127.0.0.1"  # type: ignore[attr-defined]
        host = host[0] if isinstance(host, list) else host
        self.metrics_server, self.metrics_registry = setup_monitoring(str(host), monitoring, port_monitoring)

    def count_requests(self) -> None:
        if self.metrics_server is not None:
            GatewayCounter().install(self._request_handler)  # type: ignore[attr-defined]
