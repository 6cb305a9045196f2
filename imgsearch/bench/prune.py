"""How `index --prune` grows with the collection: reading every stored image's paths through
the flow (paged /stored_paths), planning, and forgetting 1% of them (/remove_paths).

Each size is a collection filled straight into the embedded store (the indexer's payloads),
then pruned through a running flow, as `app.py index --prune` does after its scan.
"""

import logging
import time
from pathlib import Path
from typing import Optional

from executors.indexer.store import EdgeStore
from executors.stage import process_usage
from imgsearch.bench.store import BATCH, DIM, make_data
from imgsearch.flow import Gateway, local_flow
from imgsearch.prune import forget, plan, stored_images

logger = logging.getLogger(__name__)

ROOT = "/data/images"  # the folder bench/store.py's payloads name


def run_prune(encoder: str, model: Optional[str], sizes: list[int], store_root: Path, gone_every: int = 100) -> list[dict]:
    store = store_root / "prune"
    present_by_size = {}
    with EdgeStore(str(store)) as st:
        for n in sizes:
            ids, vecs, payloads = make_data(n, seed=n)
            st.ensure_collection(f"prune-{n}", DIM, {"model": "bench"})
            for s in range(0, n, BATCH):
                st.upsert(f"prune-{n}", ids[s : s + BATCH], vecs[s : s + BATCH], payloads[s : s + BATCH])
            # Every ``gone_every``-th file deleted since it was indexed.
            present_by_size[n] = {p["uri"]: p["hash"] for i, p in enumerate(payloads) if i % gone_every}
    rows = []
    with local_flow(encoder, model=model, store=str(store)) as host:
        gateway = Gateway(host)
        for n in sizes:
            params, present = {"collection": f"prune-{n}"}, present_by_size[n]
            t = time.perf_counter()
            todo = plan(stored_images(gateway, params), ROOT, present, set())
            read = time.perf_counter() - t
            t = time.perf_counter()
            paths, deleted = forget(gateway, params, ROOT, todo, max_fraction=1.0)
            removed = time.perf_counter() - t
            count = int(gateway.call("/count", params)["count"])
            rows.append(
                {
                    "stored": n,
                    "read_seconds": round(read, 2),
                    "read_per_second": round(n / read) if read else None,
                    "forget_seconds": round(removed, 2),
                    "prune_seconds": round(read + removed, 2),
                    "forgotten_paths": paths,
                    "deleted": deleted,
                    "planned": todo.stale_paths,
                    "left": count,
                    "client_rss_mb": process_usage()["rss_mb"],
                }
            )
            logger.info("prune %d: %s", n, rows[-1])
    return rows
