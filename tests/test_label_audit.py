"""Label audit and top groups on vectors: planted mislabels and outliers, Holm's correction."""

import numpy as np
import pytest

from imgsearch.compare.knn import linear_probe
from imgsearch.compare.label_audit import combine, mislabels, outliers
from imgsearch.compare.significance import paired_test
from imgsearch.compare.synthetic import clustered
from imgsearch.compare.top_group import holm, paired_binary_test, top_group


def test_planted_mislabels_and_outliers_are_found():
    vectors, codes = clustered(1500, 32, 6, seed=3)
    rng = np.random.default_rng(0)
    wrong = rng.choice(1500, 40, replace=False)
    noisy = codes.copy()
    noisy[wrong] = (codes[wrong] + rng.integers(1, 6, 40)) % 6
    far = rng.normal(size=(15, 32)).astype(np.float32)
    far /= np.linalg.norm(far, axis=1, keepdims=True)
    vectors = np.vstack([vectors, far])
    noisy = np.concatenate([noisy, rng.integers(0, 6, 15)])
    hashes = [f"{(i * 7919) % 100003:06d}" for i in range(len(vectors))]
    probe = linear_probe(vectors, noisy, hashes, 200, per_label=400, max_total=3000)
    flagged = mislabels(noisy, probe.pred_probs, probe.classes)
    rows = {f["row"]: f for f in flagged}
    found = [w for w in wrong if w in rows]
    assert len(found) >= 0.9 * len(wrong)
    assert sum(rows[w]["suggested"] == codes[w] for w in found) >= 0.9 * len(found)
    assert len(flagged) <= 2 * len(wrong) + 15  # not everything


def test_images_far_from_all_others_are_outliers():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(6, 32))
    tight = centres[rng.integers(0, 6, 1500)] + rng.normal(scale=0.4, size=(1500, 32))
    far = rng.normal(size=(12, 32))
    vectors = np.vstack([tight, far]).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    hashes = [f"{(i * 7919) % 100003:06d}" for i in range(len(vectors))]
    out, fence = outliers(vectors, hashes)
    assert {o["row"] for o in out} >= set(range(1500, 1512)) and len(out) <= 15
    assert fence["fence"] < fence["median"]
    clean, _ = outliers(vectors[:1500], hashes[:1500])
    assert len(clean) <= 3


def test_combine_ranks_images_more_encoders_flag_first():
    images = {"paths": [f"/d/{i}.jpg" for i in range(5)], "labels": ["a", "a", "b", "b", "b"]}
    runs = [
        {
            "encoder": "x",
            "probe": {"accuracy": 0.9},
            "label_audit": {"mislabels": [{"image": 1, "suggested": "b"}, {"image": 2, "suggested": "a"}], "outliers": []},
        },
        {"encoder": "y", "probe": {"accuracy": 0.2}, "label_audit": {"mislabels": [{"image": 2, "suggested": "c"}], "outliers": [{"image": 4}]}},
    ]
    out = combine(runs, images)
    assert [(f["image"], f["kind"], len(f["encoders"])) for f in out["flagged"]] == [(2, "mislabel", 2), (1, "mislabel", 1), (4, "outlier", 1)]
    assert out["flagged"][0]["suggested"] == "a"  # the better probe's vote
    assert out["flagged"][0]["path"] == "/d/2.jpg" and out["total"] == {"mislabel": 2, "outlier": 1}


def test_holm_matches_the_textbook_example():
    # p = .01, .04, .03, .005 -> sorted .005, .01, .03, .04 -> ×4, ×3, ×2, ×1 = .02, .03, .06, .04 -> monotone .02 .03 .06 .06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_top_group_keeps_ties_and_drops_the_clearly_worse():
    rng = np.random.default_rng(0)
    base = (rng.random(600) < 0.8).astype(float)
    near = base.copy()
    near[rng.choice(600, 6, replace=False)] = 1 - near[rng.choice(600, 6, replace=False)]
    worse = (rng.random(600) < 0.5).astype(float)
    g = top_group({"a": base, "b": near, "c": worse})
    assert g["best"] in ("a", "b") and set(g["group"]) == {"a", "b"}
    assert next(c for c in g["comparisons"] if c["encoder"] == "c")["p_holm"] < 0.05


def test_mcnemar_agrees_with_the_randomisation_test_on_hits():
    rng = np.random.default_rng(5)
    a = (rng.random(800) < 0.7).astype(float)
    b = np.where(rng.random(800) < 0.15, 1 - a, a)
    b[:20] = 0
    exact, perm = paired_binary_test(a, b), paired_test(a, b)
    assert exact["diff"] == pytest.approx(perm["diff"])
    assert exact["p"] == pytest.approx(perm["p"], abs=0.02)
    assert exact["ci"] == pytest.approx(perm["ci"], abs=0.01)
