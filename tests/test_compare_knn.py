"""kNN and linear-probe accuracy from stored vectors, checked against scikit-learn."""

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from imgsearch.compare.knn import knn_accuracy, knn_predict, linear_probe, probe_sample
from imgsearch.compare.neighbours import nearest
from imgsearch.compare.proportion import from_bits, proportion_ci
from imgsearch.compare.synthetic import clustered


@pytest.mark.parametrize("seed", [0, 1])
def test_leave_one_out_knn_equals_scikit_learn(seed):
    vectors, codes = clustered(600, 32, 6, seed=seed)
    rows = np.random.default_rng(seed).choice(600, 80, replace=False)
    top, scores = nearest(vectors, rows, 10, block_scores=5000)  # several blocks
    for k, weighted in ((1, False), (10, True)):
        ours = knn_predict(top, scores, codes, k, weighted)
        for i, r in enumerate(rows):
            keep = np.arange(600) != r  # leave the query out
            clf = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute", weights=(lambda d: 1.0 - d) if weighted else "uniform")
            clf.fit(vectors[keep], codes[keep])
            assert ours[i] == clf.predict(vectors[r : r + 1])[0], (k, i)


def test_nearest_leaves_out_excluded_rows_and_a_restricted_pool():
    vectors, _ = clustered(200, 16, 4)
    rows = np.arange(20)
    full, _ = nearest(vectors, rows, 5)
    excl = {int(r): [int(full[i, 0])] for i, r in enumerate(rows)}
    top, _ = nearest(vectors, rows, 5, exclude=excl)
    assert all(full[i, 0] not in top[i] for i in range(20))
    assert np.array_equal(top[:, :4], full[:, 1:5])
    pool = np.arange(100, 200)
    top, _ = nearest(vectors, rows, 3, against=pool)
    brute = np.argsort(-(vectors[rows] @ vectors[pool].T), axis=1)[:, :3] + 100
    assert np.array_equal(top, brute)


def test_knn_accuracy_with_intervals_and_chance_for_noise():
    vectors, codes = clustered(2000, 32, 10)
    rows = np.arange(0, 2000, 5)
    top, scores = nearest(vectors, rows, 10)
    good = knn_accuracy(top, scores, codes, codes[rows], 1000)
    assert good["1nn"]["accuracy"] > 0.8 and good["10nn_weighted"]["accuracy"] > 0.8
    lo, hi = good["1nn"]["ci"]["accuracy"]
    assert lo <= good["1nn"]["accuracy"] <= hi and hi - lo < 0.15
    assert from_bits(good["1nn"]["hits"]).mean() == pytest.approx(good["1nn"]["accuracy"], abs=1e-6)
    shuffled = np.random.default_rng(0).permutation(codes)  # labels that mean nothing
    noise = knn_accuracy(top, scores, shuffled, shuffled[rows], 1000)
    assert 0.03 < noise["10nn_weighted"]["accuracy"] < 0.2


def test_proportion_interval_matches_the_resampling_bootstrap():
    hits = (np.random.default_rng(3).random(400) < 0.7).astype(float)
    rng = np.random.default_rng(4)
    boot = [rng.choice(hits, hits.size).mean() for _ in range(4000)]
    lo, hi = proportion_ci(hits, 4000)
    assert lo == pytest.approx(np.percentile(boot, 2.5), abs=0.01)
    assert hi == pytest.approx(np.percentile(boot, 97.5), abs=0.01)


def test_linear_probe_is_bounded_seeded_and_separates_clusters():
    vectors, codes = clustered(3000, 32, 5)
    hashes = [f"{i * 7919 % 3000:05d}" for i in range(3000)]
    rows, per = probe_sample(codes, hashes, per_label=50, max_total=200)
    assert per == 40 and len(rows) == 200
    a = linear_probe(vectors, codes, hashes, 1000, per_label=50, max_total=200)
    b = linear_probe(vectors, codes, hashes, 1000, per_label=50, max_total=200)
    assert a.summary == b.summary and a.summary["images"] == 200 and a.summary["folds"] == 5
    assert a.summary["accuracy"] > 0.8
    assert a.pred_probs.shape == (3000, 5)
    assert np.allclose(a.pred_probs.sum(1), 1.0)
    assert (a.classes[a.pred_probs.argmax(1)] == codes).mean() > 0.8  # outside the sample too
    shuffled = np.random.default_rng(1).permutation(codes)
    assert linear_probe(vectors, shuffled, hashes, 1000, 50, 200).summary["accuracy"] < 0.4
