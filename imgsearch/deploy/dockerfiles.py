"""The per-executor Dockerfiles (docker/), on the two shared bases.

Each takes its base as the build argument BASE (default: the shared base's tag), so a base built
elsewhere or under another name can be used (docker/e2e.sh).
"""

from executors.encoders.specs import get_spec
from imgsearch.deploy.names import (
    APP_UID,
    CPU_ENCODERS,
    HEADER,
    HF_HOME,
    ONNX_CACHE,
    PORT,
    executor_config,
    gateway_config,
    image,
    image_name,
    runs_on_gpu,
)


def _from(base: str) -> list[str]:
    return [f"ARG BASE={image(base)}", "FROM ${BASE}"]


def dockerfile(stage: str) -> str:
    """The Dockerfile of one image: shared base, the code, Jina's executor entrypoint."""
    name = image_name(stage)
    encoder = stage[len("encoder-") :] if stage.startswith("encoder-") else None
    gpu = runs_on_gpu(stage)
    cpu_model = encoder in CPU_ENCODERS  # a model run on the CPU base (issue 28)
    lines = [HEADER.rstrip("\n"), f"# Image {image(name)}: build from the repo root, after the base (docker/build.sh).", ""]
    if name == "gateway":
        lines += [
            *_from("base-cpu"),
            "",
            "# Jina's gRPC gateway with the Jina fixes (executors/gateway/); it learns the schemas",
            "# from the executors, so it needs no other project code.",
            f"COPY --chown={APP_UID}:{APP_UID} executors /app/executors",
            f"USER {APP_UID}",
            f"EXPOSE {PORT}",
            f'ENTRYPOINT ["jina", "gateway", "--uses", "{gateway_config()}", "--port", "{PORT}"]',
            "",
        ]
        return "\n".join(lines)
    config = executor_config(stage)
    lines += [*_from("base-gpu" if gpu else "base-cpu"), ""]
    if cpu_model:
        # A CPU encoder runs ONNX Runtime (ENCODER_RUNTIME empty = auto): the graph exported at
        # build time under $IMGSEARCH_ONNX_CACHE, so a pod starts without exporting or writing.
        lines += [
            "USER 0",
            f"ENV HF_HOME={HF_HOME} IMGSEARCH_ONNX_CACHE={ONNX_CACHE}",
            f"RUN mkdir -p {HF_HOME} && chown {APP_UID}:{APP_UID} {HF_HOME}",
        ]
    lines += [f"COPY --chown={APP_UID}:{APP_UID} executors /app/executors"]
    if encoder is not None and (gpu or cpu_model):  # a model to bake; a remote API's encoder has none
        lines += [
            f"COPY --chown={APP_UID}:{APP_UID} docker/bake_model.py /app/docker/bake_model.py",
            f"USER {APP_UID}",
            "# Bake the weights into the image (HF cache under $HF_HOME), or build with",
            "# --build-arg CHECKPOINT= and mount a cache volume at $HF_HOME instead (docs/deploy.md).",
            f"ARG CHECKPOINT={get_spec(encoder).checkpoint}",
            f'RUN if [ -n "$CHECKPOINT" ]; then python docker/bake_model.py {config} "$CHECKPOINT"; fi',
        ]
    else:
        lines += [f"USER {APP_UID}"]
    lines += [f"EXPOSE {PORT}", f'ENTRYPOINT ["jina", "executor", "--uses", "{config}", "--port", "{PORT}"]', ""]
    return "\n".join(lines)
