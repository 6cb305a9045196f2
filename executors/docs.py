"""The one document schema every executor and client speaks.

A single flat schema (rather than one per stage) keeps the flow simple: each stage fills
the fields it owns and clears the heavy ones the next stages no longer need, so bytes
and pixels never travel further than they must.
"""

from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Union

from docarray import BaseDoc, DocList
from docarray.proto import DocProto
from docarray.typing import NdArray

try:  # docarray's converter of one field value; private, so optional
    from docarray.base_doc.mixins.io import _type_to_protobuf as _docarray_converter

    _type_to_protobuf: Optional[Callable[[Any], Any]] = _docarray_converter
except ImportError:  # pragma: no cover
    _type_to_protobuf = None

from executors import docarray_fixes, limits

# Every process that speaks these documents (each executor, the clients) deserialises them
# per request: docarray's per-document costs, patched here once for all of them.
docarray_fixes.apply()

# The largest image file the pipeline accepts (loader and client): executors/limits.py.
MAX_IMAGE_BYTES = limits.MAX_IMAGE_BYTES


class ImageDoc(BaseDoc):
    """An image (or a text query) on its way through loader → normalizer → encoder → indexer."""

    uri: Optional[str] = None  # path of the file, as the loader saw it
    blob: Optional[bytes] = None  # raw file bytes; dropped by the normalizer after decoding
    hash: Optional[str] = None  # sha256 hex of the file bytes; the point id derives from it
    size: Optional[int] = None  # file size in bytes
    # Set by the loader (/index) when the normalizer reads the file itself (a flow on one machine):
    # file_state() of the file it found unchanged since /scan hashed it. Text: protobuf's
    # integers here are 32-bit.
    file_state: Optional[str] = None
    mime: Optional[str] = None  # detected from the content, not the extension
    label: Optional[str] = None  # parent folder name
    tensor: Optional[NdArray] = None  # uint8 RGB pixels (H, W, 3); dropped by the encoder
    width: Optional[int] = None  # of the decoded, orientation-corrected image
    height: Optional[int] = None
    text: Optional[str] = None  # a text query instead of an image
    embedding: Optional[NdArray] = None  # L2-normalised float32
    model: Optional[str] = None  # checkpoint that made the embedding
    error: Optional[str] = None  # why this document was skipped; later stages pass it on untouched
    indexed: Optional[bool] = None  # set by the indexer: already stored / stored now
    paths: Optional[List[str]] = None  # every path known to hold these bytes (duplicates included)
    # Plain dicts rather than nested docs: Jina's gateway cannot rebuild nested-doc schemas
    # under pydantic 2, and JSON-like results are easiest for clients in other languages.
    matches: Optional[List[Dict[str, Any]]] = None

    def to_protobuf(self) -> DocProto:
        # Unset (None) fields are not written: every field defaults to None, so the receiver
        # rebuilds the same document, as it does from the sparse documents other-language
        # clients send (docs/grpc.md). At any stage most of the 17 fields are unset, and each
        # cost a NodeProto to write and a lookup to read, in every process, per request.
        if _type_to_protobuf is None:  # another docarray: its own way
            return super().to_protobuf()
        return DocProto(data={name: _type_to_protobuf(value) for name, value in self if value is not None})


# What an endpoint handler returns. Jina reads a handler's return annotation as its response
# schema, so at run time this must be DocList[ImageDoc]; the handler may also return a dict
# (results for the client, e.g. /timings) or None (the docs go on as they came), which Jina
# accepts and the type checker must see.
if TYPE_CHECKING:
    Reply = Union[DocList[ImageDoc], Dict[str, Any], None]
else:
    Reply = DocList[ImageDoc]


def file_state(size: int, mtime_ns: int) -> str:
    """What must be unchanged in a file for a hash of it to hold (as /index checks it)."""
    return f"{size}:{mtime_ns}"


def failed(doc: ImageDoc) -> bool:
    """Whether an earlier stage already skipped this document."""
    return doc.error is not None
