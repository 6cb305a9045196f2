"""`app.py index`: scan a folder, embed only what is not stored yet, report what happened."""

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Optional

from docarray import DocList

from executors.contracts import EncoderInfo
from executors.docs import ImageDoc
from imgsearch.datasource import DataSource, data_name, data_ref
from imgsearch.flow import INDEX_REQUEST_TIMEOUT_S, PREFETCH, Gateway, collection_name, fit_parameter
from imgsearch.prune import prune as prune_paths
from imgsearch.scan_pages import ScanPages
from imgsearch.seen_images import SeenImages

logger = logging.getLogger(__name__)

SCAN_PAGE = 2048
# /scan's stages (flows/index.yml's names): the loader lists, the indexer marks what it
# stores; the stages between would only unpack and repack every page.
SCAN_TARGET = "loader|indexer"


@dataclass
class IndexSummary:
    collection: str
    encoder: str
    model: str
    data: str
    files_seen: int = 0
    indexed: int = 0  # embedded and stored by this run
    already_indexed: int = 0  # stored by an earlier run: not embedded again
    duplicates: list[dict] = field(default_factory=list)  # same bytes as an earlier file
    paths_added: int = 0  # stored images given another path (a duplicate, or the file seen elsewhere)
    # Stored images this scan did not find (their files deleted, moved or edited, or indexed from
    # another folder under the same collection): what `--prune` looks at.
    not_seen: int = 0
    pruned_paths: int = 0  # --prune: paths forgotten (files gone or holding other bytes now)
    pruned_images: int = 0  # --prune: images deleted, their last path gone
    skipped: list[dict] = field(default_factory=list)  # {"path", "reason"}
    seconds: float = 0.0
    encode_seconds: float = 0.0  # wall time of the /index requests alone
    images_per_second: float = 0.0
    optimize_seconds: float = 0.0  # building the search index (HNSW) over what was added
    count: int = 0  # points in the collection afterwards
    disk_bytes: Optional[int] = None
    encoder_peak_rss_mb: Optional[float] = None  # the encoder process's high-water mark so far
    encoder_replicas: int = 1  # as the gateway reports them (/info)
    in_flight: int = 0  # /index requests kept in flight for them (index_prefetch)

    def to_json(self) -> dict:
        return asdict(self)


def encoder_info(gateway: Gateway) -> EncoderInfo:
    """The encoder behind a gateway, as its /info describes it."""
    return gateway.encoder_info()


# At most this many /index requests in flight, however many replicas: each holds up to a batch
# of images in the stages' queues (decoded pixels between normalizer and encoder), so 64 of 32
# images is one scan page (SCAN_PAGE) in the pipeline at once, and the client's memory and the
# executors' queues stay bounded on a large cluster.
MAX_IN_FLIGHT = 64


def index_prefetch(info: EncoderInfo) -> int:
    """Requests in flight while indexing: for each encoder replica (``/info`` ``replicas``, from
    the gateway), one per lane it encodes side by side and one queued behind them, so no replica
    waits a round trip for its next batch; and one more for the stages around the encoders
    (reading, decoding, storing). Never fewer than the flow's default, never more than
    MAX_IN_FLIGHT. One replica of one lane: 4 (the default); 4 replicas: 9; lanes on a
    many-core CPU (one per thread) count per replica too."""
    replicas = max(1, int(info.replicas or 1))
    return min(MAX_IN_FLIGHT, max(PREFETCH, replicas * (int(info.lanes or 1) + 1) + 1))


def run_index(
    gateway: Gateway,
    data: DataSource,
    info: EncoderInfo,
    batch_size: Optional[int] = None,
    dataset: Optional[str] = None,
    progress: bool = True,
    resize: Optional[int] = None,
    runtime: str | None = None,
    prune: bool = False,
    max_prune: float = 0.5,
    quantization: Optional[str] = None,
    prefetch: Optional[int] = None,
) -> IndexSummary:
    """Index what the scan of ``data`` finds and the collection lacks; with ``prune``, then
    forget the stored paths under ``data`` whose files are gone (imgsearch/prune.py)."""
    started = time.perf_counter()
    # Requests as large as the encoder's batch (chosen from free memory on a GPU), unless given.
    batch_size = int(batch_size or info.batch_size or 32)
    ref, dataset = data_ref(data), dataset or data_name(data)
    name = collection_name(dataset, info.model, resize, runtime)  # runtime: only where asked for by name
    summary = IndexSummary(collection=name, encoder=info.encoder, model=info.model, data=ref)
    # Given: the bench's, whose simulated replicas a local flow's /info does not count.
    summary.encoder_replicas, summary.in_flight = max(1, int(info.replicas or 1)), prefetch or index_prefetch(info)
    params = {
        "data": ref,
        "collection": name,
        "encoder_name": info.encoder,
        "dataset": dataset,
        **fit_parameter(info),
        **({"quantization": quantization} if quantization else {}),
    }
    pages = ScanPages(gateway, params, SCAN_PAGE, target=SCAN_TARGET)
    bar = _progress(pages.total, progress, f"{info.encoder} → {name}")
    # The images seen so far live on disk (seen_images.py), and for --prune every path scanned:
    # memory holds a page and the paths to add (duplicates, moved files).
    seen = SeenImages()
    extra: dict[str, list[str]] = {}  # hash -> paths to record for a stored image
    unreadable: set[str] = set()  # paths the scan could not read: kept by --prune
    try:
        for page in pages:
            todo = DocList[ImageDoc]()
            known = seen.lookup(d.hash for d in page.docs if not d.error and d.hash)
            new: dict[str, tuple[str, set[str]]] = {}  # this page's first sightings
            present: dict[str, str] = {}  # --prune: this page's paths -> their hash
            for doc in page.docs:
                summary.files_seen += 1
                if doc.error:
                    summary.skipped.append({"path": doc.uri, "reason": doc.error})
                    if doc.uri is not None:
                        unreadable.add(doc.uri)
                    continue
                uri, digest = _scanned_file(doc)
                if prune:
                    present[uri] = digest
                first = known.get(digest) or new.get(digest)
                if first is not None:
                    summary.duplicates.append({"path": uri, "same_as": first[0]})
                    if uri not in first[1]:
                        extra.setdefault(digest, []).append(uri)
                elif doc.indexed:
                    new[digest] = (uri, set(doc.paths or []))
                    summary.already_indexed += 1
                    if uri not in new[digest][1]:  # a stored image at a path it was not stored under
                        extra.setdefault(digest, []).append(uri)
                else:
                    new[digest] = (uri, {uri})  # what /index records
                    todo.append(ImageDoc(uri=uri, hash=digest, label=doc.label, size=doc.size, mime=doc.mime))
            seen.add(new)
            seen.add_present(present)
            if bar is not None:
                bar.update(page.entries - len(todo))  # files that need no encoding
            if todo:
                t0 = time.perf_counter()
                gateway.post(
                    "/index",
                    todo,
                    params,
                    request_size=batch_size,
                    on_done=lambda got: _record(got, summary, bar),
                    # A deadline per request (a stuck stage fails the run within it), and one
                    # for the page that grows with the work (a slow encoder does not).
                    timeout=INDEX_REQUEST_TIMEOUT_S * -(-len(todo) // batch_size),
                    request_timeout=INDEX_REQUEST_TIMEOUT_S,
                    prefetch=summary.in_flight,
                )
                summary.encode_seconds += time.perf_counter() - t0
        # Duplicates are stored once; every path that holds the bytes is kept with the point
        # (the indexer adds the paths it lacks).
        if extra:
            gateway.post("/add_paths", DocList[ImageDoc](ImageDoc(hash=h, paths=ps) for h, ps in extra.items()), params, request_size=256)
            summary.paths_added = len(extra)
        if prune:
            summary.pruned_paths, summary.pruned_images = prune_paths(gateway, params, ref, seen.present(), unreadable, max_prune)
    finally:
        seen.close()
        if bar is not None:
            bar.close()
    if summary.indexed:
        # Build the search index now, once, rather than make every later search scan.
        summary.optimize_seconds = float(gateway.call("/optimize", params).get("seconds", 0.0))
    summary.count = int(gateway.call("/count", params).get("count", 0))
    summary.not_seen = max(0, summary.count - summary.indexed - summary.already_indexed)
    summary.disk_bytes = collection_disk_bytes(gateway, name)
    summary.encoder_peak_rss_mb = encoder_info(gateway).peak_rss_mb
    summary.seconds = time.perf_counter() - started
    if summary.encode_seconds > 0:
        summary.images_per_second = summary.indexed / summary.encode_seconds
    return summary


def _scanned_file(doc: ImageDoc) -> tuple[str, str]:
    """The path and content hash /scan reports for a file it read (the loader sets both)."""
    if doc.uri is None or doc.hash is None:
        raise RuntimeError(f"/scan answered a readable file without its {'path' if doc.uri is None else 'hash'}")
    return doc.uri, doc.hash


def _record(docs: DocList[ImageDoc], summary: IndexSummary, bar) -> None:
    for doc in docs:
        if doc.error:
            summary.skipped.append({"path": doc.uri, "reason": doc.error})
        elif doc.indexed:
            summary.indexed += 1
    if bar is not None:
        bar.update(len(docs))


def collection_disk_bytes(gateway: Gateway, name: str) -> Optional[int]:
    for c in gateway.collections():
        if c.name == name:
            return None if c.disk_bytes is None else int(c.disk_bytes)
    return None


def _progress(total: Optional[int], enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", dynamic_ncols=True, leave=False)
