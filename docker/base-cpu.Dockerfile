# Shared base of the CPU images (loader, normalizer, indexer, gateway, the CPU encoder): Python 3.11
# and the project's pinned set from requirements.lock, installed once. Build it first (docker/build.sh).
# BASE: any image with Python 3.11 as `python` and pip on PATH, and bash. docker/e2e.sh passes a
# Debian bookworm one made with debootstrap where the registry cannot be reached.
ARG BASE=python:3.11.13-slim-bookworm
FROM ${BASE}
# Where CPU torch comes from; the rest from PyPI, or wherever the PIP_* build arguments point
# (docker/e2e.sh: the build machine's own pip sources, mounted read-only into the build).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_CERT

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    JINA_LOG_LEVEL=INFO

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Jina makes ~/.cache/jina and ~/.jina when it is imported: made here, so a read-only root starts
# (Jina then writes lock files under ~/.cache/jina: a read-only pod mounts an emptyDir at ~/.cache).
COPY requirements.lock /tmp/requirements.lock
# The runtime part of the lock (test extras cut off), torch as the CPU build of the pinned
# version, and --no-deps: the lock is the complete, tested set, so pip resolves nothing.
# The build fails, not the pod, if the torch it got is not the CPU build of the pin.
RUN want="$(grep '^torch==' /tmp/requirements.lock | cut -d= -f3)" \
 && sed '/^# test and data extras/,$d' /tmp/requirements.lock | grep -v '^torch==' > /tmp/runtime.txt \
 && pip install --no-cache-dir --no-deps --index-url "$TORCH_INDEX" "torch==${want}" \
 && pip install --no-cache-dir --no-deps -r /tmp/runtime.txt \
 && python -c "import sys, torch; v = torch.__version__.split('+')[0]; \
assert sys.version_info[:2] == (3, 11), f'Python {sys.version} (the lock is for 3.11)'; \
assert v == '$want', f'torch {v}, {\"$want\"} in requirements.lock'; \
assert torch.version.cuda is None, f'torch built for CUDA {torch.version.cuda}, not the CPU build'" \
 && useradd --uid 10001 --user-group --create-home --home-dir /home/app app \
 && mkdir -p /app /data /home/app/.cache/jina /home/app/.jina \
 && chown 10001:10001 /app /data \
 && chown -R 10001:10001 /home/app/.cache /home/app/.jina \
 && rm /tmp/requirements.lock /tmp/runtime.txt

WORKDIR /app
USER 10001
