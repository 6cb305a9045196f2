# Shared base of the CPU images (loader, normalizer, indexer, gateway): Python 3.11 and the
# project's pinned set from requirements.lock, installed once. Build it first (docker/build.sh).
FROM python:3.11.13-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    JINA_LOG_LEVEL=INFO

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY requirements.lock /tmp/requirements.lock
# The runtime part of the lock (test extras cut off), torch as the CPU build of the pinned
# version, and --no-deps: the lock is the complete, tested set, so pip resolves nothing.
RUN sed '/^# test and data extras/,$d' /tmp/requirements.lock | grep -v '^torch==' > /tmp/runtime.txt \
 && pip install --no-cache-dir --no-deps --index-url https://download.pytorch.org/whl/cpu "torch==$(grep '^torch==' /tmp/requirements.lock | cut -d= -f3)" \
 && pip install --no-cache-dir --no-deps -r /tmp/runtime.txt \
 && useradd --uid 10001 --user-group --create-home --home-dir /home/app app \
 && mkdir -p /app /data \
 && chown 10001:10001 /app /data

WORKDIR /app
USER 10001
