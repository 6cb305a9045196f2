"""Two docarray costs paid for every document, in every stage, for every request; removed.

Every executor turns each request's protobuf into ``DocList[ImageDoc]`` and back (Jina does
it around the handlers), so per-document costs there are paid four times per image, plus the
client's. Profiled in the flow (py-spy), two of docarray 0.41's dominated it:

- ``ID.from_protobuf`` calls ``pydantic.parse_obj_as(ID, value)``, which under pydantic 2
  builds a new ``TypeAdapter`` (a core schema) for every document's id. Its validator is
  ``ID._docarray_validate``; calling that directly gives the same ``ID``.
- ``BaseDoc._get_field_annotation(field)`` re-reads the field's annotation and unwraps
  ``Optional`` with ``typing_inspect`` for every field of every document; a class's fields do
  not change once it is defined, so the answer is kept per (class, field).

Deserialising a request's documents: 144–177 → 38 µs per scan-like document, 185 → 92 with
pixels; in the flow, 0.5–0.6 ms of CPU less per image over the four processes that do it
(docs/performance.md). tests/test_docarray_fixes.py checks the documents are the same.
Upstream, ``ID.from_protobuf`` should call ``cls._docarray_validate`` and the annotation
lookup should be cached. :func:`apply` patches only the docarray these were measured on, and
leaves any other version as it is.
"""

import functools
import importlib.metadata
import inspect
import logging

import docarray
from docarray.base_doc.doc import BaseDocWithoutId
from docarray.typing.id import ID

logger = logging.getLogger(__name__)

# The lock's docarray. Its wheel (0.41.0) still says ``__version__ = "0.40.1"``, so the installed
# distribution's version is what is checked.
PATCHED_VERSIONS = ("0.41.",)


def _installed_version() -> str:
    try:
        return importlib.metadata.version("docarray")
    except importlib.metadata.PackageNotFoundError:  # not installed as a distribution
        return docarray.__version__


def _fast_id_from_protobuf(cls, pb_msg: str) -> ID:
    return cls._docarray_validate(pb_msg)


def apply() -> bool:
    """Patch docarray (idempotent); False, changing nothing, on another version or shape."""
    if getattr(ID.from_protobuf, "__func__", None) is _fast_id_from_protobuf:
        return True
    version = _installed_version()
    if not version.startswith(PATCHED_VERSIONS):
        logger.debug("docarray %s: its own serialisation kept", version)
        return False
    annotation = BaseDocWithoutId.__dict__.get("_get_field_annotation")
    if not (hasattr(ID, "_docarray_validate") and "parse_obj_as" in inspect.getsource(ID.from_protobuf)
            and isinstance(annotation, classmethod)):
        logger.debug("docarray %s has another shape than expected: not patched", version)
        return False
    ID.from_protobuf = classmethod(_fast_id_from_protobuf)
    # lru_cache under the classmethod: keyed by (class, field), so subclasses keep their own.
    BaseDocWithoutId._get_field_annotation = classmethod(functools.lru_cache(maxsize=None)(annotation.__func__))
    return True
