"""Qdrant Edge's settings for a collection (HNSW, quantisation) and its search requests (edge.py)."""

from __future__ import annotations

import numpy as np
from qdrant_edge import (
    BinaryQuantizationConfig,
    Distance,
    EdgeConfig,
    EdgeVectorParams,
    Filter,
    HasIdCondition,
    HnswIndexConfig,
    QuantizationSearchParams,
    Query,
    QueryRequest,
    ScalarQuantizationConfig,
    ScalarType,
    SearchParams,
)

from .interface import (
    DEFAULT_QUANTIZATION,
    FULL_SCAN_THRESHOLD_KB,
    HNSW_EF_CONSTRUCT,
    HNSW_M,
    RESCORE_OVERSAMPLING,
    SEARCH_HNSW_EF,
    Excludes,
    _check_query,
    _norm_ids,
)


def _quantization_config(quantization: str):
    if quantization == "binary":
        return BinaryQuantizationConfig(always_ram=True)
    if quantization == "int8":
        return ScalarQuantizationConfig(type=ScalarType.Int8, quantile=0.99, always_ram=True)
    return None


def _edge_config(dim: int, quantization: str = DEFAULT_QUANTIZATION):
    return EdgeConfig(
        vectors=EdgeVectorParams(size=dim, distance=Distance.Cosine),
        hnsw_config=HnswIndexConfig(m=HNSW_M, ef_construct=HNSW_EF_CONSTRUCT, full_scan_threshold=FULL_SCAN_THRESHOLD_KB, max_indexing_threads=0),
        quantization_config=_quantization_config(quantization),
    )


def _edge_search_params():
    return SearchParams(hnsw_ef=SEARCH_HNSW_EF, quantization=QuantizationSearchParams(rescore=True, oversampling=RESCORE_OVERSAMPLING))


def query_requests(
    vectors: np.ndarray, dim: int, limit: int, score_threshold: float | None, exclude_ids: Excludes, with_vectors: bool
) -> list[QueryRequest]:
    """One nearest-neighbour request per query vector, each leaving out its own excluded ids."""
    params = _edge_search_params()
    excludes = exclude_ids or [None] * len(vectors)
    return [
        QueryRequest(
            query=Query.Nearest(_check_query(v, dim).tolist()),
            limit=int(limit),
            filter=Filter(must_not=[HasIdCondition(set(_norm_ids(ex)))]) if ex else None,
            with_payload=True,
            with_vector=with_vectors,
            score_threshold=score_threshold,
            params=params,
        )
        for v, ex in zip(vectors, excludes)
    ]
