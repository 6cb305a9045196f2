"""`python -m imgsearch.deploy`: the same as `python app.py k8s`."""

import argparse
import os
import sys
from typing import Optional

from imgsearch.deploy import add_arguments, write


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m imgsearch.deploy", description="Write k8s/ and docker/ from flows/index.yml.")
    add_arguments(p)
    args = p.parse_args(argv)
    os.environ.setdefault("JINA_LOG_LEVEL", "ERROR")
    for path in write(args.out, encoders=tuple(args.encoders), registry=args.registry, model_cache=args.model_cache,
                      qdrant_nodes=args.qdrant_nodes, shared_data=args.shared_data,
                  image_digests=args.image_digests):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
