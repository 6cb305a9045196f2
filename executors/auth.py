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
PROTECTED_ENDPOINTS = frozenset({"/index", "/delete", "/optimize", "/add_paths", "/remove_paths", "/scan",
                                 "/scan_total", "/stored_paths"})
# Liveness of the chain, asked by probes and by the client before it has a reason to send a token.
OPEN_ENDPOINTS = frozenset({"/info", "_jina_dry_run_"})


class TokenError(PermissionError):
    """A request to a protected endpoint without the right token."""


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
        raise TokenError(f"{endpoint} needs the server's token: set {TOKEN_ENV} on the client to it; nothing was changed")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise TokenError(f"{endpoint}: wrong token (the client's {TOKEN_ENV} differs from the server's); nothing was changed")


def _search_needs_token(env: Mapping[str, str]) -> bool:
    """IMGSEARCH_TOKEN_FOR_SEARCH read as every other switch is (flow_kwargs.boolean: on/off,
    yes/no, true/false, 1/0); a value it cannot read closes search rather than leaves it open."""
    value = env.get(TOKEN_FOR_SEARCH_ENV, "").strip()
    try:
        return bool(value) and boolean(value)
    except ValueError:
        return True
