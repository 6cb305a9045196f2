"""Images in object storage (``s3://``, ``gs://``, ``az://``...) for the loader, through fsspec.

Folders keep their own code (executors/loader/executor.py); this module gives a URL the same
rules: one document per object named by its URL, the label from the prefix just above it
(``s3://bucket/photos/cats/1.jpg`` under ``s3://bucket/photos`` is labelled ``cats``), the
sha256 of its bytes, and bad objects reported with their reason.

Objects cost a request each, so nothing is fetched twice when it need not be: what a scan
learns of an object is remembered on disk (:class:`KnownObjects`) under its URL, ETag and
size, and a later scan of the same, unchanged object fetches nothing. The indexer then tells
by hash what is stored. When ``/index`` fetches the bytes, their hash is taken again, so a
point's id always comes from the bytes that were embedded.

Credentials come from each backend's standard chain (for S3: the AWS environment variables,
``~/.aws``, instance or pod roles); ``AWS_ENDPOINT_URL`` points S3 at a compatible server.
"""

import hashlib
import logging
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Union

import fsspec
from fsspec import AbstractFileSystem
from fsspec.asyn import sync

from executors.docs import ImageDoc
from executors.loader.filetypes import IMAGE_EXTENSIONS, SNIFF_BYTES, describe_non_image, sniff_mime

logger = logging.getLogger(__name__)

FETCH_GROUP = 32  # objects fetched concurrently (one fsspec ``cat`` call)
FETCH_GROUP_BYTES = 256 * 1024 * 1024  # and at most this many bytes held at once
# Keys per listing request: ListObjectsV2's maximum (S3 answers at most 1,000 whatever is asked).
LIST_PAGE = 1000
KNOWN_OBJECTS_ENV = "IMGSEARCH_OBJECT_CACHE"  # where the loader remembers scanned objects


def filesystem(url: str) -> tuple[AbstractFileSystem, str]:
    """The fsspec filesystem and bucket path of a URL; a clear error for a missing backend."""
    try:
        return fsspec.core.url_to_fs(url)
    except ImportError as exc:  # fsspec's message names the package, e.g. "Please install gcsfs..."
        raise ValueError(f"cannot read {url}: {exc} (pip install it where the loader runs)") from None
    except ValueError as exc:  # an unknown protocol
        raise ValueError(f"cannot read {url}: {exc}") from None


@dataclass(frozen=True)
class StoredObject:
    """One object of a listing: enough to tell whether it changed, without fetching it."""

    uri: str  # the full URL, e.g. s3://bucket/prefix/label/1.jpg
    key: str  # the path below the listed prefix, e.g. label/1.jpg
    size: int
    etag: str

    @property
    def label(self) -> Optional[str]:
        """The name of the prefix just above the object; None directly under the root."""
        parts = self.key.split("/")
        return parts[-2] if len(parts) > 1 else None


def _etag(info: dict) -> str:
    # S3 says ETag, Azure and GCS etag; GCS also gives md5Hash. A last-modified time will do elsewhere.
    for name in ("ETag", "etag", "md5Hash", "LastModified", "last_modified", "mtime", "updated"):
        if info.get(name):
            return str(info[name]).strip('"')
    return ""


def iter_objects(url: str, page_size: Optional[int] = None) -> Iterator[StoredObject]:
    """Every object under the URL's prefix, a listing page at a time; hidden keys (a part
    starting with '.') and folder markers left out.

    Nothing is listed before the first object is asked for, and only one page of the listing is
    held at a time, so a bucket of millions of objects costs one page of memory. On S3 the
    order is the key order (ListObjectsV2's); elsewhere, folder by folder, names sorted.
    """
    fs, root = filesystem(url)
    root = root.rstrip("/")
    pages = _s3_pages(fs, root, page_size or LIST_PAGE) if _is_s3(fs) else _folder_pages(fs, root)
    listed = False
    try:
        for page in pages:
            for path, info in page:
                key = path[len(root) + 1 :] if path.startswith(root + "/") else os.path.basename(path)
                if not key or key.endswith("/") or any(part.startswith(".") for part in key.split("/")):
                    continue
                listed = True
                yield StoredObject(uri=fs.unstrip_protocol(path), key=key, size=int(info.get("size") or info.get("Size") or 0), etag=_etag(info))
        if not listed and not fs.exists(root):
            raise ValueError(f"no bucket or prefix at {url} (or no permission to list it)")
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001  each backend raises its own types (PermissionError, botocore, aiohttp...)
        raise ValueError(f"cannot list {url}: {exc}") from None


def list_objects(url: str) -> list[StoredObject]:
    """Every object under the URL's prefix, in listing order, held in a list: for small listings
    (tests, a digest); the loader streams :func:`iter_objects`."""
    return list(iter_objects(url))


def _is_s3(fs: AbstractFileSystem) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    return "s3" in protocols and hasattr(fs, "_call_s3")  # s3fs, without importing it (botocore is slow to load)


def _s3_pages(fs: AbstractFileSystem, root: str, page_size: int) -> Iterator[list[tuple[str, dict]]]:
    """ListObjectsV2, one request per page, asked for only when the page before is used up.
    Through s3fs's own call, which retries a failed page like any other request."""
    bucket, key, _ = fs.split_path(root)
    kwargs: dict = {"Bucket": bucket, "Prefix": f"{key}/" if key else "", "MaxKeys": page_size, **fs.req_kw}
    first = True
    while True:
        out = sync(fs.loop, fs._call_s3, "list_objects_v2", **kwargs)
        contents = out.get("Contents", [])
        if first and not contents and key and fs.isfile(root):  # the URL names one object
            contents = [{"Key": key, **fs.info(root)}]
        first = False
        yield [(f"{bucket}/{c['Key']}", c) for c in contents]
        if not out.get("IsTruncated"):
            return
        kwargs["ContinuationToken"] = out["NextContinuationToken"]


def _folder_pages(fs: AbstractFileSystem, root: str) -> Iterator[list[tuple[str, dict]]]:
    """Other backends: one folder's listing at a time, depth first, names sorted (memory: the
    largest folder, not the bucket)."""
    if fs.isfile(root):
        yield [(root, fs.info(root))]
        return
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(fs.ls(folder, detail=True), key=lambda e: e["name"])
        except FileNotFoundError:
            if folder == root:
                return  # iter_objects says there is no such prefix
            raise
        yield [(e["name"], e) for e in entries if e.get("type", "file") == "file"]
        stack.extend(reversed([e["name"] for e in entries if e.get("type") == "directory" and e["name"].rstrip("/") != folder]))


def fetch(uris: list[str], max_bytes: int) -> dict[str, Union[bytes, str]]:
    """The bytes of each object, or the reason it could not be read; fetched concurrently in groups."""
    if not uris:
        return {}
    fs, _ = filesystem(uris[0])
    paths = {fs._strip_protocol(u): u for u in uris}
    out: dict[str, Union[bytes, str]] = {}
    items = list(paths)
    for start in range(0, len(items), FETCH_GROUP):
        group = items[start : start + FETCH_GROUP]
        try:
            # cat_ranges, not cat: a key is never taken for a glob. At most one byte past the limit is read.
            got = fs.cat_ranges(group, 0, max_bytes + 1, on_error="return")
        except Exception as exc:  # noqa: BLE001  a failure of the whole call (e.g. credentials): every object gets it
            got = [exc] * len(group)
        for path, value in zip(group, got):
            if isinstance(value, BaseException):
                out[paths[path]] = f"cannot read object: {value}"
            elif len(value) > max_bytes:
                out[paths[path]] = f"file too large: {len(value)} bytes > limit {max_bytes}"
            else:
                out[paths[path]] = value
    return out


class KnownObjects:
    """What scans found per object, keyed by URL and checked against ETag and size; kept in SQLite.

    A cache only: losing it costs one fetch per object at the next scan, never a wrong result,
    since an object that changed has another ETag or size. Unopenable, it is simply off.
    """

    def __init__(self, path: Optional[str] = None):
        self._lock = threading.Lock()
        self.path = Path(path or os.environ.get(KNOWN_OBJECTS_ENV) or _default_path())
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db: Optional[sqlite3.Connection] = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False)
            self._db.execute("CREATE TABLE IF NOT EXISTS objects (uri TEXT PRIMARY KEY, etag TEXT, size INTEGER, hash TEXT, mime TEXT, error TEXT)")
        except (OSError, sqlite3.Error) as exc:
            logger.warning("object cache %s unusable (%s): every scan fetches every object", self.path, exc)
            self._db = None

    def lookup(self, objects: list[StoredObject]) -> dict[str, ImageDoc]:
        """Scan documents for the objects seen before unchanged; an image-less one has neither hash nor error."""
        if self._db is None or not objects:
            return {}
        by_uri = {o.uri: o for o in objects}
        out = {}
        with self._lock:
            uris = list(by_uri)
            for start in range(0, len(uris), 500):  # SQLite's limit on bound parameters
                chunk = uris[start : start + 500]
                rows = self._db.execute(
                    f"SELECT uri, etag, size, hash, mime, error FROM objects WHERE uri IN ({','.join('?' * len(chunk))})", chunk
                ).fetchall()
                for uri, etag, size, digest, mime, error in rows:
                    obj = by_uri[uri]
                    if etag == obj.etag and size == obj.size and obj.etag:
                        out[uri] = ImageDoc(uri=uri, label=obj.label, size=size if digest else None, mime=mime, hash=digest, error=error)
        return out

    def remember(self, found: list[tuple[StoredObject, ImageDoc]]) -> None:
        if self._db is None or not found:
            return
        rows = [(o.uri, o.etag, o.size, d.hash, d.mime, d.error) for o, d in found]
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?, ?)", rows)


def _default_path() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "imgsearch" / "objects.sqlite"


class ObjectScanner:
    """Scan documents for pages of a listing: remembered ones without a fetch, the rest fetched and hashed."""

    def __init__(self, max_bytes: int, cache_path: Optional[str] = None):
        self.max_bytes = max_bytes
        self.cache_path = cache_path
        self._known: Optional[KnownObjects] = None
        self.fetched = 0  # objects fetched by scans, for logs and tests

    @property
    def known(self) -> KnownObjects:
        # Opened at the first scan: a loader that only ever reads what clients send writes no cache file.
        if self._known is None:
            self._known = KnownObjects(self.cache_path)
        return self._known

    def inspect(self, page: list[StoredObject]) -> list[ImageDoc]:
        known = self.known.lookup(page)
        docs: dict[str, Optional[ImageDoc]] = {}
        todo: list[StoredObject] = []
        learned: list[tuple[StoredObject, ImageDoc]] = []
        for obj in page:
            if obj.uri in known:
                docs[obj.uri] = known[obj.uri]
            elif obj.size > self.max_bytes:
                too_large = docs[obj.uri] = self._too_large(obj)
                if too_large is not None:
                    learned.append((obj, too_large))
            elif obj.size == 0:  # nothing to fetch (and a ranged read of nothing is refused)
                empty = docs[obj.uri] = self._describe(obj, b"")
                learned.append((obj, empty))
            else:
                todo.append(obj)
        group: list[StoredObject] = []
        group_bytes = 0
        for i, obj in enumerate(todo):
            group.append(obj)
            group_bytes += obj.size
            if i + 1 == len(todo) or group_bytes + todo[i + 1].size > FETCH_GROUP_BYTES:
                got = fetch([o.uri for o in group], self.max_bytes)
                self.fetched += len(group)
                for o in group:
                    doc = self._describe(o, got[o.uri])
                    docs[o.uri] = doc
                    if not isinstance(got[o.uri], str):  # a read failure may pass: ask again next time
                        learned.append((o, doc))
                group, group_bytes = [], 0
        self.known.remember(learned)
        logger.info("scanned %d objects: %d known from earlier scans, %d fetched", len(page), len(known), len(todo))
        return [d for o in page if (d := docs[o.uri]) is not None and (d.hash or d.error)]

    def _too_large(self, obj: StoredObject) -> Optional[ImageDoc]:
        """The error document of an image too large; for another object an empty one (left out, and
        remembered), or None when its first bytes cannot be read (asked again next time)."""
        if not _named_like_image(obj.key):  # only its first bytes tell whether it is an image
            try:
                fs, path = filesystem(obj.uri)
                head = fs.cat_file(path, start=0, end=SNIFF_BYTES)
                self.fetched += 1
            except Exception:  # noqa: BLE001  an unreadable object not named like an image is not ours to report
                return None
            if sniff_mime(head) is None:
                return ImageDoc(uri=obj.uri, label=obj.label)
        return ImageDoc(uri=obj.uri, label=obj.label, error=f"file too large: {obj.size} bytes > limit {self.max_bytes}")

    @staticmethod
    def _describe(obj: StoredObject, got: Union[bytes, str]) -> ImageDoc:
        """The scan document for fetched bytes; no hash nor error for an object that is no image and says so."""
        doc = ImageDoc(uri=obj.uri, label=obj.label)
        if isinstance(got, str):
            doc.error = got if _named_like_image(obj.key) else None
            return doc
        doc.mime = sniff_mime(got[:SNIFF_BYTES])
        if doc.mime is None:
            doc.error = describe_non_image(got[:SNIFF_BYTES]) if _named_like_image(obj.key) else None
            return doc
        doc.size, doc.hash = len(got), hashlib.sha256(got).hexdigest()
        return doc


def _named_like_image(key: str) -> bool:
    return os.path.splitext(key)[1].lower() in IMAGE_EXTENSIONS
