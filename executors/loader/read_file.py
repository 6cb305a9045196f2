"""One local file's bytes for /index, read the same way by the loader and by the normalizer
(which reads the files the loader passes by path): regular files only, never past a cap,
and only under the folder the request names."""

import os
import stat

from executors.docs import ImageDoc, failed
from executors.urls import is_url


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


def under_root(uri: str, root: str) -> bool:
    """Whether ``uri`` names a file below the folder (or URL prefix) ``root``, as the scan of
    ``root`` would name it: compared by name, ``..`` resolved, so no path escapes it (links
    inside the root are followed, as the scan follows them)."""
    if is_url(root) or is_url(uri):
        prefix = root.rstrip("/") + "/"
        return is_url(root) and uri.startswith(prefix) and "/../" not in uri[len(prefix) - 1 :]
    base = os.path.normpath(os.path.abspath(os.path.expanduser(root)))
    path = os.path.normpath(os.path.abspath(uri))
    real_base = os.path.realpath(base)  # a root given through a link: the scan names files under its target
    return any(path.startswith(b.rstrip(os.sep) + os.sep) for b in {base, real_base})


def refuse_outside_root(docs: list[ImageDoc], root: object) -> None:
    """/index reads only files (or objects) under the folder the request names in ``data``:
    what a /scan of it listed. A document naming anything else gets an error instead."""
    for doc in docs:
        if failed(doc) or doc.blob is not None or doc.text is not None or not doc.uri:
            continue
        if not root or not under_root(doc.uri, str(root)):
            doc.error = (
                f"not under the indexed folder {root or '(none named: parameters.data)'}: /index reads only the files a scan of that folder lists"
            )
