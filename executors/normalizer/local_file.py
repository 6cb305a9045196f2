"""The bytes of a file the loader passed by path (a flow on one machine: loader ``send_paths``).

The loader found the file unchanged since /scan hashed it (same size and modification time)
and sent its path, size, hash and that state instead of its bytes. Read here, it may have
changed since: then it is hashed anew, as the loader would have hashed it.
"""

import hashlib
import os
import stat

from executors.docs import ImageDoc, file_state
from executors.loader.filetypes import image_mime


def read_passed_file(doc: ImageDoc, max_bytes: int) -> None:
    """Set ``doc.blob`` (and ``mime``; ``hash``/``size`` if the file changed) or ``doc.error``."""
    assert doc.uri and doc.file_state is not None
    doc.file_state, seen = None, doc.file_state  # not needed past this stage
    try:
        # O_NONBLOCK: a FIFO put in the file's place would block a plain open until a writer came.
        with os.fdopen(os.open(doc.uri, os.O_RDONLY | os.O_NONBLOCK), "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                doc.error = "not a regular file (a FIFO, socket or device); not read"
                return
            if st.st_size > max_bytes:
                doc.error = f"file too large: {st.st_size} bytes > limit {max_bytes}"
                return
            blob = fh.read(max_bytes + 1)
    except OSError as exc:
        doc.error = f"cannot read file: {exc.strerror or exc}"
        return
    if len(blob) > max_bytes:  # grew while read
        doc.error = f"file too large: more than {max_bytes} bytes"
        return
    if file_state(len(blob), st.st_mtime_ns) != seen:  # changed since the loader's look
        doc.size, doc.hash = len(blob), hashlib.sha256(blob).hexdigest()
    doc.mime, doc.error = image_mime(blob)
    doc.blob = blob if doc.mime else None
