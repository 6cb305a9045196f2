#!/usr/bin/env bash
# Build every image from the repo root: the two shared bases first, then one image per
# executor on top of them (only the project code and, for encoders, the weights differ).
#   docker/build.sh                      # tags imgsearch/<image>:<version>
#   REGISTRY=ghcr.io/me docker/build.sh  # then push, and `python app.py k8s --registry ghcr.io/me`
#   CHECKPOINT= docker/build.sh          # encoder images without baked weights (mounted cache instead)
set -euo pipefail
cd "$(dirname "$0")/.."
REGISTRY="${REGISTRY:-imgsearch}"
VERSION="$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')"
build() {  # build <name> [extra docker build args...]
  local name="$1"; shift
  docker build -f "docker/${name}.Dockerfile" -t "${REGISTRY}/${name}:${VERSION}" "$@" .
}
# The executor Dockerfiles say FROM imgsearch/base-*:<version>: the bases always get that tag too.
for base in base-cpu base-gpu; do build "$base" -t "imgsearch/${base}:${VERSION}"; done
for file in docker/*.Dockerfile; do
  name="$(basename "$file" .Dockerfile)"
  case "$name" in
    base-*) ;;
    encoder-*) if [[ -v CHECKPOINT ]]; then build "$name" --build-arg "CHECKPOINT=${CHECKPOINT}"; else build "$name"; fi ;;
    *) build "$name" ;;
  esac
done
