"""Keys on the command line: read from the environment or a file, never from argv.

Anything in argv is visible to every user of the machine (``ps``, /proc/PID/cmdline). The
Qdrant API key therefore comes from ``QDRANT_API_KEY`` or from a file (``--qdrant-api-key-file``
or ``QDRANT_API_KEY_FILE``: a mounted Secret, a file readable by its owner only).
``--qdrant-api-key VALUE`` still works, with a warning that says so, until callers move.
"""

import logging
import os
import sys
from pathlib import Path
from typing import Optional, TextIO

from executors.errors import UserError
from executors.metrics.server import TOKEN_ENV as METRICS_TOKEN_ENV

logger = logging.getLogger(__name__)

KEY_ENV, KEY_FILE_ENV = "QDRANT_API_KEY", "QDRANT_API_KEY_FILE"
DEPRECATED = (
    "warning: --qdrant-api-key puts the key in the process list (ps) for every user of this machine; "
    f"set {KEY_ENV}, or use --qdrant-api-key-file FILE (or {KEY_FILE_ENV}); the flag will go"
)


def read_secret_file(path: Path, what: str) -> str:
    """The secret in ``path`` (surrounding whitespace, e.g. the final newline, dropped); a clear
    error naming ``what`` if it is unreadable or empty."""
    try:
        secret = Path(path).read_text().strip()
    except OSError as exc:
        raise UserError(f"cannot read the {what} file {path}: {exc.strerror or exc}") from None
    if not secret:
        raise UserError(f"the {what} file {path} is empty")
    return secret


def read_key_file(path: Path) -> str:
    """The Qdrant API key in ``path``."""
    return read_secret_file(path, "Qdrant API key")


def metrics_token(enabled: bool, token_file: Optional[Path]) -> Optional[str]:
    """The metrics read token `--metrics` / `--metrics-token-file` ask for (None: metrics off):
    the file's, else ``IMGSEARCH_METRICS_TOKEN``'s; a clear error when neither holds one."""
    if token_file:
        return read_secret_file(token_file, "metrics token")
    if not enabled:
        return None
    token = os.environ.get(METRICS_TOKEN_ENV, "").strip()
    if not token:
        raise UserError(f"--metrics needs a read token: --metrics-token-file FILE (e.g. from `openssl rand -hex 16`) or {METRICS_TOKEN_ENV}")
    return token


def qdrant_key(value: Optional[str], key_file: Optional[Path], err: TextIO = sys.stderr) -> Optional[str]:
    """The key the command line names (None: the environment's, which ServerStore reads where
    the store is opened: QDRANT_API_KEY, or the file QDRANT_API_KEY_FILE names)."""
    if value and key_file:
        raise UserError("give the Qdrant API key once: --qdrant-api-key-file or the environment, not both")
    if value:
        print(DEPRECATED, file=err)
        return value
    return read_key_file(key_file) if key_file else None
