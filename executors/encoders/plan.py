"""Where and how an encoder runs, decided before any weights load: the runtime, the device and
precision, the batch, the threads and the lanes. Pure decisions, testable without a model
(tests/test_encoder_plan.py); base.py's TorchEncoder carries them out."""

import logging
from dataclasses import dataclass
from typing import Optional

import torch

from executors.cpus import fit_torch_threads
from executors.encoders.runtime_env import on_torch
from executors.encoders.runtimes import RuntimeChoiceError, cpu_has_native_bf16, index_lanes, resolve_runtime

logger = logging.getLogger(__name__)

CPU_BATCH = 32  # the default batch where memory does not decide it, for torch
# onnxruntime on a CPU: as fast per image at 8 as at 16 or 32 (docs/performance.md), and its
# activation arena, the bulk of the encoder's memory above the imports, a half or a quarter.
ONNX_CPU_BATCH = 8
MAX_BATCH = 1024


def pick_device(requested: Optional[str] = None) -> torch.device:
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pick_dtype(device: torch.device, requested: Optional[str] = None) -> torch.dtype:
    """bf16 on GPUs that have it, else fp16; fp32 on CPU (CPU half precision is slow)."""
    if requested:
        dtype = getattr(torch, requested)
        assert isinstance(dtype, torch.dtype), requested
        return dtype
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def default_batch(runtime: str, device: torch.device) -> int:
    return ONNX_CPU_BATCH if not on_torch(runtime) and device.type == "cpu" else CPU_BATCH


@dataclass(frozen=True)
class EncoderPlan:
    runtime: str  # torch | onnx | torch-bf16 | onnx-int8
    device: torch.device  # where torch's work runs: the CPU under ONNX Runtime, which picks its own
    dtype: torch.dtype
    batch_size: int
    batch_requested: bool  # False: the default, which a GPU torch encoder fits to free memory after loading
    num_threads: int  # torch's and the ONNX sessions' threads, within the container's CPU quota
    lanes: int  # batches encoded side by side, each on one thread (ONNX Runtime on a CPU)
    onnx_cuda: bool  # onnxruntime runs on the GPU (device is the CPU then)

    @classmethod
    def resolve(
        cls,
        name: str,
        device: Optional[str] = None,
        dtype: Optional[str] = None,
        runtime: Optional[str] = None,
        batch_size: int = 0,
        num_threads: int = 0,
        lanes: Optional[str] = None,
    ) -> "EncoderPlan":
        """The plan for encoder ``name`` from its settings (None/0: decided here, from the
        machine and $ENCODER_RUNTIME / $ENCODER_LANES). Raises RuntimeChoiceError for a runtime
        this machine cannot run."""
        where = pick_device(device)
        chosen = resolve_runtime(runtime, where, dtype)
        if chosen == "torch-bf16":
            dtype = "bfloat16"
            if where.type == "cuda" and not torch.cuda.is_bf16_supported():
                raise RuntimeChoiceError(
                    f"runtime torch-bf16: {torch.cuda.get_device_name(where)} has no bfloat16 (before Ampere); use runtime torch (float16 there)"
                )
            if where.type == "cpu" and cpu_has_native_bf16() is False:
                logger.warning(
                    "%s: runtime torch-bf16 on a CPU without native bfloat16 (AVX512-BF16 or AMX): "
                    "torch emulates it, slower than fp32; runtime onnx is the fast one here",
                    name,
                )
        batch = batch_size or default_batch(chosen, where)
        onnx_cuda = not on_torch(chosen) and where.type == "cuda"
        if not on_torch(chosen):
            where, dtype = torch.device("cpu"), "float32"  # the graph is traced in fp32 on the CPU
        threads = fit_torch_threads(num_threads)
        # (onnxruntime on CUDA runs on the GPU although the device is the CPU here: one lane.)
        n_lanes = index_lanes(lanes, chosen, torch.device("cuda") if onnx_cuda else where, threads)
        return cls(
            runtime=chosen,
            device=where,
            dtype=pick_dtype(where, dtype),
            batch_size=batch,
            batch_requested=bool(batch_size),
            num_threads=threads,
            lanes=n_lanes,
            onnx_cuda=onnx_cuda,
        )
