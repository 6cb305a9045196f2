"""Whether ``--data`` or a document's URI names objects by URL, in one place and without
fsspec (the CLI parses arguments with it)."""

import re

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
FILE_SCHEME = "file://"


def is_url(data: str) -> bool:
    """Whether ``data`` names objects by URL (``s3://...``) rather than a local folder;
    ``file://`` is a local path."""
    return bool(_URL.match(data)) and not data.startswith(FILE_SCHEME)
