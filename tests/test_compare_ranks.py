"""Many encoders: Holm adjustment, top group, rank intervals, and the cost table's Pareto front,
each checked against an independent implementation or a planted case that must come out right."""

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from imgsearch.compare.cost import (
    cost_of,
    cost_table,
    model_timing,
    pareto,
    ram_bytes_per_vector,
)
from imgsearch.compare.ranks import rank_intervals, top_group, winner
from imgsearch.compare.significance import adjust_pairs, compare_pairs, holm


@pytest.mark.parametrize("seed", range(5))
def test_holm_equals_statsmodels(seed):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 0.2, size=21)
    p[3] = p[7]  # a tie
    p[0] = 1.0
    _, want, _, _ = multipletests(p, alpha=0.05, method="holm")
    assert np.allclose(holm(list(p)), want, atol=1e-12)
    # Missing p-values (too few queries) are left out of the family, not counted as 1.
    with_none = [None, *p[:5]]
    _, want5, _, _ = multipletests(p[:5], method="holm")
    assert with_none[0] is None and holm(with_none)[0] is None
    assert np.allclose(holm(with_none)[1:], want5)


def test_adjusted_pairs_keep_the_raw_p_and_are_significant_only_below_alpha():
    pairs = [
        {"a": "x", "b": "y", "diff": 0.1, "ci": [0.05, 0.15], "p": 0.02},
        {"a": "x", "b": "z", "diff": 0.1, "ci": [0.05, 0.15], "p": 0.02},
        {"a": "y", "b": "z", "diff": 0.1, "ci": [0.05, 0.15], "p": 0.01},
    ]
    out = adjust_pairs(pairs)
    assert [p["p_raw"] for p in out] == [0.02, 0.02, 0.01]
    assert [p["p"] for p in out] == pytest.approx([0.04, 0.04, 0.03])
    assert all(p["significant"] for p in out)
    out = adjust_pairs(pairs + [{"a": "w", "b": "z", "diff": 0.0, "ci": [-0.1, 0.1], "p": 0.9}])
    assert [p["significant"] for p in out] == [False, False, True, False]  # 4 × 0.01 = 0.04; 3 × 0.02 = 0.06


def _aps(rng, quality, n=300):
    return np.clip(quality + rng.normal(scale=0.15, size=n), 0, 1)


def test_three_identical_rankings_form_one_top_group():
    rng = np.random.default_rng(3)
    same = _aps(rng, 0.7)
    worse = np.clip(same - 0.2 + rng.normal(scale=0.05, size=same.size), 0, 1)
    per = {"a": same, "b": same.copy(), "c": same.copy(), "worse": worse}
    pairs = compare_pairs({n: dict(enumerate(v)) for n, v in per.items()}, n_boot=300)
    means = {n: float(v.mean()) for n, v in per.items()}
    assert set(top_group(pairs, means)) == {"a", "b", "c"}
    w = winner(pairs, list(per), means)
    assert w["encoder"] is None and set(w["top_group"]) == {"a", "b", "c"} and "Holm-adjusted" in w["sentence"]
    ranks = rank_intervals({n: list(v) for n, v in per.items()}, n_boot=300)
    assert [ranks[n]["ci"] for n in "abc"] == [[1, 1]] * 3 and ranks["worse"]["ci"] == [4, 4]
    assert all("Holm-adjusted over 6 pairs" in p["verdict"] for p in pairs)


def test_a_clear_winner_is_alone_and_close_encoders_share_rank_intervals():
    rng = np.random.default_rng(4)
    base = _aps(rng, 0.5)
    per = {
        "best": np.clip(base + 0.2, 0, 1),
        "near1": np.clip(base + rng.normal(scale=0.05, size=base.size), 0, 1),
        "near2": np.clip(base + rng.normal(scale=0.05, size=base.size), 0, 1),
    }
    pairs = compare_pairs({n: dict(enumerate(v)) for n, v in per.items()}, n_boot=300)
    means = {n: float(v.mean()) for n, v in per.items()}
    assert top_group(pairs, means) == ["best"]
    assert winner(pairs, list(per), means)["encoder"] == "best"
    ranks = rank_intervals({n: list(v) for n, v in per.items()}, n_boot=500)
    assert ranks["best"] == {"rank": 1, "ci": [1, 1], "first": 1.0}
    assert ranks["near1"]["ci"] == [2, 3] and ranks["near2"]["ci"] == [2, 3]
    # Missing values (queries without a relevant image) are left out of the means, not counted as 0.
    holes = rank_intervals({"x": [None, 0.9, 0.9], "y": [0.5, 0.8, 0.8]}, n_boot=50)
    assert holes["x"]["rank"] == 1


def _front_by_sweep(points):
    """Independent: sort by cost (then quality, best first); a point is on the front when its
    quality beats every cheaper-or-equal point's, and no equal point is strictly better."""
    known = sorted(((c, -q, n) for n, (q, c) in points.items()), key=lambda t: (t[0], t[1]))
    front, best_q = set(), -np.inf
    for c, negq, n in known:
        q = -negq
        if q > best_q:
            front.add(n)
            best_q = q
        elif q == best_q and any(points[m] == (q, c) for m in front):
            front.add(n)  # an exact duplicate of a front point is not dominated by it
    return front


@pytest.mark.parametrize("seed", range(20))
def test_pareto_front_equals_a_sweep_and_never_holds_a_worse_slower_plant(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 12))
    points = {
        f"e{i}": (float(rng.choice([0.5, 0.6, 0.7, rng.uniform(0.3, 0.9)])), float(rng.choice([1.0, 5.0, rng.uniform(0.5, 50)]))) for i in range(n)
    }
    flags = pareto(points)
    assert {k for k, v in flags.items() if v} == _front_by_sweep(points)
    victim = points[f"e{int(rng.integers(n))}"]
    points["planted"] = (victim[0] - 0.01, victim[1] * 1.5)  # worse and slower than an existing one
    assert pareto(points)["planted"] is False
    points["unknown"] = (None, 3.0)
    assert pareto(points)["unknown"] is None


def test_cost_rows_from_a_run_record():
    timings = {
        "encoder/0": {"handlers": {"encode_images": {"seconds": 2.0, "docs": 400}, "index": {"seconds": 9, "docs": 400}}},
        "indexer/0": {"handlers": {"index": {"seconds": 1.0, "docs": 400}}},
    }
    assert model_timing(timings) == {"model_ms_per_image": 5.0, "model_timed_images": 400}
    assert model_timing({"x": {"handlers": {}}}) == {}
    local = {
        "encoder": "lite",
        "status": "ok",
        "model_ms_per_image": 5.0,
        "indexed": 2000,
        "index_seconds": 30.0,
        "dim": 1280,
        "bytes_per_vector": 6000.0,
        "peak_rss_mb": 500,
        "runtime": "onnx",
        "info": {"family": "efficientnet", "num_threads": 2},
        "quality": {"labelled": True, "mAP@10": 0.7},
    }
    api = {
        "encoder": "vertex",
        "status": "ok",
        "registry_name": "vertex",
        "encode_seconds": 100.0,
        "indexed": 1000,
        "index_seconds": 120.0,
        "dim": 1408,
        "info": {"family": "vertex"},
        "quality": {"labelled": True, "mAP@10": 0.8},
    }
    slow = {**local, "encoder": "slow", "model_ms_per_image": 50.0, "quality": {"labelled": True, "mAP@10": 0.6}}
    c = cost_of(local)
    assert (c["ms_per_image"], c["threads"], c["index_s_per_10k"], c["ram_bytes_per_vector"], c["price_per_1000"]) == (5.0, 2, 150.0, 1280 * 5, 0.0)
    v = cost_of(api, price_per_1000=0.2)
    assert v["ms_per_image"] == 100.0 and v["ms_measured_on"] == "/index requests" and v["leaves_machine"] and v["price_per_1000"] == 0.2
    table = cost_table([local, api, slow, {"encoder": "gone", "status": "failed"}])
    assert {n: r["pareto"] for n, r in table.items()} == {"lite": True, "vertex": True, "slow": False}
    assert ram_bytes_per_vector(512, "binary") == 2048 + 64 and ram_bytes_per_vector(None) is None
