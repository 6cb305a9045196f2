"""docarray's per-document costs, patched (executors/docarray_fixes.py): the same documents."""

import logging
from typing import Optional

import numpy as np
from docarray import BaseDoc, DocList
from docarray.base_doc.doc import BaseDocWithoutId
from docarray.typing import NdArray
from docarray.typing.id import ID

from executors import docarray_fixes, patches
from executors.docs import ImageDoc


def test_the_pinned_docarray_gets_the_patches_and_another_keeps_its_own(monkeypatch, caplog):
    """Applied at import means the pinned docarray had the internals the patches expect (the
    check runs before patching). Another version keeps docarray's own behaviour, with a warning."""
    assert ID.from_protobuf.__func__ is docarray_fixes._fast_id_from_protobuf
    monkeypatch.setattr(patches, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="executors.patches"):
        assert patches.should_apply("docarray", docarray_fixes.PATCHED_VERSIONS, list, version="0.42.0") is False
    assert "written for docarray 0.41.x" in caplog.text and "own behaviour" in caplog.text


def test_applied_on_import_and_idempotent():
    assert docarray_fixes.apply() is True and docarray_fixes.apply() is True
    assert ID.from_protobuf.__func__ is docarray_fixes._fast_id_from_protobuf
    got = ID.from_protobuf("3f2a")
    assert type(got) is ID and got == "3f2a"


def test_a_round_trip_keeps_every_field():
    rng = np.random.default_rng(0)
    docs = DocList[ImageDoc](
        [
            ImageDoc(
                uri="/data/cats/1.jpg",
                hash="ab" * 32,
                size=1234,
                mime="image/jpeg",
                label="cats",
                tensor=rng.integers(0, 255, (7, 5, 3), dtype=np.uint8),
                width=5,
                height=7,
            ),
            ImageDoc(
                text="a doge meme",
                embedding=rng.random(16, dtype=np.float32),
                model="clip",
                indexed=True,
                paths=["/a.jpg", "/b.jpg"],
                matches=[{"uri": "/a.jpg", "score": 0.5}],
            ),
            ImageDoc(uri="/bad.gif", error="cannot decode image: truncated", blob=b"GIF89a"),
        ]
    )
    back = DocList[ImageDoc].from_protobuf(docs.to_protobuf())
    for a, b in zip(docs, back):
        assert type(b.id) is ID and b.id == a.id
        for name in ImageDoc.model_fields:
            x, y = getattr(a, name), getattr(b, name)
            if isinstance(x, np.ndarray):
                assert isinstance(y, np.ndarray) and y.dtype == x.dtype and np.array_equal(x, y), name
            else:
                assert y == x, name


def test_field_annotations_are_the_unpatched_answers_per_class():
    original = BaseDocWithoutId.__dict__["_get_field_annotation"].__func__.__wrapped__
    for name in ImageDoc.model_fields:
        assert ImageDoc._get_field_annotation(name) == original(ImageDoc, name), name

    class Other(BaseDoc):  # the same field name, another type: its own answer, not ImageDoc's
        tensor: Optional[str] = None
        embedding: Optional[NdArray] = None

    assert Other._get_field_annotation("tensor") is str
    assert ImageDoc._get_field_annotation("tensor") is NdArray
    assert Other._get_field_annotation("embedding") is NdArray


def test_unset_fields_are_not_sent_and_come_back_unset():
    doc = ImageDoc(uri="/data/cats/1.jpg", hash="ab" * 32, indexed=False, size=0)
    pb = doc.to_protobuf()
    assert set(pb.data) == {"id", "uri", "hash", "indexed", "size"}  # False and 0 are values, None is not
    back = ImageDoc.from_protobuf(pb)
    assert {k: v for k, v in back} == {k: v for k, v in doc}
