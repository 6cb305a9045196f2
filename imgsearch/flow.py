"""Starting the flow locally, or reaching a running gateway, and talking to it over gRPC."""

import contextlib
import logging
import multiprocessing
import os
import re
import socket
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

from docarray import DocList

from executors.docs import ImageDoc

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
FLOW_YAML = REPO / "flows" / "index.yml"
DEFAULT_TIMEOUT_S = 600.0
PREFETCH = 4  # requests in flight per client call


class FlowError(RuntimeError):
    """The flow could not start, or a request through it failed; the message says why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def collection_name(dataset: str, model: str, resize: Optional[int] = None) -> str:
    """One collection per (dataset, model[, fixed size]): e.g. ``memes--openai-clip-vit-base-patch32``."""
    name = f"{slug(dataset)}--{slug(Path(model).name if Path(model).is_dir() else model)}"
    return f"{name}--{resize}px" if resize else name


def _prepare_start_method(encoder: str) -> None:
    """Fork by default: executor processes then inherit the imports (torch, transformers,
    jina) instead of paying for them again, which cuts flow start-up several-fold. A forked
    child of a process that has already run torch compute can deadlock in OpenMP, so such
    processes (the test-suite embeds in process) set IMGSEARCH_START_METHOD=spawn.
    """
    method = os.environ.get("IMGSEARCH_START_METHOD", "fork")
    multiprocessing.set_start_method(method, force=True)
    if method == "fork":
        import importlib

        from executors.encoders.specs import get_spec

        for module in ("executors.loader", "executors.normalizer", "executors.indexer",
                       f"executors.encoders.{get_spec(encoder).family}"):
            importlib.import_module(module)


def _skip_empty_unknown_arg_warning() -> None:
    """Jina 3.34 builds its whole command-line parser (~2 s of a 3-4 s start) on every
    ``Flow.load_config`` to warn about unknown arguments, even when there are none; only
    warn when there are.
    """
    import jina.helper

    original = jina.helper.warn_unknown_args
    if getattr(original, "skips_empty", False):
        return

    def warn_unknown_args(unknown_args) -> None:
        if unknown_args:
            original(unknown_args)

    warn_unknown_args.skips_empty = True
    jina.helper.warn_unknown_args = warn_unknown_args


@contextlib.contextmanager
def local_flow(
    encoder: str,
    model: Optional[str] = None,
    store: str = "workspace",
    qdrant_url: Optional[str] = None,
    port: Optional[int] = None,
    resize: Optional[int] = None,
) -> Iterator[str]:
    """Start flows/index.yml (each executor its own gRPC process); yield the gateway address."""
    from jina import Flow
    from jina.excepts import RuntimeFailToStart

    _prepare_start_method(encoder)
    _skip_empty_unknown_arg_warning()
    port = port or free_port()
    os.environ.update(
        ENCODER=encoder,
        ENCODER_MODEL=model or "",
        IMGSEARCH_STORE=str(Path(store).resolve()),
        QDRANT_URL=qdrant_url or "",
        GATEWAY_PORT=str(port),
        NORMALIZE_RESIZE=str(resize or ""),
    )
    # Executors import `executors.*`; spawned processes need the repo on their path.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    with contextlib.chdir(REPO):  # the YAML's `uses:` paths are relative to the repo
        flow = Flow.load_config(str(FLOW_YAML))
    try:
        with flow:
            yield f"grpc://127.0.0.1:{port}"
    except RuntimeFailToStart as exc:
        raise FlowError(
            f"the flow for encoder '{encoder}' failed to start; the executor's error is in the log above ({exc!r})"
        ) from exc


class Gateway:
    """A thin gRPC client of the flow's gateway, typed for our documents."""

    def __init__(self, host: str, timeout: float = DEFAULT_TIMEOUT_S):
        from jina import Client

        self.host = host
        self.timeout = timeout
        self.client = Client(host=host)

    def ready(self) -> bool:
        return bool(self.client.is_flow_ready(timeout=5))

    def post(
        self,
        endpoint: str,
        docs: Iterable[ImageDoc] = (),
        parameters: Optional[dict] = None,
        request_size: int = 32,
        on_done: Optional[Callable[[DocList[ImageDoc]], None]] = None,
    ) -> DocList[ImageDoc]:
        """Send docs (streamed in requests of ``request_size``); return or hand back the results."""
        out = DocList[ImageDoc]()

        def collect(resp: Any) -> None:
            resp.document_array_cls = DocList[ImageDoc]  # else callbacks see untyped AnyDocs
            got = resp.docs
            if on_done is not None:
                on_done(got)
            else:
                out.extend(got)

        try:
            self.client.post(
                endpoint,
                inputs=docs if not isinstance(docs, (list, tuple)) or docs else DocList[ImageDoc](),
                parameters=parameters or {},
                request_size=request_size,
                on_done=collect,
                return_type=DocList[ImageDoc],
                timeout=self.timeout,
                # Enough requests in flight to keep every stage busy, few enough that memory
                # stays flat however many images are sent (executors queue what arrives).
                prefetch=PREFETCH,
            )
        except ConnectionError as exc:
            raise FlowError(f"cannot reach the gateway at {self.host}: {exc}") from exc
        except Exception as exc:  # Jina wraps executor errors in several exception types
            raise FlowError(f"{endpoint} failed at {self.host}: {_reason(exc)}") from exc
        return out

    def call(self, endpoint: str, parameters: Optional[dict] = None) -> dict:
        """An endpoint that answers with a result dict (``/info``, ``/count``, ``/stats``...)."""
        results: dict = {}
        for value in self.call_each(endpoint, parameters).values():
            results.update(value)
        return results

    def call_each(self, endpoint: str, parameters: Optional[dict] = None) -> dict[str, dict]:
        """Each executor's own answer to an endpoint every stage serves (``/timings``)."""
        try:
            responses = self.client.post(
                endpoint,
                inputs=DocList[ImageDoc](),
                parameters=parameters or {},
                return_responses=True,
                timeout=self.timeout,
            )
        except ConnectionError as exc:
            raise FlowError(f"cannot reach the gateway at {self.host}: {exc}") from exc
        except Exception as exc:
            raise FlowError(f"{endpoint} failed at {self.host}: {_reason(exc)}") from exc
        results: dict[str, dict] = {}
        for resp in responses:
            for executor, value in (resp.parameters.get("__results__") or {}).items():
                results.setdefault(executor, {}).update(value)
        return results


def _reason(exc: Exception) -> str:
    """The executor's own message, without Jina's wrapping."""
    text = str(exc)
    for marker in ("Exception(", "ValueError(", "KeyError(", "RuntimeError("):
        if marker in text:
            return text[text.index(marker):].split("\n")[0]
    return text.split("\n")[0][:500]
