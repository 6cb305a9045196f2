"""The vector store against the real engines: Qdrant Edge in process, qdrant-client local mode."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # plain `pytest` puts only tests/ on the path
    sys.path.insert(0, str(REPO))

from executors.indexer.store import (  # noqa: E402
    CollectionInfo,
    EdgeStore,
    Hit,
    ServerStore,
    StoreInUseError,
    UnknownCollectionError,
    VectorStore,
    point_id,
)

STORE_PKG = REPO / "executors" / "indexer" / "store"

# Subprocesses load the store package by path: importing the executors package pulls in jina (~2 s).
SUBPROCESS_PRELUDE = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("store_under_test", {str(STORE_PKG / "__init__.py")!r},
                                              submodule_search_locations=[{str(STORE_PKG)!r}])
store = importlib.util.module_from_spec(spec)
sys.modules["store_under_test"] = store
spec.loader.exec_module(store)
"""


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def make_data(n: int, dim: int, seed: int) -> tuple[list[str], np.ndarray, list[dict]]:
    rng = np.random.default_rng(seed)
    ids = [point_id(f"{seed:04d}{i:060d}") for i in range(n)]
    vecs = rng.standard_normal((n, dim)).astype(np.float32)
    payloads = [{"path": f"/img/{i}.jpg", "i": i} for i in range(n)]
    return ids, vecs, payloads


def brute_force(ids: list[str], vecs: np.ndarray, q: np.ndarray, k: int) -> tuple[list[str], np.ndarray]:
    scores = unit(vecs) @ unit(q)
    order = np.argsort(-scores)[:k]
    return [ids[i] for i in order], scores[order]


@pytest.fixture
def edge(tmp_path: Path):
    s = EdgeStore(str(tmp_path / "ws"))
    yield s
    s.close()


@pytest.fixture
def filled(edge: EdgeStore):
    ids, vecs, payloads = make_data(400, 32, seed=1)
    edge.ensure_collection("clip-vit-b32", 32, {"model": "clip", "created": "2024-01-01"})
    edge.upsert("clip-vit-b32", ids, vecs, payloads)
    return edge, ids, vecs, payloads


def test_point_id_is_deterministic_uuid5() -> None:
    h = "ab" * 32
    assert point_id(h) == point_id(h)
    assert point_id(h) != point_id("cd" * 32)
    u = uuid.UUID(point_id(h))
    assert u.version == 5 and str(u) == point_id(h)


def test_a_backend_missing_a_method_cannot_be_built() -> None:
    """The interface is enforced: a backend that forgets a method fails when built, not mid-index."""

    class Partial(VectorStore):
        def count(self, name: str) -> int:
            return 0

    with pytest.raises(TypeError, match="abstract") as exc:
        Partial()
    assert "search_batch" in str(exc.value) and "upsert" in str(exc.value)


def test_upsert_count_and_search_matches_brute_force(filled) -> None:
    edge, ids, vecs, payloads = filled
    assert edge.count("clip-vit-b32") == 400
    rng = np.random.default_rng(7)
    for q in rng.standard_normal((8, 32)).astype(np.float32):
        hits = edge.search("clip-vit-b32", q, 10)
        want_ids, want_scores = brute_force(ids, vecs, q, 10)
        assert [h.id for h in hits] == want_ids
        np.testing.assert_allclose([h.score for h in hits], want_scores, atol=1e-5)
        assert all(isinstance(h, Hit) and h.vector is None for h in hits)
        assert hits[0].payload == payloads[ids.index(hits[0].id)]


def test_score_threshold_and_exclude(filled) -> None:
    edge, ids, vecs, _ = filled
    q = vecs[3]
    all_hits = edge.search("clip-vit-b32", q, 50)
    assert all_hits[0].id == ids[3] and all_hits[0].score == pytest.approx(1.0, abs=1e-5)
    cut = (all_hits[4].score + all_hits[5].score) / 2
    thr = edge.search("clip-vit-b32", q, 50, score_threshold=cut)
    assert [h.id for h in thr] == [h.id for h in all_hits[:5]]
    assert all(h.score >= cut for h in thr)

    with_vec = edge.search("clip-vit-b32", q, 3, with_vectors=True)
    assert [h.id for h in with_vec] == [h.id for h in all_hits[:3]]
    for h in with_vec:
        np.testing.assert_allclose(h.vector, unit(vecs[ids.index(h.id)]), atol=1e-6)

    excluded = edge.search("clip-vit-b32", q, 10, exclude_ids=[ids[3], all_hits[1].id])
    got = [h.id for h in excluded]
    assert ids[3] not in got and all_hits[1].id not in got
    assert got == [h.id for h in all_hits if h.id not in (ids[3], all_hits[1].id)][:10]


@pytest.mark.parametrize("backend", ["edge", "server"])
def test_search_batch_equals_one_search_per_query(filled, backend) -> None:
    edge, ids, vecs, payloads = filled
    store = edge
    if backend == "server":
        from qdrant_client import QdrantClient

        store = ServerStore(client=QdrantClient(":memory:"))
        store.ensure_collection("clip-vit-b32", 32, {"model": "clip"})
        store.upsert("clip-vit-b32", ids, vecs, payloads)
    queries = np.random.default_rng(11).standard_normal((6, 32)).astype(np.float32)
    queries[2] = vecs[5]
    excludes = [None, None, [ids[5]], None, [ids[0], ids[1]], None]
    got = store.search_batch("clip-vit-b32", queries, 7, score_threshold=-0.5, exclude_ids=excludes)
    assert len(got) == len(queries)
    for q, ex, hits in zip(queries, excludes, got):
        want = store.search("clip-vit-b32", q, 7, score_threshold=-0.5, exclude_ids=ex)
        assert [h.id for h in hits] == [h.id for h in want]
        np.testing.assert_allclose([h.score for h in hits], [h.score for h in want], atol=1e-5)
        assert hits[0].payload == payloads[ids.index(hits[0].id)]
    assert ids[5] not in [h.id for h in got[2]]
    assert store.search_batch("clip-vit-b32", np.zeros((0, 32), np.float32), 5) == []
    if backend == "server":
        store.close()


def test_existing_retrieve_delete_and_idempotent_upsert(filled) -> None:
    edge, ids, vecs, payloads = filled
    unknown = [point_id("f" * 64), point_id("e" * 64)]
    assert edge.existing_ids("clip-vit-b32", ids[:5] + unknown) == set(ids[:5])
    assert edge.existing_ids("no-such-collection", ids[:5]) == set()

    got = edge.retrieve("clip-vit-b32", [ids[10], ids[20], unknown[0]], with_vectors=True)
    by_id = {h.id: h for h in got}
    assert set(by_id) == {ids[10], ids[20]}
    for i in (10, 20):
        h = by_id[ids[i]]
        assert h.score == 0.0 and h.payload == payloads[i]
        assert h.vector is not None and h.vector.dtype == np.float32
        # Cosine collections store unit vectors.
        np.testing.assert_allclose(h.vector, unit(vecs[i]), atol=1e-6)
    assert edge.retrieve("clip-vit-b32", [ids[10]])[0].vector is None

    # Same ids again (new payloads): count unchanged, payload replaced.
    edge.upsert("clip-vit-b32", ids[:100], vecs[:100], [{"v": 2}] * 100)
    assert edge.count("clip-vit-b32") == 400
    assert edge.retrieve("clip-vit-b32", [ids[0]])[0].payload == {"v": 2}

    assert edge.delete("clip-vit-b32", ids[:30] + unknown) == 30
    assert edge.count("clip-vit-b32") == 370
    assert edge.existing_ids("clip-vit-b32", ids[:40]) == set(ids[30:40])
    assert edge.delete("clip-vit-b32", ids[:30]) == 0
    assert all(h.id not in set(ids[:30]) for h in edge.search("clip-vit-b32", vecs[0], 20))


def test_scroll_returns_every_point(filled) -> None:
    edge, ids, vecs, _ = filled
    seen = list(edge.scroll("clip-vit-b32", with_vectors=True, batch=64))
    assert sorted(h.id for h in seen) == sorted(ids)
    one = next(h for h in seen if h.id == ids[5])
    np.testing.assert_allclose(one.vector, unit(vecs[5]), atol=1e-6)


def test_validation_errors(edge: EdgeStore) -> None:
    edge.ensure_collection("m", 16, {"model": "m"})
    edge.ensure_collection("m", 16, {"model": "m"})  # idempotent
    with pytest.raises(ValueError, match="dim 16"):
        edge.ensure_collection("m", 32, {"model": "m"})
    for bad in ["", ".hidden", "a/b", "../x", "a b", "x" * 201, "é"]:
        with pytest.raises(ValueError, match="invalid collection name"):
            edge.ensure_collection(bad, 16, {})
    ids, vecs, payloads = make_data(4, 16, seed=3)
    vecs[1, 3] = np.nan
    vecs[2] = 0.0
    with pytest.raises(ValueError) as ei:
        edge.upsert("m", ids, vecs, payloads)
    assert ids[1] in str(ei.value) and ids[2] in str(ei.value) and ids[0] not in str(ei.value)
    assert edge.count("m") == 0  # nothing of the rejected batch went in
    with pytest.raises(ValueError, match="shape"):
        edge.upsert("m", ids, np.ones((4, 8), np.float32), payloads)
    with pytest.raises(ValueError, match="not a uuid"):
        edge.upsert("m", ["nope"], np.ones((1, 16), np.float32), [{}])
    with pytest.raises(ValueError):
        edge.search("m", np.full(16, np.nan, np.float32), 5)
    with pytest.raises(UnknownCollectionError) as ku:
        edge.search("other", np.ones(16, np.float32), 5)
    assert isinstance(ku.value, KeyError) and "'m'" in str(ku.value) and "other" in str(ku.value)
    with pytest.raises(KeyError):
        edge.count("other")
    with pytest.raises(KeyError):
        edge.retrieve("other", ids)


def test_meta_list_drop_and_disk_bytes(filled) -> None:
    edge, *_ = filled
    edge.ensure_collection("dino.v2-small", 8, {"model": "dino"})
    meta = edge.collection_meta("clip-vit-b32")
    assert meta == {"model": "clip", "created": "2024-01-01", "dim": 32, "quantization": "int8"}  # the default, recorded
    meta_file = Path(edge.root) / "clip-vit-b32" / "meta.json"
    assert meta_file.is_file() and (Path(edge.root) / "clip-vit-b32" / "shard").is_dir()
    assert edge.collection_meta("nope") is None

    infos = {c.name: c for c in edge.list_collections()}
    assert set(infos) == {"clip-vit-b32", "dino.v2-small"}
    c = infos["clip-vit-b32"]
    assert isinstance(c, CollectionInfo) and c.count == 400 and c.meta["model"] == "clip"
    assert c.disk_bytes is not None and c.disk_bytes > 400 * 32 * 4
    assert infos["dino.v2-small"].count == 0

    assert edge.drop_collection("dino.v2-small") is True
    assert edge.drop_collection("dino.v2-small") is False
    assert not edge.has_collection("dino.v2-small") and edge.disk_bytes("dino.v2-small") is None
    assert [c.name for c in edge.list_collections()] == ["clip-vit-b32"]
    assert not any(p.name.startswith(".trash") for p in Path(edge.root).iterdir())


def test_persist_and_reopen(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    ids, vecs, payloads = make_data(300, 24, seed=5)
    qs = np.random.default_rng(9).standard_normal((5, 24)).astype(np.float32)
    with EdgeStore(ws) as s:
        s.ensure_collection("c", 24, {"model": "c"})
        s.upsert("c", ids, vecs, payloads)
        before = [[h.id for h in s.search("c", q, 10)] for q in qs]
    with EdgeStore(ws) as s:
        assert s.count("c") == 300
        assert s.collection_meta("c") == {"model": "c", "dim": 24, "quantization": "int8"}
        assert [[h.id for h in s.search("c", q, 10)] for q in qs] == before


def test_upsert_survives_kill_9(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    n = 3000
    code = SUBPROCESS_PRELUDE + textwrap.dedent(f"""
        import numpy as np, time
        s = store.EdgeStore({ws!r}, flush_interval_s=1e9)  # never flush: the WAL must carry it
        s.ensure_collection("c", 32, {{"model": "c"}})
        rng = np.random.default_rng(0)
        for b in range(0, {n}, 500):
            ids = [store.point_id(f"{{i:064d}}") for i in range(b, b + 500)]
            s.upsert("c", ids, rng.standard_normal((500, 32)).astype(np.float32), [{{"i": i}} for i in range(b, b + 500)])
        print("ACK", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ACK"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with EdgeStore(ws) as s:  # the dead process's flock is gone with it
        assert s.count("c") == n
        want = [point_id(f"{i:064d}") for i in range(n)]
        assert s.existing_ids("c", want) == set(want)
        assert s.retrieve("c", [want[-1]])[0].payload == {"i": n - 1}


def test_workspace_lock(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    first = EdgeStore(ws)
    first.ensure_collection("c", 8, {"model": "c"})
    first.upsert("c", [point_id("a" * 64)], np.ones((1, 8), np.float32), [{}])
    try:
        # flock is per open file description, so a second store in this process conflicts too.
        with pytest.raises(StoreInUseError, match=f"{ws}.*in use.*pid {os.getpid()}"):
            EdgeStore(ws)
        code = SUBPROCESS_PRELUDE + textwrap.dedent(f"""
            try:
                store.EdgeStore({ws!r})
            except store.StoreInUseError as e:
                print("IN_USE", e)
            else:
                print("OPENED")
        """)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
        assert out.stdout.startswith("IN_USE"), out.stdout + out.stderr
        assert f"pid {os.getpid()}" in out.stdout and ws in out.stdout

        ro = EdgeStore(ws, read_only=True)
        infos = ro.list_collections()
        assert [(c.name, c.meta["model"]) for c in infos] == [("c", "c")]
        assert infos[0].disk_bytes and infos[0].disk_bytes > 0
        assert infos[0].count is None  # the writer holds the shard's WAL: count is unknowable
        with pytest.raises(PermissionError):
            ro.upsert("c", [point_id("b" * 64)], np.ones((1, 8), np.float32), [{}])
        ro.close()
    finally:
        first.close()
    second = EdgeStore(ws)
    assert second.count("c") == 1
    second.close()
    ro = EdgeStore(ws, read_only=True)
    assert ro.list_collections()[0].count == 1  # no writer now: read-only can open the shard
    ro.close()


def test_edge_and_server_store_agree(tmp_path: Path) -> None:
    from qdrant_client import QdrantClient

    ids, vecs, payloads = make_data(500, 64, seed=11)
    edge = EdgeStore(str(tmp_path / "ws"))
    server = ServerStore(client=QdrantClient(":memory:"))
    try:
        for s in (edge, server):
            s.ensure_collection("c", 64, {"model": "m", "dataset": "rand"})
            for b in range(0, 500, 128):
                s.upsert("c", ids[b : b + 128], vecs[b : b + 128], payloads[b : b + 128])
            assert s.count("c") == 500
        assert server.collection_meta("c") == edge.collection_meta("c") == {"model": "m", "dataset": "rand", "dim": 64, "quantization": "int8"}
        for q in np.random.default_rng(12).standard_normal((20, 64)).astype(np.float32):
            e = edge.search("c", q, 10)
            r = server.search("c", q, 10)
            assert [h.id for h in e] == [h.id for h in r] == brute_force(ids, vecs, q, 10)[0]
            np.testing.assert_allclose([h.score for h in e], [h.score for h in r], atol=1e-5)

        # The rest of the interface behaves the same on the server backend.
        assert server.existing_ids("c", ids[:3] + [point_id("0" * 64)]) == set(ids[:3])
        got = server.retrieve("c", [ids[7]], with_vectors=True)[0]
        np.testing.assert_allclose(got.vector, unit(vecs[7]), atol=1e-6)
        assert got.payload == payloads[7]
        hits = server.search("c", vecs[7], 5, exclude_ids=[ids[7]], score_threshold=-1.0)
        assert ids[7] not in [h.id for h in hits] and len(hits) == 5
        assert len(list(server.scroll("c", batch=100))) == 500
        # Pages from an offset: the same ids in the same order on both backends.
        for st in (server, edge):
            first, nxt = st.scroll_page("c", None, 40)
            second, _ = st.scroll_page("c", nxt, 40)
            assert second[0].id == nxt and len({h.id for h in first + second}) == 80
        assert [h.id for h in server.scroll_page("c", nxt, 40)[0]] == [h.id for h in edge.scroll_page("c", nxt, 40)[0]]
        assert server.delete("c", ids[:10]) == 10 and server.count("c") == 490
        with pytest.raises(ValueError, match="dim 64"):
            server.ensure_collection("c", 32, {})
        with pytest.raises(UnknownCollectionError):
            server.count("nope")
        (info,) = server.list_collections()
        assert info.name == "c" and info.count == 490 and info.disk_bytes is None and info.meta["model"] == "m"
        assert server.disk_bytes("c") is None
        assert server.drop_collection("c") and not server.has_collection("c")
    finally:
        edge.close()
        server.close()


def test_optimize_builds_the_index_and_search_stays_exact_enough(tmp_path: Path) -> None:
    """Above ~5k × 512 the collection gets HNSW over int8 vectors with float rescoring:
    the top result stays exact and recall@10 against brute force stays ≥ 0.95."""
    rng = np.random.default_rng(5)
    n, dim = 8000, 512
    centres = rng.standard_normal((200, dim)).astype(np.float32)
    vecs = centres[rng.integers(0, 200, n)] + 0.5 * rng.standard_normal((n, dim)).astype(np.float32)
    ids = [point_id(f"{i:064d}") for i in range(n)]
    with EdgeStore(str(tmp_path / "ws")) as store:
        store.ensure_collection("big", dim, {"model": "m"})
        for s in range(0, n, 1000):
            store.upsert("big", ids[s : s + 1000], vecs[s : s + 1000], [{"i": i} for i in range(s, min(s + 1000, n))])
        assert store.optimize("big") is True
        info = store._shard("big").info()
        assert info.indexed_vectors_count == n and info.points_count == n
        queries = vecs[rng.integers(0, n, 40)] + 0.3 * rng.standard_normal((40, dim)).astype(np.float32)
        hits_total = 0
        for q in queries:
            got = [h.id for h in store.search("big", q, 10)]
            want, _ = brute_force(ids, vecs, q, 10)
            assert got[0] == want[0]
            hits_total += len(set(got) & set(want))
        assert hits_total / (10 * len(queries)) >= 0.95
    with EdgeStore(str(tmp_path / "ws")) as store:  # the index survives a reopen
        assert store._shard("big").info().indexed_vectors_count == n
        assert store.count("big") == n


def test_upsert_takes_strided_and_float64_vectors_exactly(edge: EdgeStore) -> None:
    """Rows go to the engine as memoryviews: a non-contiguous or float64 input stores the same vectors."""
    ids, vecs, payloads = make_data(6, 16, seed=21)
    edge.ensure_collection("s", 16, {"model": "m"})
    wide = np.zeros((6, 32), np.float64)
    wide[:, ::2] = vecs  # every other column: strided rows, float64
    edge.upsert("s", ids[:3], wide[:3, ::2], payloads[:3])
    edge.upsert("s", ids[3:], np.asfortranarray(vecs[3:]), payloads[3:])
    got = {h.id: h for h in edge.retrieve("s", ids, with_vectors=True)}
    for i, pid in enumerate(ids):
        np.testing.assert_allclose(got[pid].vector, unit(vecs[i]), atol=1e-6)
        assert got[pid].payload == payloads[i]


def _indexer(workspace: Path):
    from executors.indexer.executor import QdrantIndexer

    return QdrantIndexer(store_path=str(workspace))


def _image(name: str, vector: np.ndarray, uri: str, label: str | None, mime: str = "image/jpeg"):
    from executors.docs import ImageDoc

    return ImageDoc(uri=uri, hash=name * 64, label=label, width=30, height=20, size=1234, mime=mime, model="m-1", embedding=vector)


# Every field a match has carried since paths were added; clients read them by name.
MATCH_KEYS = {"uri", "hash", "label", "width", "height", "model", "size", "mime", "paths", "id", "score"}


def test_indexer_stores_slim_payloads_and_matches_carry_every_field(tmp_path: Path) -> None:
    from docarray import DocList

    from executors.docs import ImageDoc

    vecs = unit(np.random.default_rng(3).standard_normal((2, 8)).astype(np.float32))
    a = _image("a", vecs[0], "/data/lab/a.jpg", "lab")  # label = its folder, MIME = its extension's
    b = _image("b", vecs[1], "/data/b.png", None)  # directly in the data root (unlabelled), JPEG bytes named .png
    ix = _indexer(tmp_path / "ws")
    try:
        ix.index(DocList[ImageDoc]([a, b]), parameters={"collection": "c"})
        ix.add_paths(DocList[ImageDoc]([ImageDoc(hash="b" * 64, paths=["/data/b copy.png"])]), parameters={"collection": "c"})
        stored = {h.payload["hash"][0]: h.payload for h in ix.store.scroll("c")}
        # Only what the uri and the collection do not say already.
        assert stored["a"] == {"uri": "/data/lab/a.jpg", "hash": "a" * 64, "width": 30, "height": 20, "size": 1234}
        assert stored["b"] == {
            "uri": "/data/b.png",
            "hash": "b" * 64,
            "width": 30,
            "height": 20,
            "size": 1234,
            "label": None,
            "mime": "image/jpeg",
            "paths": ["/data/b.png", "/data/b copy.png"],
        }

        res = ix.search(DocList[ImageDoc]([ImageDoc(embedding=vecs[0])]), parameters={"collection": "c", "top_k": 2})
        ma, mb = res[0].matches
        assert set(ma) == set(mb) == MATCH_KEYS and ma["score"] == pytest.approx(1.0, abs=1e-5)
        for m, doc in ((ma, a), (mb, b)):
            assert {k: m[k] for k in ("uri", "hash", "label", "width", "height", "size", "mime")} == {
                k: getattr(doc, k) for k in ("uri", "hash", "label", "width", "height", "size", "mime")
            }
            assert m["model"] == "m-1"  # from the collection's metadata
        assert ma["paths"] == ["/data/lab/a.jpg"] and mb["paths"] == ["/data/b.png", "/data/b copy.png"]

        # Re-indexing a stored image from another path keeps both paths (and stores them).
        ix.index(DocList[ImageDoc]([_image("a", vecs[0], "/data/lab/a2.jpg", "lab")]), parameters={"collection": "c"})
        (again,) = ix.store.retrieve("c", [point_id("a" * 64)])
        assert again.payload["paths"] == ["/data/lab/a.jpg", "/data/lab/a2.jpg"]
    finally:
        ix.close()


def test_indexer_reads_collections_stored_with_full_payloads(tmp_path: Path) -> None:
    """Points written before the payload was slimmed (every field on every point) read as before,
    their own label and MIME type winning over what their uri says."""
    from docarray import DocList

    from executors.docs import ImageDoc

    vecs = unit(np.random.default_rng(4).standard_normal((2, 8)).astype(np.float32))
    old = [
        {
            "uri": f"/old/{n}.jpg",
            "hash": n * 64,
            "label": "x",
            "width": 1,
            "height": 2,
            "model": "m-old",
            "size": 3,
            "mime": "image/png",
            "paths": [f"/old/{n}.jpg"] + ([f"/old/{n} dup.jpg"] if n == "d" else []),
        }
        for n in ("c", "d")
    ]
    with EdgeStore(str(tmp_path / "ws")) as st:
        st.ensure_collection("old", 8, {"model": "m-old"})
        st.upsert("old", [point_id(p["hash"]) for p in old], vecs, old)
    ix = _indexer(tmp_path / "ws")
    try:
        res = ix.search(DocList[ImageDoc]([ImageDoc(embedding=vecs[0])]), parameters={"collection": "old", "top_k": 2})
        got = {m["hash"]: m for m in res[0].matches}
        for p in old:
            m = got[p["hash"]]
            assert set(m) == MATCH_KEYS and {k: m[k] for k in p} == p  # exactly what was stored
        scan = ix.mark_indexed(DocList[ImageDoc]([ImageDoc(hash="d" * 64)]), parameters={"collection": "old"})
        assert scan[0].indexed and scan[0].paths == ["/old/d.jpg", "/old/d dup.jpg"]
    finally:
        ix.close()
