"""What executors and clients exchange besides documents: the endpoint names, the encoder's
``/info`` and the indexer's ``/stats``. Both sides build and read these types, so a field
renamed on one side fails on the other in a test, not in a user's run.

On the wire these travel as plain dicts in the response's results (Jina's endpoint return
value); ``to_dict`` and ``from_dict`` are the one translation. Unknown keys a newer executor
sends are kept in ``extra``, so an older client reads what it knows and ignores the rest.
"""

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, TypeVar

# Endpoints (executors' @requests(on=...) and clients' calls use these names).
INDEX = "/index"
SEARCH = "/search"
INFO = "/info"
COUNT = "/count"
STATS = "/stats"
SCAN = "/scan"
SCAN_TOTAL = "/scan_total"
ADD_PATHS = "/add_paths"
STORED_PATHS = "/stored_paths"
REMOVE_PATHS = "/remove_paths"
DELETE = "/delete"
OPTIMIZE = "/optimize"
TIMINGS = "/timings"

T = TypeVar("T", bound="_Contract")


class _Contract:
    """from_dict/to_dict for a dataclass with an ``extra`` field for keys it does not name."""

    extra: dict[str, Any]

    @classmethod
    def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}  # type: ignore[arg-type]  # cls: a dataclass
        known = {k: v for k, v in data.items() if k in names}
        make: Callable[..., T] = cls  # the dataclass's own __init__
        return make(**known, extra={k: v for k, v in data.items() if k not in names})

    def to_dict(self) -> dict[str, Any]:
        fields = dataclasses.fields(self)  # type: ignore[arg-type]  # self: a dataclass
        out = {f.name: getattr(self, f.name) for f in fields if f.name != "extra"}
        return {**self.extra, **out}


@dataclass(frozen=True)
class EncoderInfo(_Contract):
    """An encoder executor's answer to ``/info``."""

    encoder: str  # the registry name: clip, efficientnet-lite0...
    model: str  # the checkpoint it runs (hub id, local folder or API model)
    dim: int
    family: str = ""
    batch_size: Optional[int] = None
    load_seconds: float = 0.0
    pooling: str = ""
    peak_rss_mb: Optional[float] = None  # the encoder process's high-water mark so far
    text: bool = False  # can embed text queries
    device: str = "cpu"  # cpu, cuda:0, or "remote: ..." for an API
    dtype: str = "float32"
    runtime: Optional[str] = None  # torch | onnx | torch-bf16 | onnx-int8; None: a remote API
    lanes: Optional[int] = None  # batches encoded side by side
    replicas: int = 1  # encoder replicas the gateway balances over (the gateway fills it in)
    num_threads: Optional[int] = None  # threads of one batch (compare's cost table: ms per image on how many)
    lanes_peak_busy: Optional[int] = None
    onnx_provider: Optional[str] = None
    device_decode: Optional[str] = None  # set: clients ask the normalizer to leave JPEGs as bytes
    preprocess: Optional[dict[str, Any]] = None
    resize_rule: Optional[dict[str, Any]] = None  # clients pass it to the normalizer (``fit``)
    torch: Optional[str] = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def remote(self) -> bool:
        return self.device.startswith("remote")


@dataclass(frozen=True)
class CollectionStats(_Contract):
    """One collection in the indexer's answer to ``/stats`` (and in `app.py stats`)."""

    name: str
    count: int
    disk_bytes: Optional[int] = None  # None on a Qdrant server
    encoder: Optional[str] = None
    model: Optional[str] = None
    dim: Optional[int] = None
    extra: dict[str, Any] = field(default_factory=dict)  # the rest of the collection's metadata


def collections_from(answer: Mapping[str, Any]) -> list[CollectionStats]:
    """The collections of a ``/stats`` answer."""
    return [CollectionStats.from_dict(c) for c in answer.get("collections") or []]
