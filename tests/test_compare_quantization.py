"""What the index setting costs: Qdrant's HNSW and quantised search against exact search,
scored with numpy brute force on the same vectors."""

import numpy as np
import pytest

from imgsearch.compare.quantization import exact_top, index_recall, recall_at_k, recommend
from imgsearch.compare.synthetic import clustered


def test_exact_top_is_a_full_sort_without_the_query():
    v, _ = clustered(500, 32, 5, seed=2)
    rows = np.array([0, 7, 499])
    full = v[rows] @ v.T
    for j, r in enumerate(rows):
        order = [i for i in np.argsort(-full[j], kind="stable") if i != r][:10]
        assert exact_top(v, rows)[j].tolist() == order
    assert recall_at_k([[1, 2, 3], [4, 5, 9]], np.array([[1, 2, 4], [4, 5, 6]])) == pytest.approx((2 / 3 + 2 / 3) / 2)


def test_qdrant_settings_against_numpy_exact_search():
    v, _ = clustered(3000, 64, 8, seed=3)
    out = index_recall(v, queries=150)
    s = out["settings"]
    assert set(s) == {"hnsw", "int8", "int8+rescore", "binary", "binary+rescore"}
    # Independently: the exact top 10 by numpy, the engine's answers re-scored here.
    assert s["hnsw"]["recall@10"] >= 0.95 and s["int8+rescore"]["recall@10"] >= 0.95
    assert s["int8+rescore"]["recall@10"] >= s["int8"]["recall@10"] - 0.01
    assert s["binary+rescore"]["recall@10"] >= s["binary"]["recall@10"]
    assert s["binary"]["recall@10"] < s["int8"]["recall@10"]  # 1 bit a dimension loses more than 8
    assert (s["hnsw"]["ram_bytes_per_vector"], s["int8"]["ram_bytes_per_vector"], s["binary"]["ram_bytes_per_vector"]) == (256, 64, 8)
    assert s["binary"]["times_less_ram"] == 32.0 and s["int8"]["ram_saved"] == 0.75
    # Sampled past max_vectors, and said so.
    small = index_recall(v, queries=20, max_vectors=1000)
    assert (small["vectors"], small["of"], small["queries"]) == (1000, 3000, 20)
    assert index_recall(v[:5])["skipped"].startswith("only 5 vectors")


def _settings(**recalls):
    return {
        "settings": {s: {"recall@10": r, "times_less_ram": {"hnsw": 1.0, "int8": 4.0, "binary": 32.0}[s.split("+")[0]]} for s, r in recalls.items()}
    }


def test_the_recommended_setting_saves_most_ram_at_good_recall_on_every_encoder():
    a = _settings(**{"hnsw": 0.999, "int8": 0.95, "int8+rescore": 0.998, "binary": 0.6, "binary+rescore": 0.995})
    b = _settings(**{"hnsw": 0.999, "int8": 0.95, "int8+rescore": 0.996, "binary": 0.5, "binary+rescore": 0.90})
    assert recommend({"a": a})["option"] == "binary"
    rec = recommend({"a": a, "b": b})  # b's binary falls short: int8 for both
    assert rec["option"] == "int8" and rec["worst_recall@10"] == 0.996 and "4× less RAM" in rec["sentence"]
    bad = _settings(**{"hnsw": 0.9, "int8": 0.8, "int8+rescore": 0.85, "binary": 0.5, "binary+rescore": 0.7})
    assert recommend({"bad": bad})["option"] == "none" and "comes closest" in recommend({"bad": bad})["sentence"]
    assert recommend({"x": {"skipped": "too few"}}) is None
