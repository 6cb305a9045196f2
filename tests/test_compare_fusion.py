"""Reciprocal-rank fusion of the encoders' rankings, checked against ranx's fuse(method="rrf")."""

import numpy as np
import pytest
from ranx import Qrels, Run
from ranx import evaluate as ranx_evaluate

from imgsearch.compare.fusion import cost_rows, fuse, fuse_runs, rrf, shown_rows


def _lists(rng, n_items=40, depth=10, runs=3):
    return [list(rng.choice(n_items, size=depth, replace=False)) for _ in range(runs)]


def _ranx_run(per_query: dict[str, list[int]]) -> Run:
    # distinct, decreasing scores: ranx ranks by score, so the rank is the list position
    return Run({q: {f"d{i}": 1.0 - 0.01 * r for r, i in enumerate(items)} for q, items in per_query.items()})


@pytest.mark.parametrize("seed", range(3))
def test_rrf_equals_ranx(seed):
    from ranx import fuse as ranx_fuse

    rng = np.random.default_rng(seed)
    queries = {f"q{j}": _lists(rng) for j in range(30)}
    runs = [_ranx_run({q: lists[i] for q, lists in queries.items()}) for i in range(3)]
    fused = ranx_fuse(runs, method="rrf").to_dict()
    for q, lists in queries.items():
        mine = rrf(lists)
        assert {f"d{i}": s for i, s in mine} == pytest.approx(fused[q], rel=1e-12)
        scores = [s for _, s in mine]
        assert scores == sorted(scores, reverse=True)
    assert rrf([[3, -1, 5], [5]]) == [(5, 1 / 63 + 1 / 61), (3, 1 / 61)]  # a missing result (-1) is skipped


def _record(name, tops, aps=None):
    return {
        "encoder": name,
        "status": "ok",
        "quality": {"labelled": True, "mAP@10": float(np.mean(aps)) if aps else 0.5},
        "per_query": {"top": tops, "ap": aps or [0.5] * len(tops)},
    }


def test_fused_quality_equals_ranx_map_on_the_fused_run():
    rng = np.random.default_rng(7)
    labels = [f"l{i % 8}" for i in range(80)]  # 10 images a label
    paths = [f"/img/{i}.png" for i in range(80)]
    qidx = list(range(0, 80, 3))
    queries = [[paths[i], labels[i]] for i in qidx]
    members = [_record(n, [[int(x) for x in rng.choice([j for j in range(80) if j != q], 10, replace=False)] for q in qidx]) for n in "ab"]
    row = fuse(members, labels, paths, queries, n_boot=100)
    fused_run = Run({f"q{k}": {f"d{i}": s for i, s in rrf([m["per_query"]["top"][k] for m in members])[:10]} for k in range(len(qidx))})
    qrels = Qrels({f"q{k}": {f"d{j}": 1 for j in range(80) if labels[j] == labels[q] and j != q} for k, q in enumerate(qidx)})
    # 9 relevant a query (≤ 10): ranx's AP@10 and ours divide alike
    assert row["quality"]["mAP@10"] == pytest.approx(ranx_evaluate(qrels, fused_run, "map@10"), abs=1e-6)  # ours: 6 digits
    assert row["quality"]["recall@1"] == pytest.approx(ranx_evaluate(qrels, fused_run, "hit_rate@1"), abs=1e-6)


def test_two_complementary_encoders_fused_beat_each_and_copies_do_not():
    labels = [f"l{i // 10}" for i in range(200)]
    paths = [f"/img/{i}.png" for i in range(200)]
    qidx = list(range(0, 200, 2))
    queries = [[paths[i], labels[i]] for i in qidx]
    same = lambda q: [j for j in range(200) if labels[j] == labels[q] and j != q]  # noqa: E731
    other = lambda q: [j for j in range(200) if labels[j] != labels[q]]  # noqa: E731
    # Both rank the same 5 relevant images at every other place, each between noise of its own:
    # fused, the images both agree on come first.
    a = [[x for pair in zip(same(q)[:5], other(q)[:5]) for x in pair] for q in qidx]
    b = [[x for pair in zip(same(q)[:5], other(q)[5:10]) for x in pair] for q in qidx]
    from imgsearch.compare.evaluation import MAP_K
    from imgsearch.metrics import average_precision_at_k

    def aps(tops):
        return [average_precision_at_k([labels[i] == labels[q] for i in t], MAP_K, 9) for t, q in zip(tops, qidx)]

    runs = [_record("a", a, aps(a)), _record("b", b, aps(b)), _record("a2", a, aps(a))]
    cost = {"a": {"ms_per_image": 2.0}, "b": {"ms_per_image": 3.0}, "a2": {"ms_per_image": 2.0}}
    out = fuse_runs(runs, labels, paths, queries, cost, n_boot=200)
    assert set(out["rows"]) == {"rrf(a+b)", "rrf(a+a2)", "rrf(b+a2)", "rrf(a+b+a2)"}
    ab = out["rows"]["rrf(a+b)"]
    assert ab["quality"]["mAP@10"] == pytest.approx(5 / 9, abs=1e-6) and ab["test"]["significant"]  # 5 of 9 relevant, first
    assert runs[0]["quality"]["mAP@10"] == pytest.approx((1 + 2 / 3 + 3 / 5 + 4 / 7 + 5 / 9) / 9)
    assert ab["cost"]["ms_per_image"] == 5.0
    copies = out["rows"]["rrf(a+a2)"]
    assert copies["quality"]["mAP@10"] == pytest.approx(runs[0]["quality"]["mAP@10"])  # a ranking fused with itself
    assert out["best"]["sentence"].startswith("Fusing pays")
    rows = cost_rows(out)
    assert rows["rrf(a+b)"]["fused"] and rows["rrf(a+b)"]["quality"] == ab["quality"]["mAP@10"]
    assert "rrf(a+b)" in shown_rows({**rows, "rrf(a+b)": {**rows["rrf(a+b)"], "pareto": False}})  # the best is kept
    assert fuse_runs(runs[:1], labels, paths, queries, cost) == {}
