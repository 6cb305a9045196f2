"""Resume: what an earlier, interrupted compare already did is reused, not redone.

Collections are reused as they are (indexing skips stored images). Each encoder's
evaluation is cached in ``compare-eval/<encoder>.json`` beside its collection, keyed by the
data folder's listing, the checkpoint and the compare settings, and valid only while the
collection still holds exactly the content (sorted content hashes) it was evaluated on.
"""

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Optional

from executors.atomic_json import write_json_atomic

logger = logging.getLogger(__name__)


def folder_digest(folder: Optional[Path]) -> Optional[str]:
    """Paths, sizes and modification times of every file: changes when the folder does."""
    if folder is None:
        return None
    h = hashlib.sha256()
    root = str(folder.resolve())
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            h.update(f"{os.path.relpath(path, root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def key_of(**parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class EvalCache:
    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def _path(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    def load(self, name: str, key: str) -> Optional[dict]:
        path = self._path(name)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return data if data.get("key") == key else None

    def save(self, name: str, key: str, **data) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        # A crash mid-write leaves the old cache or none, never half a file.
        write_json_atomic(self._path(name), {"key": key, **data}, separators=(",", ":"), default=str)

    def clear(self) -> None:
        for path in self.folder.glob("*.json"):
            path.unlink()
