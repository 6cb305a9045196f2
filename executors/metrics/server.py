"""The metrics endpoint: ``GET /metrics`` with ``Authorization: Bearer <token>``, nothing else.

The token is ``IMGSEARCH_METRICS_TOKEN`` in the process's environment (on Kubernetes the
Secret ``imgsearch-metrics-token``, key ``token``). Without one the server does not start and
one log line says why: request counts and latencies tell an outsider how the service is used,
so they are never served unauthenticated (Jina's own monitoring server, which has no
authentication, is never started either: see worker.py and gateway.py).

What one request can cost is bounded: the request line and headers are read with a short
socket timeout and at most 8 KiB of them, a body is never read, at most ``MAX_CONNECTIONS`` are served at once (others
are closed at once), and a wrong or missing token gets a bare 401, compared in constant time.
"""

import hmac
import http.client
import logging
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Optional

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

logger = logging.getLogger(__name__)

TOKEN_ENV = "IMGSEARCH_METRICS_TOKEN"
HOST_ENV = "IMGSEARCH_METRICS_HOST"  # where to listen instead of the process's own host (local flows: loopback)
PATH = "/metrics"
TIMEOUT_S = 5.0
MAX_CONNECTIONS = 8
MAX_HEADER_BYTES = 8192


def configured_token(environ: Optional[dict] = None) -> Optional[str]:
    """The metrics read token, or None (with the reason logged) when it is unset or unusable."""
    env = os.environ if environ is None else environ
    value = env.get(TOKEN_ENV)
    if value is None:
        # On Kubernetes the manifests set it (a missing Secret is a mistake worth a warning);
        # a local flow without metrics is the default, worth an info line.
        level = logging.WARNING if "KUBERNETES_SERVICE_HOST" in env else logging.INFO
        logger.log(level, "metrics endpoint not started: %s is not set (no metrics are served without a token)", TOKEN_ENV)
        return None
    if not value.strip() or value != value.strip():
        logger.warning("metrics endpoint not started: %s is empty or has surrounding whitespace", TOKEN_ENV)
        return None
    return value


class _CappedReader:
    """The request's input, cut off after ``cap`` bytes: the request line and headers are all
    we ever read, so a client sending more gets 431 after at most ``cap`` bytes read."""

    def __init__(self, raw: Any, cap: int) -> None:
        self._raw, self._left = raw, cap

    def readline(self, limit: int = -1) -> bytes:
        if self._left <= 0:
            raise http.client.LineTooLong("request headers")  # BaseHTTPRequestHandler answers 431
        line: bytes = self._raw.readline(self._left if limit < 0 else min(limit, self._left))
        self._left -= len(line)
        return line

    def read(self, n: int = -1) -> bytes:  # never called for a GET; bounded all the same
        data: bytes = self._raw.read(self._left if n < 0 else min(n, self._left))
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._raw.close()


class _Handler(BaseHTTPRequestHandler):
    server: "MetricsServer"
    timeout = TIMEOUT_S  # per socket read: a client that stalls is dropped
    server_version = "imgsearch-metrics"
    sys_version = ""
    default_request_version = "HTTP/1.0"  # a malformed request still gets a status line
    error_message_format = ""  # and no page with it
    error_content_type = "text/plain; charset=utf-8"

    def _send(self, code: int, body: bytes = b"", content_type: str = "text/plain; charset=utf-8", extra: Iterable[tuple[str, str]] = ()) -> None:
        self.send_response(code)
        for name, value in extra:
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)
        self.close_connection = True

    def _authorised(self) -> bool:
        given = self.headers.get("Authorization", "")
        scheme, _, token = given.partition(" ")
        # compare_digest takes the same time whatever the bytes: the token is not guessed by timing.
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.server.token.encode())

    def do_GET(self) -> None:
        if not self._authorised():
            self._send(401, extra=[("WWW-Authenticate", 'Bearer realm="metrics"')])
        elif self.path.split("?", 1)[0] != PATH:
            self._send(404)
        else:
            self._send(200, self.server.render(), CONTENT_TYPE_LATEST)

    def _refuse(self) -> None:
        self._send(401 if not self._authorised() else 405, extra=[("Allow", "GET")])

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _refuse

    def setup(self) -> None:
        super().setup()
        self.rfile = _CappedReader(self.rfile, MAX_HEADER_BYTES)  # type: ignore[assignment]

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        logger.debug("metrics %s: " + format, self.address_string(), *args)


class MetricsServer(ThreadingHTTPServer):
    """A small HTTP server for one process's metrics, in daemon threads."""

    daemon_threads = True

    def __init__(self, host: str, port: int, token: str, registries: Callable[[], list[CollectorRegistry]]) -> None:
        self.token = token
        self._registries = registries
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up or sent garbage: not worth a traceback on stderr.
        logger.debug("metrics request from %s failed", client_address, exc_info=True)

    def render(self) -> bytes:
        return b"".join(generate_latest(r) for r in self._registries())

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # busy: the scraper retries at its next interval
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        try:
            request.settimeout(TIMEOUT_S)
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def serve(host: str, port: int, registries: Callable[[], list[CollectorRegistry]], what: str) -> Optional[MetricsServer]:
    """Start the metrics endpoint on ``host:port`` (``IMGSEARCH_METRICS_HOST`` overrides the host)
    when a token is configured; None when not."""
    token = configured_token()
    if token is None:
        return None
    host = os.environ.get(HOST_ENV, "").strip() or host
    server = MetricsServer(host, int(port), token, registries)
    threading.Thread(target=server.serve_forever, name="imgsearch-metrics", daemon=True).start()
    logger.info("%s: metrics on http://%s:%d%s (bearer token from %s)", what, host, int(port), PATH, TOKEN_ENV)
    return server
