"""The gRPC client of a flow's gateway (local or remote), typed for our documents."""

import logging
import os
import re
import time
from typing import Any, Callable, Iterable, Optional, TypeVar

from docarray import DocList

from executors.auth import TOKEN_ENV
from executors.contracts import INFO, STATS, CollectionStats, EncoderInfo, collections_from
from executors.docs import ImageDoc
from imgsearch.stall import Stalled, run_guarded
from imgsearch.token_policy import with_token

logger = logging.getLogger(__name__)

# Every call has a deadline. Control calls (/info, /count, /scan of a page...) get the
# default; a search is one image through every stage, so it gets a short one; /index gets
# INDEX_REQUEST_TIMEOUT_S per request it streams (see imgsearch/indexing.py).
DEFAULT_TIMEOUT_S = 600.0
SEARCH_TIMEOUT_S = 30.0
INDEX_REQUEST_TIMEOUT_S = 300.0
# Idempotent calls ride out a restarting executor (the gateway's channel to a restarted pod
# needs a moment to reconnect) for this long, always within the call's deadline.
RETRY_UNREACHABLE_S = 8.0
PREFETCH = 4  # requests in flight per client call
_UNREACHABLE = re.compile(r"Communication error with deployment (\S+) at address")


class FlowError(RuntimeError):
    """The flow could not start, or a request through it failed; the message says why."""


class ExecutorUnreachable(FlowError):
    """The gateway is up but one executor behind it is down (killed, crashed, restarting)."""

    def __init__(self, message: str, executor: str):
        super().__init__(message)
        self.executor = executor


def fit_parameter(info: EncoderInfo) -> dict[str, Any]:
    """Request parameters that let the normalizer apply the encoder's own first resize as it
    decodes (``resize_rule`` from the encoder's /info), so only model-sized pixels travel;
    and, when the encoder decodes JPEGs on its GPU (/info ``device_decode``), leave them as
    bytes (``keep_jpeg``: executors/encoders/device_decode.py)."""
    params = {"fit": info.resize_rule} if info.resize_rule else {}
    return {**params, "keep_jpeg": True} if info.device_decode else params


T = TypeVar("T")


def _while_unreachable(endpoint: str, attempt: Callable[[], T], until: float) -> T:
    """``attempt()``, tried again with backoff while an executor behind the gateway is
    unreachable (ExecutorUnreachable: e.g. a pod restarting), until the monotonic time ``until``."""
    wait = 0.25
    while True:
        try:
            return attempt()
        except ExecutorUnreachable:
            if time.monotonic() + wait >= until:
                raise
            logger.info("%s: an executor is unreachable; retrying in %.2fs", endpoint, wait)
            time.sleep(wait)
            wait = min(wait * 2, 2.0)


class Gateway:
    """A thin gRPC client of the flow's gateway, typed for our documents."""

    def __init__(self, host: str, timeout: float = DEFAULT_TIMEOUT_S, token: Optional[str] = None):
        from jina import Client

        self.host = host
        self.timeout = timeout
        # The executors' write credential (executors/stage.py), sent only where needed.
        self.token = token if token is not None else os.environ.get(TOKEN_ENV, "")
        self.client = Client(host=host)

    def _params(self, endpoint: str, parameters: Optional[dict[str, Any]]) -> dict[str, Any]:
        return with_token(self.host, endpoint, parameters, self.token)  # only where needed (token_policy.py)

    def ready(self) -> bool:
        return bool(self.client.is_flow_ready(timeout=5))

    def encoder_info(self) -> EncoderInfo:
        """The encoder behind this gateway, as its ``/info`` describes it."""
        answer = self.call(INFO)
        if "model" not in answer:
            raise FlowError(f"the gateway at {self.host} has no encoder answering {INFO}")
        return EncoderInfo.from_dict(answer)

    def collections(self) -> list[CollectionStats]:
        """The store's collections, as the indexer's ``/stats`` lists them."""
        return collections_from(self.call(STATS))

    def post(
        self,
        endpoint: str,
        docs: Iterable[ImageDoc] = (),
        parameters: Optional[dict[str, Any]] = None,
        request_size: int = 32,
        on_done: Optional[Callable[[DocList[ImageDoc]], None]] = None,
        timeout: Optional[float] = None,
        retry_unreachable_s: float = 0.0,
        request_timeout: Optional[float] = None,
        target: Optional[str] = None,
        prefetch: int = PREFETCH,
    ) -> DocList[ImageDoc]:
        """Send docs (streamed in requests of ``request_size``); return or hand back the results.

        ``timeout`` is the deadline of the whole call (default: the gateway's);
        ``request_timeout``, when given, fails the call once no response came for that long
        (imgsearch/stall.py): a stuck stage costs one request's deadline, not the call's. Idempotent
        calls may pass ``retry_unreachable_s`` to retry, within that deadline, while an
        executor behind the gateway is unreachable (e.g. a pod restarting). ``target`` (a
        regular expression over flows/index.yml's executor names, e.g. ``loader|indexer``)
        limits the request to those executors: the others do not unpack and repack documents
        they would pass on untouched.
        """
        deadline = time.monotonic() + (timeout or self.timeout)
        if not isinstance(docs, (list, tuple)):
            retry_unreachable_s = 0.0  # a generator cannot be sent twice
        retry_until = time.monotonic() + retry_unreachable_s

        def attempt() -> DocList[ImageDoc]:
            out = DocList[ImageDoc]()

            def collect(resp: Any, progress: Callable[[], None] = lambda: None) -> None:
                resp.document_array_cls = DocList[ImageDoc]  # else callbacks see untyped AnyDocs
                got = resp.docs
                if on_done is not None:
                    on_done(got)
                else:
                    out.extend(got)
                progress()

            def send(progress: Callable[[], None]) -> None:
                self._send(endpoint, docs, parameters, request_size, lambda r: collect(r, progress), deadline - time.monotonic(), target, prefetch)

            try:
                run_guarded(send, request_timeout)
            except Stalled as exc:
                raise FlowError(
                    f"{endpoint} at {self.host}: {exc}, the deadline of one request; a stage behind the gateway is stuck or far too slow"
                ) from None
            return out

        return _while_unreachable(endpoint, attempt, min(retry_until, deadline))

    def _send(
        self,
        endpoint: str,
        docs: Iterable[ImageDoc],
        parameters: Optional[dict[str, Any]],
        request_size: int,
        collect: Callable[[Any], None],
        timeout: float,
        target: Optional[str] = None,
        prefetch: int = PREFETCH,
    ) -> None:
        try:
            self.client.post(
                endpoint,
                target_executor=target,
                inputs=docs if not isinstance(docs, (list, tuple)) or docs else DocList[ImageDoc](),
                parameters=self._params(endpoint, parameters),
                request_size=request_size,
                on_done=collect,
                return_type=DocList[ImageDoc],
                timeout=max(timeout, 0.001),
                # Enough requests in flight to keep every stage busy, few enough that memory
                # stays flat however many images are sent (executors queue what arrives).
                prefetch=prefetch,
            )
        except Exception as exc:  # Jina wraps executor errors in several exception types
            raise self._error(endpoint, exc) from exc

    def call(self, endpoint: str, parameters: Optional[dict[str, Any]] = None, timeout: Optional[float] = None) -> dict[str, Any]:
        """An endpoint that answers with a result dict (``/info``, ``/count``, ``/stats``...)."""
        results: dict[str, dict[str, Any]] = {}
        for value in self.call_each(endpoint, parameters, timeout).values():
            results.update(value)
        return results

    def call_each(self, endpoint: str, parameters: Optional[dict[str, Any]] = None, timeout: Optional[float] = None) -> dict[str, dict[str, Any]]:
        """Each executor's own answer (``/timings``: every stage answers).

        These only read (or, for ``/delete``, converge), so they retry while an executor restarts.
        """
        deadline = time.monotonic() + (timeout or self.timeout)
        retry_until = time.monotonic() + RETRY_UNREACHABLE_S

        def attempt() -> list[Any]:
            try:
                responses: list[Any] = self.client.post(
                    endpoint,
                    inputs=DocList[ImageDoc](),
                    parameters=self._params(endpoint, parameters),
                    return_responses=True,
                    timeout=max(deadline - time.monotonic(), 0.001),
                )
                return responses
            except Exception as exc:
                raise self._error(endpoint, exc) from exc

        responses = _while_unreachable(endpoint, attempt, min(retry_until, deadline))
        results: dict[str, dict[str, Any]] = {}
        for resp in responses:
            for executor, value in (resp.parameters.get("__results__") or {}).items():
                results.setdefault(executor, {}).update(value)
        return results

    def _error(self, endpoint: str, exc: Exception) -> FlowError:
        """One readable FlowError for whatever Jina raised; names the executor when one is down."""
        text = str(exc)
        down = _UNREACHABLE.search(text)
        if down:
            name = down.group(1)
            return ExecutorUnreachable(
                f"{endpoint} failed: executor '{name}' is down or unreachable behind the gateway at {self.host} "
                "(killed, crashed or restarting); restart it, or retry once it is up",
                name,
            )
        if "RESOURCE_EXHAUSTED" in text or "larger than max" in text:
            return FlowError(
                f"{endpoint} at {self.host}: the request is larger than the gateway's limit "
                f"({_reason(exc)}); send fewer or smaller images per request"
            )
        if "DEADLINE_EXCEEDED" in text or isinstance(exc, TimeoutError):
            return FlowError(f"{endpoint} at {self.host} did not answer within its deadline: {_reason(exc)}")
        if isinstance(exc, ConnectionError):
            return FlowError(f"cannot reach the gateway at {self.host}: {_reason(exc)}")
        return FlowError(f"{endpoint} failed at {self.host}: {_reason(exc)}")


def _reason(exc: Exception) -> str:
    """The executor's own message, without Jina's wrapping."""
    header = exc.args[0] if exc.args else None
    status = getattr(header, "status", None)
    description: str = getattr(status, "description", "") if status is not None else ""
    if status is not None and description:  # BadServer: the reply's header
        executor = status.exception.executor if status.HasField("exception") else ""
        return f"{executor + ': ' if executor else ''}{description}"
    text = str(exc)
    for marker in ("Exception(", "ValueError(", "KeyError(", "RuntimeError("):
        if marker in text:
            return text[text.index(marker) :].split("\n")[0]
    return text.split("\n")[0][:500]
