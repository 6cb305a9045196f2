"""Every compare metric against a hand-computed 6-image case."""

import itertools

import numpy as np
import pytest

from imgsearch.metrics import (
    RankedQuery,
    average_precision_at_k,
    break_gap,
    evaluate,
    mean_average_precision_at_k,
    recall_at_k,
    roc_auc,
    suggest_threshold,
)

# Six images: a1 a2 a3 (label A), b1 b2 (B), c1 (C). Three queries, each excluded from its
# own results, so a1 has 2 relevant items, b1 has 1, c1 has none.
#   a1 → a2 .90  b1 .80  a3 .70  c1 .30  b2 .20     relevance T F T F F
#   b1 → a1 .85  b2 .50  a2 .50  a3 .40  c1 .10     relevance F T F F F  (a tie at .50)
#   c1 → a1 .50  a2 .45  a3 .35  b1 .25  b2 .15     nothing relevant
QUERIES = [
    RankedQuery("A", ["A", "B", "A", "C", "B"], [0.90, 0.80, 0.70, 0.30, 0.20], 2),
    RankedQuery("B", ["A", "B", "A", "A", "C"], [0.85, 0.50, 0.50, 0.40, 0.10], 1),
    RankedQuery("C", ["A", "A", "A", "B", "B"], [0.50, 0.45, 0.35, 0.25, 0.15], 0),
]
POS = [0.90, 0.70, 0.50]
NEG = [0.80, 0.30, 0.20, 0.85, 0.50, 0.40, 0.10, 0.50, 0.45, 0.35, 0.25, 0.15]


def test_recall_at_k_is_a_hit_rate_over_queries_with_relevant_items():
    rels = [q.relevance for q in QUERIES]
    nrel = [q.n_relevant for q in QUERIES]
    assert recall_at_k(rels, 1, nrel) == pytest.approx(0.5)  # a1 hits at 1, b1 only at 2
    assert recall_at_k(rels, 2, nrel) == pytest.approx(1.0)
    assert recall_at_k(rels, 5, nrel) == pytest.approx(1.0)
    assert recall_at_k(rels[2:], 5, nrel[2:]) is None  # c1 alone: nothing to recall


def test_average_precision_by_hand():
    # a1: relevant at ranks 1 and 3 of 2 relevant: (1/1 + 2/3) / 2
    assert average_precision_at_k(QUERIES[0].relevance, 10, 2) == pytest.approx((1 + 2 / 3) / 2)
    # b1: relevant at rank 2 of 1 relevant: (1/2) / 1
    assert average_precision_at_k(QUERIES[1].relevance, 10, 1) == pytest.approx(0.5)
    assert average_precision_at_k(QUERIES[2].relevance, 10, 0) is None
    # Cut at k=2: a1 finds only the rank-1 hit, divided by min(2, 2)
    assert average_precision_at_k(QUERIES[0].relevance, 2, 2) == pytest.approx(0.5)
    rels = [q.relevance for q in QUERIES]
    assert mean_average_precision_at_k(rels, 10, [2, 1, 0]) == pytest.approx(((1 + 2 / 3) / 2 + 0.5) / 2)


def test_auc_by_hand_with_ties():
    # Negatives below .90: 12; below .70: 10; below .50: 8 plus two ties at .50 (½ each) = 9.
    assert roc_auc(POS, NEG) == pytest.approx((12 + 10 + 9) / 36)
    brute = np.mean([1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(POS, NEG)])
    assert roc_auc(POS, NEG) == pytest.approx(brute)
    assert roc_auc([0.9, 0.8], [0.1, 0.2]) == 1.0 and roc_auc([0.1], [0.9]) == 0.0
    assert roc_auc([], NEG) is None


def test_break_gap_and_threshold_by_hand():
    assert break_gap(QUERIES[0].scores, QUERIES[0].relevance) == pytest.approx(0.10)  # .90 → .80
    assert break_gap(QUERIES[1].scores, QUERIES[1].relevance) is None  # first result irrelevant
    assert break_gap([0.9, 0.8], [True, True]) is None  # nothing irrelevant returned
    thr = suggest_threshold(POS, NEG)
    # Keep ≥ .50: tp 3, fp 4 (.85 .80 .50 .50) → P 3/7, R 1, F1 0.6; every other cut is worse.
    assert thr.threshold == pytest.approx(0.50)
    assert thr.precision == pytest.approx(3 / 7) and thr.recall == 1.0 and thr.f1 == pytest.approx(0.6)
    perfect = suggest_threshold([0.9, 0.8], [0.3, 0.1])
    assert (perfect.threshold, perfect.precision, perfect.recall) == (0.8, 1.0, 1.0)


def test_evaluate_puts_it_together():
    got = evaluate(QUERIES, ks=(1, 5, 10), map_k=10)
    assert got["labelled"] and got["queries"] == 3 and got["queries_with_relevant"] == 2
    assert got["recall@1"] == pytest.approx(0.5) and got["recall@5"] == 1.0 and got["recall@10"] == 1.0
    assert got["mAP@10"] == pytest.approx(((1 + 2 / 3) / 2 + 0.5) / 2, abs=1e-6)
    assert got["auc"] == pytest.approx(31 / 36, abs=1e-6)
    assert got["mean_relevant_score"] == pytest.approx(0.7)
    assert got["mean_irrelevant_score"] == pytest.approx(sum(NEG) / 12, abs=1e-6)
    assert got["separation"] == pytest.approx(0.7 - sum(NEG) / 12, abs=1e-6)
    assert got["break_gap"] == pytest.approx(0.1) and got["break_gap_queries"] == 1
    assert got["threshold"]["threshold"] == pytest.approx(0.5)
    assert (got["relevant_scores"], got["irrelevant_scores"]) == (3, 12)
    assert sum(got["histogram_relevant"]) == 3 and sum(got["histogram_irrelevant"]) == 12


def test_unlabelled_queries_say_so():
    got = evaluate([RankedQuery(None, [None, None], [0.9, 0.1], 0)])
    assert got == {"labelled": False, "queries": 1}
