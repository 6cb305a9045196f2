"""ImageLoader: finds image files under a folder and reads their bytes.

Two endpoints do the work:
- ``/scan`` walks the folder the client names (``parameters['data']``; a URL such as
  ``s3://bucket/prefix`` lists objects instead, page by page as they are asked for, see
  executors/loader/object_pages.py) and returns one light document per image file (path,
  sha256, size, MIME, label) without the bytes, a page at a time (``offset``/``limit``), so
  the client can skip what is already indexed.
  A file's hash is remembered on disk (the object cache, storage.KnownObjects) under its
  path, size, modification and change times and inode: a later scan of an unchanged file
  only stats it, so re-running `index` over a large library reads only what is new.
- ``/index`` reads the bytes of documents that name a file under the folder the request
  names (``data``), with the token; ``/search`` only checks the bytes a query carries: it
  never reads a path or URL (docs/reliability.md, threat model).
Problems are never raised for one file: the document gets ``error`` and flows on, so the
client can report it and every good file is still indexed.
"""

import hashlib
import logging
import os
import stat
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Union

from docarray import DocList
from jina import requests

from executors.docs import MAX_IMAGE_BYTES, ImageDoc, Reply, failed, file_state
from executors.flow_kwargs import boolean, flow_kwarg
from executors.loader.filetypes import IMAGE_EXTENSIONS, SNIFF_BYTES, describe_non_image, image_mime, sniff_mime
from executors.loader.object_pages import ObjectListings
from executors.loader.read_ahead import ReadAhead
from executors.loader.read_file import FileUnreadable, read_capped, refuse_outside_root
from executors.loader.storage import ObjectScanner, StoredObject, fetch
from executors.stage import Stage
from executors.urls import is_url

logger = logging.getLogger(__name__)

# Hashes from /scan kept for the /index that follows (a few pages of it), so each file is
# hashed once: (size, mtime_ns) unchanged since the scan means the same bytes.
SCANNED_HASHES = 20_000
# A file modified this recently may change again within its timestamps' granularity without
# either changing (git's "racily clean" entries): its hash is not remembered.
RACY_NS = 2_000_000_000


def _file_object(path: Path, root: Path, st: os.stat_result) -> StoredObject:
    """A file as the object cache keys it: its path, and as its validator what must be
    unchanged for a remembered hash to hold (as git's index checks)."""
    return StoredObject(
        uri=str(path), key=str(path.relative_to(root)), size=st.st_size, etag=f"file:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}:{st.st_dev}"
    )


def walk_files(root: Path) -> Iterator[Path]:
    """Every file under root, sorted, following directory links once (no loops).

    Entries that are neither a folder nor a regular file (a looping or dangling link, a
    FIFO, a socket) are yielded too, so one named like an image is reported, not lost.
    """
    seen_dirs: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            st = folder.stat()
        except OSError as exc:
            logger.warning("cannot enter %s: %s", folder, exc)
            continue
        if (st.st_dev, st.st_ino) in seen_dirs:  # a symlink back up the tree
            continue
        seen_dirs.add((st.st_dev, st.st_ino))
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            logger.warning("cannot list %s: %s", folder, exc)
            continue
        subdirs = []
        for entry in entries:
            if entry.name.startswith("."):
                continue  # .git, .cache, editor files: never a dataset's images
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
            except OSError:
                is_dir = False  # a looping link: _inspect says so if it looks like an image
            if is_dir:
                subdirs.append(Path(entry.path))
            else:
                yield Path(entry.path)
        stack.extend(reversed(subdirs))  # depth-first, in name order


def label_for(path: Path, root: Path) -> Optional[str]:
    """The parent folder's name; None for files directly in the root (unlabelled)."""
    return None if path.parent == root else path.parent.name


def _data_root(parameters: dict) -> Union[Path, str]:
    """The folder a scan request names, resolved, or its URL; a clear error if it is neither."""
    if is_url(str(parameters.get("data", ""))):
        return str(parameters["data"]).rstrip("/")
    root = Path(str(parameters.get("data", ""))).expanduser()
    if not root.is_dir():
        raise ValueError(f"data folder not found or not a folder: {root}")
    return root.resolve()


def _fetch_objects(docs: DocList[ImageDoc], max_bytes: int) -> None:
    """Give documents named by URL their bytes (fetched together, concurrently) or their error."""
    remote = [d for d in docs if not failed(d) and d.text is None and d.blob is None and d.uri and is_url(d.uri)]
    for doc in remote:
        if (doc.size or 0) > max_bytes:  # the scan's size: not fetched
            doc.error = f"file too large: {doc.size} bytes > limit {max_bytes}"
    got = fetch([d.uri for d in remote if not failed(d) and d.uri], max_bytes)
    for doc in remote:
        result = got.get(doc.uri) if doc.uri else None  # bytes, or why they could not be read
        if isinstance(result, str):
            doc.blob, doc.error = None, result
        elif result is not None:
            doc.blob, doc.error = result, None


@dataclass
class _ScannedPage:
    docs: list[ImageDoc]  # the page's scan documents, in listing order
    scanned: list[tuple[str, int, int, str]]  # (path, size, mtime_ns, sha256): for /index's check
    learned: list[tuple[StoredObject, ImageDoc]]  # hashes to remember on disk


class ImageLoader(Stage):
    """Walks a folder and reads image files; one document per file."""

    def __init__(self, max_file_bytes: int = MAX_IMAGE_BYTES, object_cache: str = "", scan_threads: int = 4, send_paths: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.max_file_bytes = flow_kwarg("max_file_bytes", max_file_bytes, MAX_IMAGE_BYTES, int)
        # The normalizer reads the files (it sees this disk: a flow on one machine): /index sends
        # the path of a file unchanged since /scan hashed it instead of its bytes, which would
        # otherwise cross the gateway twice (about 4 ms of its CPU per MB).
        self.send_paths = flow_kwarg("send_paths", send_paths, False, boolean)
        self._listing: tuple[Optional[str], list[Path]] = (None, [])
        self._listing_generation = 0  # a new listing never gets a page read ahead from the last one
        self._ahead: ReadAhead[Any] = ReadAhead("scan-ahead")  # a folder's _ScannedPage, or a bucket's documents
        threads = max(1, flow_kwarg("scan_threads", scan_threads, 4, int))
        self._hash_pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="scan-hash")
        self._scanned: OrderedDict[str, tuple[int, int, str]] = OrderedDict()
        self._objects = ObjectScanner(self.max_file_bytes, flow_kwarg("object_cache", object_cache, "") or None)
        self._cursors = ObjectListings(self._objects)  # bucket listings, one per client scanning

    def _files(self, root: Path, refresh: bool) -> list[Path]:
        # The walk is cached between pages of one scan; /scan_total starts each scan afresh.
        key = str(root)
        if refresh or self._listing[0] != key:
            self._ahead.drop()
            self._listing = (key, list(walk_files(root)))
            self._listing_generation += 1
        return self._listing[1]

    @requests(on="/scan")
    def scan(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None, **kwargs) -> DocList[ImageDoc]:
        parameters = parameters or {}
        root = _data_root(parameters)
        offset = int(parameters.get("offset", 0))
        limit = int(parameters.get("limit", 1000))
        if isinstance(root, str):
            return DocList[ImageDoc](self._scan_objects(root, offset, limit))
        files = self._files(root, refresh=False)  # /scan_total refreshed it
        page_key = (self._listing_generation, offset, limit)  # a new folder is a new listing too
        page_files = files[offset : offset + limit]
        with self.timed("scan", len(page_files)):
            page = self._ahead.take(page_key)
            if page is None:
                page = self._scan_page(root, page_files, threading.Event())
            for uri, size, mtime_ns, digest in page.scanned:  # what /index checks its bytes against
                self._remember_scanned(uri, size, mtime_ns, digest)
            self._objects.known.remember(page.learned)
            after = offset + limit
            if limit > 0 and after < len(files):  # the client's next page, while it indexes this one
                self._ahead.start(
                    (self._listing_generation, after, limit), lambda cancelled: self._scan_page(root, files[after : after + limit], cancelled)
                )
        return DocList[ImageDoc](page.docs)

    def _scan_objects(self, url: str, offset: int, limit: int) -> list[ImageDoc]:
        """A page of a bucket's scan: ``offset`` counts documents answered, not objects listed;
        a page shorter than ``limit`` is the last."""
        pages = self._cursors.for_page(url, offset)  # /scan_total opened it
        with self.timed("scan", limit):
            found = self._ahead.take((pages.serial, offset, limit))
            if found is None:
                found = pages.page(offset, limit) or []
            after = offset + len(found)
            if limit > 0 and len(found) == limit:  # more may follow: list and inspect it meanwhile
                self._ahead.start((pages.serial, after, limit), lambda cancelled: pages.page(after, limit, cancelled))
        return found

    def _scan_page(self, root: Path, page: list[Path], cancelled: threading.Event) -> _ScannedPage:
        """The scan documents of one page of a folder, and what the loader should remember of
        them. Runs in the handler or in the background (read_ahead.py): it changes nothing of the loader's."""
        stats: dict[Path, os.stat_result] = {}
        for path in page:
            try:
                stats[path] = path.stat()
            except OSError:
                continue  # _inspect says what is wrong with it
        known = self._known_files(stats, root)
        todo = [path for path in page if str(path) not in known]

        def inspect(path: Path) -> tuple[Optional[ImageDoc], Optional[os.stat_result], bool]:
            if cancelled.is_set():
                return None, None, False
            read_at = time.time_ns()
            doc, st = self._inspect(path, root, stats.get(path))
            # Remembered only if read well after its last change (git's "racily clean" rule).
            settled = st is not None and read_at - max(st.st_mtime_ns, st.st_ctime_ns) > RACY_NS
            return doc, st, settled

        # Reading and hashing release the GIL: several files at once use the disk and the cores.
        inspected = dict(zip(todo, self._hash_pool.map(inspect, todo) if len(todo) > 1 else map(inspect, todo)))
        out = _ScannedPage([], [], [])
        for path in page:
            doc, st, settled = (known[str(path)], stats[path], False) if str(path) in known else inspected[path]
            if doc is None:
                continue
            out.docs.append(doc)
            if doc.hash and doc.uri and doc.size is not None and st is not None:
                out.scanned.append((doc.uri, doc.size, st.st_mtime_ns, doc.hash))
                if settled:
                    out.learned.append((_file_object(path, root, st), doc))
        return out

    def _known_files(self, stats: dict[Path, os.stat_result], root: Path) -> dict[str, ImageDoc]:
        """Scan documents for the files whose hash the object cache holds for their present
        size and times (the rest are read and hashed)."""
        objects = [_file_object(path, root, st) for path, st in stats.items() if stat.S_ISREG(st.st_mode) and st.st_size <= self.max_file_bytes]
        return {uri: doc for uri, doc in self._objects.known.lookup(objects).items() if doc.hash}

    def _remember_scanned(self, uri: str, size: int, mtime_ns: int, digest: str) -> None:
        self._scanned[uri] = (size, mtime_ns, digest)
        if len(self._scanned) > SCANNED_HASHES:
            self._scanned.popitem(last=False)

    @requests(on="/scan_total")
    def scan_total(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None, **kwargs) -> Reply:
        root = _data_root(parameters or {})
        if isinstance(root, str):  # a bucket is not counted: that would list it all before the first page
            self._cursors.fresh(root)
            return {"files": None}
        return {"files": len(self._files(root, refresh=True))}

    def _inspect(self, path: Path, root: Path, st: Optional[os.stat_result] = None) -> tuple[Optional[ImageDoc], Optional[os.stat_result]]:
        """A scan document for an image file, an error document for a broken one, None otherwise;
        with the file's stat (``st`` if the caller took it)."""
        looks_like_image = path.suffix.lower() in IMAGE_EXTENSIONS
        doc = ImageDoc(uri=str(path), label=label_for(path, root))
        try:
            st = st or path.stat()  # follows links: a looping or dangling one raises here
            if not stat.S_ISREG(st.st_mode):
                if not looks_like_image:
                    return None, st
                doc.error = "not a regular file (a FIFO, socket or device); never opened"  # a FIFO would block
                return doc, st
            size = st.st_size
            with path.open("rb") as fh:
                head = fh.read(SNIFF_BYTES)
                mime = sniff_mime(head)
                if mime is None:
                    if not looks_like_image:
                        return None, st  # not an image and not pretending to be one
                    doc.error = describe_non_image(head)
                    return doc, st
                if size > self.max_file_bytes:
                    doc.error = f"file too large: {size} bytes > limit {self.max_file_bytes}"
                    return doc, st
                digest = hashlib.sha256(head)
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
        except OSError as exc:
            if not looks_like_image:
                return None, st
            doc.error = f"cannot read file: {exc.strerror or exc}"
            return doc, st
        doc.size, doc.mime, doc.hash = size, mime, digest.hexdigest()
        return doc, st

    def close(self) -> None:
        self._ahead.close()
        self._hash_pool.shutdown(wait=False, cancel_futures=True)
        super().close()

    @requests(on="/index")
    def read(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None, **kwargs) -> DocList[ImageDoc]:
        with self.timed("read", len(docs)):
            refuse_outside_root(docs, (parameters or {}).get("data"))
            self._read(docs, send_paths=self.send_paths)
        return docs

    @requests(on="/search")
    def read_query(self, docs: DocList[ImageDoc], **kwargs) -> DocList[ImageDoc]:
        # A query carries its content (bytes, a text or a stored hash), never a path this
        # process would read: /search is open to clients without the token.
        with self.timed("read", len(docs)):
            for doc in docs:
                if not failed(doc) and doc.blob is None and doc.text is None and not doc.hash:
                    doc.error = (
                        "a search carries its image's bytes, a text or a stored image's hash; the server never reads a path or URL for a search"
                    )
            self._check_blobs(docs)
        return docs

    def _pass_path(self, doc: ImageDoc, scanned: tuple[int, int, str]) -> bool:
        """Send ``doc`` by path when its file is as the scan read and checked it (the normalizer
        reads it again, and hashes it anew if it changes after this stat); else False, and it
        is read here."""
        if not doc.uri:  # _read passes only documents named by a path
            return False
        try:
            st = os.stat(doc.uri)
        except OSError:
            return False  # read_capped says why
        if (st.st_size, st.st_mtime_ns) != scanned[:2] or st.st_size > self.max_file_bytes:
            return False
        doc.size, doc.hash, doc.file_state = st.st_size, scanned[2], file_state(st.st_size, st.st_mtime_ns)
        return True

    def _read(self, docs: DocList[ImageDoc], send_paths: bool) -> None:
        _fetch_objects(docs, self.max_file_bytes)
        for doc in docs:
            known: Optional[str] = None
            if failed(doc) or doc.text is not None:
                continue
            if doc.blob is None:
                if not doc.uri:
                    doc.error = "document has neither image bytes, a file path nor text"
                    continue
                scanned = self._scanned.pop(doc.uri, None)
                if send_paths and scanned and self._pass_path(doc, scanned):
                    continue
                try:
                    doc.blob, st = read_capped(doc.uri, self.max_file_bytes)
                except FileUnreadable as exc:
                    doc.error = str(exc)
                    continue
                known = scanned[2] if scanned and scanned[:2] == (len(doc.blob), st.st_mtime_ns) else None
            self._check_blob(doc, known)

    def _check_blobs(self, docs: DocList[ImageDoc]) -> None:
        for doc in docs:
            if not failed(doc) and doc.text is None and doc.blob is not None:
                self._check_blob(doc, None)

    def _check_blob(self, doc: ImageDoc, known: Optional[str]) -> None:
        """Size, type and hash of bytes read here or sent by the client."""
        blob = doc.blob
        if blob is None:  # the callers check only documents that carry bytes
            raise ValueError(f"document {doc.uri or doc.id} has no bytes to check")
        if len(blob) > self.max_file_bytes:
            doc.error = f"image too large: {len(blob)} bytes > limit {self.max_file_bytes}"
            doc.blob = None
            return
        doc.mime, doc.error = image_mime(blob)
        if doc.mime is None:
            doc.blob = None
            return
        doc.size = len(blob)
        # Hash what is read now unless the scan hashed these very bytes (same size and
        # modification time): the file may have changed since the scan.
        doc.hash = known or hashlib.sha256(blob).hexdigest()
