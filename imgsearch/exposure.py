"""How a local flow's gateway is exposed: its address, TLS and request size cap.

Executors always listen on loopback; the gateway on ``LOOPBACK`` too unless `app.py up --bind`
says otherwise. TLS and the cap come from the environment, as the Kubernetes ConfigMap and
Secret provide them on the cluster.
"""

import os
from typing import Any

from executors.errors import UserError
from executors.limits import MAX_REQUEST_MB, max_request_bytes

LOOPBACK = "127.0.0.1"  # where local flows listen unless the gateway is exposed on purpose (--bind)
MAX_REQUEST_MB_DEFAULT = MAX_REQUEST_MB  # executors/limits.py: the gateway applies it itself too
TLS_CERT_ENV, TLS_KEY_ENV = "IMGSEARCH_TLS_CERT", "IMGSEARCH_TLS_KEY"


class ExposureError(UserError, ValueError):
    """The gateway's TLS settings are incomplete."""


def gateway_address(bind: str, port: int) -> str:
    """The address a client of this machine uses: ``grpcs://`` when the gateway has TLS."""
    scheme = "grpcs" if os.environ.get(TLS_CERT_ENV) else "grpc"
    host = LOOPBACK if bind in ("0.0.0.0", "::", "") else bind
    return f"{scheme}://{host}:{port}"


def gateway_options() -> dict:
    """The gateway's TLS (certificate and key files named by IMGSEARCH_TLS_CERT/_KEY) and its
    request size cap (IMGSEARCH_MAX_REQUEST_MB), as Jina's Flow/gateway arguments."""
    cert, key = os.environ.get(TLS_CERT_ENV), os.environ.get(TLS_KEY_ENV)
    if bool(cert) != bool(key):
        raise ExposureError(f"TLS needs both {TLS_CERT_ENV} and {TLS_KEY_ENV} (a certificate and its key)")
    limit = max_request_bytes()
    options: dict[str, Any] = {"grpc_server_options": {"grpc.max_receive_message_length": limit}}
    if cert:
        options.update(ssl_certfile=cert, ssl_keyfile=key)
    return options


def max_request_mb() -> float:
    return max_request_bytes() / 2**20
