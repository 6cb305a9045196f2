"""ImageNormalizer: raw bytes → upright uint8 RGB pixels, the same for every model."""

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from docarray import DocList
from jina import Executor, requests

from executors.docs import ImageDoc, failed
from executors.normalizer.decode import DEFAULT_MAX_PIXELS, ImageDecodeError, decode_image

logger = logging.getLogger(__name__)


class ImageNormalizer(Executor):
    """Decodes once (EXIF orientation, any mode to RGB, first frame, bomb guard, size cap).

    ``max_side`` caps the longer side of the pixels sent on (large enough for every
    supported model's input, small enough that a 4000×3000 photo does not travel whole);
    ``resize`` forces a fixed square size instead (e.g. 96 as in the original meme study).
    """

    def __init__(
        self,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_side: Optional[int] = 1024,
        resize: Optional[int] = None,
        decode_threads: int = 4,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.max_pixels = max_pixels
        self.max_side = max_side or None
        self.resize = resize or None
        # Pillow releases the GIL while decoding, so threads overlap decodes of one batch.
        self._pool = ThreadPoolExecutor(max_workers=max(1, decode_threads))

    def _decode(self, doc: ImageDoc) -> None:
        try:
            doc.tensor, doc.width, doc.height = decode_image(
                doc.blob, max_pixels=self.max_pixels, max_side=self.max_side, resize=self.resize
            )
        except ImageDecodeError as exc:
            doc.error = str(exc)
        doc.blob = None  # the bytes are not needed past this stage

    @requests(on=["/index", "/search"])
    def normalize(self, docs: DocList[ImageDoc], **kwargs) -> DocList[ImageDoc]:
        todo = [d for d in docs if not failed(d) and d.blob is not None]
        list(self._pool.map(self._decode, todo))
        return docs

    @requests
    def pass_through(self, docs: DocList[ImageDoc], **kwargs) -> DocList[ImageDoc]:
        """Endpoints this stage has no part in pass through untouched."""
        return None

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        super().close()
