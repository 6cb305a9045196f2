"""One way to write a JSON file that readers see whole or not at all (no imports beyond the
standard library, so every package can use it without loading another's executors)."""

import json
import os
import uuid
from pathlib import Path
from typing import Any, Union


def write_json_atomic(path: Union[str, Path], data: Any, durable: bool = False, **dump: Any) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file beside it and a rename.

    A reader (or a crash) sees the old file or the new one, never half of one, and concurrent
    writers never share a temporary file. ``durable`` also flushes the file and the folder's
    entry to disk, for state a restart must find (the store's metadata); caches leave it off.
    ``dump`` goes to :func:`json.dump` (``indent``, ``default``...).
    """
    path = Path(path)
    # A name no other writer picks, created with the umask's mode (mkstemp's 0600 would hide
    # the store's metadata from a reader running as another user).
    tmp = path.with_name(f".{path.name}-{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, **dump)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if durable:  # the rename itself must survive a crash too
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
