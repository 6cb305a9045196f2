"""Compare's evaluation at scale: blockwise stratification, AUC/threshold, ranking metrics
and significance, each checked against an independent computation."""

import numpy as np
import pytest
from ranx import Qrels, Run
from ranx import evaluate as ranx_evaluate
from sklearn.metrics import precision_recall_curve, roc_auc_score

from imgsearch.compare.ranks import winner
from imgsearch.compare.significance import (
    compare_pairs,
    paired_test,
    stratification_ci,
)
from imgsearch.compare.stratify import BINS, stratify
from imgsearch.metrics import (
    RankedQuery,
    average_precision_at_k,
    evaluate,
    roc_auc,
    suggest_threshold,
)


def _unit(rng, n, d):
    v = rng.normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _clustered(seed=0, n=300, d=16, labels=6):
    rng = np.random.default_rng(seed)
    lab = rng.integers(-1, labels, size=n)  # -1: unlabelled images are never relevant
    centres = _unit(rng, labels, d)
    v = rng.normal(scale=0.8, size=(n, d)).astype(np.float32) + np.where(lab[:, None] >= 0, centres[lab], 0)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32), lab


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_and_threshold_equal_scikit_learn_ties_included(seed):
    rng = np.random.default_rng(seed)
    pos = rng.integers(0, 40, size=300) / 40  # a coarse grid: many ties, within and across classes
    neg = rng.integers(0, 30, size=900) / 40
    y = np.r_[np.ones(pos.size), np.zeros(neg.size)]
    s = np.r_[pos, neg]
    assert roc_auc(pos, neg) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    p, r, t = precision_recall_curve(y, s)
    with np.errstate(invalid="ignore"):
        f1 = np.nan_to_num(2 * p * r / (p + r))[:-1]
    best = f1.max()
    thr = suggest_threshold(pos, neg)
    assert thr.f1 == pytest.approx(best, abs=1e-12)
    # Among cuts with the best F1 ours is the highest (fewest results kept).
    assert thr.threshold == pytest.approx(t[np.nonzero(np.isclose(f1, best, atol=1e-12))[0]].max())
    assert thr.precision == pytest.approx(((pos >= thr.threshold).sum()) / ((s >= thr.threshold).sum()))


def _whole_matrix(v, lab, rows):
    """The plain computation: the full queries × collection matrix, each score listed."""
    scores = v[rows] @ v.T
    pos, neg, gaps = [], [], []
    for r, q in enumerate(rows):
        keep = np.arange(len(v)) != q
        rel = (lab == lab[q]) & (lab[q] >= 0)
        pos += list(scores[r][keep & rel])
        neg += list(scores[r][keep & ~rel])
        order = [i for i in np.argsort(-scores[r], kind="stable") if i != q]
        rq = RankedQuery(str(lab[q]), [str(lab[i]) if lab[i] >= 0 else None for i in order], list(scores[r][order]), 0)
        ev = evaluate([rq])
        if ev.get("break_gap") is not None:
            gaps.append(ev["break_gap"])
    return np.array(pos, np.float64), np.array(neg, np.float64), gaps


def test_blockwise_stratification_equals_the_whole_matrix():
    v, lab = _clustered()
    rows = np.array([i for i in range(0, 300, 3) if lab[i] >= 0])
    small = stratify(v, lab, rows, block_scores=7 * len(v))  # 7 queries a block, the last one short
    whole = stratify(v, lab, rows, block_scores=10**9)
    # The same scores in the same bins, up to float32 rounding: BLAS may sum a 7-row block in
    # another order than the whole matrix, and a bin is a few float32 steps wide, so a score
    # can move to the next bin (seen on a loaded 2-core machine). Counts must agree, and no
    # more than a thousandth of them may sit one bin over.
    for got, want in ((small.pos, whole.pos), (small.neg, whole.neg)):
        assert got.sum() == want.sum()
        assert np.abs(np.cumsum(got) - np.cumsum(want)).max() <= max(1, want.sum() // 1000)
    assert np.abs(small.coarse - whole.coarse).sum() <= max(2, whole.coarse.sum() // 1000)
    assert np.allclose(small.gap, whole.gap, equal_nan=True, atol=1e-6)
    got = small.summary()
    pos, neg, gaps = _whole_matrix(v, lab, rows)
    assert got["relevant_scores"] == pos.size and got["irrelevant_scores"] == neg.size
    assert got["auc"] == pytest.approx(roc_auc_score(np.r_[np.ones(pos.size), np.zeros(neg.size)], np.r_[pos, neg]), abs=1e-5)
    assert got["mean_relevant_score"] == pytest.approx(pos.mean(), abs=1e-6)
    assert got["separation"] == pytest.approx(pos.mean() - neg.mean(), abs=1e-6)
    exact = suggest_threshold(pos, neg)
    assert got["threshold"]["f1"] == pytest.approx(exact.f1, abs=1e-3)
    assert abs(got["threshold"]["threshold"] - exact.threshold) <= 2 * 2 / BINS + 1e-6
    assert got["break_gap_queries"] == len(gaps) and got["break_gap"] == pytest.approx(np.mean(gaps), abs=1e-5)
    assert sum(got["histogram_relevant"]) == pos.size
    assert got["histogram_relevant"] == np.histogram(np.clip(pos, -1, 1), bins=80, range=(-1, 1))[0].tolist()
    cis = stratification_ci(small, n_boot=300)
    assert cis["auc"][0] < got["auc"] < cis["auc"][1] and cis["separation"][0] < got["separation"] < cis["separation"][1]


def test_recall_and_map_equal_ranx():
    rng = np.random.default_rng(3)
    qrels, run, mine_r1, mine_r5, mine_ap = {}, {}, [], [], []
    for q in range(40):
        n_rel = int(rng.integers(1, 8))
        docs = [f"d{i}" for i in range(30)]
        relevant = set(rng.choice(docs, size=n_rel, replace=False))
        ranking = list(rng.permutation(docs))
        qrels[f"q{q}"] = {d: 1 for d in relevant}
        run[f"q{q}"] = {d: float(30 - i) for i, d in enumerate(ranking)}
        rel = [d in relevant for d in ranking]
        mine_r1.append(any(rel[:1]))
        mine_r5.append(any(rel[:5]))
        mine_ap.append(average_precision_at_k(rel, 10, n_rel))
    got = ranx_evaluate(Qrels(qrels), Run(run), ["hit_rate@1", "hit_rate@5", "map@10"])
    assert np.mean(mine_r1) == pytest.approx(got["hit_rate@1"]) and np.mean(mine_r5) == pytest.approx(got["hit_rate@5"])
    # ranx's AP@k divides by every relevant item; ours by min(k, relevant), as image-retrieval
    # papers do. Equal when no query has more than k relevant items, as here.
    assert np.mean(mine_ap) == pytest.approx(got["map@10"], abs=1e-9)


def _aps_of_noisy_rankings(rng, truth, relevant, noise):
    """AP@10 per query of a ranking by the true scores plus noise."""
    out = []
    for t, rel in zip(truth, relevant):
        order = np.argsort(-(t + rng.normal(scale=noise, size=t.size)))
        out.append(average_precision_at_k(list(rel[order]), 10, int(rel.sum())))
    return np.array(out)


def test_a_known_difference_is_found_and_noise_is_not():
    rng = np.random.default_rng(5)
    base = rng.uniform(0.2, 0.8, size=400)
    better = np.clip(base + 0.1 + rng.normal(scale=0.05, size=400), 0, 1)
    t = paired_test(better, base, n_boot=1000)
    assert t["significant"] and t["ci"][0] < 0.1 < t["ci"][1] and t["p"] < 0.01
    # Two runs that are the same ranking with noise: 200 queries, 100 candidates, 8 relevant.
    relevant = np.zeros((200, 100), bool)
    relevant[:, :8] = True
    truth = rng.normal(size=(200, 100)) + 1.5 * relevant
    runs = [_aps_of_noisy_rankings(rng, truth, relevant, 0.3) for _ in range(21)]
    verdicts = [paired_test(runs[0], r, n_boot=300) for r in runs[1:]]
    # At the 5% level about one in twenty such pairs is called different by chance, no more.
    assert sum(v["significant"] for v in verdicts) <= 3
    quiet = next(i for i, v in enumerate(verdicts, 1) if not v["significant"])
    noisy = runs[quiet]
    pairs = compare_pairs(
        {"b": dict(enumerate(better)), "a": dict(enumerate(base)), "x": dict(enumerate(runs[0])), "n": dict(enumerate(noisy))}, n_boot=300
    )
    sentences = {(p["a"], p["b"]): p["verdict"] for p in pairs}
    assert sentences[("b", "a")].startswith("b beats a by +0.1")
    assert sentences[("x", "n")].startswith("no significant difference between x and n")
    means = {"b": better.mean(), "a": base.mean()}
    assert winner([p for p in pairs if {p["a"], p["b"]} == {"a", "b"}], ["b", "a"], means)["encoder"] == "b"
    w = winner([p for p in pairs if {p["a"], p["b"]} == {"x", "n"}], ["x", "n"], {"x": runs[0].mean(), "n": noisy.mean()})
    assert w["encoder"] is None and "no clear winner" in w["sentence"]


def test_auc_interval_surrounds_the_auc_when_scores_crowd_together():
    """Every score within 0.02 of 1 (one common direction dominates): the bootstrap's coarse
    bins must still resolve it."""
    v, lab = _clustered(seed=4)
    crowded = v * 0.02 + np.r_[1.0, np.zeros(v.shape[1] - 1)].astype(np.float32)
    crowded = (crowded / np.linalg.norm(crowded, axis=1, keepdims=True)).astype(np.float32)
    rows = np.array([i for i in range(0, 300, 2) if lab[i] >= 0])
    st = stratify(crowded, lab, rows)
    auc = st.summary()["auc"]
    lo, hi = stratification_ci(st, n_boot=300)["auc"]
    assert 0.55 < auc < 0.99 and lo < auc < hi and hi - lo < 0.1


def test_stratification_reads_the_same_from_the_embedded_store_and_a_server(tmp_path):
    """Paged scrolls (a page smaller than the collection) from either backend give the same counts."""
    import hashlib

    from qdrant_client import QdrantClient

    from executors.indexer.store import EdgeStore, ServerStore, point_id
    from imgsearch.compare.stratify import label_codes, read_vectors

    v, lab = _clustered(seed=6, n=250)
    hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(len(v))]
    payloads = [{"hash": h, "uri": f"/data/{i}.jpg", "label": None if lab[i] < 0 else f"l{lab[i]}"} for i, h in enumerate(hashes)]
    results = []
    for store in (EdgeStore(str(tmp_path / "ws")), ServerStore(client=QdrantClient(":memory:"))):
        with store:
            store.ensure_collection("c", v.shape[1], {"model": "m"})
            store.upsert("c", [point_id(h) for h in hashes], v, payloads)
            vectors, labels, got_hashes = read_vectors(store, "c", page=64)
        assert len(got_hashes) == 250 and sorted(got_hashes) == sorted(hashes)
        codes, names = label_codes(labels)
        row = {h: i for i, h in enumerate(got_hashes)}
        queries = np.array([row[hashes[i]] for i in range(0, 250, 5) if lab[i] >= 0])
        results.append(stratify(vectors, codes, queries).summary())
    edge, server = results
    for key, value in edge.items():  # counts exactly; means to float32 rounding (rows come in another order)
        assert server[key] == (pytest.approx(value, abs=1e-6) if isinstance(value, float) else value), key
    assert edge["relevant_scores"] == sum(int((lab == lab[i]).sum() - 1) for i in range(0, 250, 5) if lab[i] >= 0)


def test_compare_ranking_of_a_stored_collection_equals_ranx_on_the_same_run(tmp_path):
    """evaluate_in_index on a real embedded store; ranx scores the same queries from the vectors."""
    import hashlib

    from executors.indexer.store import EdgeStore, point_id
    from imgsearch.compare.evaluation import evaluate_in_index
    from imgsearch.compare.options import CompareOptions
    from imgsearch.compare.queries import Item, QuerySet

    rng = np.random.default_rng(8)
    lab = np.repeat(np.arange(10), 10)  # ten images a label: at most 9 relevant, so AP@10 conventions agree
    centres = _unit(rng, 10, 24)
    v = rng.normal(scale=0.9, size=(100, 24)).astype(np.float32) + centres[lab]
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(100)]
    items = [Item(f"/d/l{lab[i]}/{i}.jpg", hashes[i], f"l{lab[i]}") for i in range(100)]
    qs = QuerySet(items, items[::3], 34, "test")
    with EdgeStore(str(tmp_path / "ws")) as store:
        store.ensure_collection("c", 24, {"model": "m"})
        store.upsert("c", [point_id(h) for h in hashes], v, [{"hash": it.hash, "uri": it.path, "label": it.label} for it in items])
        got, _ = evaluate_in_index(store, "c", qs, CompareOptions(data=tmp_path, encoders=["clip"], out=tmp_path, bootstrap=200))
    qrels, run = {}, {}
    for q in range(0, 100, 3):
        qrels[f"q{q}"] = {f"d{i}": 1 for i in range(100) if lab[i] == lab[q] and i != q}
        scores = v @ v[q]
        run[f"q{q}"] = {f"d{i}": float(scores[i]) for i in range(100) if i != q}
    ref = ranx_evaluate(Qrels(qrels), Run(run), ["hit_rate@1", "hit_rate@5", "hit_rate@10", "map@10"])
    q = got["quality"]
    assert q["queries"] == 34 and q["recall@1"] < 1
    mine = (q["recall@1"], q["recall@5"], q["recall@10"])
    assert mine == pytest.approx((ref["hit_rate@1"], ref["hit_rate@5"], ref["hit_rate@10"]), abs=1e-6)
    assert q["mAP@10"] == pytest.approx(ref["map@10"], abs=1e-5)
    for key in ("recall@1", "mAP@10", "auc"):
        assert q["ci"][key][0] <= q[key] <= q["ci"][key][1]
