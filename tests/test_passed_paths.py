"""Files passed by path (loader ``send_paths``, normalizer ``read_files``; a flow on one machine):
the same documents and pixels as bytes would give, a file changed since the scan hashed anew,
and every problem a clear error on its document."""

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from docarray import DocList

from executors.docs import ImageDoc, failed
from executors.loader.executor import ImageLoader
from executors.normalizer.executor import ImageNormalizer
from executors.normalizer.local_file import read_passed_file


def _scanned(loader: ImageLoader, folder: Path) -> DocList[ImageDoc]:
    params = {"data": str(folder)}
    loader.scan_total(DocList[ImageDoc](), params)
    return loader.scan(DocList[ImageDoc](), params)


def _scan_and_read(loader: ImageLoader, folder: Path) -> DocList[ImageDoc]:
    docs = DocList[ImageDoc]([ImageDoc(uri=d.uri, hash=d.hash, size=d.size, mime=d.mime) for d in _scanned(loader, folder)])
    return loader.read(docs, {"data": str(folder)})  # /index reads only under the folder it names


def _normalized(docs: DocList[ImageDoc], read_files: bool, folder: Path) -> DocList[ImageDoc]:
    normalizer = ImageNormalizer(read_files=read_files, decode_threads=2)
    try:
        return normalizer.normalize(docs, {"fit": {"shortest_edge": 64}, "data": str(folder)})
    finally:
        normalizer.close()


def test_paths_give_the_same_documents_as_bytes(photo_dir, tmp_path):
    folder = shutil.copytree(photo_dir, tmp_path / "photos")
    by_bytes = _normalized(_scan_and_read(ImageLoader(), folder), read_files=False, folder=folder)
    passed = _scan_and_read(ImageLoader(send_paths="true"), folder)
    # As they travel: through protobuf, whose integers would not hold a time in nanoseconds.
    passed = DocList[ImageDoc]([ImageDoc.from_protobuf(d.to_protobuf()) for d in passed])
    assert all(d.blob is None and d.file_state is not None and d.hash for d in passed if not failed(d))
    assert sum(not failed(d) for d in passed) >= 8
    by_path = _normalized(passed, read_files=True, folder=folder)
    assert len(by_path) == len(by_bytes)
    for a, b in zip(by_bytes, by_path):
        assert (a.uri, a.hash, a.size, a.mime, a.error, a.width, a.height) == (b.uri, b.hash, b.size, b.mime, b.error, b.width, b.height)
        assert b.blob is None and b.file_state is None  # nothing left behind for the encoder
        if a.tensor is not None:
            np.testing.assert_array_equal(np.asarray(a.tensor), np.asarray(b.tensor))


def test_a_file_changed_after_the_loader_looked_is_hashed_anew(photo_dir, tmp_path):
    folder = shutil.copytree(photo_dir, tmp_path / "photos")
    passed = _scan_and_read(ImageLoader(send_paths=True), folder)
    doc = next(d for d in passed if not failed(d))
    old_hash = doc.hash
    shutil.copyfile(next(d.uri for d in passed if d.uri != doc.uri and not failed(d)), doc.uri)
    out = _normalized(DocList[ImageDoc]([doc]), read_files=True, folder=folder)[0]
    new_bytes = Path(doc.uri).read_bytes()
    assert out.error is None and out.tensor is not None
    assert out.hash == hashlib.sha256(new_bytes).hexdigest() != old_hash and out.size == len(new_bytes)


def test_a_file_changed_after_the_scan_still_travels_as_bytes(photo_dir, tmp_path):
    folder = shutil.copytree(photo_dir, tmp_path / "photos")
    loader = ImageLoader(send_paths=True)
    scanned = _scanned(loader, folder)
    first = scanned[0].uri
    with open(first, "ab") as fh:
        fh.write(b"\0")  # a new size: the scan's hash no longer holds
    docs = loader.read(DocList[ImageDoc]([ImageDoc(uri=d.uri, hash=d.hash) for d in scanned]), {"data": str(folder)})
    assert docs[0].blob is not None and docs[0].file_state is None
    assert docs[0].hash == hashlib.sha256(Path(first).read_bytes()).hexdigest()
    assert all(d.blob is None for d in docs[1:] if not failed(d))


def test_searches_never_pass_paths(photo_dir, tmp_path):
    folder = shutil.copytree(photo_dir, tmp_path / "photos")
    loader = ImageLoader(send_paths=True)
    scanned = _scanned(loader, folder)
    query = loader.read_query(DocList[ImageDoc]([ImageDoc(uri=scanned[0].uri)]))
    # A search carries its bytes: a path alone is refused, never read (tests/security/).
    assert query[0].blob is None and query[0].file_state is None and "never reads a path" in query[0].error
    # A document that claims to be passed by path is never read by /search.
    normalizer = ImageNormalizer(read_files=True)
    try:
        crafted = DocList[ImageDoc]([ImageDoc(uri=scanned[0].uri, file_state="1:1", size=1)])
        out = normalizer.normalize_query(crafted, {})
    finally:
        normalizer.close()
    assert out[0].tensor is None and "does not read files" in out[0].error


def test_a_normalizer_that_does_not_read_files_says_so(photo_dir, tmp_path):
    folder = shutil.copytree(photo_dir, tmp_path / "photos")
    passed = _scan_and_read(ImageLoader(send_paths=True), folder)
    out = _normalized(passed, read_files=False, folder=folder)
    assert all("send_paths" in d.error and d.tensor is None for d in out if d.hash)


def _passed(path: Path) -> ImageDoc:
    return ImageDoc(uri=str(path), size=1, file_state="1:1", hash="0" * 64)


def test_problems_with_a_passed_file_are_errors_on_its_document(tmp_path):
    missing = _passed(tmp_path / "gone.jpg")
    read_passed_file(missing, 1 << 20)
    assert missing.error.startswith("cannot read file") and missing.blob is None

    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)
    doc = _passed(fifo)
    read_passed_file(doc, 1 << 20)  # returns: a FIFO is not waited on
    assert "not a regular file" in doc.error and doc.blob is None
    # The loader's /index reads the same way (it waited forever on a FIFO that took a file's place).
    import threading

    read = DocList[ImageDoc]([ImageDoc(uri=str(fifo))])
    reader = threading.Thread(target=ImageLoader().read, args=(read, {"data": str(tmp_path)}), daemon=True)  # daemon: a hang fails, not blocks
    reader.start()
    reader.join(timeout=30)
    assert not reader.is_alive() and "not a regular file" in read[0].error and read[0].blob is None

    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff\xd8\xff" + b"\0" * 2000)
    doc = _passed(big)
    read_passed_file(doc, 1000)
    assert "too large" in doc.error and doc.blob is None

    text = tmp_path / "notes.jpg"
    text.write_text("hello, not an image")
    doc = _passed(text)
    read_passed_file(doc, 1 << 20)
    assert doc.error == "not an image: the content is plain text" and doc.blob is None and doc.file_state is None


@pytest.mark.parametrize("value, expected", [("true", True), ("1", True), ("off", False), (False, False), ("", False)])
def test_the_switch_reads_yaml_and_environment_values(value, expected):
    assert ImageLoader(send_paths=value).send_paths is expected
    normalizer = ImageNormalizer(read_files=value)
    normalizer.close()
    assert normalizer.read_files is expected
