"""ImageNormalizer: raw bytes → upright uint8 RGB pixels, the same for every model."""

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from docarray import DocList
from jina import requests

from executors.cpus import fit_torch_threads, usable_cpus
from executors.docs import MAX_IMAGE_BYTES, ImageDoc, failed
from executors.flow_kwargs import boolean, flow_kwarg
from executors.limits import blob_error
from executors.loader.read_file import refuse_outside_root
from executors.normalizer.decode import DEFAULT_MAX_PIXELS, ImageDecodeError, decode_image, device_jpeg
from executors.normalizer.local_file import read_passed_file
from executors.stage import Stage

logger = logging.getLogger(__name__)

DEFAULT_MAX_SIDE = 1024


def _fit_rule(rule: object) -> Optional[dict]:
    """A well-formed resize rule from request parameters, else None (send the capped image)."""
    if not isinstance(rule, dict):
        return None
    try:
        if rule.get("shortest_edge"):
            out = {"shortest_edge": int(rule["shortest_edge"])}
        else:
            out = {"width": int(rule["width"]), "height": int(rule["height"])}
        out["resample"] = int(rule.get("resample", 3))
    except (KeyError, TypeError, ValueError, OverflowError):
        logger.warning("ignoring malformed resize rule %r", rule)
        return None
    if not all(0 < v <= 4096 for k, v in out.items() if k != "resample") or out["resample"] not in range(6):
        logger.warning("ignoring out-of-range resize rule %r", rule)
        return None
    return out


class ImageNormalizer(Stage):
    """Decodes once (EXIF orientation, any mode to RGB, first frame, bomb guard, size cap).

    ``max_side`` caps the longer side of the pixels sent on (large enough for every
    supported model's input, small enough that a 4000×3000 photo does not travel whole);
    ``resize`` forces a fixed square size instead (e.g. 96 as in the original meme study).
    ``read_files``: /index reads the files the loader passes by path (its ``send_paths``: both
    on when this process sees the loader's disk), up to ``max_file_bytes`` each.
    """

    def __init__(
        self,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_side: int = DEFAULT_MAX_SIDE,
        resize: Optional[int] = None,
        decode_threads: int = 0,
        read_files: bool = False,
        max_file_bytes: int = MAX_IMAGE_BYTES,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.read_files = flow_kwarg("read_files", read_files, False, boolean)
        self.max_file_bytes = flow_kwarg("max_file_bytes", max_file_bytes, MAX_IMAGE_BYTES, int)
        self.max_pixels = flow_kwarg("max_pixels", max_pixels, DEFAULT_MAX_PIXELS, int)
        self.max_side = flow_kwarg("max_side", max_side, DEFAULT_MAX_SIDE, int) or None  # 0: no cap
        self.resize = flow_kwarg("resize", resize, None, int) or None
        fit_torch_threads()  # its resize kernel's threads: no more than the container may use
        # Pillow releases the GIL while decoding, so threads overlap decodes of one batch. 0: one
        # per CPU this process may use, at least 4 (photos cost more to decode than Lite0 to embed,
        # so a many-core machine needs more than 4).
        threads = flow_kwarg("decode_threads", decode_threads, 0, int) or max(4, usable_cpus())
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads))

    def _decode(self, doc: ImageDoc, fit: Optional[dict] = None, keep_jpeg: bool = False) -> None:
        if doc.blob is None:  # passed by path (_to_decode): read here, on the decoding threads
            read_passed_file(doc, self.max_file_bytes)
            if doc.blob is None:
                return
        try:
            if keep_jpeg and not self.resize:  # a fixed square size (resize) is made here
                size = device_jpeg(doc.blob, self.max_pixels)
                if size is not None:  # the encoder decodes it on its device: the bytes go on
                    doc.width, doc.height = size
                    return
            # docarray makes the ndarray its NdArray on assignment (validate_assignment); its field type does not say so
            doc.tensor, doc.width, doc.height = decode_image(  # type: ignore[assignment]
                doc.blob, max_pixels=self.max_pixels, max_side=self.max_side, resize=self.resize, fit=fit
            )
        except ImageDecodeError as exc:
            doc.error = str(exc)
        doc.blob = None  # the bytes are not needed past this stage

    @requests(on="/index")
    def normalize(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None, **kwargs) -> DocList[ImageDoc]:
        # Files passed by path are read only under the request's folder, as the loader reads them.
        refuse_outside_root([d for d in docs if d.file_state is not None], (parameters or {}).get("data"))
        return self._normalize(docs, parameters, read_files=self.read_files)

    @requests(on="/search")
    def normalize_query(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None, **kwargs) -> DocList[ImageDoc]:
        return self._normalize(docs, parameters, read_files=False)  # a query brings its bytes

    def _normalize(self, docs: DocList[ImageDoc], parameters: Optional[dict], read_files: bool) -> DocList[ImageDoc]:
        # The client passes the encoder's resize rule (its /info) as ``fit``: resizing here,
        # where the image is decoded, sends model-sized pixels on instead of up to 1024 px.
        fit = _fit_rule((parameters or {}).get("fit"))
        # ``keep_jpeg``: the encoder decodes JPEGs on its GPU (its /info ``device_decode``), so
        # plain JPEGs are only checked here (header, bomb limit) and travel as bytes.
        keep_jpeg = (parameters or {}).get("keep_jpeg") is True
        todo = [d for d in docs if self._to_decode(d, read_files)]
        with self.timed("normalize", len(todo)):
            list(self._pool.map(lambda d: self._decode(d, fit, keep_jpeg), todo))
        return docs

    @staticmethod
    def _to_decode(doc: ImageDoc, read_files: bool) -> bool:
        """Whether ``doc`` has an image to decode here: its bytes, or a file the loader passed."""
        if failed(doc):
            return False
        if doc.blob is not None:
            doc.error = blob_error(doc.blob)  # checked again: a client may send straight here
            if doc.error:
                doc.blob = None
            return doc.error is None
        if doc.file_state is None or not doc.uri:
            return False  # a text query, or a stored image's id
        if not read_files:
            doc.file_state = None
            doc.error = (
                "the loader passed this file by path, but this normalizer does not read files: "
                "set the loader's send_paths and the normalizer's read_files alike"
            )
            return False
        return True

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        super().close()
