"""What the index setting costs: recall@10 of Qdrant's approximate search against exact search.

Per encoder, its stored vectors (at most ``MAX_VECTORS``, a seeded sample past it) go into two
throw-away Qdrant Edge shards: one as the store makes a collection (HNSW m 16, ef_construct 100,
searched with ef 128, over int8 scalar-quantised vectors), one with binary quantisation and no
graph (building a second graph doubled the check's time). Each is searched for ``QUERIES`` of the
vectors (themselves excluded) as:
- ``hnsw``: the HNSW graph over the full vectors (quantisation ignored);
- ``int8``: the graph over the int8 copy alone; ``int8+rescore``: then the best
  ``RESCORE_OVERSAMPLING`` × 10 rescored with the full vectors (the store's search);
- ``binary`` / ``binary+rescore``: every binary code scanned (no graph), without and with the
  rescoring: what 1 bit a dimension costs by itself; with a graph, the hnsw column's loss adds;
and scored as recall@10 against numpy's exact top 10 of the same vectors (autofaiss' measure).
The RAM column is what the vectors need in RAM when the full vectors stay on disk and only the
quantised copy is held (none: the full fp32 vectors).
"""

import logging
import shutil
import tempfile
import time
from typing import Optional

import numpy as np

from executors.indexer.store.interface import HNSW_EF_CONSTRUCT, HNSW_M, RESCORE_OVERSAMPLING, SEARCH_HNSW_EF

logger = logging.getLogger(__name__)

MAX_VECTORS = 10_000
QUERIES = 200
K = 10
SEED = 7
GOOD_RECALL = 0.99  # a setting is recommended when its recall@10 reaches this on every encoder
SETTINGS = ("hnsw", "int8", "int8+rescore", "binary", "binary+rescore")
OPTION = {"hnsw": "none", "int8+rescore": "int8", "binary+rescore": "binary"}  # `index --quantization`


def ram_bytes(dim: int, setting: str) -> int:
    """Vector bytes held in RAM per point: the quantised copy alone, or the fp32 vector."""
    if setting.startswith("int8"):
        return dim
    if setting.startswith("binary"):
        return (dim + 7) // 8
    return 4 * dim


def exact_top(vectors: np.ndarray, rows: np.ndarray, k: int = K) -> np.ndarray:
    """Each query row's exact top k by cosine (unit vectors: dot product), itself excluded."""
    scores = vectors[rows] @ vectors.T
    scores[np.arange(len(rows)), rows] = -np.inf
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.take_along_axis(scores, top, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(top, order, axis=1)


def _shard(path: str, dim: int, quantization, graph: bool):
    from qdrant_edge import Distance, EdgeConfig, EdgeOptimizersConfig, EdgeShard, EdgeVectorParams, HnswIndexConfig

    # graph: full_scan_threshold and indexing_threshold at their least, HNSW even for a small
    # collection; no graph: neither is ever reached, the quantised codes are scanned in full.
    least, never = 1, 10**9
    return EdgeShard.create(
        path,
        EdgeConfig(
            vectors=EdgeVectorParams(size=dim, distance=Distance.Cosine),
            hnsw_config=HnswIndexConfig(
                m=HNSW_M, ef_construct=HNSW_EF_CONSTRUCT, full_scan_threshold=least if graph else never, max_indexing_threads=0
            ),
            quantization_config=quantization,
            optimizers=EdgeOptimizersConfig(indexing_threshold=least if graph else never),
        ),
    )


def _search(shard, vectors: np.ndarray, rows: np.ndarray, ignore: bool, rescore: bool) -> list[list[int]]:
    from qdrant_edge import QuantizationSearchParams, Query, QueryBatchRequest, QueryRequest, SearchParams

    params = SearchParams(
        hnsw_ef=SEARCH_HNSW_EF,
        quantization=QuantizationSearchParams(ignore=ignore, rescore=rescore, oversampling=RESCORE_OVERSAMPLING if rescore else None),
    )
    requests = [QueryRequest(query=Query.Nearest(vectors[r].tolist()), limit=K + 1, params=params) for r in rows]
    found = shard.query_batch(QueryBatchRequest(requests))
    return [[int(p.id) for p in res if int(p.id) != r][:K] for res, r in zip(found, rows)]


def recall_at_k(found: list[list[int]], exact: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(e.tolist())) / exact.shape[1] for f, e in zip(found, exact)]))


def index_recall(vectors: np.ndarray, queries: int = QUERIES, max_vectors: int = MAX_VECTORS, seed: int = SEED) -> dict:
    """recall@10 of each setting against exact search on these (unit) vectors, and the RAM each needs."""
    from qdrant_edge import BinaryQuantizationConfig, Point, ScalarQuantizationConfig, ScalarType, UpdateOperation

    n = len(vectors)
    if n < K + 2:
        return {"skipped": f"only {n} vectors: too few to measure recall@{K}"}
    rng = np.random.default_rng(seed)
    if n > max_vectors:
        vectors = vectors[np.sort(rng.choice(n, max_vectors, replace=False))]
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    rows = np.sort(rng.choice(len(vectors), min(queries, len(vectors)), replace=False))
    started = time.perf_counter()
    exact = exact_top(vectors, rows)
    dim = vectors.shape[1]
    out: dict = {
        "vectors": len(vectors),
        "of": n,
        "queries": len(rows),
        "k": K,
        "hnsw_m": HNSW_M,
        "ef_construct": HNSW_EF_CONSTRUCT,
        "hnsw_ef": SEARCH_HNSW_EF,
        "oversampling": RESCORE_OVERSAMPLING,
        "settings": {},
    }
    quantizations = {
        "int8": ScalarQuantizationConfig(type=ScalarType.Int8, quantile=0.99, always_ram=True),
        "binary": BinaryQuantizationConfig(always_ram=True),
    }
    for kind, config in quantizations.items():
        folder = tempfile.mkdtemp(prefix=f"compare-{kind}-")
        try:
            shard = _shard(folder, dim, config, graph=kind == "int8")
            for start in range(0, len(vectors), 1000):
                shard.update(
                    UpdateOperation.upsert_points(
                        # qdrant_edge's stub says list[float]; a float32 memoryview is what it reads without copies
                        [Point(i, memoryview(vectors[i]), {}) for i in range(start, min(len(vectors), start + 1000))]  # type: ignore[arg-type]
                    )
                )
            shard.optimize()  # builds the quantised vectors (and, for int8, the HNSW graph)
            searches = {kind: (False, False), f"{kind}+rescore": (False, True)}
            if kind == "int8":
                searches = {"hnsw": (True, False), **searches}
            for setting, (ignore, rescore) in searches.items():
                out["settings"][setting] = {
                    "recall@10": round(recall_at_k(_search(shard, vectors, rows, ignore, rescore), exact), 4),
                    "ram_bytes_per_vector": ram_bytes(dim, setting),
                }
            shard.close()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    full = ram_bytes(dim, "hnsw")
    for s in out["settings"].values():
        s["ram_saved"] = round(1 - s["ram_bytes_per_vector"] / full, 4)
        s["times_less_ram"] = round(full / s["ram_bytes_per_vector"], 1)
    out["seconds"] = round(time.perf_counter() - started, 2)
    return out


def recommend(per_encoder: dict[str, dict]) -> Optional[dict]:
    """The setting that saves the most RAM while keeping recall@10 ≥ GOOD_RECALL on every encoder."""
    measured = {e: r["settings"] for e, r in per_encoder.items() if r.get("settings")}
    if not measured:
        return None
    worst = {s: min(m[s]["recall@10"] for m in measured.values()) for s in SETTINGS if all(s in m for m in measured.values())}
    options = [s for s in ("binary+rescore", "int8+rescore", "hnsw") if s in worst]
    good = [s for s in options if worst[s] >= GOOD_RECALL]
    choice = good[0] if good else max(options, key=lambda s: worst[s])
    less = next(iter(measured.values()))[choice]["times_less_ram"]
    ram = f", {less:g}× less RAM for the vectors" if less > 1 else ""
    caveat = "" if good else f" (no setting reaches {GOOD_RECALL} here: this one comes closest)"
    return {
        "setting": choice,
        "option": OPTION[choice],
        "worst_recall@10": worst[choice],
        "sentence": f"Index setting: {OPTION[choice]} (`app.py index --quantization {OPTION[choice]}`), recall@10 "
        f"{worst[choice]:.3f} of exact search at worst over the encoders{ram}{caveat}.",
    }
