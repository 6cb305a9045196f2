"""`index --prune`: stored paths of deleted, moved and edited files are forgotten, and nothing else.

The plan and the indexer's two endpoints run in process on the real embedded Qdrant; the whole
of it runs through the real flow over gRPC on real photos (marked flow)."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from corpus import make_photo
from docarray import DocList

from executors.docs import ImageDoc
from executors.errors import UserError
from executors.indexer.store import EdgeStore
from imgsearch.prune import plan


def _hash(c: str) -> str:
    return c * 64


def test_plan_forgets_only_gone_or_changed_paths_under_the_root():
    stored = [
        ImageDoc(hash=_hash("a"), paths=["/lib/a.jpg", "/other/a.jpg"]),  # a.jpg deleted; /other is not scanned
        ImageDoc(hash=_hash("b"), paths=["/lib/b.jpg"]),  # unchanged
        ImageDoc(hash=_hash("c"), paths=["/lib/c.jpg"]),  # c.jpg now holds other bytes
        ImageDoc(hash=_hash("d"), paths=["/lib/d.jpg"]),  # unreadable now: may still be there
        ImageDoc(hash=_hash("e"), paths=["/library/e.jpg"]),  # a sibling folder whose name starts alike
    ]
    present = {"/lib/b.jpg": _hash("b"), "/lib/c.jpg": _hash("f")}
    got = plan(iter(stored), "/lib/", present, unreadable={"/lib/d.jpg"})
    assert got.stale == [(_hash("a"), ["/lib/a.jpg"]), (_hash("c"), ["/lib/c.jpg"])]
    assert got.stored_under_root == 4 and got.stale_paths == 2


def test_max_prune_is_a_share():
    from imgsearch.cli import build_parser

    assert build_parser().parse_args(["index", "--prune", "--max-prune", "1"]).max_prune == 1.0
    with pytest.raises(SystemExit):
        build_parser().parse_args(["index", "--max-prune", "2"])


def _indexer(tmp_path: Path, n: int):
    from executors.indexer.executor import QdrantIndexer

    ix = QdrantIndexer(store_path=str(tmp_path / "ws"))
    vecs = np.random.default_rng(0).standard_normal((n, 8)).astype(np.float32)
    docs = [
        ImageDoc(uri=f"/lib/{i}.jpg", hash=f"{i:064x}", width=3, height=2, size=9, mime="image/jpeg", model="m", embedding=v)
        for i, v in enumerate(vecs)
    ]
    ix.index(DocList[ImageDoc](docs), parameters={"collection": "c"})
    return ix


def test_stored_paths_pages_through_every_image_once(tmp_path):
    ix = _indexer(tmp_path, 23)
    try:
        seen, after = [], None
        while True:
            page = ix.list_paths(DocList[ImageDoc](), parameters={"collection": "c", "after": after, "limit": 5})
            seen += [(d.hash, d.paths) for d in page]
            if len(page) < 5:
                break
            after = page[-1].id
        assert sorted(seen) == sorted((f"{i:064x}", [f"/lib/{i}.jpg"]) for i in range(23))
        assert len(ix.list_paths(DocList[ImageDoc](), parameters={"collection": "missing"})) == 0
    finally:
        ix.close()


def test_remove_paths_keeps_an_image_while_it_has_a_path(tmp_path):
    ix = _indexer(tmp_path, 3)
    h0, h1, h2 = (f"{i:064x}" for i in range(3))
    try:
        ix.add_paths(DocList[ImageDoc]([ImageDoc(hash=h0, paths=["/lib/copy.jpg"])]), parameters={"collection": "c"})
        done = ix.remove_paths(
            DocList[ImageDoc](
                [
                    ImageDoc(hash=h0, paths=["/lib/0.jpg"]),  # its first path: the copy takes over as uri
                    ImageDoc(hash=h1, paths=["/lib/1.jpg"]),  # its only path: deleted
                    ImageDoc(hash="9" * 64, paths=["/lib/9.jpg"]),  # never stored
                ]
            ),
            parameters={"collection": "c"},
        )
        assert [d.indexed for d in done] == [True, False, None]
        stored = {h.payload["hash"]: h.payload for h in ix.store.scroll("c")}
        assert set(stored) == {h0, h2}
        assert stored[h0]["uri"] == "/lib/copy.jpg" and stored[h0]["paths"] == ["/lib/copy.jpg"]
        assert stored[h2]["uri"] == "/lib/2.jpg"
    finally:
        ix.close()


@pytest.mark.flow
def test_prune_through_the_flow(tmp_path, photo_dir, tiny_models):
    from imgsearch.flow import Gateway, local_flow
    from imgsearch.indexing import encoder_info, run_index

    lib, other = tmp_path / "a" / "photos", tmp_path / "b" / "photos"
    shutil.copytree(photo_dir, lib)
    shutil.copytree(photo_dir / "coffee", other / "coffee")  # the same bytes from another folder
    make_photo(other / "only_here.jpg", size=(90, 70), seed=7)
    sha = {p.relative_to(lib).as_posix(): _sha(p) for p in lib.rglob("*.jpg")}
    store = tmp_path / "store"
    with local_flow("clip", model=str(tiny_models["clip"]), store=str(store)) as host:
        gw = Gateway(host)
        info = encoder_info(gw)
        first = run_index(gw, lib, info, dataset="lib", progress=False)
        run_index(gw, other, info, dataset="lib", progress=False)  # one collection for both folders
        assert first.not_seen == 0

        (lib / "coffee" / "coffee_full.jpg").unlink()  # still in the other folder
        make_photo(lib / "chelsea" / "chelsea_full.jpg", size=(80, 60), seed=11)  # edited: other bytes
        edited = _sha(lib / "chelsea" / "chelsea_full.jpg")
        (lib / "astronaut" / "astronaut_crop.jpg").rename(lib / "astronaut" / "moved.jpg")
        shutil.copy(lib / "rocket" / "rocket_full.jpg", lib / "rocket" / "copy.jpg")
        (lib / "rocket" / "rocket_full.jpg").unlink()
        broken = lib / "motorcycle" / "motorcycle_full.jpg"
        broken.unlink()
        os.symlink(broken.name, broken)  # a link to itself: the scan cannot read it, so it is kept

        seen = run_index(gw, lib, info, dataset="lib", progress=False)
        assert seen.indexed == 1 and seen.pruned_paths == 0  # the edited photo; nothing forgotten unasked
        # The deleted coffee (still in the other folder), the edited photo's old bytes, the
        # unreadable photo and the other folder's own photo.
        assert seen.not_seen == 4

        pruned = run_index(gw, lib, info, dataset="lib", progress=False, prune=True)
        assert (pruned.pruned_paths, pruned.pruned_images) == (4, 1)  # coffee, chelsea, astronaut, rocket paths
        assert pruned.count == first.count + 1 + 1 - 1  # + the other folder's photo + the edit - the old bytes

        # Would forget most of the folder (say, a sub-folder unmounted): refused, nothing changes.
        for name in ("coffee", "chelsea", "astronaut", "rocket"):
            shutil.rmtree(lib / name)
        with pytest.raises(UserError, match="--max-prune"):
            run_index(gw, lib, info, dataset="lib", progress=False, prune=True)
        # An empty scan (the disk not mounted) is refused too.
        empty = tmp_path / "c" / "photos"
        empty.mkdir(parents=True)
        with pytest.raises(UserError, match="no readable image"):
            run_index(gw, empty, info, dataset="lib", progress=False, prune=True)
        assert int(gw.call("/count", {"collection": pruned.collection})["count"]) == pruned.count

    with EdgeStore(str(store), read_only=True) as st:
        points = {h.payload["hash"]: h.payload for h in st.scroll(pruned.collection)}
    paths = {h: p.get("paths") or [p["uri"]] for h, p in points.items()}
    assert paths[sha["coffee/coffee_full.jpg"]] == [str(other / "coffee" / "coffee_full.jpg")]
    assert sha["chelsea/chelsea_full.jpg"] not in paths  # the old bytes: deleted
    assert paths[edited] == [str(lib / "chelsea" / "chelsea_full.jpg")]
    assert points[sha["astronaut/astronaut_crop.jpg"]]["uri"] == str(lib / "astronaut" / "moved.jpg")
    assert paths[sha["astronaut/astronaut_crop.jpg"]] == [str(lib / "astronaut" / "moved.jpg")]
    assert paths[sha["rocket/rocket_full.jpg"]] == [str(lib / "rocket" / "copy.jpg")]
    assert paths[sha["motorcycle/motorcycle_full.jpg"]] == [str(broken)]  # unreadable: kept
    assert paths[sha["motorcycle/motorcycle_crop.jpg"]] == [str(lib / "motorcycle" / "motorcycle_crop.jpg")]
    assert paths[_sha(other / "only_here.jpg")] == [str(other / "only_here.jpg")]
    assert sorted(paths[sha["coffee/coffee_crop.jpg"]]) == sorted(
        [str(lib / "coffee" / "coffee_crop.jpg"), str(other / "coffee" / "coffee_crop.jpg")]
    )


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()
