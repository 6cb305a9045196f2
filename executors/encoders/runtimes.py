"""Where an encoder's towers run: torch, or ONNX Runtime on a graph exported from the same model.

One definition of each vector: a family's own ``image_features`` / ``text_features`` (its
pooling and projection) is wrapped in an ``nn.Module`` and traced to ONNX, so the torch and
ONNX paths cannot drift apart. As fastembed and immich's ML service do, the model is
described once and each runtime is a callable behind one interface (``tower(*tensors) ->
features``); the exported graph is cached per (checkpoint, revision, onnxruntime version,
opset, tower) under ``IMGSEARCH_ONNX_CACHE`` (default ``~/.cache/imgsearch/onnx``).

``auto`` picks ONNX Runtime on a CPU (several times faster there for convolutional models)
and torch on CUDA (bf16 with its fused kernels). ``onnx-int8`` quantises the fp32 graph with onnxruntime:
image towers statically (int8 QDQ, per channel, calibrated on sample photos or
``IMGSEARCH_INT8_CALIBRATION``), text towers dynamically (matrix products).
"""

import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from executors.atomic_json import write_json_atomic
from executors.encoders.runtime_env import CHOICES, ENV_CACHE, ENV_CALIBRATION, ENV_LANES, ENV_RUNTIME, on_torch
from executors.errors import UserError

logger = logging.getLogger(__name__)

OPSET = 17


def index_lanes(requested: Optional[str], runtime: str, device: torch.device, threads: int) -> int:
    """How many batches an encoder runs at once: 1, or with ``auto`` on ONNX Runtime on a
    CPU one per thread, each on one thread (the argument, else $ENCODER_LANES, else 1).

    On a CPU shared with the other stages, one batch on all threads stalls at every
    parallel step whose thread a decode or gRPC call has taken; single-threaded batches side
    by side keep every core busy (`app.py index` of 1,200 memes: 100-104 -> 111-116
    images/s on 2 cores; docs/performance.md). A single query then runs on one thread, so
    this is for indexing flows (`app.py index` asks for it), not for serving searches.
    """
    choice = (requested or os.environ.get(ENV_LANES) or "1").strip().lower()
    if choice == "auto":
        return max(1, threads) if not on_torch(runtime) and device.type == "cpu" else 1
    if not choice.isdigit() or int(choice) < 1:
        raise RuntimeChoiceError(f"{ENV_LANES}={choice}: give auto or a number of lanes (1 or more)")
    return int(choice) if not on_torch(runtime) else 1


Tower = Callable[..., torch.Tensor]  # input tensors -> (B, D) unnormalised features


class RuntimeChoiceError(UserError, ValueError):
    """An unknown runtime, or one this machine cannot run."""


def resolve_runtime(requested: Optional[str], device: torch.device, dtype: Optional[str] = None) -> str:
    """The runtime to use: the argument, else $ENCODER_RUNTIME, else auto.

    auto: torch on CUDA, or when a precision other than fp32 is asked for (the graph is
    fp32); ONNX Runtime on a CPU otherwise. torch-bf16 is torch with the dtype bfloat16.
    """
    choice = (requested or os.environ.get(ENV_RUNTIME) or "auto").strip().lower()
    if choice not in CHOICES:
        raise RuntimeChoiceError(f"unknown runtime '{choice}'; choose one of {', '.join(CHOICES)}")
    if choice == "auto":
        return "torch" if device.type == "cuda" or dtype not in (None, "", "float32") else "onnx"
    if choice == "torch-bf16" and dtype not in (None, "", "bfloat16"):
        raise RuntimeChoiceError(f"runtime torch-bf16 runs bfloat16; dtype {dtype} needs runtime torch")
    if not on_torch(choice) and dtype not in (None, "", "float32"):
        raise RuntimeChoiceError(f"runtime {choice} runs fp32 graphs; dtype {dtype} needs runtime torch")
    return choice


def cpu_has_native_bf16() -> Optional[bool]:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX, as oneDNN uses them):
    there bf16 runs about twice fp32's speed; elsewhere torch emulates it, slower than fp32.
    None where the CPU's flags cannot be read (not Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), None)
    except OSError:
        return None
    return None if flags is None else bool({"avx512_bf16", "amx_bf16"} & set(flags))


def cache_dir() -> Path:
    return Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "imgsearch" / "onnx").expanduser()


def folder_revision(path: Path) -> str:
    """A local model folder's identity: its files' names, sizes and modification times."""
    h = hashlib.sha1()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(path)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def graph_key(checkpoint: str, revision: str, tower: str, extra: str = "") -> str:
    import onnxruntime

    ident = f"{checkpoint}|{revision}|ort{onnxruntime.__version__}|opset{OPSET}|{tower}|{extra}"
    name = Path(checkpoint).name if Path(checkpoint).is_dir() else checkpoint
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name)[:60]
    return f"{safe}-{tower}-{hashlib.sha1(ident.encode()).hexdigest()[:16]}"


class _Traced(torch.nn.Module):
    """A family's vector function as a module, so the exporter traces exactly that code."""

    def __init__(self, model: torch.nn.Module, fn: Callable[..., torch.Tensor]):
        super().__init__()
        self.model = model  # registered, so its weights become the graph's initialisers
        self.fn = fn

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.fn(*inputs).float()


@functools.lru_cache(maxsize=8)
def _calibration_files(folder: str) -> tuple[Path, ...]:
    # Listed once per process: the graph's name (calibration_source) and the photos decoded
    # for it (calibration_images) then come from the same listing.
    files = sorted(p for p in Path(folder).expanduser().rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        raise RuntimeChoiceError(f"{ENV_CALIBRATION}={folder} holds no .jpg/.png images to calibrate int8 with")
    return tuple(files[:64])


def calibration_source() -> str:
    """What static int8 is calibrated on, named without decoding it (it keys the int8 graph:
    a cached start needs the name, not the photos)."""
    folder = os.environ.get(ENV_CALIBRATION)
    return f"{folder}:{len(_calibration_files(folder))}" if folder else "skimage-photos"


def calibration_images() -> list[np.ndarray]:
    """Photos for static int8 calibration (named by ``calibration_source``):
    ``IMGSEARCH_INT8_CALIBRATION`` (a folder), else the photographs bundled with scikit-image,
    each also cropped and mirrored."""
    folder = os.environ.get(ENV_CALIBRATION)
    if folder:
        from PIL import Image

        return [np.asarray(Image.open(f).convert("RGB")) for f in _calibration_files(folder)]
    try:
        import skimage.data as data
    except ImportError:
        raise RuntimeChoiceError(
            f"runtime onnx-int8 calibrates on sample photos: set {ENV_CALIBRATION} to a folder of your images "
            "(or pip install scikit-image for its bundled photos)"
        ) from None
    images = []
    for photo in (data.coffee(), data.chelsea(), data.astronaut(), data.rocket(), data.stereo_motorcycle()[0]):
        h, w = photo.shape[:2]
        images += [photo, np.ascontiguousarray(photo[h // 4 :, : w * 3 // 4]), np.ascontiguousarray(photo[:, ::-1])]
    return images


class _Feeds:
    """onnxruntime's CalibrationDataReader protocol over a list of input dicts."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]):
        self._it = iter(feeds)

    def get_next(self) -> Optional[dict[str, np.ndarray]]:
        return next(self._it, None)


def _quantise(source: Path, target: Path, calibration: Optional[list[dict[str, np.ndarray]]]) -> None:
    """int8 weights. With calibration inputs: static QDQ, per channel (convolutions run as
    int8 kernels); without: dynamic, matrix products only (dynamically quantised
    convolutions ran slower than fp32 here and moved Lite0's vectors far off)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quant_pre_process, quantize_dynamic, quantize_static

    if calibration is None:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])
        return
    prepared = target.with_name("prepared.onnx")
    try:  # shape inference and fusions first, as onnxruntime advises; optional
        quant_pre_process(str(source), str(prepared))
    except Exception as exc:
        logger.info("quantisation pre-processing skipped (%s: %s)", type(exc).__name__, exc)
        prepared = source
    quantize_static(
        str(prepared),
        str(target),
        _Feeds(calibration),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        # u8 weights: u8 activations times s8 weights saturate the 16-bit sums of CPUs without
        # VNNI (AVX2, AVX-512F), which moved Lite0's vectors to cosine 0.73-0.80 of fp32 on an AVX2
        # machine; u8 x u8 does not, on any CPU, so one graph serves them all.
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QUInt8,
    )
    if prepared != source:
        prepared.unlink()


def graph_path(key: str, int8: bool = False, calibration_source: str = "") -> Path:
    """Where the graph for ``key`` is cached (the int8 one keyed by its calibration too)."""
    # "u8": u8 weights (_quantise); graphs cached before it are not reused.
    suffix = f"-int8u8-{hashlib.sha1(calibration_source.encode()).hexdigest()[:8]}" if int8 else ""
    return cache_dir() / (key + suffix) / "model.onnx"


def cached_plan(key: str) -> Optional[dict]:
    """The preprocessing plan cached under ``key`` (executors/encoders/preprocess.py), or None."""
    path = cache_dir() / f"{key}.json"
    try:
        plan = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # unreadable or cut short: made again from the processor
        logger.warning("ignoring the cached preprocessing plan %s (%s)", path, exc)
        return None
    return plan if isinstance(plan, dict) else None


def cache_plan(key: str, plan: dict) -> None:
    """Cache ``plan`` under ``key``, atomically (a concurrent start reads all of it or nothing);
    a cache that cannot be written only costs the next start its processor import."""
    path = cache_dir() / f"{key}.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, plan)
    except OSError as exc:
        logger.warning("could not cache the preprocessing plan in %s (%s)", path.parent, exc)


def export_graph(
    model: Optional[torch.nn.Module],
    fn: Callable[..., torch.Tensor],
    example: Sequence[torch.Tensor],
    input_names: Sequence[str],
    dynamic: dict[str, dict[int, str]],
    key: str,
    int8: bool = False,
    calibration: Optional[Callable[[], list[dict[str, np.ndarray]]]] = None,
    calibration_source: str = "",
) -> Path:
    """The cached ONNX file for this tower, exported (and quantised) on first use.

    ``calibration`` gives inputs for static int8 quantisation (else dynamic), and
    ``calibration_source`` names them: it keys the int8 graph, next to the fp32 one. ``model``
    may be None where the graph is cached (a start that never loads torch's weights).
    """
    target = graph_path(key, int8, calibration_source)
    if target.is_file():
        return target
    if model is None:
        raise RuntimeError(f"{key}: the graph is not cached and no model was loaded to export it")
    root = target.parent.parent
    if int8:
        try:  # onnxruntime's quantiser imports ml_dtypes, which onnxruntime itself does not need
            import onnxruntime.quantization  # noqa: F401
        except ImportError as exc:
            raise RuntimeChoiceError(
                f"runtime onnx-int8 needs onnxruntime's quantisation tools ({exc}); pip install ml_dtypes, or use runtime onnx"
            ) from None
    source = export_graph(model, fn, example, input_names, dynamic, key) if int8 else None
    root.mkdir(parents=True, exist_ok=True)
    # Written to a fresh folder and renamed into place: two processes exporting at once
    # cannot leave a half-written graph (large models keep their weights beside the graph).
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.parent.name}-", dir=root))
    started = time.perf_counter()
    what = "quantising to int8" if int8 else "exporting to ONNX"
    logger.info("%s: %s (once; cached in %s)", key, what, root)
    try:
        if source is not None:  # int8: the fp32 graph above, quantised
            _quantise(source, tmp / "model.onnx", calibration() if calibration else None)
        else:
            # The tracer's warnings (shape checks traced as constants) are about code paths that
            # the parity tests cover; users need not read them on every first start.
            with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    _Traced(model, fn).eval(),
                    tuple(example),
                    str(tmp / "model.onnx"),
                    dynamo=False,
                    opset_version=OPSET,
                    input_names=list(input_names),
                    output_names=["features"],
                    dynamic_axes={**dynamic, "features": {0: "batch"}},
                )
        try:
            os.rename(tmp, target.parent)
        except OSError:  # another process got there first: use its graph
            if not target.is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("%s: %s took %.1f s", key, what, time.perf_counter() - started)
    return target


def discard_graph(path: Path) -> None:
    """Remove a cached graph's folder (one that cannot be loaded), so that it is exported again."""
    shutil.rmtree(path.parent, ignore_errors=True)


def session_providers(available: Sequence[str], cuda: bool, engine_cache: Path) -> list:
    """onnxruntime's providers, best first: on a GPU TensorRT, then CUDA, where the installed
    onnxruntime lists them (``onnxruntime-gpu``); the CPU last. TensorRT's engines are cached
    beside the graph (building one takes minutes); if its libraries are missing, onnxruntime
    falls back to the next provider, and ``OnnxTower.provider`` says which one runs."""
    providers: list = []
    if cuda and "TensorrtExecutionProvider" in available:
        providers.append(("TensorrtExecutionProvider", {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(engine_cache)}))
    if cuda and "CUDAExecutionProvider" in available:
        providers.append("CUDAExecutionProvider")
    return [*providers, "CPUExecutionProvider"]


class OnnxTower:
    """An exported tower in an onnxruntime session: the same call shape as the torch tower."""

    def __init__(self, path: Path, input_names: Sequence[str], threads: int, cuda: bool = False):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        # The executor's thread setting, as torch gets it; one request at a time per process.
        opts.intra_op_num_threads = max(1, int(threads))
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if not cuda:
            # Without the pre-planned block for every intermediate tensor, the arena reuses
            # freed ones: as fast on a CPU (docs/performance.md) and a third less memory.
            opts.enable_mem_pattern = False
        if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE":
            # The flow's policy for idle compute threads (cli.py sets it for OpenMP, which
            # onnxruntime does not use): sleep, leaving the cores to decoding and gRPC.
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = session_providers(ort.get_available_providers(), cuda, path.parent / "tensorrt")
        self.session = ort.InferenceSession(str(path), opts, providers=providers)
        self.input_names = list(input_names)
        self.path = path

    @property
    def provider(self) -> str:
        return self.session.get_providers()[0]

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        feeds = {n: t.detach().cpu().numpy() for n, t in zip(self.input_names, inputs)}
        return torch.from_numpy(self.session.run(None, feeds)[0])
