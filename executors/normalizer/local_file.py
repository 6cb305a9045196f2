"""The bytes of a file the loader passed by path (a flow on one machine: loader ``send_paths``).

The loader found the file unchanged since /scan hashed it (same size and modification time)
and sent its path, size, hash and that state instead of its bytes. Read here, it may have
changed since: then it is hashed anew, as the loader would have hashed it.
"""

import hashlib

from executors.docs import ImageDoc, file_state
from executors.loader.filetypes import image_mime
from executors.loader.read_file import FileUnreadable, read_capped


def read_passed_file(doc: ImageDoc, max_bytes: int) -> None:
    """Set ``doc.blob`` (and ``mime``; ``hash``/``size`` if the file changed) or ``doc.error``."""
    assert doc.uri and doc.file_state is not None
    doc.file_state, seen = None, doc.file_state  # not needed past this stage
    try:
        blob, st = read_capped(doc.uri, max_bytes)
    except FileUnreadable as exc:
        doc.error = str(exc)
        return
    if file_state(len(blob), st.st_mtime_ns) != seen:  # changed since the loader's look
        doc.size, doc.hash = len(blob), hashlib.sha256(blob).hexdigest()
    doc.mime, doc.error = image_mime(blob)
    doc.blob = blob if doc.mime else None
