"""The pages of a scan, as the loader answers them: one loop for `index` and `compare`.

A folder is walked whole by the loader, which counts its files (``/scan_total``); the client
then asks for windows over that walk. A bucket is not counted (counting would list every key
before the first page is scanned; a million objects is a thousand listing requests): its
``/scan_total`` answers ``files: None`` and the client asks for pages of documents until one
comes back short (executors/loader/object_pages.py).
"""

import logging
from dataclasses import dataclass
from typing import Any, Iterator, Optional

from docarray import DocList

from executors.contracts import SCAN, SCAN_TOTAL
from executors.docs import ImageDoc

logger = logging.getLogger(__name__)


@dataclass
class ScanPage:
    docs: DocList[ImageDoc]
    entries: int  # what the page covers of the progress total: files walked, or documents


class ScanPages:
    """``for page in ScanPages(gateway, params, size)``; ``total`` is None for a bucket."""

    def __init__(self, gateway: Any, params: dict[str, Any], size: int, target: Optional[str] = None):
        self.gateway, self.params, self.size, self.target = gateway, params, size, target
        files = gateway.call(SCAN_TOTAL, params).get("files")
        self.total: Optional[int] = None if files is None else int(files)

    def _page(self, offset: int) -> DocList[ImageDoc]:
        return self.gateway.post(SCAN, [ImageDoc()], {**self.params, "offset": offset, "limit": self.size}, target=self.target)

    def __iter__(self) -> Iterator[ScanPage]:
        if self.total is not None:  # a folder: windows over the loader's walk
            for offset in range(0, self.total, self.size):
                yield ScanPage(self._page(offset), min(self.size, self.total - offset))
            return
        offset = 0
        while True:  # a bucket: documents as the loader lists them, until a short page
            docs = self._page(offset)
            yield ScanPage(docs, len(docs))
            if len(docs) < self.size:
                return
            offset += len(docs)
