"""TorchEncoder: the one base every encoder executor shares.

A family subclass only says how to load its model and how to take a vector from it
(``load_model``, ``image_features`` and, for text-capable models, ``text_features``).
Everything else lives here once: device and precision choice, the runtime the towers run
on (torch, or ONNX Runtime on a graph traced from those same functions: runtimes.py),
preprocessing from the checkpoint's config, minibatches under ``torch.inference_mode()``,
L2 normalisation, and the per-document error handling that keeps one bad input from
failing a request.
"""

import asyncio
import dataclasses
import importlib.metadata
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, Optional, Sequence

import numpy as np
import torch
from docarray import DocList
from jina import requests

from executors.contracts import EncoderInfo
from executors.docs import ImageDoc, failed
from executors.encoders.admission import admit_encoder_inputs
from executors.encoders.coalesce import Coalescer
from executors.encoders.device_decode import decode_on_cpu, resolve_device_decoder
from executors.encoders.encoder_stage import EncoderStage, ModelLoadError, describe_checkpoint
from executors.encoders.onnx_towers import OnnxTowers
from executors.encoders.plan import MAX_BATCH, EncoderPlan, default_batch
from executors.encoders.preprocess import PLAN_VERSION, ImagePreprocessor
from executors.encoders.runtime_env import on_torch
from executors.encoders.runtimes import RuntimeChoiceError, cache_plan, cached_plan, folder_revision, graph_key
from executors.flow_kwargs import flow_kwarg
from executors.normalizer.decode import DEFAULT_MAX_PIXELS
from executors.stage import keep_freed_memory, limit_malloc_arenas

logger = logging.getLogger(__name__)


class TorchEncoder(OnnxTowers, EncoderStage):
    """Encodes images (and texts, where the model can) into L2-normalised float32 vectors."""

    # Convolutional families run faster in NHWC (measured 1.35× for EfficientNet-Lite0 on CPU;
    # also what tensor cores want on GPU).
    channels_last: ClassVar[bool] = False
    # Decided once the runtime is known: only torch's allocations gain from it (stage.py).
    tune_malloc: ClassVar[bool] = False

    def __init__(
        self,
        name: str,
        model: Optional[str] = None,
        batch_size: int = 0,
        device: Optional[str] = None,
        dtype: Optional[str] = None,
        num_threads: Optional[int] = None,
        runtime: Optional[str] = None,
        device_decode: Optional[str] = None,
        lanes: Optional[str] = None,
        **kwargs,
    ):
        super().__init__(name, **kwargs)
        model = flow_kwarg("model", model, None)  # ${{ ENV.ENCODER_MODEL }}: unset or empty = the spec's
        self.checkpoint = os.path.expanduser(model) if model else self.spec.checkpoint
        # Unset, empty or 0 (the flow's ${{ ENV.* }}): decided by the plan from the machine.
        self.plan = plan = EncoderPlan.resolve(
            name,
            device,
            dtype,
            runtime,
            batch_size=flow_kwarg("batch_size", batch_size, 0, int),
            num_threads=flow_kwarg("num_threads", num_threads, 0, int),
            lanes=flow_kwarg("lanes", lanes, None),
        )
        self.runtime, self.device, self.dtype, self.batch_size = plan.runtime, plan.device, plan.dtype, plan.batch_size
        self.num_threads, self.lanes, self.onnx_cuda = plan.num_threads, plan.lanes, plan.onnx_cuda
        if on_torch(self.runtime):
            # Keeping freed memory makes torch's CPU forward passes fault-free, but it holds
            # the high-water mark; onnxruntime has its own arena and does not need it.
            keep_freed_memory()
        else:
            limit_malloc_arenas()  # the encoder's memory, measured by `app.py bench` (docs/performance.md)
        started = time.perf_counter()
        try:
            self.inspect_checkpoint(self.checkpoint)
            self._revision = self.revision()
            self.preprocess = self._preprocessor()
            self.tokenizer: Any = self.load_tokenizer(self.checkpoint) if self.supports_text else None
            self.model = None
            self.image_tower = self._torch_image_features
            self.text_tower = self.text_features
            # With its graphs cached, an ONNX encoder never loads torch's copy of the weights:
            # a faster start, and no moment with both copies in memory.
            if on_torch(self.runtime) or not self._use_onnx(cached_only=True):
                self.model = self._load_torch_model()
                if not on_torch(self.runtime):
                    self._use_onnx()
        except (ModelLoadError, RuntimeChoiceError):
            raise
        except Exception as exc:
            raise ModelLoadError(
                f"encoder '{name}' cannot load model '{self.checkpoint}' ({describe_checkpoint(self.checkpoint)}): {type(exc).__name__}: {exc}"
            ) from exc
        # JPEG bytes decoded on the GPU (nvJPEG) where it can, else None: the normalizer decodes.
        self.device_decoder = resolve_device_decoder(flow_kwarg("device_decode", device_decode, None), self.device, self.runtime, self.preprocess)
        # One warm-up batch: checks the model end to end and tells the true dimension (at the
        # size the flow sends, which a cached plan preprocesses without transformers).
        h, w = self.preprocess.arrival_size
        self.dim = int(self.embed_images([np.zeros((h, w, 3), np.uint8)]).shape[-1])
        if not plan.batch_requested:
            self.batch_size = self.fit_batch_size()
        # One batch at a time per lane: /index and the query coalescer run in different threads.
        self._model_lock = threading.BoundedSemaphore(self.lanes)
        self._busy_lock, self._busy, self.lanes_peak_busy = threading.Lock(), 0, 0
        self._lanes = ThreadPoolExecutor(max_workers=self.lanes, thread_name_prefix="lane")
        self._queries = Coalescer(self._encode_locked, max_items=self.batch_size)
        self.load_seconds = time.perf_counter() - started
        logger.info(
            "%s: loaded %s on %s/%s in %.1fs (dim %d, text %s)",
            name,
            self.checkpoint,
            self.device,
            str(self.dtype).removeprefix("torch."),
            self.load_seconds,
            self.dim,
            self.supports_text,
        )

    def _preprocessor(self) -> ImagePreprocessor:
        """The checkpoint's preprocessing. An ONNX encoder starts from the plan it cached on its
        first start (transformers' processors, 1.9 s of imports, load only if an image needs them)."""
        if on_torch(self.runtime):
            return self.load_preprocessor(self.checkpoint)
        versions = f"{type(self).__name__}|plan{PLAN_VERSION}|transformers {importlib.metadata.version('transformers')}"
        key = graph_key(self.checkpoint, self._revision, "preprocess", versions)
        plan = cached_plan(key)
        if plan is not None:
            try:
                return ImagePreprocessor(plan=plan, load=lambda: self.load_preprocessor(self.checkpoint).processor)
            except ValueError as exc:  # damaged: made again from the processor, and cached again
                logger.warning("%s: ignoring the cached preprocessing plan (%s)", self.checkpoint, exc)
        preprocess = self.load_preprocessor(self.checkpoint)
        if preprocess.plan is not None:
            cache_plan(key, preprocess.plan)
        return preprocess

    def _load_torch_model(self) -> torch.nn.Module:
        from transformers import PreTrainedModel  # here: 1.6 s of imports a cached ONNX start skips

        model = self.load_model(self.checkpoint)
        if not isinstance(model, PreTrainedModel):
            # transformers models were loaded in self.dtype already, honouring the modules
            # they keep in fp32 (BLIP-2's Q-Former); a plain torch module is cast here.
            model = model.to(dtype=self.dtype)
        model = model.to(self.device).eval()
        if self.channels_last and on_torch(self.runtime):
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs omit it
        return model

    # --- what a family provides -------------------------------------------------------

    def inspect_checkpoint(self, checkpoint: str) -> None:
        """Read what the family needs to know before (or without) loading the weights, from
        the checkpoint's config (BLIP-2: whether it has a text tower). Nothing by default."""

    def load_model(self, checkpoint: str) -> torch.nn.Module:
        """The model, loaded in ``self.dtype`` (``from_pretrained(..., dtype=self.dtype)``)."""
        raise NotImplementedError

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) → (B, D), unnormalised."""
        raise NotImplementedError

    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def supports_text(self) -> bool:
        return False

    def load_preprocessor(self, checkpoint: str) -> ImagePreprocessor:
        return ImagePreprocessor.load(checkpoint, self.spec.processor if checkpoint == self.spec.checkpoint else None)

    def load_tokenizer(self, checkpoint: str) -> Any:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(checkpoint)

    def revision(self) -> str:
        """What identifies these weights beyond the checkpoint name (keys the ONNX cache), read
        without loading them: a local folder's files, else the hub commit of its config."""
        if Path(self.checkpoint).is_dir():
            return folder_revision(Path(self.checkpoint))
        from transformers import AutoConfig

        try:
            commit = AutoConfig.from_pretrained(self.checkpoint)._commit_hash
        except (OSError, ValueError):  # not reachable: loading the weights then says why
            commit = None
        return str(commit) if commit else f"transformers {importlib.metadata.version('transformers')}"

    def fit_batch_size(self) -> int:
        """On a GPU with torch: the batch that fits in 60% of the free memory (multiple of 8,
        at most MAX_BATCH), from the memory one probe batch of 8 takes; on a CPU a fixed
        batch (a larger one only adds latency and memory)."""
        if self.device.type != "cuda" or not on_torch(self.runtime):
            return self._default_batch()
        h, w = self.preprocess.input_size
        self.batch_size = 8
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        self.embed_images([np.zeros((h, w, 3), np.uint8)] * 8)
        per_image = max((torch.cuda.max_memory_allocated() - base) / 8, 1.0)
        free, _total = torch.cuda.mem_get_info()
        batch = int(min(MAX_BATCH, free * 0.6 / per_image)) // 8 * 8
        logger.info("%s: batch %d from %.0f MB free, %.1f MB per image", self.spec.name, batch, free / 2**20, per_image / 2**20)
        return max(batch, 8)

    def _default_batch(self) -> int:
        return default_batch(self.runtime, self.device)

    # --- runtimes -----------------------------------------------------------------------

    def _torch_image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        pixels = pixels.to(self.device, self.dtype)
        if self.channels_last:
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        return self.image_features(pixels)

    # --- shared machinery ---------------------------------------------------------------

    @torch.inference_mode()
    def embed_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        out = []
        for start in range(0, len(images), self.batch_size):
            pixels = self.preprocess(images[start : start + self.batch_size], self.device)
            out.append(self._normalise(self.image_tower(pixels)))
        return np.concatenate(out) if out else np.zeros((0, getattr(self, "dim", 0)), np.float32)

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        out = []
        for start in range(0, len(texts), self.batch_size):
            tokens = self.tokenizer(
                list(texts[start : start + self.batch_size]),
                padding=True,
                truncation=True,
                return_tensors="pt",
            )
            feats = self.text_tower(tokens["input_ids"].to(self.device), tokens["attention_mask"].to(self.device))
            out.append(self._normalise(feats))
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    @staticmethod
    def _normalise(feats: torch.Tensor) -> np.ndarray:
        feats = feats.float()
        return torch.nn.functional.normalize(feats, dim=-1).cpu().numpy()

    @requests(on="/index")
    async def encode(self, docs: DocList[ImageDoc], **kwargs) -> DocList[ImageDoc]:
        # Async, so Jina does not serialise the calls: with several lanes, requests in flight
        # are encoded side by side (one lane: one at a time, as Jina would).
        await asyncio.get_running_loop().run_in_executor(self._lanes, self._encode_locked, docs)
        return docs

    @requests(on="/search")
    async def encode_queries(self, docs: DocList[ImageDoc], **kwargs) -> DocList[ImageDoc]:
        # Async, so Jina does not serialise the calls: queries waiting while the model runs
        # share its next forward pass (coalesce.py).
        await self._queries.submit(docs)
        return docs

    def _encode_locked(self, docs: Sequence[ImageDoc]) -> None:
        with self._model_lock:
            with self._busy_lock:  # how many lanes the flow keeps busy at once (/info)
                self._busy += 1
                self.lanes_peak_busy = max(self.lanes_peak_busy, self._busy)
            try:
                self.encode_docs(docs)
            finally:
                with self._busy_lock:
                    self._busy -= 1

    def close(self) -> None:
        if getattr(self, "_queries", None) is not None:  # absent when loading failed
            self._queries.close()
            self._lanes.shutdown(wait=True)
        super().close()

    def encode_docs(self, docs: Sequence[ImageDoc]) -> None:
        """Embed every image and text document in place (errors go on the document)."""
        admit_encoder_inputs(docs, DEFAULT_MAX_PIXELS)  # as if from a client (executors/limits.py)
        raw = [d for d in docs if not failed(d) and d.tensor is None and d.blob is not None]
        if raw:  # JPEG bytes the normalizer left for the device decoder
            with self.timed("encode_jpegs", len(raw)):
                self._embed_raw(raw)
        images = [d for d in docs if not failed(d) and d.tensor is not None]
        texts = [d for d in docs if not failed(d) and d.tensor is None and d.text is not None]
        if images:
            with self.timed("encode_images", len(images)):
                self._assign(images, self.embed_images([np.asarray(d.tensor) for d in images]))
        if texts:
            if not self.supports_text:
                for d in texts:
                    d.error = (
                        f"encoder '{self.spec.name}' ({self.checkpoint}) cannot embed text; "
                        "search with an image, or use a text-capable encoder (clip, blip2)"
                    )
            else:
                with self.timed("encode_texts", len(texts)):
                    self._assign(texts, self.embed_texts([d.text for d in texts if d.text is not None]))

    @torch.inference_mode()
    def _embed_raw(self, docs: list[ImageDoc]) -> None:
        """Decode, preprocess and embed on the device; a document it cannot decode is decoded
        on the CPU instead (its pixels join the ordinary image path) or gets its reason."""
        for start in range(0, len(docs), self.batch_size):
            chunk = docs[start : start + self.batch_size]
            pixels, errors = (
                self.device_decoder([d.blob for d in chunk if d.blob is not None])
                if self.device_decoder
                else (None, ["this encoder does not decode on its device"] * len(chunk))
            )
            if pixels is not None:
                self._assign([d for d, e in zip(chunk, errors) if e is None], self._normalise(self.image_tower(pixels)))
            for doc, reason in zip(chunk, errors):
                if reason is not None:
                    decode_on_cpu(doc, reason, self.preprocess.resize_rule())
                doc.blob = None  # the bytes are not needed past this stage

    def _assign(self, docs: list[ImageDoc], vectors: np.ndarray) -> None:
        ok = np.isfinite(vectors).all(axis=1) & (np.abs(vectors).sum(axis=1) > 0)
        for doc, vec, good in zip(docs, vectors, ok):
            doc.tensor = None  # pixels are not needed past the encoder
            if good:
                doc.embedding, doc.model = vec, self.checkpoint
            else:
                doc.error = f"model {self.checkpoint} produced an invalid (NaN or zero) embedding"

    def info(self) -> EncoderInfo:
        return dataclasses.replace(
            super().info(),
            text=self.supports_text,
            device=str(self.device),
            dtype=str(self.dtype).removeprefix("torch."),
            runtime=self.runtime,
            lanes=self.lanes,
            num_threads=self.num_threads,  # compare's cost table: ms per image on how many threads
            lanes_peak_busy=self.lanes_peak_busy,  # the most batches encoded at once so far
            onnx_provider=getattr(self.image_tower, "provider", None),
            # Set: the client asks the normalizer to leave JPEGs as bytes (``keep_jpeg``).
            device_decode=self.device_decoder.name if self.device_decoder else None,
            preprocess=self.preprocess.describe(),
            # Clients pass this to the normalizer (parameter ``fit``) so it resizes as it decodes.
            resize_rule=self.preprocess.resize_rule(),
            torch=torch.__version__,
        )
