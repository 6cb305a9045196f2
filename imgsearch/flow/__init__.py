"""Flows: collection naming (naming.py), starting flows/index.yml here (local.py, FlowConfig) and
the gRPC client of a gateway (client.py). Importing this package loads neither jina nor torch
until a flow starts or a client connects."""

from imgsearch.flow.client import (
    DEFAULT_TIMEOUT_S,
    INDEX_REQUEST_TIMEOUT_S,
    PREFETCH,
    RETRY_UNREACHABLE_S,
    SEARCH_TIMEOUT_S,
    ExecutorUnreachable,
    FlowError,
    Gateway,
    fit_parameter,
)
from imgsearch.flow.local import SHARED_STAGES, FlowConfig, local_flow, local_flows
from imgsearch.flow.naming import collection_name, slug
from imgsearch.flowfile import REPO
from imgsearch.ports import free_port

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "INDEX_REQUEST_TIMEOUT_S",
    "PREFETCH",
    "RETRY_UNREACHABLE_S",
    "SEARCH_TIMEOUT_S",
    "REPO",
    "SHARED_STAGES",
    "ExecutorUnreachable",
    "FlowConfig",
    "FlowError",
    "Gateway",
    "collection_name",
    "fit_parameter",
    "free_port",
    "local_flow",
    "local_flows",
    "slug",
]
