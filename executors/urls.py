"""Whether ``--data`` or a document's URI names objects by URL, in one place and without
fsspec (the CLI parses arguments with it)."""

import re
from pathlib import Path
from typing import Union

DataSource = Union[Path, str]  # a folder, or a URL kept as text (a Path would fold its '//')

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
FILE_SCHEME = "file://"


def is_url(data: str) -> bool:
    """Whether ``data`` names objects by URL (``s3://...``) rather than a local folder;
    ``file://`` is a local path."""
    return bool(_URL.match(data)) and not data.startswith(FILE_SCHEME)


def data_source(text: str) -> DataSource:
    """``--data``: a URL (s3://bucket/prefix, gs://, az://) stays text; a file:// URL or
    anything else is a local folder."""
    if text.startswith(FILE_SCHEME):
        return Path(text.removeprefix(FILE_SCHEME))
    return text.rstrip("/") if is_url(text) else Path(text)
