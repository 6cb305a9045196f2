"""How a local flow's gateway is exposed: its address, TLS and request size cap.

Executors always listen on loopback; the gateway on ``LOOPBACK`` too unless `app.py up --bind`
says otherwise. TLS and the cap come from the environment, as the Kubernetes ConfigMap and
Secret provide them on the cluster.
"""

import os
from dataclasses import dataclass, field
from typing import Any, Optional

from executors.errors import UserError
from executors.limits import MAX_REQUEST_MB, max_request_bytes

LOOPBACK = "127.0.0.1"  # where local flows listen unless the gateway is exposed on purpose (--bind)
MAX_REQUEST_MB_DEFAULT = MAX_REQUEST_MB  # executors/limits.py: the gateway applies it itself too
TLS_CERT_ENV, TLS_KEY_ENV = "IMGSEARCH_TLS_CERT", "IMGSEARCH_TLS_KEY"


class ExposureError(UserError, ValueError):
    """The gateway's TLS settings are incomplete, or its request cap is not a size."""


@dataclass(frozen=True)
class GatewayExposure:
    """How a local gateway is exposed: TLS (a certificate and its key, PEM files) and the
    request size cap. Defaults come from the environment, as the Kubernetes ConfigMap and
    Secret provide them on the cluster."""

    tls_cert: Optional[str] = field(default_factory=lambda: os.environ.get(TLS_CERT_ENV) or None)
    tls_key: Optional[str] = field(default_factory=lambda: os.environ.get(TLS_KEY_ENV) or None)
    max_request_mb: float = field(default_factory=lambda: max_request_bytes() / 2**20)  # IMGSEARCH_MAX_REQUEST_MB

    def __post_init__(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ExposureError(f"TLS needs both a certificate and its key (--tls-cert and --tls-key, or {TLS_CERT_ENV} and {TLS_KEY_ENV})")
        if not self.max_request_mb > 0:
            raise ExposureError(f"the gateway's request cap must be positive, not {self.max_request_mb} MB")

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)


def gateway_address(bind: str, port: int, exposure: GatewayExposure) -> str:
    """The address a client of this machine uses: ``grpcs://`` when the gateway has TLS."""
    host = LOOPBACK if bind in ("0.0.0.0", "::", "") else bind
    return f"{'grpcs' if exposure.tls else 'grpc'}://{host}:{port}"


def gateway_options(exposure: GatewayExposure) -> dict:
    """The gateway's TLS and request size cap, as Jina's Flow/gateway arguments."""
    limit = int(exposure.max_request_mb * 2**20)
    options: dict[str, Any] = {"grpc_server_options": {"grpc.max_receive_message_length": limit}}
    if exposure.tls:
        options.update(ssl_certfile=exposure.tls_cert, ssl_keyfile=exposure.tls_key)
    return options
