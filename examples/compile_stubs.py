"""Compile protos/*.proto into Python stubs: `python examples/compile_stubs.py OUT_DIR` (needs grpcio-tools).

Other languages: run their protoc plugin on the same two files, e.g.
    protoc -Iprotos --go_out=. --go-grpc_out=. protos/jina.proto protos/docarray.proto
"""

import sys
from pathlib import Path

from grpc_tools import protoc

PROTOS = Path(__file__).resolve().parent.parent / "protos"


def main(out: str) -> int:
    Path(out).mkdir(parents=True, exist_ok=True)
    files = [str(PROTOS / "jina.proto"), str(PROTOS / "docarray.proto")]
    # grpc_tools ships the well-known types (google/protobuf/*.proto) it needs as package data.
    include = Path(protoc.__file__).resolve().parent / "_proto"
    return protoc.main(["protoc", f"-I{PROTOS}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}", *files])


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
