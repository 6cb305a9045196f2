# Shared base of the six encoder images: the PyTorch CUDA runtime image (torch, CUDA, cuDNN)
# plus the project's pinned set from requirements.lock, installed once.
# The base's own CUDA torch is kept: torch is filtered out of the lock so pip never replaces it.
FROM pytorch/pytorch:2.13.0-cuda12.8-cudnn9-runtime

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    HF_HOME=/models \
    JINA_LOG_LEVEL=INFO

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY requirements.lock /tmp/requirements.lock
# Fail the build, not the pod, if the base drifts from what the lock was tested with.
RUN want="$(grep '^torch==' /tmp/requirements.lock | cut -d= -f3)" \
 && python -c "import sys, torch; v = torch.__version__.split('+')[0]; \
assert sys.version_info[:2] == (3, 11), f'Python {sys.version} (the lock is for 3.11)'; \
assert v == '$want', f'torch {v} in the base, {\"$want\"} in requirements.lock'; \
assert torch.version.cuda, 'the base torch is not a CUDA build'" \
 && sed '/^# test and data extras/,$d' /tmp/requirements.lock | grep -v '^torch==' > /tmp/runtime.txt \
 && pip install --no-cache-dir --no-deps -r /tmp/runtime.txt \
 && python -c "import torch; assert torch.version.cuda" \
 && useradd --uid 10001 --user-group --create-home --home-dir /home/app app \
 && mkdir -p /app /models \
 && chown 10001:10001 /app /models

WORKDIR /app
USER 10001
