"""Starting the flow locally, or reaching a running gateway, and talking to it over gRPC."""

import contextlib
import logging
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, TypeVar

from docarray import DocList

from executors.auth import TOKEN_ENV
from executors.docs import ImageDoc
from executors.encoders.runtime_env import ENV_LANES, ENV_RUNTIME
from executors.gateway import jina_fixes
from imgsearch.token_policy import with_token
from imgsearch.exposure import LOOPBACK, gateway_address, gateway_options
from imgsearch.flowfile import REPO, expand_env, read_flow
from imgsearch.ports import free_port, use_listening_range
from imgsearch.processes import prepare_start_method
from imgsearch.stall import Stalled, run_guarded

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


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def collection_name(dataset: str, model: str, resize: Optional[int] = None, runtime: str | None = None) -> str:
    """One collection per (dataset, model[, runtime][, fixed size]): e.g. ``memes--openai-clip-vit-base-patch32``.

    ``runtime`` is given only where one was asked for by name (compare's ``encoder@runtime``), so
    its vectors (int8's above all) never mix with another runtime's; without it the name is the
    plain one. A slug never holds ``--``, so no two of these names can meet."""
    name = f"{slug(dataset)}--{slug(Path(model).name if Path(model).is_dir() else model)}"
    name += f"--{slug(runtime)}" if runtime else ""
    return f"{name}--{resize}px" if resize else name


def fit_parameter(info: dict) -> dict:
    """Request parameters that let the normalizer apply the encoder's own first resize as it
    decodes (``resize_rule`` from the encoder's /info), so only model-sized pixels travel;
    and, when the encoder decodes JPEGs on its GPU (/info ``device_decode``), leave them as
    bytes (``keep_jpeg``: executors/encoders/device_decode.py)."""
    params = {"fit": info["resize_rule"]} if info.get("resize_rule") else {}
    return {**params, "keep_jpeg": True} if info.get("device_decode") else params


@contextlib.contextmanager
def local_flow(
    encoder: str,
    model: Optional[str] = None,
    store: str = "workspace",
    qdrant_url: Optional[str] = None,
    port: Optional[int] = None,
    resize: Optional[int] = None,
    bind: str = LOOPBACK,
    runtime: str | None = None,
    lanes: str | None = None,
) -> Iterator[str]:
    """Start flows/index.yml (each executor its own gRPC process); yield the gateway address.

    ``runtime`` (torch, onnx, torch-bf16, onnx-int8) and ``lanes`` (executors/encoders/runtimes.index_lanes)
    are this flow's encoder's alone; None: $ENCODER_RUNTIME, $ENCODER_LANES."""
    with _started_flow(encoder, model, store, qdrant_url, port, resize, bind=bind, runtime=runtime,
                       lanes=lanes) as (_, host):
        yield host


SHARED_STAGES = ("loader", "normalizer", "indexer")  # hold no per-encoder state


@contextlib.contextmanager
def local_flows(
    encoders: list[tuple[str, Optional[str]]],
    store: str = "workspace",
    qdrant_url: Optional[str] = None,
    resize: Optional[int] = None,
    bind: str = LOOPBACK,
    port: Optional[int] = None,
) -> Iterator[dict[str, str]]:
    """Several encoders at once, one gateway each; yield {encoder: gateway address}.

    The first flow is flows/index.yml as `local_flow` starts it; the others run only their
    encoder and reach the first flow's loader, normalizer and indexer as external executors
    (as the Kubernetes deployment shares them). One indexer process is also what the
    embedded store requires: a second one could not open it. Gateways listen on ``bind``, at
    ``port``, ``port + 1``... when a port is given (free ports otherwise).
    """
    hosts: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        shared: Optional[dict[str, int]] = None
        for i, (encoder, model) in enumerate(encoders):
            flow, hosts[encoder] = stack.enter_context(_started_flow(
                encoder, model, store, qdrant_url, port + i if port else None, resize, shared, bind))
            shared = shared or {name: flow[name].port for name in SHARED_STAGES}
        yield hosts


def _check_store_free(store: str) -> None:
    """A second writer would fail deep inside the indexer; say so plainly before starting anything.

    Raises StoreInUseError (a UserError). Imported here, not at the top: the store package
    pulls in jina and both Qdrant clients, which `app.py` commands without a flow never need.
    """
    from executors.indexer.store import EdgeStore

    EdgeStore(store).close()


@contextlib.contextmanager
def _started_flow(
    encoder: str,
    model: Optional[str],
    store: str,
    qdrant_url: Optional[str],
    port: Optional[int],
    resize: Optional[int],
    shared: Optional[dict[str, int]] = None,
    bind: str = LOOPBACK,
    runtime: str | None = None,
    lanes: str | None = None,
) -> Iterator[tuple[Any, str]]:
    from jina.excepts import RuntimeFailToStart

    if not qdrant_url and not shared:
        _check_store_free(store)
    use_listening_range()  # before the Flow draws its executors' ports
    port = port or free_port()
    # flows/index.yml's ${{ ENV.* }}: expanded here and handed to the executors as arguments.
    per_flow = dict(
        ENCODER=encoder,
        ENCODER_MODEL=model or "",
        IMGSEARCH_STORE=str(Path(store).resolve()),
        QDRANT_URL=qdrant_url or "",
        GATEWAY_PORT=str(port),
        NORMALIZE_RESIZE=str(resize or ""),
        SHARED_FILES="true",  # every stage runs here, so the normalizer reads the files itself
    )
    # Executors import `executors.*`; spawned processes need the repo on their path.
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(REPO) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO), *paths])
    prepare_start_method(encoder, per_flow)
    jina_fixes.apply()
    os.environ.update(per_flow)
    with contextlib.chdir(REPO):  # the YAML's `uses:` paths are relative to the repo
        flow = _flow_sharing(encoder, port, shared or {}, bind, runtime, lanes)
    with contextlib.ExitStack() as stack:
        try:
            # Executors resolve the YAML's relative paths when they start, wherever app.py runs.
            with contextlib.chdir(REPO):
                stack.enter_context(flow)
        except RuntimeFailToStart as exc:
            raise FlowError(
                f"the flow for encoder '{encoder}' failed to start; the executor's error is in the log above ({exc!r})"
            ) from exc
        yield flow, gateway_address(bind, port)


def _flow_sharing(encoder: str, port: int, shared: dict[str, int], bind: str = LOOPBACK,
                  runtime: str | None = None, lanes: str | None = None) -> Any:
    """flows/index.yml's chain for `encoder`, its `shared` stages reached at running executors.

    Built here, not by ``Flow.load_config``, to bind every socket on purpose: the gateway to
    ``bind``, every executor to loopback (Jina binds 0.0.0.0 else)."""
    from jina import Flow

    spec = read_flow(encoder)
    flow = Flow(protocol=spec["with"].get("protocol", "grpc"), port=port, host=bind, **gateway_options())
    if spec["gateway"].get("uses"):  # the patched gateway class, as `jina flow` would run it
        flow = flow.config_gateway(uses=str(REPO / spec["gateway"]["uses"]))
    # Executors would inherit the Flow's keyword arguments: TLS (the gateway would then dial
    # them with TLS) and the gateway's request cap (stage-to-stage requests carry pixels).
    for_gateway_only = {"ssl_certfile": None, "ssl_keyfile": None, "grpc_server_options": None}
    # Set in the encoder's process alone, not in ours for every later flow.
    encoder_env = {k: v for k, v in ((ENV_RUNTIME, runtime), (ENV_LANES, lanes)) if v}
    for ex in spec["executors"]:
        if ex["name"] in shared:
            flow = flow.add(name=ex["name"], host=LOOPBACK, port=shared[ex["name"]], external=True, **for_gateway_only)
        else:
            uses_with = {k: expand_env(v) for k, v in (ex.get("uses_with") or {}).items()}
            extra = {"uses_dynamic_batching": ex["uses_dynamic_batching"]} if ex.get("uses_dynamic_batching") else {}
            if encoder_env and ex["name"] == "encoder":
                extra["env"] = encoder_env
            flow = flow.add(name=ex["name"], uses=str(REPO / ex["uses"]), uses_with=uses_with, host=LOOPBACK,
                            **for_gateway_only, **extra)
    return flow



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

    def _params(self, endpoint: str, parameters: Optional[dict]) -> dict:
        return with_token(self.host, endpoint, parameters, self.token)  # only where needed (token_policy.py)

    def ready(self) -> bool:
        return bool(self.client.is_flow_ready(timeout=5))

    def post(
        self,
        endpoint: str,
        docs: Iterable[ImageDoc] = (),
        parameters: Optional[dict] = None,
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
                self._send(endpoint, docs, parameters, request_size, lambda r: collect(r, progress),
                           deadline - time.monotonic(), target, prefetch)

            try:
                run_guarded(send, request_timeout)
            except Stalled as exc:
                raise FlowError(f"{endpoint} at {self.host}: {exc}, the deadline of one request; "
                                "a stage behind the gateway is stuck or far too slow") from None
            return out

        return _while_unreachable(endpoint, attempt, min(retry_until, deadline))

    def _send(self, endpoint: str, docs: Iterable[ImageDoc], parameters: Optional[dict], request_size: int,
              collect: Callable[[Any], None], timeout: float, target: Optional[str] = None,
              prefetch: int = PREFETCH) -> None:
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

    def call(self, endpoint: str, parameters: Optional[dict] = None, timeout: Optional[float] = None) -> dict:
        """An endpoint that answers with a result dict (``/info``, ``/count``, ``/stats``...)."""
        results: dict[str, dict] = {}
        for value in self.call_each(endpoint, parameters, timeout).values():
            results.update(value)
        return results

    def call_each(self, endpoint: str, parameters: Optional[dict] = None,
                  timeout: Optional[float] = None) -> dict[str, dict]:
        """Each executor's own answer (``/timings``: every stage answers).

        These only read (or, for ``/delete``, converge), so they retry while an executor restarts.
        """
        deadline = time.monotonic() + (timeout or self.timeout)
        retry_until = time.monotonic() + RETRY_UNREACHABLE_S

        def attempt() -> list:
            try:
                return self.client.post(
                    endpoint,
                    inputs=DocList[ImageDoc](),
                    parameters=self._params(endpoint, parameters),
                    return_responses=True,
                    timeout=max(deadline - time.monotonic(), 0.001),
                )
            except Exception as exc:
                raise self._error(endpoint, exc) from exc

        responses = _while_unreachable(endpoint, attempt, min(retry_until, deadline))
        results: dict[str, dict] = {}
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
                "(killed, crashed or restarting); restart it, or retry once it is up", name)
        if "RESOURCE_EXHAUSTED" in text or "larger than max" in text:
            return FlowError(f"{endpoint} at {self.host}: the request is larger than the gateway's limit "
                             f"({_reason(exc)}); send fewer or smaller images per request")
        if "DEADLINE_EXCEEDED" in text or isinstance(exc, TimeoutError):
            return FlowError(f"{endpoint} at {self.host} did not answer within its deadline: {_reason(exc)}")
        if isinstance(exc, ConnectionError):
            return FlowError(f"cannot reach the gateway at {self.host}: {_reason(exc)}")
        return FlowError(f"{endpoint} failed at {self.host}: {_reason(exc)}")


def _reason(exc: Exception) -> str:
    """The executor's own message, without Jina's wrapping."""
    header = exc.args[0] if exc.args else None
    status = getattr(header, "status", None)
    if status is not None and getattr(status, "description", ""):  # BadServer: the reply's header
        executor = status.exception.executor if status.HasField("exception") else ""
        return f"{executor + ': ' if executor else ''}{status.description}"
    text = str(exc)
    for marker in ("Exception(", "ValueError(", "KeyError(", "RuntimeError("):
        if marker in text:
            return text[text.index(marker):].split("\n")[0]
    return text.split("\n")[0][:500]
