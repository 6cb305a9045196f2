#!/usr/bin/env bash
# Build the CPU images with podman on this machine and run the flow as containers, each started
# from its generated Deployment's container spec (imgsearch/deploy/containers.py): index a folder
# and search it through the containerized gateway, checked against the local flow.
#
#   docker/e2e.sh                 # install podman, build every image it can, run and check the flow
#   docker/e2e.sh build           # only install and build
#   docker/e2e.sh run [FOLDER]    # only run and check (images built before); default: the sample photos
#
# Everything it needs it installs itself: podman, runc and debootstrap (apt-get), and the Python
# packages of requirements.lock, from the same sources this machine's pip uses (its find-links and
# indexes, local folders mounted read-only into the build). Where the default base image
# (python:3.11.13-slim-bookworm) cannot be pulled, it builds a Debian bookworm base with debootstrap.
# Run as root (apt-get, debootstrap, rootful podman). Figures: docs/deploy.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF="$PWD/docker/containers.conf"  # runc, no default ulimits (see that file)
PY="${PYTHON:-$PWD/.venv/bin/python}"                  # the project's environment: runner and local reference flow
[[ -x "$PY" ]] || PY=python3
VERSION="$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')"
DEFAULT_BASE=python:3.11.13-slim-bookworm
LOCAL_BASE=localhost/imgsearch/debian-python:3.11-bookworm
WORK="${E2E_WORK:-/var/tmp/imgsearch-e2e}"
log() { echo "[e2e $(date +%T)] $*" >&2; }

install_tools() {
  local missing=()
  for tool in podman runc debootstrap; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
  fi
}

# The base of base-cpu: the registry's image, else a local Debian bookworm with Python 3.11 in a
# venv at /opt/venv (Debian's own python3 has no `python` and refuses pip installs into /usr).
python_base() {
  if podman image exists "$DEFAULT_BASE" || timeout 60 podman pull -q "$DEFAULT_BASE" >/dev/null 2>&1; then
    echo "$DEFAULT_BASE"; return
  fi
  if ! podman image exists "$LOCAL_BASE"; then
    log "$DEFAULT_BASE cannot be pulled: building $LOCAL_BASE with debootstrap"
    local root="$WORK/rootfs"
    rm -rf "$root" && mkdir -p "$root"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" \
      "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$WORK/debootstrap.log"
    chroot "$root" python3 -m venv /opt/venv
    chroot "$root" apt-get clean
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
    tar -C "$root" -c . | podman import \
      --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV LANG=C.UTF-8' --change 'CMD ["python"]' - "$LOCAL_BASE" >/dev/null
    rm -rf "$root"
  fi
  echo "$LOCAL_BASE"
}

# This machine's pip sources as build arguments, and its local folders as read-only build volumes.
PIP_ARGS=()
pip_sources() {
  local cfg find index extra cert
  cfg() { "$PY" -m pip config get "global.$1" 2>/dev/null || true; }
  find="${PIP_FIND_LINKS:-$(cfg find-links)}"
  index="${PIP_INDEX_URL:-$(cfg index-url)}"
  extra="${PIP_EXTRA_INDEX_URL:-$(cfg extra-index-url)}"
  cert="${PIP_CERT:-$(cfg cert)}"
  [[ -n "$find" ]] && PIP_ARGS+=(--build-arg "PIP_FIND_LINKS=$find")
  [[ -n "$index" ]] && PIP_ARGS+=(--build-arg "PIP_INDEX_URL=$index")
  [[ -n "$extra" ]] && PIP_ARGS+=(--build-arg "PIP_EXTRA_INDEX_URL=$extra")
  PIP_ARGS+=(--build-arg "TORCH_INDEX=${index:-https://pypi.org/simple}")  # the CPU wheel comes from find-links
  if [[ -n "$cert" && -f "$cert" ]]; then
    PIP_ARGS+=(-v "$cert:/run/pip-cert.pem:ro" --build-arg PIP_CERT=/run/pip-cert.pem)
  fi
  local src path
  for src in $find; do
    path="${src#file://}"
    [[ -d "$path" ]] && PIP_ARGS+=(-v "$path:$path:ro")
  done
  for src in $index $extra; do  # a file:// index's pages link to files beside it (../../files/…): its parent
    path="${src#file://}"
    [[ -d "$path" ]] && PIP_ARGS+=(-v "$(dirname "$path"):$(dirname "$path"):ro")
  done
  return 0
}

build() {  # build <name> [extra podman build args...]
  local name="$1"; shift
  local start=$SECONDS tag="imgsearch/${name}:${VERSION}${TAG_SUFFIX:-}"
  podman build --format docker --network host -f "docker/${name}.Dockerfile" -t "$tag" "$@" . \
    >"$WORK/build-${name}.log" 2>&1 || { tail -40 "$WORK/build-${name}.log" >&2; return 1; }
  log "built $tag in $((SECONDS - start)) s"
}

build_all() {
  install_tools
  local base; base="$(python_base)"
  log "base of base-cpu: $base"
  pip_sources
  build base-cpu --build-arg "BASE=$base" "${PIP_ARGS[@]}"
  for name in loader normalizer indexer gateway encoder-efficientnet-lite0; do build "$name"; done
  # The GPU encoders' own steps (their code layer) on the CPU base, without baked weights: their
  # checkpoints need the model hub, and base-gpu needs the CUDA image pytorch/pytorch (registry).
  # Tagged <version>-cpubase: they are not the images a cluster runs.
  for file in docker/encoder-*.Dockerfile; do
    name="$(basename "$file" .Dockerfile)"
    [[ "$name" == encoder-efficientnet-lite0 ]] && continue
    TAG_SUFFIX=-cpubase build "$name" --build-arg "BASE=imgsearch/base-cpu:${VERSION}" --build-arg CHECKPOINT= \
      || log "$name: not built"
  done
  log "not built: base-gpu (FROM pytorch/pytorch CUDA image: no registry here; its checks need CUDA torch)"
}

run_flow() {
  log "running the flow as containers"
  "$PY" -m imgsearch.deploy.container_check "$@"
}

mkdir -p "$WORK"
case "${1:-all}" in
  build) build_all ;;
  run) shift; run_flow "$@" ;;
  all) build_all; run_flow ;;
  *) echo "usage: docker/e2e.sh [build | run [FOLDER] | all]" >&2; exit 2 ;;
esac
