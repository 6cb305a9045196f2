"""The encoders' runtime names and the environment variables they read, in a module without
heavy imports: the CLI parses arguments with them, and the flow and the k8s export set them,
before (or without) loading torch. executors/encoders/runtimes.py acts on them."""

# Most exact first (a compare report's reference for one encoder is its most exact runtime):
# torch and onnx give the same fp32 vectors; torch-bf16 runs torch in bfloat16 (on a CPU
# with native bf16, AVX512-BF16 or AMX, about 2x fp32); onnx-int8 quantises.
RUNTIMES = ("torch", "onnx", "torch-bf16", "onnx-int8")
CHOICES = ("auto", *RUNTIMES)
TORCH_RUNTIMES = ("torch", "torch-bf16")  # the towers run in torch (else in onnxruntime)
ENV_RUNTIME = "ENCODER_RUNTIME"  # empty or unset: auto
ENV_LANES = "ENCODER_LANES"  # 1 (default) or auto: see runtimes.index_lanes
ENV_CACHE = "IMGSEARCH_ONNX_CACHE"
ENV_CALIBRATION = "IMGSEARCH_INT8_CALIBRATION"  # a folder of images for static int8


def on_torch(runtime: str) -> bool:
    """Whether ``runtime`` runs the model in torch (any precision) rather than onnxruntime."""
    return runtime in TORCH_RUNTIMES
