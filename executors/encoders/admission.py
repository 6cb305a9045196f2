"""What an encoder takes from a request: checked as if it came straight from a client.

A request can reach the encoder without passing the normalizer (``target_executor``, or a
client inside the cluster dialling its port). nvJPEG would decode any bytes with no pixel
limit, and the model's resize would blow a 1×N strip up to hundreds of MiB, so each input is
checked here again (executors/limits.py)."""

import logging
from typing import Sequence

from executors.docs import ImageDoc, failed
from executors.limits import blob_error, tensor_error
from executors.normalizer.decode import ImageDecodeError, device_jpeg

logger = logging.getLogger(__name__)


def admit_encoder_inputs(docs: Sequence[ImageDoc], max_pixels: int) -> None:
    """Refuse (``doc.error``) what an encoder would otherwise decode or resize unbounded: bytes
    it has not been shown to be a plain, bomb-free JPEG of bounded size (the normalizer's
    device_jpeg check, run here again), and pixel tensors of the wrong shape or size."""
    for doc in docs:
        if failed(doc):
            continue
        if doc.tensor is not None:
            doc.error = tensor_error(doc.tensor)
        elif doc.blob is not None:
            reason = blob_error(doc.blob)
            if reason is None:
                try:
                    # The bomb guard by the header's size, as the normalizer applies it.
                    if device_jpeg(doc.blob, max_pixels) is None:
                        reason = "image bytes reached the encoder undecoded, but they are not a plain JPEG"
                except ImageDecodeError as exc:
                    reason = str(exc)
            doc.error = reason
        if doc.error is not None:
            doc.blob = doc.tensor = None
            logger.info("refused an encoder input: %s", doc.error)
