"""JPEG decoding on the encoder's own device, for GPU encoders (nvJPEG through torchvision).

On a GPU the CPU's JPEG decoding, not the model, sets the pace. With this on, the encoder's
``/info`` says ``device_decode``, the client asks the normalizer to ``keep_jpeg`` (plain
JPEGs are only checked there: header, bomb limit, upright size) and the bytes reach the
encoder, which decodes a batch at once on the GPU, turns it upright (EXIF orientation:
torchvision applies it on the CPU only), and runs the model's first resize, centre crop and
normalisation there: the rule comes from the checkpoint's processor (ImagePreprocessor's
``resize_rule``, ``input_size``, ``normalise``), as on the CPU path.

The decoder is a plain function (``Decode``): nvJPEG on CUDA; Pillow on the CPU, which
exercises the whole protocol on machines without a GPU (tests). A document the device
cannot decode gets a CPU decode of its own in the encoder, or a per-document error.

``ENCODER_DEVICE_DECODE`` (or the executor's ``device_decode``): ``auto`` (default: on only
with CUDA, the torch runtime and a torchvision that decodes there), ``on`` (the same, and a
start-up error saying why when it cannot), ``off``, or ``pillow`` (the protocol on the CPU).
"""

import io
import logging
import os
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image

from executors.docs import ImageDoc
from executors.encoders.preprocess import ImagePreprocessor, center_crop_chw
from executors.encoders.runtime_env import on_torch
from executors.errors import UserError, first_line
from executors.normalizer.decode import ImageDecodeError, decode_image, exif_orientation, fit_size

logger = logging.getLogger(__name__)

ENV_DEVICE_DECODE = "ENCODER_DEVICE_DECODE"
CHOICES = ("auto", "on", "off", "pillow")
# Images decoded at full size at once: bounds the device memory of a decode (a 12-megapixel
# photo is 36 MB of uint8), whatever the encoder's batch.
DECODE_CHUNK = 32
# PIL's resample codes → torch's modes; LANCZOS, BOX and HAMMING have no torch twin and are
# approximated by bicubic (as transformers' torchvision backend does on CUDA).
_TORCH_MODE = {0: "nearest-exact", 2: "bilinear", 3: "bicubic"}

# A decoder: JPEG bytes → per image a (3, H, W) uint8 tensor on the device as stored (not
# turned upright), or the reason it could not be decoded.
Decode = Callable[[Sequence[bytes], torch.device], list[Union[torch.Tensor, str]]]


class DeviceDecodeError(UserError, ValueError):
    """Device decoding was asked for (``on``) where it cannot run, or an unknown choice."""


def nvjpeg_decode(blobs: Sequence[bytes], device: torch.device) -> list[Union[torch.Tensor, str]]:
    """One batched nvJPEG call; when it fails (it returns nothing then), each image alone,
    so one bad file costs only its own result."""
    from torchvision.io import ImageReadMode, decode_jpeg  # optional: only GPU images install torchvision

    data = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs]
    try:
        return list(decode_jpeg(data, mode=ImageReadMode.RGB, device=device))
    except (RuntimeError, ValueError) as exc:  # torchvision's checks, nvJPEG's status codes
        if len(data) == 1:
            return [f"nvJPEG cannot decode it: {first_line(exc)}"]
    return [nvjpeg_decode([b], device)[0] for b in blobs]


def pillow_decode(blobs: Sequence[bytes], device: torch.device) -> list[Union[torch.Tensor, str]]:
    """Pillow with nvJPEG's contract (RGB, stored orientation): the protocol without a GPU."""
    out: list[Union[torch.Tensor, str]] = []
    for b in blobs:
        try:
            rgb = np.array(Image.open(io.BytesIO(b)).convert("RGB"))  # writable, for torch
        except Exception as exc:  # Pillow raises many types for garbage input
            out.append(f"Pillow cannot decode it: {exc}")
            continue
        out.append(torch.from_numpy(rgb).permute(2, 0, 1).to(device))
    return out


def upright(chw: torch.Tensor, orientation: int) -> torch.Tensor:
    """The image as PIL's ``ImageOps.exif_transpose`` turns it, for EXIF orientation 1–8."""
    if orientation == 2:
        return chw.flip(-1)
    if orientation == 3:
        return chw.flip(-2, -1)
    if orientation == 4:
        return chw.flip(-2)
    if orientation == 5:
        return chw.transpose(-2, -1)
    if orientation == 6:
        return torch.rot90(chw, -1, (-2, -1))
    if orientation == 7:
        return chw.transpose(-2, -1).flip(-2, -1)
    if orientation == 8:
        return torch.rot90(chw, 1, (-2, -1))
    return chw


def _orientation(blob: bytes) -> int:
    """From the header; the normalizer has checked it (and its size, against its own limit)."""
    try:
        return exif_orientation(Image.open(io.BytesIO(blob)))
    except (OSError, ValueError, Image.DecompressionBombError):
        return 1  # the decoder says what is wrong with it


class DeviceDecoder:
    """JPEG bytes → the model's normalised pixel batch, every step on ``device``."""

    def __init__(self, name: str, decode: Decode, preprocess: ImagePreprocessor, device: torch.device):
        self.name, self.decode, self.preprocess, self.device = name, decode, preprocess, device
        self.rule = preprocess.resize_rule()
        self.crop = preprocess.center_crop
        resample = int(self.rule["resample"]) if self.rule else 3
        self.mode = _TORCH_MODE.get(resample, "bicubic")
        if resample not in _TORCH_MODE:
            logger.info("%s: resample %d approximated by bicubic on the device", name, resample)

    def __call__(self, blobs: Sequence[bytes]) -> tuple[Optional[torch.Tensor], list[Optional[str]]]:
        """(pixels of the images decoded, in order, or None if none was; per blob the reason
        it failed, else None)."""
        errors: list[Optional[str]] = [None] * len(blobs)
        ready = []
        for start in range(0, len(blobs), DECODE_CHUNK):
            chunk = blobs[start : start + DECODE_CHUNK]
            for i, out in enumerate(self.decode(chunk, self.device), start):
                if isinstance(out, str):
                    errors[i] = out
                    continue
                try:
                    ready.append(self.model_pixels(out, _orientation(blobs[i])))
                except RuntimeError as exc:  # e.g. out of device memory on one huge image
                    errors[i] = f"{self.name}: {type(exc).__name__}: {first_line(exc)}"
        return (self.preprocess.normalise(torch.stack(ready)) if ready else None), errors

    def model_pixels(self, chw: torch.Tensor, orientation: int) -> torch.Tensor:
        """One decoded image upright, resized and cropped as the model's processor does,
        rounded to uint8 values as the CPU path's Pillow resize is (float, for normalise)."""
        x = upright(chw, orientation)
        if self.rule:
            width, height = fit_size(x.shape[-1], x.shape[-2], self.rule)
            if (height, width) != tuple(x.shape[-2:]):
                antialias = self.mode != "nearest-exact"
                x = (
                    torch.nn.functional.interpolate(
                        x.unsqueeze(0).float(),
                        size=(height, width),
                        mode=self.mode,
                        antialias=antialias,
                        **({} if self.mode == "nearest-exact" else {"align_corners": False}),
                    )[0]
                    .round_()
                    .clamp_(0, 255)
                )
        if self.crop:
            x = center_crop_chw(x, *self.crop)
        return x.float()


def decode_on_cpu(doc: ImageDoc, reason: str, fit: Optional[dict]) -> None:
    """The fall-back for one document the device could not decode: the normalizer's own
    decoding, here; its pixels (``doc.tensor``) take the ordinary path, else ``doc.error``."""
    if doc.blob is None:  # the encoder hands over only documents that brought their bytes
        raise ValueError(f"{doc.uri or doc.id}: no bytes to decode on the CPU")
    try:
        # docarray makes the ndarray its NdArray on assignment (validate_assignment); its field type does not say so
        doc.tensor = decode_image(doc.blob, fit=fit)[0]  # type: ignore[assignment]
        logger.info("%s: decoded on the CPU instead (%s)", doc.uri, reason)
    except ImageDecodeError as exc:
        doc.error = f"{exc} (on the device: {reason})"


def _tiny_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buf, "JPEG")
    return buf.getvalue()


def nvjpeg_unavailable(device: torch.device, runtime: str) -> Optional[str]:
    """Why nvJPEG cannot decode for this encoder, or None when it can (probed with one image)."""
    if not on_torch(runtime):
        return f"runtime {runtime} feeds onnxruntime from CPU tensors (device decoding needs runtime torch)"
    if device.type != "cuda":
        return f"the encoder runs on {device}, not a CUDA GPU"
    try:
        import torchvision  # optional: only GPU images install it
    except ImportError:
        return f"torchvision is not installed (install the CUDA build matching torch {torch.__version__})"
    except (RuntimeError, OSError) as exc:  # e.g. built for another torch: its operators do not load
        return f"torchvision cannot be imported with torch {torch.__version__}: {exc}"
    out = nvjpeg_decode([_tiny_jpeg()], device)[0]
    if isinstance(out, str):
        return f"torchvision {torchvision.__version__} cannot decode on {device}: {out}"
    return None


def _unsupported_processor(preprocess: ImagePreprocessor) -> Optional[str]:
    if not preprocess.fast or (preprocess.plan["do_resize"] and preprocess.resize_rule() is None):
        return f"the model's processor ({preprocess.describe()['processor']}) has steps beyond a plain resize and crop"
    return None


def resolve_device_decoder(
    requested: Optional[str],
    device: torch.device,
    runtime: str,
    preprocess: ImagePreprocessor,
) -> Optional[DeviceDecoder]:
    """The decoder the choice (argument, else $ENCODER_DEVICE_DECODE, else auto) gives, or None."""
    choice = (requested or os.environ.get(ENV_DEVICE_DECODE) or "auto").strip().lower()
    if choice not in CHOICES:
        raise DeviceDecodeError(f"unknown device decoding '{choice}'; choose one of {', '.join(CHOICES)}")
    if choice == "off":
        return None
    if choice == "pillow":
        name, decode, reason = "pillow", pillow_decode, None
    else:
        name, decode, reason = "nvjpeg", nvjpeg_decode, nvjpeg_unavailable(device, runtime)
    reason = reason or _unsupported_processor(preprocess)
    if reason:
        if choice == "auto":
            logger.info("JPEGs are decoded by the normalizer (device decoding off: %s)", reason)
            return None
        raise DeviceDecodeError(f"{ENV_DEVICE_DECODE}={choice}: JPEGs cannot be decoded on the device: {reason}")
    logger.info("JPEGs are decoded on %s with %s", device, name)
    return DeviceDecoder(name, decode, preprocess, device)
