"""`app.py index --quantization none|int8|binary`: chosen at creation, kept in the collection's
metadata and in the engine's own config, for both backends; a different setting for an existing
collection is a clear error, and searching still finds the exact top hit."""

import json
import os

import numpy as np
import pytest
from qdrant_client import QdrantClient

from executors.indexer.store import EdgeStore, ServerStore
from executors.indexer.store.interface import point_id


def _vectors(n=64, d=32, seed=0):
    v = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _fill(store, name, quantization):
    v = _vectors()
    store.ensure_collection(name, v.shape[1], {"model": "m", "quantization": quantization})
    ids = [point_id(f"{i:064x}") for i in range(len(v))]
    store.upsert(name, ids, v, [{"hash": f"{i:064x}"} for i in range(len(v))])
    return v, ids


@pytest.mark.parametrize("quantization", ["none", "int8", "binary", None])
def test_edge_store_keeps_the_setting(tmp_path, quantization):
    want = quantization or "int8"
    with EdgeStore(str(tmp_path)) as store:
        v, ids = _fill(store, "photos--m", quantization)
        assert store.collection_meta("photos--m")["quantization"] == want
        store.optimize("photos--m")
    config = json.loads(open(os.path.join(tmp_path, "qdrant", "photos--m", "shard", "edge_config.json")).read())
    q = config.get("quantization_config")
    assert (q is None) if want == "none" else (want == "int8") == ("scalar" in json.dumps(q).lower())
    with EdgeStore(str(tmp_path)) as store:  # reopened writable: the config is not "upgraded" back to int8
        hits = store.search_batch("photos--m", v[:3], 1)
        assert [h[0].id for h in hits] == ids[:3]
        store.ensure_collection("photos--m", v.shape[1], {"model": "m"})  # no setting asked: whatever it has
        other = next(x for x in ("none", "int8", "binary") if x != want)
        with pytest.raises(ValueError, match=f"exists with quantization {want}.*--quantization {want}"):
            store.ensure_collection("photos--m", v.shape[1], {"model": "m", "quantization": other})
    config2 = json.loads(open(os.path.join(tmp_path, "qdrant", "photos--m", "shard", "edge_config.json")).read())
    assert config2.get("quantization_config") == q


def test_server_store_keeps_the_setting():
    store = ServerStore(client=QdrantClient(":memory:"))
    _fill(store, "photos--b", "binary")
    assert store.collection_meta("photos--b")["quantization"] == "binary"
    with pytest.raises(ValueError, match="exists with quantization binary"):
        store.ensure_collection("photos--b", 32, {"model": "m", "quantization": "int8"})
    _fill(store, "photos--d", None)
    assert store.collection_meta("photos--d")["quantization"] == "int8"
    with pytest.raises(ValueError, match="unknown quantization 'int4'"):
        store.ensure_collection("photos--x", 32, {"model": "m", "quantization": "int4"})


@pytest.mark.flow
def test_index_through_the_flow_records_the_setting(tmp_path, photo_dir):
    """`index --quantization binary` through the real flow: the collection is made binary; a rerun
    asking for nothing keeps it; new images asking for int8 fail with the reason."""
    import shutil

    from corpus import make_photo

    from imgsearch.flow import Gateway, local_flow
    from imgsearch.indexing import encoder_info, run_index

    data, store = tmp_path / "ds", tmp_path / "store"
    shutil.copytree(photo_dir, data)
    with local_flow("efficientnet-lite0", store=str(store)) as host:
        gw = Gateway(host)
        info = encoder_info(gw)
        first = run_index(gw, data, info, batch_size=8, progress=False, quantization="binary")
        assert first.indexed > 0
        assert run_index(gw, data, info, batch_size=8, progress=False).already_indexed == first.indexed
        make_photo(data / "new.jpg", seed=99)
        with pytest.raises(Exception, match="exists with quantization binary"):
            run_index(gw, data, info, batch_size=8, progress=False, quantization="int8")
    with EdgeStore(str(store), read_only=True) as st:
        assert st.collection_meta(first.collection)["quantization"] == "binary"
