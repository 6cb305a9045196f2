"""Listing and scanning a bucket of up to 100,000 objects on moto's S3 server: memory flat, time linear.

    python -m imgsearch.bench.listing [--sizes 10000,30000,100000] [--cold 2000] [--heap] [--scan-baseline] [--json out.json]

For each size, a bucket of that many objects (each a small JPEG with bytes of its own), and
four measurements, each in a fresh process so its memory is its own:
- ``list``: the loader's listing (storage.iter_objects: ListObjectsV2 pages of 1,000, streamed);
- ``list, whole (before)``: the listing as the loader held it before (s3fs ``find`` into one
  sorted list), the baseline;
- ``scan``: the loader's /scan of the whole bucket in pages of 2,048 (object_pages.ObjectPages),
  with the object cache of an earlier scan (a re-run: nothing fetched, each object looked up);
- with ``--scan-baseline``, ``scan, whole listing (before)``: the same pages cut from the whole
  listing (its memory is the listing's: off by default, it adds a quarter to the run).
Then ``scan, cold``: the first scan of ``--cold`` objects, fetching and hashing each (its time is
moto's GETs: one server thread per request on this machine's cores).

Memory is the measuring process's resident memory at its peak (sampled every 5 ms) above what it
held once its imports and S3 client were loaded, and with ``--heap`` the peak of the Python heap
during the run (tracemalloc); time is wall and the process's CPU (the server runs in a process of
its own).
"""

import argparse
import gc
import hashlib
import io
import json
import logging
import os
import sys
import tempfile
import threading
import time
import tracemalloc
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Optional

from imgsearch.bench.moto_bucket import ENV, MotoBuckets, object_body, object_key

logger = logging.getLogger(__name__)

SIZES = (10_000, 30_000, 100_000)
COLD = 2_000
SCAN_PAGE = 2048  # imgsearch/indexing.py's page of /scan


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _whole_listing(url: str) -> list:
    """The loader's listing before it was paged: every object's info from s3fs ``find``, sorted into one list."""
    from executors.loader.storage import StoredObject, _etag, filesystem

    fs, root = filesystem(url)
    found = fs.find(root, detail=True)
    out = []
    for path in sorted(found):
        info = found[path]
        key = path[len(root) + 1 :]
        if info.get("type", "file") == "file" and not any(part.startswith(".") for part in key.split("/")):
            out.append(StoredObject(uri=fs.unstrip_protocol(path), key=key, size=int(info.get("size") or 0), etag=_etag(info)))
    return out


def _list_paged(url: str, cache: str) -> tuple[int, int]:
    from executors.loader.storage import iter_objects

    return sum(1 for _ in iter_objects(url)), 0


def _list_whole(url: str, cache: str) -> tuple[int, int]:
    return len(_whole_listing(url)), 0


def _scan_paged(url: str, cache: str) -> tuple[int, int]:
    from executors.docs import MAX_IMAGE_BYTES
    from executors.loader.object_pages import ObjectPages
    from executors.loader.storage import ObjectScanner

    scanner = ObjectScanner(MAX_IMAGE_BYTES, cache)
    pages, docs = ObjectPages(url, scanner), 0
    while True:
        page = pages.page(docs, SCAN_PAGE) or []
        docs += len(page)
        if len(page) < SCAN_PAGE:
            return docs, scanner.fetched


def _scan_whole(url: str, cache: str) -> tuple[int, int]:
    from executors.docs import MAX_IMAGE_BYTES
    from executors.loader.storage import ObjectScanner

    scanner, listing = ObjectScanner(MAX_IMAGE_BYTES, cache), _whole_listing(url)
    docs = sum(len(scanner.inspect(listing[start : start + SCAN_PAGE])) for start in range(0, len(listing), SCAN_PAGE))
    return docs, scanner.fetched


KINDS: dict[str, Callable[[str, str], tuple[int, int]]] = {  # -> (objects or documents, objects fetched)
    "list": _list_paged,
    "list, whole (before)": _list_whole,
    "scan": _scan_paged,
    "scan, whole listing (before)": _scan_whole,
    "scan, cold": _scan_paged,
}


class _RssPeak:
    """The process's resident memory, sampled every few milliseconds in a thread: its peak while running."""

    def __init__(self, every_s: float = 0.005):
        self.peak, self._every, self._stop = _rss_bytes(), every_s, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self.peak = max(self.peak, _rss_bytes())

    def __enter__(self) -> "_RssPeak":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())


def _measure(kind: str, url: str, endpoint: str, cache: str, heap: bool) -> dict:
    """One measurement in a fresh process (ProcessPoolExecutor, one task a process); with ``heap``,
    the Python heap's peak too (tracemalloc, which makes the client's CPU several times slower)."""
    os.environ.update({**ENV, "AWS_ENDPOINT_URL": endpoint})
    logging.getLogger("executors").setLevel(logging.WARNING)
    from executors.loader.storage import filesystem

    fs, root = filesystem(url)
    fs.ls(root.split("/")[0])  # the S3 client and its service model loaded, not counted
    gc.collect()
    base = _rss_bytes()
    if heap:
        tracemalloc.start()
    t0, c0 = time.perf_counter(), time.process_time()
    with _RssPeak() as rss:
        n, fetched = KINDS[kind](url, cache)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    heap_peak = tracemalloc.get_traced_memory()[1] if heap else None
    tracemalloc.stop()
    return {
        "what": kind,
        "objects": n,
        "fetched": fetched,
        "seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "heap_peak_mb": None if heap_peak is None else round(heap_peak / 1e6, 1),  # Python objects allocated in the run, at their most
        "rss_growth_mb": round(max(0, rss.peak - base) / 1e6, 1),
    }


def _small_jpeg() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 80, 40)).save(buf, "JPEG", quality=85)
    return buf.getvalue()


def _fill_cache(bucket: str, n: int, cache: str, jpeg: bytes) -> None:
    """The object cache an earlier scan leaves (hash, size and type of every object, under its URL,
    ETag and size), written without listing or fetching: the keys and bytes are the bench's own."""
    from executors.docs import ImageDoc
    from executors.loader.storage import KnownObjects, StoredObject

    known, batch = KnownObjects(cache), []
    for i in range(n):
        body, key = object_body(i, jpeg), object_key(i)
        obj = StoredObject(uri=f"s3://{bucket}/{key}", key=key.removeprefix("photos/"), size=len(body), etag=hashlib.md5(body).hexdigest())
        batch.append((obj, ImageDoc(uri=obj.uri, label=obj.label, size=len(body), mime="image/jpeg", hash=hashlib.sha256(body).hexdigest())))
        if len(batch) == 5000:
            known.remember(batch)
            batch = []
    known.remember(batch)


def run_listing_bench(sizes: list[int], cold: int, workdir: Path, heap: bool = False, baselines: bool = False) -> list[dict]:
    jpeg = _small_jpeg()
    buckets = {f"b{n}": n for n in sizes}
    if cold:
        buckets[f"cold{cold}"] = cold
    rows: list[dict] = []
    started = time.perf_counter()
    with MotoBuckets(buckets, jpeg) as endpoint, ProcessPoolExecutor(1, mp_context=get_context("spawn"), max_tasks_per_child=1) as pool:
        logger.info("moto holds %d objects (%.1f s)", sum(buckets.values()), time.perf_counter() - started)
        for n in sizes:
            url, cache = f"s3://b{n}/photos", str(workdir / f"objects-{n}.sqlite")
            _fill_cache(f"b{n}", n, cache, jpeg)
            for kind in ("list", "list, whole (before)", "scan", *(["scan, whole listing (before)"] if baselines else [])):
                rows.append({"size": n, **pool.submit(_measure, kind, url, endpoint, cache, heap).result()})
                _print_row(rows[-1])
        if cold:
            url = f"s3://cold{cold}/photos"
            rows.append({"size": cold, **pool.submit(_measure, "scan, cold", url, endpoint, str(workdir / "cold.sqlite"), heap).result()})
            _print_row(rows[-1])
    return rows


def _print_row(r: dict) -> None:
    per = 1e6 * r["seconds"] / max(1, r["objects"])
    print(
        f"{r['size']:>8,}  {r['what']:<30} {r['seconds']:>8.2f} s  {r['cpu_seconds']:>7.2f} s CPU  {per:>6.0f} µs/object  {r['fetched']:>8,}  {_mb(r['rss_growth_mb'])}  {_mb(r['heap_peak_mb'])}",
        flush=True,
    )


def _mb(value: Optional[float]) -> str:
    return f"{value:>7.1f} MB" if value is not None else f"{'-':>10}"


def print_ratios(rows: list[dict]) -> None:
    """Growth from the smallest size to the largest (linear time: the size ratio; flat memory: about 1),
    and the paged loader against the whole listing at each size."""
    by = {(r["size"], r["what"]): r for r in rows}
    sizes = sorted({r["size"] for r in rows if r["what"] != "scan, cold"})
    if len(sizes) > 1:
        lo, hi = sizes[0], sizes[-1]
        print(f"\ngrowth from {lo:,} to {hi:,} objects (x{hi / lo:.0f}):")
        for what in ("list", "list, whole (before)", "scan", "scan, whole listing (before)"):
            a, b = by.get((lo, what)), by.get((hi, what))
            if a and b:
                mem = f"RSS growth {a['rss_growth_mb']:.1f} -> {b['rss_growth_mb']:.1f} MB"
                if a["heap_peak_mb"] is not None:
                    mem += f", heap peak {a['heap_peak_mb']:.1f} -> {b['heap_peak_mb']:.1f} MB"
                time_x = b["seconds"] / max(a["seconds"], 1e-9)
                cpu_x = b["cpu_seconds"] / max(a["cpu_seconds"], 1e-9)
                print(f"  {what:<30} time x{time_x:.1f} (client CPU x{cpu_x:.1f})   {mem}")
    print("\npaged / whole listing, at each size (time, memory):")
    for n in sizes:
        for paged, whole in (("list", "list, whole (before)"), ("scan", "scan, whole listing (before)")):
            a, b = by.get((n, paged)), by.get((n, whole))
            if a and b:
                print(
                    f"  {n:>8,}  {paged:<5} time x{a['seconds'] / max(b['seconds'], 1e-9):.2f}   "
                    f"RSS growth {a['rss_growth_mb']:.1f} MB vs {b['rss_growth_mb']:.1f} MB"
                )


def main(argv: Optional[list[str]] = None) -> int:
    # A developer's benchmark run as a module, not a user command: not in app.py's CLI.
    parser = argparse.ArgumentParser(prog="python -m imgsearch.bench.listing", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(str(n) for n in SIZES), help="objects per bucket, comma-separated")
    parser.add_argument("--cold", type=int, default=COLD, help="objects of the first (fetching) scan; 0: none")
    parser.add_argument("--heap", action="store_true", help="also the Python heap's peak (tracemalloc: slows the client several times)")
    parser.add_argument("--scan-baseline", action="store_true", help="also scan from the whole listing (the listing's own baseline shows its memory)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(",") if s.strip())
    if not sizes or min(sizes) < 1 or args.cold < 0:
        parser.error("--sizes: positive counts; --cold: 0 or more")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(f"{'objects':>8}  {'what':<30} {'wall':>10}  {'client CPU':>11}  {'per object':>13}  {'fetched':>8}  {'RSS growth':>10}  {'heap peak':>10}")
    with tempfile.TemporaryDirectory(prefix="listing-bench-") as tmp:
        rows = run_listing_bench(sizes, args.cold, Path(tmp), args.heap, args.scan_baseline)
    print_ratios(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
