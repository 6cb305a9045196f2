"""The per-executor Dockerfiles (docker/), on the two shared bases."""

from executors.encoders.specs import get_spec
from imgsearch.deploy.names import APP_UID, HEADER, PORT, executor_config, gateway_config, image, image_name, runs_on_gpu


def dockerfile(stage: str) -> str:
    """The Dockerfile of one image: shared base, the code, Jina's executor entrypoint."""
    name = image_name(stage)
    gpu = runs_on_gpu(stage)
    lines = [HEADER.rstrip("\n"), f"# Image {image(name)}: build from the repo root, after the base (docker/build.sh).", ""]
    if name == "gateway":
        lines += [f"FROM {image('base-cpu')}", "",
                  "# Jina's gRPC gateway with the Jina fixes (executors/gateway/); it learns the schemas",
                  "# from the executors, so it needs no other project code.",
                  f"COPY --chown={APP_UID}:{APP_UID} executors /app/executors",
                  f"USER {APP_UID}", f"EXPOSE {PORT}",
                  f'ENTRYPOINT ["jina", "gateway", "--uses", "{gateway_config()}", "--port", "{PORT}"]', ""]
        return "\n".join(lines)
    config = executor_config(stage)
    lines += [f"FROM {image('base-gpu' if gpu else 'base-cpu')}", "",
              f"COPY --chown={APP_UID}:{APP_UID} executors /app/executors"]
    if gpu:  # a model to bake; a remote API's encoder has none
        encoder = stage[len("encoder-"):]
        lines += [f"COPY --chown={APP_UID}:{APP_UID} docker/bake_model.py /app/docker/bake_model.py",
                  f"USER {APP_UID}",
                  "# Bake the weights into the image (HF cache under $HF_HOME), or build with",
                  "# --build-arg CHECKPOINT= and mount a cache volume at $HF_HOME instead (docs/deploy.md).",
                  f"ARG CHECKPOINT={get_spec(encoder).checkpoint}",
                  f'RUN if [ -n "$CHECKPOINT" ]; then python docker/bake_model.py {config} "$CHECKPOINT"; fi']
    else:
        lines += [f"USER {APP_UID}"]
    lines += [f"EXPOSE {PORT}",
              f'ENTRYPOINT ["jina", "executor", "--uses", "{config}", "--port", "{PORT}"]', ""]
    return "\n".join(lines)
