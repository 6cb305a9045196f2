"""Download an encoder's checkpoint into the image's Hugging Face cache at build time.

    python docker/bake_model.py executors/encoders/configs/clip.yml openai/clip-vit-base-patch32

Loads the encoder exactly as the running executor will (its own config, on CPU), so the
cache under $HF_HOME holds precisely the files it needs; the pod then starts without a hub.
"""

import sys

from jina import Executor


def main(config: str, checkpoint: str) -> int:
    executor = Executor.load_config(config, uses_with={"model": checkpoint})
    executor.close()
    print(f"baked {checkpoint} for {config}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
