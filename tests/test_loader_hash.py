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
