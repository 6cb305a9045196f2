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
    loader.read(docs)
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
    loader.read(docs)
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
