"""The metrics every flow process exposes (names and labels are a contract: docs/metrics.md).

One :class:`Tracker` per process follows each request from the moment the process received
it to the moment it answered it:

- ``receive`` (in-flight +1) where the request enters the process: the worker's gRPC request
  handler (executors/metrics/worker.py) or the gateway's gRPC servicer
  (executors/metrics/gateway.py). That is before Jina's dynamic-batching queue, before the
  executor's lock and before the gateway waits for a free prefetch slot, so a request waiting
  there is in flight: the gauge rises as soon as a pod falls behind, which is what an
  autoscaler needs to see.
- ``start`` when the work for it begins (the executor's handler is entered, or the gateway
  hands it to the flow): ``imgsearch_queue_seconds`` is the time in between.
- ``answer`` (in-flight -1) when the response leaves: requests, errors, latency, documents
  per request, and images (documents of answered ``/index`` requests).

Endpoint labels come from the project's known endpoints only (executors/contracts.py); any
other name a client sends is counted as ``other``, so a client cannot grow the label set.
"""

import contextvars
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Optional

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from executors import contracts
from executors.metrics.wire import count_docs

logger = logging.getLogger(__name__)

STAGES = ("loader", "normalizer", "encoder", "indexer", "gateway")
KNOWN_ENDPOINTS = frozenset(
    value for name, value in vars(contracts).items() if name.isupper() and isinstance(value, str) and value.startswith("/")
) | {"_jina_dry_run_"}
OTHER_ENDPOINT = "other"
IMAGE_ENDPOINT = contracts.INDEX  # every image indexed passes each stage's /index once

# Seconds: from a cached search (ms) to an encoder batch on a CPU (tens of seconds).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
QUEUE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Documents per request: 1 (a query) up to the request cap (executors/limits.py).
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Counter("imgsearch_requests", "Requests answered", ("stage", "endpoint"), registry=REGISTRY)
ERRORS = Counter("imgsearch_request_errors", "Requests answered with an error", ("stage", "endpoint"), registry=REGISTRY)
LATENCY = Histogram(
    "imgsearch_request_seconds", "Seconds from receiving a request to answering it", ("stage", "endpoint"), buckets=LATENCY_BUCKETS, registry=REGISTRY
)
BATCH_SIZE = Histogram("imgsearch_batch_size", "Documents per request", ("stage", "endpoint"), buckets=BATCH_BUCKETS, registry=REGISTRY)
IMAGES = Counter("imgsearch_images", "Documents of answered /index requests (one image each)", ("stage",), registry=REGISTRY)
INFLIGHT = Gauge("imgsearch_inflight_requests", "Requests received and not yet answered, queued ones included", ("stage",), registry=REGISTRY)
QUEUE = Histogram(
    "imgsearch_queue_seconds", "Seconds a request waits between arriving and its work starting", ("stage",), buckets=QUEUE_BUCKETS, registry=REGISTRY
)


def endpoint_label(endpoint: str) -> str:
    return endpoint if endpoint in KNOWN_ENDPOINTS else OTHER_ENDPOINT


def stage_label(name: str) -> str:
    """The stage of a Jina deployment name (``encoder/rep-0``, ``encoder-clip``, ``gateway``)."""
    base = (name or "").split("/")[0]
    for stage in STAGES:
        if base == stage or base.startswith(stage + "-"):
            return stage
    return base or "unknown"


@dataclass
class Record:
    """One request in this process."""

    endpoint: str  # the label
    docs: Optional[int]  # None: not known without unpacking the documents
    received: float
    started: Optional[float] = None
    batched: bool = False  # waits in Jina's dynamic-batching queue
    answered: bool = False


# The request the current task works for (the worker's handler sets it; see worker.py).
CURRENT: contextvars.ContextVar[Optional[Record]] = contextvars.ContextVar("imgsearch_request", default=None)


class Tracker:
    """The requests of one stage in this process (thread-safe: the gateway and workers answer
    on an event loop, the metrics server reads from its own threads)."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self._lock = threading.Lock()
        self._waiting: dict[str, deque[Record]] = {}  # batched, not started, per endpoint
        self._inflight = INFLIGHT.labels(stage)
        self._inflight.set(0)

    def receive(self, endpoint: str, docs: Optional[int], batched: bool = False) -> Record:
        # An empty request joins no batch (executors/worker_fixes.py answers it at once).
        record = Record(endpoint_label(endpoint), docs, time.perf_counter(), batched=batched and docs != 0)
        self._inflight.inc()
        if batched:
            with self._lock:
                self._waiting.setdefault(record.endpoint, deque()).append(record)
        return record

    @staticmethod
    def start(record: Optional[Record], at: Optional[float] = None) -> None:
        """The work for ``record`` begins (the last call before the answer counts)."""
        if record is not None and not record.answered:
            record.started = time.perf_counter() if at is None else at

    def start_batch(self, endpoint: str, docs: int) -> None:
        """Jina's batch queue handed ``docs`` documents to the handler: the oldest waiting
        requests of ``endpoint`` that hold them start now (the queue keeps arrival order)."""
        now, left = time.perf_counter(), max(docs, 1)
        with self._lock:
            waiting = self._waiting.get(endpoint_label(endpoint))
            while waiting and left > 0:
                record = waiting.popleft()
                self.start(record, now)
                left -= record.docs or 1

    def answer(self, record: Record, error: bool) -> None:
        if record.answered:
            return
        record.answered = True
        if record.batched:
            with self._lock:
                waiting = self._waiting.get(record.endpoint)
                if waiting and record in waiting:
                    waiting.remove(record)  # failed before its batch ran
        self._inflight.dec()
        labels = (self.stage, record.endpoint)
        REQUESTS.labels(*labels).inc()
        LATENCY.labels(*labels).observe(time.perf_counter() - record.received)
        if error:
            ERRORS.labels(*labels).inc()
        if record.docs is not None:
            BATCH_SIZE.labels(*labels).observe(record.docs)
            if not error and record.endpoint == IMAGE_ENDPOINT:
                IMAGES.labels(self.stage).inc(record.docs)
        if record.started is not None:
            QUEUE.labels(self.stage).observe(max(0.0, record.started - record.received))


def docs_in(request: object) -> Optional[int]:
    """Documents a Jina DataRequest carries, without unpacking them (wire.py); None where
    they travel as one serialised blob."""
    body = getattr(request, "_pb_body", None)
    if body is not None and body.DESCRIPTOR.full_name == "jina.DataRequestProto":  # already parsed
        data = body.data
        return len(data.docs.docs) if data.WhichOneof("documents") == "docs" else None
    buffer = getattr(request, "buffer", None)
    return count_docs(buffer) if buffer else None
