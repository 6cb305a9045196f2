"""Search a running imgsearch gateway with plain gRPC: no jina, no docarray.

What a client in any language needs (README: "gRPC clients"):
- the two .proto files in protos/ (jina.proto imports docarray.proto; both use only
  google/protobuf well-known types), compiled with that language's protoc plugin;
- one unary call, ``jina.JinaSingleDataRequestRPC/process_single_data`` (or the
  bidirectional stream ``jina.JinaRPC/Call`` with the same messages), sending a
  ``jina.DataRequestProto``:
    header.request_id    any unique string
    header.exec_endpoint "/search"
    parameters           {"collection": "<dataset>--<model>", "top_k": 10} (google.protobuf.Struct;
                         optional "score_threshold": float)
    data.docs.docs[0]    a docarray.DocProto whose map ``data`` has "blob" → NodeProto{blob: <image file bytes>}
                         (or "text" → NodeProto{text: "..."} on a text-capable encoder);
                         "token": the server's IMGSEARCH_TOKEN, only where it requires it for searches
- TLS: a gateway started with a certificate (docs/deploy.md) is reached as grpcs://HOST:PORT;
- the reply is a DataRequestProto: header.status.code (0 = SUCCESS, else description says why);
  documents in data.docs (or, serialized, in data.docs_bytes as a DocListProto); each
  result document's "matches" is a NodeProto list of dicts with label, score, width, height,
  hash (and uri and paths, the stored file paths, only when the request carries the server's
  token); "error" (text) is set when that query could not be served.

Usage (Python needs `pip install grpcio protobuf grpcio-tools`, or stubs made beforehand):
    python examples/grpc_search_client.py --host localhost:8080 --image query.jpg --collection memes--efficientnet-lite0
    python examples/grpc_search_client.py --host grpcs://localhost:8080 --ca-cert gateway.crt ...   (TLS)
"""

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any


def load_stubs(stubs: Path | None = None):
    """The generated modules (jina_pb2, jina_pb2_grpc, docarray_pb2): from ``stubs`` or compiled now."""
    if stubs is None:
        stubs = Path(tempfile.mkdtemp(prefix="imgsearch-stubs-"))
        compile_stubs(stubs)
    sys.path.insert(0, str(stubs))
    return (importlib.import_module(m) for m in ("jina_pb2", "jina_pb2_grpc", "docarray_pb2"))


def compile_stubs(out: Path) -> None:
    """protoc (from grpcio-tools) → Python message and service stubs in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, str(Path(__file__).resolve().parent / "compile_stubs.py"), str(out)], check=True)


def node_value(node) -> Any:
    """A docarray NodeProto as plain Python (None for an unset field)."""
    kind = node.WhichOneof("content")
    if kind is None:
        return None
    value = getattr(node, kind)
    if kind in ("list", "set", "tuple"):
        return [node_value(n) for n in value.data]
    if kind == "dict":
        return {k: node_value(v) for k, v in value.data.items()}
    if kind == "doc":
        return {k: node_value(v) for k, v in value.data.items()}
    if kind == "doc_array":
        return [{k: node_value(v) for k, v in d.data.items()} for d in value.docs]
    if kind == "ndarray":
        return {"shape": list(value.dense.shape), "dtype": value.dense.dtype}
    return value


def search_request(
    jina_pb2, image_bytes: bytes | None, text: str | None, collection: str, top_k: int, score_threshold: float | None = None, token: str | None = None
):
    req = jina_pb2.DataRequestProto()
    req.header.request_id = uuid.uuid4().hex
    req.header.exec_endpoint = "/search"
    params: dict[str, Any] = {"collection": collection, "top_k": top_k}
    if score_threshold is not None:
        params["score_threshold"] = score_threshold
    if token:  # where the server requires its token for searches too (IMGSEARCH_TOKEN_FOR_SEARCH)
        params["token"] = token
    req.parameters.update(params)
    doc = req.data.docs.docs.add()
    if image_bytes is not None:
        doc.data["blob"].blob = image_bytes
    else:
        doc.data["text"].text = text
    return req


def open_channel(host: str, ca_cert: Path | None = None):
    """A channel to ``host``: TLS for ``grpcs://HOST:PORT`` (trusting ``ca_cert`` when given, else
    the system's roots), plain for ``grpc://HOST:PORT`` or ``HOST:PORT``."""
    import grpc

    options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
    if host.startswith("grpcs://"):
        roots = ca_cert.read_bytes() if ca_cert else None
        return grpc.secure_channel(host.removeprefix("grpcs://"), grpc.ssl_channel_credentials(roots), options=options)
    return grpc.insecure_channel(host.removeprefix("grpc://"), options=options)


def search(
    host: str,
    collection: str,
    image: Path | None = None,
    text: str | None = None,
    top_k: int = 10,
    score_threshold: float | None = None,
    stubs: Path | None = None,
    timeout: float = 120.0,
    ca_cert: Path | None = None,
    token: str | None = None,
) -> list[dict]:
    """Ranked matches (dicts with uri, label, score...) for one query, best first."""
    jina_pb2, jina_pb2_grpc, docarray_pb2 = load_stubs(stubs)
    request = search_request(jina_pb2, image.read_bytes() if image else None, text, collection, top_k, score_threshold, token)
    with open_channel(host, ca_cert) as channel:
        reply = jina_pb2_grpc.JinaSingleDataRequestRPCStub(channel).process_single_data(request, timeout=timeout)
    if reply.header.status.code != jina_pb2.StatusProto.SUCCESS:
        raise RuntimeError(f"the gateway answered with an error: {reply.header.status.description}")
    if reply.data.WhichOneof("documents") == "docs_bytes":
        docs = docarray_pb2.DocListProto.FromString(reply.data.docs_bytes).docs
    else:
        docs = reply.data.docs.docs
    if not docs:
        raise RuntimeError("the gateway returned no result document")
    result = {k: node_value(v) for k, v in docs[0].data.items()}
    if result.get("error"):
        raise RuntimeError(f"the query failed: {result['error']}")
    return result.get("matches") or []


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Search an imgsearch gateway over plain gRPC.")
    p.add_argument("--host", required=True, help="gateway address, HOST:PORT (grpc:// prefix allowed; grpcs://HOST:PORT for TLS)")
    p.add_argument("--ca-cert", type=Path, help="with grpcs://: the certificate (or its CA) to trust instead of the system's roots")
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--image", type=Path, help="query image file")
    q.add_argument("--text", help="text query (clip, blip2)")
    p.add_argument("--collection", required=True, help="collection name, e.g. memes--efficientnet-lite0 (see `app.py stats`)")
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--threshold", type=float, help="drop matches scoring below this")
    p.add_argument("--stubs", type=Path, help="folder with generated jina_pb2*.py / docarray_pb2.py (default: compile protos/ now)")
    p.add_argument("--json", action="store_true", help="print the matches as JSON")
    args = p.parse_args(argv)
    try:
        matches = search(
            args.host,
            args.collection,
            args.image,
            args.text,
            args.top_k,
            args.threshold,
            args.stubs,
            ca_cert=args.ca_cert,
            token=os.environ.get("IMGSEARCH_TOKEN"),
        )
    except Exception as exc:  # grpc.RpcError included: one line, exit 1
        print(f"error: {getattr(exc, 'details', lambda: None)() or exc}", file=sys.stderr)
        return 1
    if args.json:
        json.dump(matches, sys.stdout, indent=2)
        print()
        return 0
    for rank, m in enumerate(matches, 1):
        label = f"  [{m['label']}]" if m.get("label") else ""
        print(f"{rank:>3}. {m['score']:.4f}  {m.get('uri') or m.get('hash')}{label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
