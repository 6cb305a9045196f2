"""How cost grows with the number of images: index time, search latency and memory at
each size, every size in a fresh flow (so each process's peak memory is that size's).

Synthetic images keep the inputs comparable across sizes. The encoder is whatever the
caller picks; with a tiny model the figures show the pipeline's and the store's own
growth, which is what changes with size (a real model adds a constant per image).
"""

import logging
import time
from pathlib import Path
from typing import Optional

from executors.stage import process_usage
from imgsearch.bench.images import image_files, synthetic_folder
from imgsearch.bench.pipeline import search_latency
from imgsearch.flow import Gateway, local_flow
from imgsearch.indexing import encoder_info, run_index

logger = logging.getLogger(__name__)


def run_growth(
    encoder: str, model: Optional[str], sizes: list[int], images_root: Path, store_root: Path, batch_size: int = 32, queries: int = 30
) -> list[dict]:
    rows = []
    for n in sizes:
        folder = synthetic_folder(images_root, n, 160, 120)
        probe = image_files(folder)[:: max(1, n // queries)][:queries]
        started = time.perf_counter()
        with local_flow(encoder, model=model, store=str(store_root / f"growth-{n}")) as host:
            ready = time.perf_counter() - started
            gateway = Gateway(host)
            info = encoder_info(gateway)
            summary = run_index(gateway, folder, info, batch_size=batch_size, dataset=f"growth-{n}", progress=False)
            search = search_latency(gateway, summary.collection, info, probe, [])
            stages = {k.split("/")[0]: v for k, v in gateway.call_each("/timings").items()}
        rows.append(
            {
                "images": n,
                "indexed": summary.indexed,
                "flow_ready_seconds": round(ready, 2),
                "index_seconds": round(summary.seconds, 2),
                "images_per_second": round(summary.indexed / summary.seconds, 1) if summary.seconds else None,
                "optimize_seconds": round(summary.optimize_seconds, 2),
                "search_p50_ms": search["image"].get("p50_ms"),
                "search_p99_ms": search["image"].get("p99_ms"),
                "disk_mb": round((summary.disk_bytes or 0) / 2**20, 1),
                "peak_rss_mb": {name: s.get("peak_rss_mb") for name, s in sorted(stages.items())},
                "client_rss_mb": process_usage()["rss_mb"],
            }
        )
        logger.info("growth %d: %s", n, rows[-1])
    return rows
