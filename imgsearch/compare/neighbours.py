"""Each chosen image's nearest stored images, exactly, from the stored vectors.

A block of rows at a time against the whole collection (a matrix product), so memory is
bounded by the block. An image's own row, and any rows it must not see (its near-duplicates
under ``--near-duplicates exclude``), are left out of its neighbours.
"""

import logging
from typing import Optional

import numpy as np

logger = logging.getLogger(__name__)

BLOCK_SCORES = 1 << 22  # scores per block: ~16 MB of float32 temporaries


def nearest(
    vectors: np.ndarray,
    rows: np.ndarray,
    k: int,
    exclude: Optional[dict[int, list[int]]] = None,
    against: Optional[np.ndarray] = None,
    block_scores: int = BLOCK_SCORES,
) -> tuple[np.ndarray, np.ndarray]:
    """(top rows (m, k), their scores (m, k)), best first, ties broken by row number.

    ``against``: the rows that may be neighbours (default all); returned rows index ``vectors``.
    """
    pool = np.arange(len(vectors)) if against is None else np.asarray(against, np.int64)
    k = min(k, max(0, len(pool) - 1))
    m = len(rows)
    top = np.zeros((m, k), np.int64)
    top_scores = np.zeros((m, k), np.float32)
    if not k or not m:
        return top, top_scores
    where = np.full(len(vectors), -1, np.int64)
    where[pool] = np.arange(len(pool))
    base = vectors[pool]
    block = max(1, block_scores // max(1, len(pool)))
    for start in range(0, m, block):
        r = rows[start : start + block]
        s = vectors[r] @ base.T
        b = np.arange(len(r))
        own = where[r]
        s[b[own >= 0], own[own >= 0]] = -np.inf
        for i, row in enumerate(r):
            for other in (exclude or {}).get(int(row), ()):
                if where[other] >= 0:
                    s[i, where[other]] = -np.inf
        part = np.argpartition(-s, k - 1, axis=1)[:, :k]
        vals = np.take_along_axis(s, part, axis=1)
        order = np.lexsort((part, -vals), axis=1)
        top[start : start + len(r)] = pool[np.take_along_axis(part, order, axis=1)]
        top_scores[start : start + len(r)] = np.take_along_axis(vals, order, axis=1)
    return top, top_scores
