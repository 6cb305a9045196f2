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
lookup should be cached. :func:`apply` follows the project's policy for such patches
(executors/patches.py): the docarray these were measured on, with the internals they expect,
is patched; any other keeps its own behaviour, with one warning.
"""

import functools
import inspect
import logging
from typing import Any, Callable

import docarray
from docarray.base_doc.doc import BaseDocWithoutId
from docarray.typing.id import ID

from executors.patches import installed_version, should_apply

logger = logging.getLogger(__name__)

# The lock's docarray. Its wheel (0.41.0) still says ``__version__ = "0.40.1"``, so the installed
# distribution's version is what is checked.
PATCHED_VERSIONS = ("0.41.",)


def _fast_id_from_protobuf(cls, pb_msg: str) -> ID:
    return cls._docarray_validate(pb_msg)


def internals_changed() -> list[str]:
    """What of docarray's internals the patches replace is not as they expect (empty: all is)."""
    changed = []
    if not hasattr(ID, "_docarray_validate"):
        changed.append("ID._docarray_validate is gone")
    if "parse_obj_as" not in inspect.getsource(ID.from_protobuf):
        changed.append("ID.from_protobuf no longer calls parse_obj_as")
    if not isinstance(BaseDocWithoutId.__dict__.get("_get_field_annotation"), classmethod):
        changed.append("BaseDocWithoutId._get_field_annotation is no longer a classmethod")
    return changed


def apply() -> bool:
    """Patch docarray where the policy allows (idempotent); False: docarray's own behaviour kept."""
    if getattr(ID.from_protobuf, "__func__", None) is _fast_id_from_protobuf:
        return True
    version = installed_version("docarray", fallback=docarray.__version__)
    if not should_apply("docarray", PATCHED_VERSIONS, internals_changed, version=version):
        return False
    annotation = BaseDocWithoutId.__dict__["_get_field_annotation"]
    # The classes seen as Any: replacing a typed library's methods at run time is what a type
    # checker forbids (method-assign), and this module exists to do it.
    id_cls: Any = ID
    doc_cls: Any = BaseDocWithoutId
    id_cls.from_protobuf = classmethod(_fast_id_from_protobuf)
    # lru_cache under the classmethod: keyed by (class, field), so subclasses keep their own.
    cached: Callable[..., Any] = functools.lru_cache(maxsize=None)(annotation.__func__)
    doc_cls._get_field_annotation = classmethod(cached)
    return True
