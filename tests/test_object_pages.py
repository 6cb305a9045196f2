"""A bucket is listed page by page as the scan goes, never held whole (executors/loader/object_pages.py),
against a real S3 server (moto) on loopback; ListObjectsV2 requests are counted at the server."""

import hashlib

import fsspec
import pytest
from docarray import DocList
from s3_server import fill_bucket, jpeg, put_many, s3_server

from executors.docs import MAX_IMAGE_BYTES, ImageDoc
from executors.loader import storage
from executors.loader.executor import ImageLoader
from executors.loader.object_pages import ObjectPages
from executors.loader.storage import ObjectScanner, iter_objects, list_objects

N = 250  # with listing pages of 100 keys (S3's are 1,000): three pages
URL = "s3://many/set"


@pytest.fixture(autouse=True)
def small_listing_pages(monkeypatch):
    monkeypatch.setattr(storage, "LIST_PAGE", 100)


@pytest.fixture(scope="module")
def bucket():
    """N small images, each with bytes of its own, plus the hostile objects of fill_bucket."""
    with pytest.MonkeyPatch.context() as mp, s3_server(mp) as server:
        cases = fill_bucket(server, "many", "set", n_good=8)
        base = jpeg(1)
        bulk = {f"set/bulk{i % 5}/img_{i:05d}.jpg": base + i.to_bytes(4, "big") for i in range(N)}  # bytes after the JPEG's end
        put_many(server, "many", bulk)
        keys = {k.removeprefix("set/") for k in bulk} | {k for k in cases if not k.startswith(".")}
        yield server, keys, {k.removeprefix("set/"): hashlib.sha256(v).hexdigest() for k, v in bulk.items()}, cases


def _lists(server) -> int:
    return server.lists["/many"]


def test_the_listing_is_asked_for_one_page_at_a_time(bucket):
    server, keys, _, _ = bucket
    before = _lists(server)
    objects = iter_objects(URL)
    assert _lists(server) == before  # nothing listed before the first object is asked for
    first = next(objects)
    assert _lists(server) == before + 1
    rest = [first, *objects]
    assert _lists(server) == before + 3  # 250 + the hostile set: three pages of 100
    assert [o.key for o in rest] == sorted(keys) and len(rest) == len(keys)  # every key once, in key order


def test_a_scan_page_is_answered_before_the_listing_ends_and_holds_one_page(bucket, tmp_path):
    server, keys, hashes, _ = bucket
    pages = ObjectPages(URL, ObjectScanner(MAX_IMAGE_BYTES, str(tmp_path / "objects.sqlite")))
    before = _lists(server)
    got = pages.page(0, 70)
    assert got is not None and len(got) == 70
    assert _lists(server) == before + 1  # the first page of documents came from the first listing page alone
    assert len(pages._pending) < 70  # what is inspected and not answered: less than a page
    seen = [d.uri for d in got]
    offset = 70
    while True:
        page = pages.page(offset, 70)
        assert page is not None and len(pages._pending) < 70
        seen += [d.uri for d in page]
        offset += len(page)
        if len(page) < 70:
            break
    assert _lists(server) == before + 3
    assert len(seen) == len(set(seen))  # nothing twice
    bulk = {u.removeprefix(URL + "/") for u in seen if "/bulk" in u}
    assert bulk == set(hashes)  # every image once
    assert pages.restarts == 0

    # A page asked for again (a retried request): listed over, the same documents.
    again = pages.page(70, 70)
    assert pages.restarts == 1 and [d.uri for d in again or []] == seen[70:140]


def test_the_loader_scans_a_bucket_in_pages_of_documents_each_object_once(bucket, tmp_path, monkeypatch):
    """ImageLoader's /scan_total and /scan as the client calls them (imgsearch/scan_pages.py), with
    the read-ahead: every image once with its hash and label, every bad object with its reason."""
    server, keys, hashes, cases = bucket
    loader = ImageLoader(object_cache=str(tmp_path / "objects.sqlite"))
    try:
        params = {"data": URL}
        before = _lists(server)
        assert loader.scan_total(DocList[ImageDoc](), params) == {"files": None}  # a bucket is not counted
        assert _lists(server) == before
        docs: list[ImageDoc] = []
        while True:
            page = loader.scan(DocList[ImageDoc](), {**params, "offset": len(docs), "limit": 51})
            if not docs:
                assert _lists(server) - before <= 2  # answered from the first page or two (one read ahead)
            docs += page
            if len(page) < 51:
                break
    finally:
        loader.close()
    uris = [d.uri for d in docs]
    assert len(uris) == len(set(uris))
    by_key = {d.uri.removeprefix(URL + "/"): d for d in docs}
    assert {k: d.hash for k, d in by_key.items() if k.startswith("bulk")} == hashes
    assert all(d.label == k.split("/")[0] and d.error is None for k, d in by_key.items() if k.startswith("bulk"))
    bad = {k for k, v in cases.items() if v not in ("ok", "ignored", "truncated")}
    assert {k for k, d in by_key.items() if d.error} == bad
    assert set(by_key) == {k for k in keys if cases.get(k) != "ignored"}


def test_other_backends_are_walked_folder_by_folder():
    fs = fsspec.filesystem("memory")
    for key in ("b/2.jpg", "a/1.jpg", "a/deep/3.jpg", "top.jpg", ".hidden/x.jpg", "a/.dot.jpg"):
        fs.pipe(f"/walk/set/{key}", b"x" * len(key))
    objects = list_objects("memory://walk/set")
    assert [o.key for o in objects] == ["top.jpg", "a/1.jpg", "a/deep/3.jpg", "b/2.jpg"]
    assert [o.label for o in objects] == [None, "a", "deep", "b"] and [o.size for o in objects] == [7, 7, 12, 7]
    with pytest.raises(ValueError, match="no bucket or prefix"):
        list_objects("memory://walk/none")


def test_two_clients_scanning_one_bucket_at_once_each_continue_their_own_listing(bucket, tmp_path):
    """The cluster's loader serves every encoder's gateway: two scans of one bucket, their pages
    interleaved (each dropping the other's read-ahead), list the bucket at most once each, not once a page."""
    server, keys, _, cases = bucket
    loader = ImageLoader(object_cache=str(tmp_path / "objects.sqlite"))
    params = {"data": URL}
    got: dict[str, list[str]] = {"a": [], "b": []}
    before = _lists(server)
    try:
        loader.scan_total(DocList[ImageDoc](), params)  # client a starts
        for _ in range(3):
            got["a"] += [d.uri for d in loader.scan(DocList[ImageDoc](), {**params, "offset": len(got["a"]), "limit": 40})]
        loader.scan_total(DocList[ImageDoc](), params)  # client b starts while a is three pages in
        done = set()
        while len(done) < 2:
            for name in ("b", "a"):
                if name in done:
                    continue
                page = loader.scan(DocList[ImageDoc](), {**params, "offset": len(got[name]), "limit": 40})
                got[name] += [d.uri for d in page]
                if len(page) < 40:
                    done.add(name)
    finally:
        loader.close()
    assert got["a"] == got["b"] and len(got["a"]) == len(set(got["a"])) == len([k for k in keys if cases.get(k) != "ignored"])
    # Each scan listed the bucket's three pages once; never from the start again for a page, as one
    # cursor between them would.
    assert _lists(server) - before == 2 * 3
