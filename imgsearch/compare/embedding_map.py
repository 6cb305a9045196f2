"""A 2-D map of one encoder's space: t-SNE (scikit-learn) of a capped, shared sample of images.

t-SNE rather than PCA: two linear axes of a 512-d space flatten the clusters a user wants to see
(labels that mix, strays inside another label's cluster); rather than UMAP: umap-learn brings numba
and its JIT compile (tens of seconds on first use) for a few hundred points. The sample is the first
``MAP_POINTS`` images by content hash, the same images for every encoder, so two maps side by side
show the same points; its cost is fixed, whatever the collection's size. PCA to 50 dimensions first,
PCA initialisation and a fixed seed, as scikit-learn recommends: a rerun draws the same map. 500
iterations (half the default): 1,000 points settle by then, and the map costs half as much.
"""

import logging
import warnings

import numpy as np

logger = logging.getLogger(__name__)

MAP_POINTS = 1_000
SEED = 0


def sample_rows(hashes: list, n: int = MAP_POINTS) -> np.ndarray:
    return np.array(sorted(sorted(range(len(hashes)), key=lambda r: hashes[r])[:n]), np.int64)


def project(vectors: np.ndarray, hashes: list, item: np.ndarray, n: int = MAP_POINTS) -> dict:
    """{"points": [[image number, x, y], ...] in [0, 1], "method": ...}; empty below 5 images."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    rows = sample_rows(hashes, n)
    rows = rows[item[rows] >= 0]
    if len(rows) < 5:
        return {"points": [], "method": "too few images"}
    x = vectors[rows].astype(np.float32)
    if x.shape[1] > 50 and len(rows) > 50:
        x = PCA(50, random_state=SEED).fit_transform(x)
    with warnings.catch_warnings(), threadpool_limits(1):  # as the probe: threads that fight cost more than they give
        warnings.simplefilter("ignore")
        xy = TSNE(2, perplexity=min(30.0, (len(rows) - 1) / 3), init="pca", random_state=SEED, max_iter=500, metric="cosine").fit_transform(x)
    xy = (xy - xy.min(0)) / np.maximum(xy.max(0) - xy.min(0), 1e-9)
    return {
        "points": [[int(i), round(float(a), 4), round(float(b), 4)] for i, (a, b) in zip(item[rows], xy)],
        "method": f"t-SNE (scikit-learn, cosine, PCA init, seed {SEED}) of the first {n:,} images by content hash",
    }
