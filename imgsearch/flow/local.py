"""Starting flows/index.yml on this machine: one value (FlowConfig) in, a gateway address out.

Configuration goes down as arguments: the YAML's ``${{ ENV.X }}`` placeholders are filled from
the FlowConfig, not from our environment, and what an executor reads from its environment
(the runtime, the Qdrant key, a Vertex project) is handed to that executor's process alone
through Jina's ``env``. The parent's environment is left as it was.
"""

import contextlib
import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

from executors.encoders.runtime_env import ENV_LANES, ENV_RUNTIME
from executors.gateway import jina_fixes
from executors.metrics.server import HOST_ENV as METRICS_HOST_ENV
from executors.metrics.server import TOKEN_ENV as METRICS_TOKEN_ENV
from imgsearch.exposure import LOOPBACK, GatewayExposure, gateway_address, gateway_options
from imgsearch.flow.client import FlowError
from imgsearch.flowfile import REPO, expand_env, read_flow
from imgsearch.ports import free_port, use_listening_range
from imgsearch.processes import prepare_start_method

logger = logging.getLogger(__name__)

SHARED_STAGES = ("loader", "normalizer", "indexer")  # hold no per-encoder state
QDRANT_KEY_ENV = "QDRANT_API_KEY"  # what executors/indexer/store/server.py reads


@dataclass(frozen=True)
class FlowConfig:
    """Everything one local flow is started with."""

    encoder: str
    model: Optional[str] = None  # checkpoint override; None: the encoder's default
    store: str = "workspace"  # the embedded Qdrant folder (unused with qdrant_url)
    qdrant_url: Optional[str] = None
    qdrant_api_key: Optional[str] = None
    resize: Optional[int] = None
    runtime: Optional[str] = None  # torch | onnx | torch-bf16 | onnx-int8 | auto; None: $ENCODER_RUNTIME
    lanes: Optional[str] = None  # executors/encoders/runtimes.index_lanes; None: $ENCODER_LANES
    bind: str = LOOPBACK  # the gateway's address; executors always stay on loopback
    port: Optional[int] = None  # the gateway's port; None: a free one
    exposure: GatewayExposure = field(default_factory=GatewayExposure)  # TLS and the request cap
    encoder_env: Mapping[str, str] = field(default_factory=dict)  # more variables for the encoder alone
    # Stages reached at "host:port", not started here. A name that resolves to several
    # addresses (a headless Service's) is one replica per address: the gateway balances
    # requests over them and keeps up as they come and go (executors/gateway/replicas.py).
    external: Mapping[str, str] = field(default_factory=dict)
    replicas: Mapping[str, int] = field(default_factory=dict)  # stage name -> processes (Jina round-robins requests); absent: 1
    uses: Mapping[str, str] = field(default_factory=dict)  # stage name -> another executor YAML (the bench's simulated GPU)
    metrics_token: Optional[str] = None  # set: every process serves /metrics on loopback with it (docs/metrics.md)

    def with_encoder(self, encoder: str, model: Optional[str] = None) -> "FlowConfig":
        return dataclasses.replace(self, encoder=encoder, model=model)

    def placeholders(self, port: int) -> dict[str, str]:
        """flows/index.yml's ``${{ ENV.* }}``, filled for this flow."""
        return dict(
            ENCODER=self.encoder,
            # A local folder given relative to where app.py runs: absolute, since executors start in the repo.
            ENCODER_MODEL=str(Path(self.model).resolve()) if self.model and Path(self.model).exists() else self.model or "",
            IMGSEARCH_STORE=str(Path(self.store).resolve()),
            QDRANT_URL=self.qdrant_url or "",
            GATEWAY_PORT=str(port),
            NORMALIZE_RESIZE=str(self.resize or ""),
            SHARED_FILES="true",  # every stage runs here, so the normalizer reads the files itself
        )

    def executor_env(self, name: str) -> dict[str, str]:
        """The variables one executor's process gets on top of ours."""
        env: dict[str, str] = {}
        if name == "indexer" and self.qdrant_api_key:
            env[QDRANT_KEY_ENV] = self.qdrant_api_key
        if name == "encoder":
            env.update({k: v for k, v in ((ENV_RUNTIME, self.runtime), (ENV_LANES, self.lanes)) if v})
            env.update(self.encoder_env)
        env.update(self.metrics_env())
        return env

    def metrics_env(self) -> dict[str, str]:
        """What turns the metrics endpoint on in a process: the token, and loopback to serve on."""
        return {METRICS_TOKEN_ENV: self.metrics_token, METRICS_HOST_ENV: LOOPBACK} if self.metrics_token is not None else {}


@contextlib.contextmanager
def local_flow(encoder: str, model: Optional[str] = None, *, config: Optional[FlowConfig] = None, **settings: Any) -> Iterator[str]:
    """Start flows/index.yml (each executor its own gRPC process); yield the gateway address.

    ``config`` carries the settings; keyword ``settings`` (store=, runtime=, lanes=...) are a
    shorthand for the FlowConfig fields."""
    config = dataclasses.replace(config or FlowConfig(encoder), encoder=encoder, model=model, **settings)
    with _started_flow(config) as (_, host):
        yield host


@contextlib.contextmanager
def local_flow_handle(config: FlowConfig) -> Iterator[tuple[Any, str]]:
    """As `local_flow`, yielding the Jina Flow too: its processes' addresses (imgsearch/metrics_scrape.py)."""
    with _started_flow(config) as started:
        yield started


@contextlib.contextmanager
def local_flows(
    encoders: list[tuple[str, Optional[str]]], config: Optional[FlowConfig] = None, started: Optional[dict[str, Any]] = None, **settings: Any
) -> Iterator[dict[str, str]]:
    """Several encoders at once, one gateway each; yield {encoder: gateway address}.

    The first flow is flows/index.yml as `local_flow` starts it; the others run only their
    encoder and reach the first flow's loader, normalizer and indexer as external executors
    (as the Kubernetes deployment shares them). One indexer process is also what the
    embedded store requires: a second one could not open it. Gateways listen on ``bind``, at
    ``port``, ``port + 1``... when a port is given (free ports otherwise). ``started``, when
    given, receives {encoder: its Jina Flow} (imgsearch/metrics_scrape.py reads their addresses).
    """
    base = dataclasses.replace(config or FlowConfig(encoders[0][0]), **settings)
    hosts: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        shared: Optional[dict[str, list[int]]] = None
        for i, (encoder, model) in enumerate(encoders):
            one = dataclasses.replace(base.with_encoder(encoder, model), port=base.port + i if base.port else None)
            flow, hosts[encoder] = stack.enter_context(_started_flow(one, shared))
            if started is not None:
                started[encoder] = flow
            shared = shared or {name: list(flow[name].ports) for name in SHARED_STAGES}  # every replica's
        yield hosts


def _check_store_free(store: str) -> None:
    """A second writer would fail deep inside the indexer; say so plainly before starting anything.

    Raises StoreInUseError (a UserError). Imported here, not at the top: the store package
    pulls in jina and both Qdrant clients, which `app.py` commands without a flow never need.
    """
    from executors.indexer.store import EdgeStore

    EdgeStore(store).close()


@contextlib.contextmanager
def _python_path() -> Iterator[None]:
    """The repo on PYTHONPATH while executor processes start (spawned ones import
    ``executors.*``), and the variable as it was afterwards."""
    before = os.environ.get("PYTHONPATH")
    paths = [p for p in (before or "").split(os.pathsep) if p]
    if str(REPO) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO), *paths])
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before


@contextlib.contextmanager
def _started_flow(config: FlowConfig, shared: Optional[dict[str, list[int]]] = None) -> Iterator[tuple[Any, str]]:
    from jina.excepts import RuntimeFailToStart

    if not config.qdrant_url and not shared:
        _check_store_free(config.store)
    use_listening_range()  # before the Flow draws its executors' ports
    port = config.port or free_port()
    placeholders = config.placeholders(port)
    prepare_start_method(config.encoder, placeholders)
    jina_fixes.apply()
    with contextlib.chdir(REPO):  # the YAML's `uses:` paths are relative to the repo
        flow = _flow_sharing(config, port, placeholders, shared or {})
    with contextlib.ExitStack() as stack:
        try:
            # Executors resolve the YAML's relative paths when they start, wherever app.py runs.
            with contextlib.chdir(REPO), _python_path():
                stack.enter_context(flow)
        except RuntimeFailToStart as exc:
            raise FlowError(f"the flow for encoder '{config.encoder}' failed to start; the executor's error is in the log above ({exc!r})") from exc
        yield flow, gateway_address(config.bind, port, config.exposure)


def _flow_sharing(config: FlowConfig, port: int, placeholders: Mapping[str, str], shared: dict[str, list[int]]) -> Any:
    """flows/index.yml's chain for the encoder, its ``shared`` stages reached at running executors.

    Built here, not by ``Flow.load_config``, to bind every socket on purpose: the gateway to
    ``bind``, every executor to loopback (Jina binds 0.0.0.0 else)."""
    from jina import Flow

    spec = read_flow(config.encoder)
    flow = Flow(protocol=spec["with"].get("protocol", "grpc"), port=port, host=config.bind, **gateway_options(config.exposure))
    if spec["gateway"].get("uses"):  # the patched gateway class, as `jina flow` would run it
        flow = flow.config_gateway(uses=str(REPO / spec["gateway"]["uses"]), env=config.metrics_env() or None)
    # Executors would inherit the Flow's keyword arguments: TLS (the gateway would then dial
    # them with TLS) and the gateway's request cap (stage-to-stage requests carry pixels).
    for_gateway_only = {"ssl_certfile": None, "ssl_keyfile": None, "grpc_server_options": None}
    for ex in spec["executors"]:
        if ex["name"] in shared:
            flow = flow.add(name=ex["name"], host=LOOPBACK, port=shared[ex["name"]], external=True, **for_gateway_only)
            continue
        if ex["name"] in config.external:
            host, _, where = config.external[ex["name"]].rpartition(":")
            flow = flow.add(name=ex["name"], host=host, port=int(where), external=True, **for_gateway_only)
            continue
        uses_with = {k: expand_env(v, placeholders) for k, v in (ex.get("uses_with") or {}).items()}
        extra: dict[str, Any] = {"uses_dynamic_batching": ex["uses_dynamic_batching"]} if ex.get("uses_dynamic_batching") else {}
        env = config.executor_env(ex["name"])
        if env:
            extra["env"] = env  # set in that executor's process alone, not in ours for every later flow
        uses, replicas = config.uses.get(ex["name"], ex["uses"]), config.replicas.get(ex["name"], 1)
        flow = flow.add(name=ex["name"], uses=str(REPO / uses), uses_with=uses_with, host=LOOPBACK, replicas=replicas, **for_gateway_only, **extra)
    return flow
