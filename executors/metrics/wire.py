"""Documents in a serialised Jina DataRequest, counted without unpacking it.

The gateway passes documents on as the bytes it received (Jina parses only a request's header
and parameters there), and parsing them to count them would copy every image. The protobuf
wire format lets us count them by skipping: ``DataRequestProto.data`` (field 4) holds
``DataContentProto.docs`` (field 1), a ``DocListProto`` whose field 1 repeats once per
document; every other field is skipped by its length.
"""

import logging
from typing import Optional

logger = logging.getLogger(__name__)

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
DATA_FIELD, DOCS_FIELD, DOC_FIELD = 4, 1, 1


class WireError(ValueError):
    """Bytes that are not a well-formed protobuf message."""


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise WireError("truncated or overlong varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(buf: memoryview):
    """(field number, payload of a length-delimited field or None) for each field of ``buf``."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, kind = key >> 3, key & 7
        if kind == _VARINT:
            _, pos = _varint(buf, pos)
            yield number, None
        elif kind == _LEN:
            length, pos = _varint(buf, pos)
            if pos + length > len(buf):
                raise WireError("field runs past the end")
            yield number, buf[pos : pos + length]
            pos += length
        elif kind in (_I64, _I32):
            pos += 8 if kind == _I64 else 4
            yield number, None
        else:
            raise WireError(f"wire type {kind}")
    if pos != len(buf):
        raise WireError("field runs past the end")


def _last(buf: memoryview, number: int) -> Optional[memoryview]:
    found = None
    for n, payload in _fields(buf):
        if n == number and payload is not None:
            found = payload  # protobuf merges repeated occurrences; ours never repeat
    return found


def count_docs(serialised: bytes) -> Optional[int]:
    """Documents in a serialised DataRequestProto; None when they travel as one ``docs_bytes``
    blob or the bytes are not a well-formed request."""
    try:
        buf = memoryview(serialised)
        data = _last(buf, DATA_FIELD)
        if data is None:
            return 0
        docs = _last(data, DOCS_FIELD)
        if docs is None:
            return 0 if all(n != 2 for n, _ in _fields(data)) else None  # field 2: docs_bytes
        return sum(1 for n, _ in _fields(docs) if n == DOC_FIELD)
    except WireError as exc:
        logger.debug("not a DataRequestProto: %s", exc)
        return None
