# Shared base of the six encoder images: the PyTorch CUDA runtime image (torch, CUDA, cuDNN)
# plus the project's pinned set from requirements.lock, installed once.
# The base's own CUDA torch is kept: torch is filtered out of the lock so pip never replaces it.
# The GPU path (docs/deploy.md, "The GPU path") adds what the CPU lock does not have:
# - torchvision, the CUDA build paired with this torch (2.N pairs with 0.(N+15)), for nvJPEG:
#   the base image ships it; if it ever does not, it comes from PyTorch's index for this CUDA;
# - onnxruntime-gpu at the lock's onnxruntime version instead of the CPU build (--runtime onnx
#   on CUDA or TensorRT).
# BASE: the CUDA runtime image with the lock's torch (the build checks it); another tag or a mirror
# of it as a build argument.
ARG BASE=pytorch/pytorch:2.13.0-cuda12.8-cudnn9-runtime
FROM ${BASE}
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    HF_HOME=/models \
    JINA_LOG_LEVEL=INFO

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Jina makes ~/.cache/jina and ~/.jina when it is imported: made here, so a read-only root starts
# (Jina then writes lock files under ~/.cache/jina: a read-only pod mounts an emptyDir at ~/.cache).
COPY requirements.lock /tmp/requirements.lock
# Fail the build, not the pod, if the base drifts from what the lock was tested with.
RUN want="$(grep '^torch==' /tmp/requirements.lock | cut -d= -f3)" \
 && python -c "import sys, torch; v = torch.__version__.split('+')[0]; \
assert sys.version_info[:2] == (3, 11), f'Python {sys.version} (the lock is for 3.11)'; \
assert v == '$want', f'torch {v} in the base, {\"$want\"} in requirements.lock'; \
assert torch.version.cuda, 'the base torch is not a CUDA build'" \
 && sed '/^# test and data extras/,$d' /tmp/requirements.lock | grep -v '^torch==' | grep -v '^onnxruntime==' > /tmp/runtime.txt \
 && pip install --no-cache-dir --no-deps -r /tmp/runtime.txt \
 && ort="$(grep '^onnxruntime==' /tmp/requirements.lock | cut -d= -f3)" \
 && pip install --no-cache-dir --no-deps "onnxruntime-gpu==${ort}" \
 && (python -c "import torchvision" 2>/dev/null || pip install --no-cache-dir --no-deps --index-url "$TORCH_INDEX" \
      "torchvision==0.$(( $(echo "$want" | cut -d. -f2) + 15 )).*") \
 && python -c "import importlib.metadata as md, torch, torchvision; \
assert torch.version.cuda, 'the base torch is not a CUDA build'; \
assert torchvision.version.cuda == torch.version.cuda, f'torchvision built for CUDA {torchvision.version.cuda}, torch for {torch.version.cuda}'; \
pins = [r for r in (md.requires('torchvision') or []) if r.replace(' ', '').startswith('torch==')]; \
assert all(torch.__version__.split('+')[0] in r for r in pins), f'torchvision wants {pins}, torch is {torch.__version__}'; \
assert hasattr(torch.ops.image, 'decode_jpegs_cuda'), 'torchvision without its image ops (nvJPEG)'; \
import onnxruntime as ort; assert 'CUDAExecutionProvider' in ort.get_available_providers(), ort.get_available_providers()" \
 && useradd --uid 10001 --user-group --create-home --home-dir /home/app app \
 && mkdir -p /app /models /home/app/.cache/jina /home/app/.jina \
 && chown 10001:10001 /app /models \
 && chown -R 10001:10001 /home/app/.cache /home/app/.jina \
 && rm /tmp/requirements.lock /tmp/runtime.txt

WORKDIR /app
USER 10001
