"""A latency-bound stand-in for a GPU encoder, for the scale-out bench (`app.py bench --simulate-gpu-ms`).

A GPU encoder's replica is bound by its device: a batch takes a fixed time on the GPU while
its host process waits, using almost no CPU. This executor does the same on a machine without
one: each batch of ``batch_size`` images holds the replica for ``ms`` milliseconds (an
asyncio sleep, one batch at a time per replica, as one GPU runs one batch at a time), and each
image gets a real vector: a fixed random projection of a 16×16 grid of its pixels, L2-normalised,
of the dimension of the encoder it stands in for. Distinct images get distinct vectors, so the
indexer stores what it would store from a model, at the same size.

It answers what clients call on an encoder (``/index``, ``/search``, ``/info``, ``/timings``),
so the flow, the client and the indexer run unchanged. It is in no encoder registry and is no
``--runtime``: only the bench starts it, through its own config (``simulated_gpu.yml``).
"""

import asyncio
import hashlib
import logging
import math
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import yaml
from docarray import DocList
from jina import requests
from threadpoolctl import threadpool_limits

from executors.contracts import INFO, EncoderInfo
from executors.docs import ImageDoc, failed
from executors.encoders.admission import admit_encoder_inputs
from executors.encoders.specs import get_spec
from executors.normalizer.decode import DEFAULT_MAX_PIXELS
from executors.stage import Stage, peak_rss_mb

logger = logging.getLogger(__name__)

CONFIG = Path(__file__).with_name("simulated_gpu.yml")
GRID = 16  # pixels sampled per side for the projection
FAMILY = "simulated-gpu"


def projection(dim: int, seed: int = 0) -> np.ndarray:
    """The fixed (GRID·GRID·3, dim) matrix every replica uses, so they agree on every image."""
    return np.random.default_rng(seed).standard_normal((GRID * GRID * 3, dim)).astype(np.float32)


def pixel_vectors(images: Sequence[np.ndarray], matrix: np.ndarray) -> np.ndarray:
    """(N, dim) unit vectors from (H, W, 3) uint8 images: centred pixels on a GRID×GRID grid, projected."""
    rows = []
    for img in images:
        h, w = img.shape[:2]
        ys = np.linspace(0, h - 1, GRID).round().astype(int)
        xs = np.linspace(0, w - 1, GRID).round().astype(int)
        rows.append(img[ys][:, xs, :3].reshape(-1).astype(np.float32) / 255.0 - 0.5)
    feats = np.stack(rows) @ matrix if rows else np.zeros((0, matrix.shape[1]), np.float32)
    norms = np.linalg.norm(feats, axis=1, keepdims=True)
    return (feats / np.maximum(norms, 1e-12)).astype(np.float32)


def text_vector(text: str, dim: int) -> np.ndarray:
    """A unit vector seeded by the text: equal texts, equal vectors."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def write_config(folder: Path, ms: float, stands_for: str, batch_size: int, size: int) -> Path:
    """simulated_gpu.yml with this run's values in its ``with:`` block, written into ``folder``."""
    config = yaml.safe_load(CONFIG.read_text())
    config["with"].update(ms=float(ms), stands_for=stands_for, batch_size=int(batch_size), size=int(size))
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"simulated-gpu-{stands_for}-{ms:g}ms.yml"
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    return out


class SimulatedGpuEncoder(Stage):
    """``ms`` milliseconds per batch of ``batch_size``, one batch at a time; real vectors of
    ``stands_for``'s dimension. The normalizer resizes to ``size``×``size`` (the /info resize rule)."""

    def __init__(self, ms: float = 300.0, stands_for: str = "clip", batch_size: int = 16, size: int = 64, model: Optional[str] = None, **kwargs):
        super().__init__(**kwargs)
        started = time.perf_counter()
        if not (ms >= 0 and math.isfinite(ms)):
            raise ValueError(f"simulated GPU: ms per batch must be a finite number >= 0, not {ms!r}")
        if int(batch_size) < 1 or not 1 <= int(size) <= 4096:
            raise ValueError(f"simulated GPU: batch_size must be >= 1 and size within 1..4096 (got {batch_size}, {size})")
        self.spec = get_spec(stands_for)  # `model` (the flow's ENCODER_MODEL) is not used: nothing is loaded
        self.ms, self.batch_size, self.size = float(ms), int(batch_size), int(size)
        self.dim = self.spec.dim
        self.matrix = projection(self.dim)
        # One BLAS thread: OpenBLAS's idle threads spin after every product, and took 10x the
        # projection's own CPU (8-10 ms per image in the flow) from the cores the stages share.
        threadpool_limits(1)
        self._device = asyncio.Lock()  # one batch on the "GPU" at a time
        self.load_seconds = time.perf_counter() - started
        logger.info("simulated GPU for %s: %g ms per batch of %d, dim %d", stands_for, self.ms, self.batch_size, self.dim)

    @property
    def checkpoint(self) -> str:
        return f"{FAMILY}:{self.spec.name}:{self.ms:g}ms"

    async def _encode(self, docs: Sequence[ImageDoc]) -> None:
        admit_encoder_inputs(docs, DEFAULT_MAX_PIXELS)  # as a real encoder checks what reaches it
        images = [d for d in docs if not failed(d) and d.tensor is not None]
        texts = [d for d in docs if not failed(d) and d.tensor is None and d.text is not None]
        for d in docs:
            if not failed(d) and d.tensor is None and d.text is None:
                d.error = "the simulated GPU encoder takes decoded pixels only (no JPEG bytes, no empty documents)"
                d.blob = None
        batches = math.ceil(len(images) / self.batch_size) + math.ceil(len(texts) / self.batch_size)
        if not batches:
            return
        async with self._device:
            with self.timed("encode_images", len(images) + len(texts)):
                await asyncio.sleep(self.ms * batches / 1e3)
                vectors = pixel_vectors([np.asarray(d.tensor) for d in images], self.matrix)
                for doc, vec in zip(images, vectors):
                    doc.tensor, doc.embedding, doc.model = None, vec, self.checkpoint
                text_vectors: np.ndarray = np.stack([text_vector(d.text or "", self.dim) for d in texts]) if texts else np.zeros((0, self.dim))
                for doc, vec in zip(texts, text_vectors):
                    doc.embedding, doc.model = vec, self.checkpoint

    @requests(on="/index")
    async def encode(self, docs: DocList[ImageDoc], **kwargs) -> DocList[ImageDoc]:
        await self._encode(docs)
        return docs

    @requests(on="/search")
    async def encode_queries(self, docs: DocList[ImageDoc], **kwargs) -> DocList[ImageDoc]:
        await self._encode(docs)
        return docs

    def info(self) -> EncoderInfo:
        return EncoderInfo(
            encoder=self.spec.name,
            family=FAMILY,
            model=self.checkpoint,
            dim=self.dim,
            batch_size=self.batch_size,
            load_seconds=round(self.load_seconds, 3),
            pooling=f"random projection of a {GRID}x{GRID} pixel grid",
            peak_rss_mb=peak_rss_mb(),
            text=True,
            device=f"simulated GPU ({self.ms:g} ms per batch)",
            runtime=FAMILY,
            lanes=1,
            num_threads=1,
            resize_rule={"height": self.size, "width": self.size, "resample": 2},
        )

    @requests(on=INFO)
    def info_endpoint(self, docs: DocList[ImageDoc], **kwargs) -> DocList[ImageDoc]:  # Jina's schema; the dict rides in results
        return self.info().to_dict()  # type: ignore[return-value]
