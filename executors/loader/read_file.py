"""One local file's bytes for /index, read the same way by the loader and by the normalizer
(which reads the files the loader passes by path): regular files only, never past a cap."""

import os
import stat


class FileUnreadable(Exception):
    """The file cannot be used; the message is the reason shown on its document."""


def read_capped(path: str, max_bytes: int) -> tuple[bytes, os.stat_result]:
    """The file's bytes and its stat, or FileUnreadable: not a regular file, over ``max_bytes``
    (before or while reading), or an OS error."""
    try:
        # O_NONBLOCK: a FIFO put in a file's place would block a plain open until a writer came.
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise FileUnreadable("not a regular file (a FIFO, socket or device); not read")
            if st.st_size > max_bytes:
                raise FileUnreadable(f"file too large: {st.st_size} bytes > limit {max_bytes}")
            blob = fh.read(max_bytes + 1)
    except OSError as exc:
        raise FileUnreadable(f"cannot read file: {exc.strerror or exc}") from None
    if len(blob) > max_bytes:  # grew while read
        raise FileUnreadable(f"file too large: more than {max_bytes} bytes")
    return blob, st
