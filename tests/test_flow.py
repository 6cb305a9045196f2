"""The real flow: separate executor processes over gRPC into the real embedded Qdrant."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_FOR_ENCODER
from corpus import DUPLICATES, OK, SKIP, make_corpus, make_photo

from executors.docs import ImageDoc
from executors.indexer.executor import STORED_FIELDS
from executors.indexer.store import EdgeStore, point_id
from imgsearch import indexing
from imgsearch.flow import Gateway, local_flow
from imgsearch.indexing import encoder_info, run_index
from imgsearch.searching import QueryError, run_search

pytestmark = pytest.mark.flow


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_index_odd_files_then_reindex_and_search(tmp_path, photo_dir, monkeypatch):
    """EfficientNet-Lite0 (real weights) over the hostile corpus plus real photos, scanned in
    pages of 7: the loader reads each page ahead while the one before is indexed, and odd files
    and duplicates fall on every side of the pages' edges."""
    monkeypatch.setattr(indexing, "SCAN_PAGE", 7)
    data = tmp_path / "data"
    cases = make_corpus(data / "corpus")
    shutil.copytree(photo_dir, data / "photos")
    ok_files = [data / "corpus" / rel for rel, want in cases.items() if want == OK]
    ok_files += sorted((data / "photos").rglob("*.jpg"))
    unique = {_sha(p) for p in ok_files}
    store = tmp_path / "store"

    with local_flow("efficientnet-lite0", store=str(store)) as host:
        gw = Gateway(host)
        info = encoder_info(gw)
        assert info.dim == 1280 and info.text is False
        first = run_index(gw, data, info, batch_size=8, progress=False)
        assert first.files_seen > 3 * indexing.SCAN_PAGE  # several pages

        skipped = {Path(s["path"]).relative_to(data / "corpus").as_posix(): s["reason"] for s in first.skipped}
        assert set(skipped) == {rel for rel, want in cases.items() if want == SKIP}
        assert all(reason for reason in skipped.values())
        assert first.indexed == len(unique) and first.count == len(unique)
        dup_paths = {Path(d["path"]).relative_to(data / "corpus").as_posix() for d in first.duplicates}
        assert dup_paths & set(DUPLICATES)  # the second copy is reported, not indexed twice

        again = run_index(gw, data, info, batch_size=8, progress=False)
        assert again.indexed == 0 and again.already_indexed == len(unique) and again.count == len(unique)

        # A local flow passes files by path (app.py sets SHARED_FILES): the loader's /index sends
        # a scanned file's path, hash and state, never its bytes (which the normalizer reads).
        params = {"data": str(data / "photos"), "collection": first.collection}
        gw.call("/scan_total", params)
        page = gw.post("/scan", [ImageDoc()], {**params, "offset": 0, "limit": 2}, target=indexing.SCAN_TARGET)
        read = gw.post("/index", [ImageDoc(uri=d.uri, hash=d.hash) for d in page], params, target="loader")
        assert len(read) == 2 and all(d.blob is None and d.file_state and d.hash for d in read)

        for seed in (101, 102):
            make_photo(data / "photos" / "new" / f"new_{seed}.jpg", size=(80, 60), seed=seed)
        added = run_index(gw, data, info, batch_size=8, progress=False)
        assert added.indexed == 2 and added.count == len(unique) + 2

        # "More like this" by stored hash: compare with brute force after the flow is down.
        probe = _sha(data / "photos" / "coffee" / "coffee_crop.jpg")
        found = gw.post("/search", [ImageDoc(hash=probe)], {"collection": first.collection, "top_k": 7})
        by_image = run_search(gw, first.collection, info, image=data / "photos" / "coffee" / "coffee_full.jpg", top_k=3)
        with pytest.raises(QueryError, match="cannot embed text"):
            run_search(gw, first.collection, info, text="a cup of coffee")

    assert by_image.matches[0]["path"].endswith("coffee_full.jpg") and by_image.matches[0]["score"] > 0.999
    assert by_image.matches[1]["label"] == "coffee"  # the crop of the same photo comes next

    with EdgeStore(str(store), read_only=True) as st:
        points = list(st.scroll(first.collection, with_vectors=True))
        assert len(points) == len(unique) + 2
        vectors = np.stack([p.vector for p in points])
        assert np.isfinite(vectors).all() and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
        payload = points[0].payload
        assert set(STORED_FIELDS) <= set(payload) and "model" not in payload  # the collection's, not each point's
        query = vectors[[p.id for p in points].index(point_id(probe))]
        scores = vectors @ query
        order = np.argsort(-scores)[:7]
        expected = [points[i].id for i in order]
    got = found[0].matches
    assert {"uri", "hash", "label", "width", "height", "size", "mime", "paths"} <= set(got[0])
    assert got[0]["model"] == info.model and got[0]["paths"][0] == got[0]["uri"]
    assert [m["id"] for m in got] == expected
    assert np.allclose([m["score"] for m in got], scores[order], atol=1e-4)


@pytest.mark.parametrize("encoder", sorted(TINY_FOR_ENCODER))
def test_every_encoder_family_through_the_flow(encoder, tiny_models, photo_dir, tmp_path):
    model = tiny_models[TINY_FOR_ENCODER[encoder]]
    n_images = len(list(photo_dir.rglob("*.jpg")))
    with local_flow(encoder, model=str(model), store=str(tmp_path / "store")) as host:
        gw = Gateway(host)
        info = encoder_info(gw)
        assert info.encoder == encoder and info.model == str(model)
        summary = run_index(gw, photo_dir, info, batch_size=4, progress=False)
        assert summary.skipped == [] and summary.indexed == n_images == summary.count
        query = photo_dir / "rocket" / "rocket_full.jpg"
        result = run_search(gw, summary.collection, info, image=query, top_k=n_images)
        assert len(result.matches) == n_images
        assert result.matches[0]["path"] == str(query) and result.matches[0]["score"] > 0.999
        scores = [m["score"] for m in result.matches]
        assert scores == sorted(scores, reverse=True)
        if info.text:
            by_text = run_search(gw, summary.collection, info, text="a doge meme", top_k=3)
            assert len(by_text.matches) == 3 and all(-1.0 <= m["score"] <= 1.0 for m in by_text.matches)
        threshold = (scores[1] + scores[2]) / 2
        cut = run_search(gw, summary.collection, info, image=query, top_k=n_images, score_threshold=threshold)
        assert len(cut.matches) == 2


def test_unknown_model_fails_before_any_work(tmp_path):
    from executors.encoders.resolve import CheckpointError, resolve_checkpoint

    with pytest.raises(CheckpointError, match="model folder not found"):
        resolve_checkpoint("clip", str(tmp_path / "missing"))
    with pytest.raises(CheckpointError, match="Hugging Face hub"):
        resolve_checkpoint("dinov2")  # offline in tests: not cached, not downloadable
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        resolve_checkpoint("vit", str(tmp_path / "empty"))


def test_fixed_size_normalisation_is_a_flag(tmp_path, photo_dir):
    """--resize 96 (the original meme study's setting) gets its own collection; sizes stay the originals'."""
    from PIL import Image

    with local_flow("efficientnet-lite0", store=str(tmp_path / "store"), resize=96) as host:
        gw = Gateway(host)
        info = encoder_info(gw)
        summary = run_index(gw, photo_dir, info, progress=False, resize=96)
        assert summary.collection.endswith("--96px") and summary.indexed == summary.count > 0
        query = photo_dir / "astronaut" / "astronaut_full.jpg"
        result = run_search(gw, summary.collection, info, image=query, top_k=1)
    best = result.matches[0]
    assert best["path"] == str(query)
    assert (best["width"], best["height"]) == Image.open(query).size


def test_a_changed_environment_restarts_the_fork_server_or_spawns(monkeypatch):
    """The fork server's children get its environment, not ours: after a change it is
    restarted (the stdlib's private _stop), and where that is missing or children of the old
    one still run, the flow spawns instead of serving a stale environment."""
    import multiprocessing
    from multiprocessing import forkserver

    from imgsearch import processes

    stops = []
    monkeypatch.setattr(forkserver.ForkServer, "_stop", lambda self: stops.append(1), raising=False)
    monkeypatch.setattr(multiprocessing, "active_children", list)
    monkeypatch.setattr(processes, "_forkserver_env", {"IMGSEARCH_TEST_ONLY": "old"})
    assert processes._forkserver_serves(set()) and stops == [1]  # restarted
    monkeypatch.setattr(processes, "_forkserver_env", {"IMGSEARCH_TEST_ONLY": "old"})
    monkeypatch.setattr(multiprocessing, "active_children", lambda: ["a child"])
    assert not processes._forkserver_serves(set()) and stops == [1]  # its children run: spawn
    monkeypatch.setattr(multiprocessing, "active_children", list)
    monkeypatch.delattr(forkserver.ForkServer, "_stop")
    assert not processes._forkserver_serves(set()) and stops == [1]  # no _stop: spawn
