"""The caps of executors/limits.py as values: what they refuse, and what they must let through."""

import numpy as np
import pytest

from executors import limits


def test_documents_are_counted_where_each_costs_work():
    many = [object()] * (limits.MAX_DOCS_PER_REQUEST + 1)
    for endpoint in ("/search", "/index"):
        with pytest.raises(limits.RequestTooLarge, match="documents in one request"):
            limits.check_request(endpoint, many)
        limits.check_request(endpoint, many[:-1])
    # A /scan page (2048 light documents, imgsearch/indexing.py SCAN_PAGE) reaches the indexer whole.
    from imgsearch.indexing import SCAN_PAGE

    limits.check_request("/scan", [object()] * (SCAN_PAGE * 2))
    from executors.encoders.base import MAX_BATCH

    assert MAX_BATCH <= limits.MAX_DOCS_PER_REQUEST  # the largest /index request a GPU encoder asks for


def test_top_k_and_tensors(monkeypatch):
    assert limits.top_k({}) == 10 and limits.top_k({"top_k": "7"}) == 7
    for bad in (0, -1, 10**6, "x", float("inf"), float("nan"), None):
        with pytest.raises(ValueError, match="top_k"):
            limits.top_k({"top_k": bad})
    monkeypatch.setenv(limits.MAX_TOP_K_ENV, "5000")
    assert limits.top_k({"top_k": 5000}) == 5000
    assert limits.tensor_error(np.zeros((224, 224, 3), np.uint8)) is None
    assert "elongated" in limits.tensor_error(np.zeros((1, 100, 3), np.uint8))
    assert "over the limit" in limits.tensor_error(np.zeros((4100, 4100, 3), np.uint8))
    assert "uint8" in limits.tensor_error(np.zeros((8, 8), np.uint8))
    monkeypatch.setenv(limits.MAX_REQUEST_MB_ENV, "0")
    with pytest.raises(ValueError, match="positive"):
        limits.max_request_bytes()
