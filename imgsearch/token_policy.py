"""Which requests a client sends the server's token with, and over which connections.

The token is the write credential (executors/auth.py). A client sends it only where it is
needed: to the protected endpoints, to a search that asks for its matches' stored paths
(``with_paths``), and to every other endpoint but /info when the client is told the server
requires it for searches too (``IMGSEARCH_TOKEN_FOR_SEARCH`` set on the client as on the
server). It never sends it in clear text (``grpc://``) to a host off this machine, unless
``IMGSEARCH_ALLOW_PLAINTEXT_TOKEN=1`` says the network in between is trusted (a mesh that
encrypts, a private link): a call that needs the token fails with an error that says so; a
search that only wanted its matches' paths goes on without the token (and the paths), with a warning.
"""

import ipaddress
import logging
import os
from typing import Mapping, Optional
from urllib.parse import urlsplit

from executors.auth import OPEN_ENDPOINTS, PATHS_PARAMETER, PROTECTED_ENDPOINTS, TOKEN_FOR_SEARCH_ENV, TOKEN_PARAMETER, switch
from executors.errors import UserError

logger = logging.getLogger(__name__)

ALLOW_PLAINTEXT_ENV = "IMGSEARCH_ALLOW_PLAINTEXT_TOKEN"


class TokenNotSent(UserError):
    """The client would send its token in clear text to another machine."""


def needs_token(endpoint: str, parameters: Optional[dict], environ: Optional[Mapping[str, str]] = None) -> bool:
    """Whether a request to ``endpoint`` with ``parameters`` should carry the token."""
    env = os.environ if environ is None else environ
    if endpoint in OPEN_ENDPOINTS:
        return False
    if endpoint in PROTECTED_ENDPOINTS or (parameters or {}).get(PATHS_PARAMETER):
        return True
    return switch(env.get(TOKEN_FOR_SEARCH_ENV, ""), unreadable=False)


def is_local(host: str) -> bool:
    """Whether a gateway address (``grpc://HOST:PORT``, ``grpcs://...`` or ``HOST:PORT``) is on
    this machine: loopback by name or address."""
    name = urlsplit(host if "://" in host else f"grpc://{host}").hostname or ""
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def encrypted(host: str) -> bool:
    return host.split("://", 1)[0].lower() in ("grpcs", "https", "wss") if "://" in host else False


def with_token(host: str, endpoint: str, parameters: Optional[dict], token: str, environ: Optional[Mapping[str, str]] = None) -> dict:
    """``parameters`` with the token added where needed (see module doc); TokenNotSent when it
    would travel in clear text to another machine."""
    env = os.environ if environ is None else environ
    out = dict(parameters or {})
    if not token or not needs_token(endpoint, parameters, env):
        return out
    if not encrypted(host) and not is_local(host) and not switch(env.get(ALLOW_PLAINTEXT_ENV, ""), unreadable=False):
        if endpoint not in PROTECTED_ENDPOINTS and not switch(env.get(TOKEN_FOR_SEARCH_ENV, ""), unreadable=False):
            # Wanted only for the matches' paths: the search goes on without them.
            logger.warning(
                "%s: not sending the token in clear text to %s; matches come without their paths (use grpcs://, or %s=1)",
                endpoint,
                host,
                ALLOW_PLAINTEXT_ENV,
            )
            return out
        raise TokenNotSent(
            f"{endpoint} needs the token, but {host} is plain grpc:// to another machine: anyone on the "
            f"network would read it. Use grpcs:// (the gateway's TLS, docs/deploy.md), or set "
            f"{ALLOW_PLAINTEXT_ENV}=1 if the network in between is encrypted or private"
        )
    out[TOKEN_PARAMETER] = token
    return out
