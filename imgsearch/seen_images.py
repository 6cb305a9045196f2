"""What `index` has seen of this scan, by content hash, on disk: a bucket of a million images is a
million hashes, which in dicts cost the client about as many hundred megabytes.

For each image (content hash) the first path it was seen at, and the paths the store had
recorded for it, kept in a temporary SQLite file and looked up a scan page at a time; the
client holds only the page in hand and the paths it will add (duplicates, moved files). For
``--prune``, every path the scan hashed and its hash, read back as a mapping.
"""

import json
import logging
import sqlite3
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Iterable

logger = logging.getLogger(__name__)

_CHUNK = 500  # SQLite's limit on bound parameters is 999 (older builds)


class SeenImages:
    """``with SeenImages() as seen:`` hash -> (first path, stored paths) of the images seen so far."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="imgsearch-index-")
        self._db = sqlite3.connect(str(Path(self._dir.name) / "seen.sqlite"))
        self._db.execute("PRAGMA journal_mode=OFF")  # a scratch file: nothing to recover after a crash
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE seen (hash TEXT PRIMARY KEY, first TEXT, stored TEXT)")
        self._db.execute("CREATE TABLE present (path TEXT PRIMARY KEY, hash TEXT)")

    def lookup(self, hashes: Iterable[str]) -> dict[str, tuple[str, set[str]]]:
        wanted = list(dict.fromkeys(hashes))
        out: dict[str, tuple[str, set[str]]] = {}
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            rows = self._db.execute(f"SELECT hash, first, stored FROM seen WHERE hash IN ({','.join('?' * len(chunk))})", chunk)
            for digest, first, stored in rows:
                out[digest] = (first, set(json.loads(stored)))
        return out

    def add(self, images: dict[str, tuple[str, set[str]]]) -> None:
        with self._db:
            self._db.executemany("INSERT INTO seen VALUES (?, ?, ?)", ((h, first, json.dumps(sorted(s))) for h, (first, s) in images.items()))

    def add_present(self, paths: dict[str, str]) -> None:
        """Paths the scan hashed, with their hash (what --prune compares the store with)."""
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO present VALUES (?, ?)", paths.items())

    def present(self) -> Mapping[str, str]:
        return _Present(self._db)

    def close(self) -> None:
        self._db.close()
        self._dir.cleanup()

    def __enter__(self) -> "SeenImages":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Present(Mapping[str, str]):
    """path -> hash of the paths the scan hashed, one lookup at a time (prune.plan asks per stored path)."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def __getitem__(self, path: str) -> str:
        row = self._db.execute("SELECT hash FROM present WHERE path = ?", (path,)).fetchone()
        if row is None:
            raise KeyError(path)
        return str(row[0])

    def __iter__(self) -> Iterator[str]:
        return (str(row[0]) for row in self._db.execute("SELECT path FROM present ORDER BY path"))

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM present").fetchone()[0])
