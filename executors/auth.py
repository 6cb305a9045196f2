"""The executors' write credential, without Jina (the client imports it too).

When ``IMGSEARCH_TOKEN`` is set in an executor's environment (a Kubernetes Secret on the
cluster), every request to an endpoint that changes the store or reads the server's files
(``PROTECTED_ENDPOINTS``) must carry it as ``parameters["token"]``; with
``IMGSEARCH_TOKEN_FOR_SEARCH=1`` every other endpoint too, except ``OPEN_ENDPOINTS``. Every
stage checks it before any handler runs (executors/stage.py), so a refused request changes
nothing, however it arrived: through a gateway or straight at an executor's port.
"""

import hmac
import os
from typing import Mapping, Optional

from executors.flow_kwargs import boolean

TOKEN_ENV = "IMGSEARCH_TOKEN"
TOKEN_FOR_SEARCH_ENV = "IMGSEARCH_TOKEN_FOR_SEARCH"
TOKEN_PARAMETER = "token"
# Writes (and /scan, which lists and hashes files on the loader's disk; /stored_paths, which
# lists every path a collection holds).
PROTECTED_ENDPOINTS = frozenset({"/index", "/delete", "/optimize", "/add_paths", "/remove_paths", "/scan", "/scan_total", "/stored_paths"})
# Liveness of the chain, asked by probes and by the client before it has a reason to send a token.
OPEN_ENDPOINTS = frozenset({"/info", "_jina_dry_run_"})


# Operator's switch: matches carry the paths of stored images to every client, not only to
# token holders (docs/reliability.md).
OPEN_PATHS_ENV = "IMGSEARCH_PATHS_FOR_ALL"
# A client asks for the stored paths of its matches (and then sends the token) with this.
PATHS_PARAMETER = "with_paths"
# What a match carries that names a file on the server.
PATH_FIELDS = ("uri", "paths")


class TokenError(PermissionError):
    """A request to a protected endpoint without the right token."""


def require_usable_token(environ: Optional[Mapping[str, str]] = None) -> None:
    """A set but empty (or blank) IMGSEARCH_TOKEN is a start-up error, not auth quietly off:
    a Secret created with an empty value, or ``IMGSEARCH_TOKEN=$UNSET_VAR``, would leave
    every endpoint open. Unset means off (a loopback-only local flow)."""
    env = os.environ if environ is None else environ
    value = env.get(TOKEN_ENV)
    if value is not None and not value.strip():
        raise TokenError(
            f"{TOKEN_ENV} is set but empty: set it to a secret (e.g. `openssl rand -hex 32`), or unset it to run without a token on loopback only"
        )
    if value is not None and value != value.strip():
        raise TokenError(f"{TOKEN_ENV} has leading or trailing whitespace (a stray newline from a file?): strip it")


def paths_allowed(parameters: Optional[dict], environ: Optional[Mapping[str, str]] = None) -> bool:
    """Whether a search's matches may carry stored paths: the request asks for them and holds
    the server's token, or the server has no token (loopback only), or its operator opened
    them to all (IMGSEARCH_PATHS_FOR_ALL)."""
    env = os.environ if environ is None else environ
    expected = env.get(TOKEN_ENV) or ""
    if not expected or switch(env.get(OPEN_PATHS_ENV, ""), unreadable=False):  # unreadable: closed
        return True
    given = str((parameters or {}).get(TOKEN_PARAMETER) or "")
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


def check_token(endpoint: str, parameters: Optional[dict], environ: Optional[Mapping[str, str]] = None) -> None:
    """Raise TokenError unless ``parameters`` carry the token this endpoint needs (see module doc)."""
    env = os.environ if environ is None else environ
    expected = env.get(TOKEN_ENV) or ""
    if not expected or endpoint in OPEN_ENDPOINTS:
        return
    if endpoint not in PROTECTED_ENDPOINTS and not _search_needs_token(env):
        return
    given = str((parameters or {}).get(TOKEN_PARAMETER) or "")
    if not given:
        also = "" if endpoint in PROTECTED_ENDPOINTS else f" and {TOKEN_FOR_SEARCH_ENV}=1 (this server requires it for searches too)"
        raise TokenError(f"{endpoint} needs the server's token: set {TOKEN_ENV} on the client to it{also}; nothing was changed")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise TokenError(f"{endpoint}: wrong token (the client's {TOKEN_ENV} differs from the server's); nothing was changed")


def _search_needs_token(env: Mapping[str, str]) -> bool:
    """IMGSEARCH_TOKEN_FOR_SEARCH read as every other switch is (flow_kwargs.boolean: on/off,
    yes/no, true/false, 1/0); a value it cannot read closes search rather than leaves it open."""
    return switch(env.get(TOKEN_FOR_SEARCH_ENV, ""))


def switch(raw: str, unreadable: bool = True) -> bool:
    value = raw.strip()
    try:
        return bool(value) and boolean(value)
    except ValueError:
        return unreadable
