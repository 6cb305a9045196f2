"""The loader hashes each file once: /scan's hash is reused by /index unless the file changed."""

import hashlib
import os

from docarray import DocList

from executors.docs import ImageDoc
from executors.loader import executor as loader_module
from executors.loader.executor import ImageLoader


def test_index_reuses_the_scan_hash_unless_the_file_changed(photo_dir, tmp_path, monkeypatch):
    import shutil

    photo_dir = shutil.copytree(photo_dir, tmp_path / "photos")  # one file gets changed
    calls, sha256 = [], hashlib.sha256

    def counting_sha256(data=b""):
        calls.append(len(data))
        return sha256(data)

    monkeypatch.setattr(loader_module.hashlib, "sha256", counting_sha256)
    loader = ImageLoader()
    params = {"data": str(photo_dir)}
    assert loader.scan_total(DocList[ImageDoc](), params)["files"] == 10
    scanned = loader.scan(DocList[ImageDoc](), params)
    after_scan = len(calls)
    assert len(scanned) == 10 and after_scan == 10

    changed = scanned[0].uri
    data = bytearray(open(changed, "rb").read())
    data[-3] ^= 0xFF  # same size, different bytes, a later modification time
    with open(changed, "wb") as f:
        f.write(data)
    st = os.stat(changed)
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))

    docs = DocList[ImageDoc]([ImageDoc(uri=d.uri, hash=d.hash) for d in scanned])
    loader.read(docs, params)  # /index reads under the folder it names
    assert len(calls) == after_scan + 1  # only the changed file is hashed again
    for doc in docs:
        assert doc.error is None and doc.hash == sha256(open(doc.uri, "rb").read()).hexdigest()
    assert docs[0].hash != scanned[0].hash


def test_a_later_scan_of_unchanged_files_reads_none_of_them(photo_dir, tmp_path, monkeypatch):
    """Re-running `index` over a large library: the hashes are remembered on disk under each
    file's size, times and inode, so a new loader (a new run) only stats unchanged files; a
    changed file is hashed again, and /index still reuses the scan's hash."""
    import shutil

    photos = shutil.copytree(photo_dir, tmp_path / "photos")
    cache = str(tmp_path / "objects.sqlite")
    calls, sha256 = [], hashlib.sha256

    def counting_sha256(data=b""):
        calls.append(len(data))
        return sha256(data)

    monkeypatch.setattr(loader_module.hashlib, "sha256", counting_sha256)
    params = {"data": str(photos)}

    def scan(racy_ns: int) -> DocList[ImageDoc]:
        monkeypatch.setattr(loader_module, "RACY_NS", racy_ns)
        loader = ImageLoader(object_cache=cache)
        loader.scan_total(DocList[ImageDoc](), params)
        return loader, loader.scan(DocList[ImageDoc](), params)

    _, first = scan(racy_ns=10**12)  # just copied: too fresh to be trusted, nothing remembered
    assert len(first) == 10 and len(calls) == 10
    _, second = scan(racy_ns=0)
    assert len(calls) == 20  # hashed again, and remembered this time
    calls.clear()
    loader, third = scan(racy_ns=0)
    assert calls == []  # unchanged: not one file read
    fields = [(d.uri, d.hash, d.size, d.mime, d.label) for d in first]
    assert [(d.uri, d.hash, d.size, d.mime, d.label) for d in third] == fields
    docs = DocList[ImageDoc]([ImageDoc(uri=d.uri, hash=d.hash) for d in third])
    loader.read(docs, params)  # /index reads under the folder it names
    assert calls == [] and all(d.error is None and d.blob for d in docs)  # /index reuses the hash

    changed = third[3].uri
    data = bytearray(open(changed, "rb").read())
    data[-3] ^= 0xFF  # same size, different bytes
    with open(changed, "wb") as f:
        f.write(data)
    _, fourth = scan(racy_ns=0)
    assert len(calls) == 1  # only the changed file is read
    assert fourth[3].hash == sha256(bytes(data)).hexdigest() != third[3].hash
    assert [d.hash for i, d in enumerate(fourth) if i != 3] == [d.hash for i, d in enumerate(third) if i != 3]


def _counting_sha256(monkeypatch) -> list[int]:
    calls, sha256 = [], hashlib.sha256

    def counting(data=b""):
        calls.append(len(data))
        return sha256(data)

    monkeypatch.setattr(loader_module.hashlib, "sha256", counting)
    return calls


def test_the_next_page_is_hashed_while_the_client_indexes_this_one(photo_dir, tmp_path, monkeypatch):
    """Read-ahead: once a page is answered the loader hashes the next one in the background, so
    the client's next /scan finds it done. What it answers is what a loader without read-ahead
    answers, and a file changed after it was read ahead is still hashed again by /index."""
    import shutil

    photos = shutil.copytree(photo_dir, tmp_path / "photos")
    calls = _counting_sha256(monkeypatch)
    params = {"data": str(photos)}
    expected = ImageLoader(scan_threads=1)
    expected.scan_total(DocList[ImageDoc](), params)
    whole = [(d.uri, d.hash, d.size, d.mime, d.label) for d in expected.scan(DocList[ImageDoc](), {**params, "limit": 10})]
    assert len(whole) == 10
    calls.clear()

    loader = ImageLoader(scan_threads=3)
    loader.scan_total(DocList[ImageDoc](), params)
    first = loader.scan(DocList[ImageDoc](), {**params, "offset": 0, "limit": 4})
    loader._ahead._next[1].result()  # the background hashing of files 4-7 has finished
    assert len(calls) == 8
    ahead_files = [open(uri, "rb").read() for uri, *_ in whole[4:8]]
    changed = whole[5][0]
    with open(changed, "wb") as f:  # changed after it was read ahead: a new size and time
        f.write(ahead_files[1] + b"\0" * 7)
    second = loader.scan(DocList[ImageDoc](), {**params, "offset": 4, "limit": 4})
    loader._ahead._next[1].result()  # and that of files 8-9
    assert len(calls) == 10  # files 4-7 taken from the read-ahead: none hashed again
    third = loader.scan(DocList[ImageDoc](), {**params, "offset": 8, "limit": 4})
    assert len(calls) == 10
    got = [(d.uri, d.hash, d.size, d.mime, d.label) for d in [*first, *second, *third]]
    assert got == whole  # in listing order, the same fields
    assert loader._ahead._next is None  # nothing after the last page

    calls.clear()
    docs = DocList[ImageDoc]([ImageDoc(uri=d.uri, hash=d.hash) for d in second])
    loader.read(docs, params)  # /index reads under the folder it names
    assert len(calls) == 1  # only the file changed since its read-ahead is hashed again
    assert docs[1].hash == hashlib.sha256(ahead_files[1] + b"\0" * 7).hexdigest() != second[1].hash
    assert [d.hash for i, d in enumerate(docs) if i != 1] == [d.hash for i, d in enumerate(second) if i != 1]


def test_a_read_ahead_is_used_only_for_the_page_it_was_started_for(photo_dir, tmp_path, monkeypatch):
    import shutil

    photos = shutil.copytree(photo_dir, tmp_path / "photos")
    params = {"data": str(photos)}
    loader = ImageLoader()
    loader.scan_total(DocList[ImageDoc](), params)
    loader.scan(DocList[ImageDoc](), {**params, "offset": 0, "limit": 4})
    # Another page size: the read-ahead of files 4-7 is dropped, files 4-8 are scanned now.
    other = loader.scan(DocList[ImageDoc](), {**params, "offset": 4, "limit": 5})
    assert [d.uri for d in other] == sorted(d.uri for d in other) and len(other) == 5

    # A new listing (a new scan, here after a file was added): nothing read ahead from the old one.
    loader.scan(DocList[ImageDoc](), {**params, "offset": 0, "limit": 4})
    shutil.copy(other[0].uri, photos / "0_added.jpg")  # sorts first: shifts every page by one
    assert loader.scan_total(DocList[ImageDoc](), params)["files"] == 11
    again = loader.scan(DocList[ImageDoc](), {**params, "offset": 4, "limit": 4})
    fresh = ImageLoader()
    fresh.scan_total(DocList[ImageDoc](), params)
    assert [(d.uri, d.hash) for d in again] == [(d.uri, d.hash) for d in fresh.scan(DocList[ImageDoc](), {**params, "offset": 4, "limit": 4})]
