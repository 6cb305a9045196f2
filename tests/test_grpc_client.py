"""The jina-free gRPC client: protos/ matches the pinned jina and docarray, and
examples/grpc_search_client.py searches a real gateway with nothing but grpcio + protobuf."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
EXAMPLE = ROOT / "examples" / "grpc_search_client.py"


def _export():
    sys.path.insert(0, str(PROTOS))
    try:
        import export_protos
    finally:
        sys.path.remove(str(PROTOS))
    return export_protos


def test_committed_protos_are_the_installed_ones():
    assert _export().sources() == {p.name: p.read_text() for p in sorted(PROTOS.glob("*.proto"))}, (
        "protos/ is stale: run `python protos/export_protos.py`"
    )


def _normalise(fdp):
    for msg in _walk(fdp.message_type):
        for f in msg.field:
            f.ClearField("json_name")
    for svc in fdp.service:  # `rpc x (A) returns (B) {}` leaves an empty options message
        for m in svc.method:
            if m.HasField("options") and not m.options.ListFields():
                m.ClearField("options")
    return fdp


def _walk(messages):
    for m in messages:
        yield m
        yield from _walk(m.nested_type)


def test_protos_compile_to_exactly_the_wire_format_jina_uses(tmp_path):
    """protoc on the committed .proto files gives the same descriptors jina and docarray run with."""
    from google.protobuf import descriptor_pb2

    stubs = tmp_path / "stubs"
    subprocess.run([sys.executable, str(EXAMPLE.parent / "compile_stubs.py"), str(stubs)], check=True)
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from google.protobuf import descriptor_pb2 as d;"
        "import jina_pb2, docarray_pb2;"
        "out = open(sys.argv[2], 'wb');"
        "[out.write(len(b).to_bytes(4, 'big') + b) for b in (m.DESCRIPTOR.serialized_pb for m in (jina_pb2, docarray_pb2))]"
    )
    blob = tmp_path / "descs.bin"
    subprocess.run([sys.executable, "-c", script, str(stubs), str(blob)], check=True)
    data, compiled = blob.read_bytes(), []
    while data:
        n = int.from_bytes(data[:4], "big")
        compiled.append(descriptor_pb2.FileDescriptorProto.FromString(data[4 : 4 + n]))
        data = data[4 + n :]

    export = _export()
    from docarray.proto.pb import docarray_pb2
    from jina.proto.docarray_v2.pb import jina_pb2

    for got, module in zip(compiled, (jina_pb2, docarray_pb2)):
        want = export.file_descriptor(module)
        got.ClearField("source_code_info")
        assert _normalise(got) == _normalise(want), module.__name__


def test_the_example_imports_neither_jina_nor_docarray():
    tree = subprocess.run([sys.executable, "-X", "importtime", str(EXAMPLE), "--help"], capture_output=True, text=True, check=True)
    modules = {line.split("|")[-1].strip().split(".")[0] for line in tree.stderr.splitlines() if line.startswith("import time:")}
    assert "argparse" in modules
    assert not modules & {"jina", "docarray", "executors", "imgsearch", "torch"}


@pytest.mark.flow
def test_plain_grpc_search_against_a_running_flow(tmp_path, photo_dir):
    from imgsearch.flow import Gateway, local_flow
    from imgsearch.indexing import encoder_info, run_index

    stubs = tmp_path / "stubs"
    subprocess.run([sys.executable, str(EXAMPLE.parent / "compile_stubs.py"), str(stubs)], check=True)
    query = photo_dir / "rocket" / "rocket_crop.jpg"
    with local_flow("efficientnet-lite0", store=str(tmp_path / "store")) as host:
        gw = Gateway(host)
        summary = run_index(gw, photo_dir, encoder_info(gw), batch_size=8, progress=False)
        assert summary.indexed == len(list(photo_dir.rglob("*.jpg")))

        def client(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-X", "importtime", str(EXAMPLE), "--host", host, *args], capture_output=True, text=True)

        run = client("--image", str(query), "--collection", summary.collection, "--top-k", "4", "--stubs", str(stubs), "--json")
        assert run.returncode == 0, run.stderr[-3000:]
        imported = {m.group(1).split(".")[0] for m in re.finditer(r"^import time:.*\|\s*(\S+)$", run.stderr, re.M)}
        assert "grpc" in imported and not imported & {"jina", "docarray", "executors", "imgsearch"}
        matches = json.loads(run.stdout)
        assert len(matches) == 4
        assert [m["label"] for m in matches[:2]] == ["rocket", "rocket"]
        assert matches[0]["uri"] == str(query) and matches[0]["score"] == pytest.approx(1.0, abs=1e-3)
        scores = [m["score"] for m in matches]
        assert scores == sorted(scores, reverse=True)
        # The same ranking as the jina client gives.
        from imgsearch.searching import run_search

        ref = run_search(gw, summary.collection, encoder_info(gw), image=query, top_k=4)
        assert [m["uri"] for m in matches] == [m["path"] for m in ref.matches]
        # This client sends no resize rule, so the encoder's processor resizes (Pillow); the jina
        # client's query is resized where it is decoded (torch's kernel, within 2 pixel levels).
        assert scores == pytest.approx([m["score"] for m in ref.matches], abs=2e-3)

        # Human output, and stubs compiled on the fly when none are given.
        run = client("--image", str(query), "--collection", summary.collection, "--top-k", "2")
        assert run.returncode == 0, run.stderr[-3000:]
        assert re.match(r"\s+1\. 1\.0000  .*rocket_crop\.jpg  \[rocket\]", run.stdout)

        # Errors come back as one line, exit 1.
        run = client("--image", str(query), "--collection", "no-such-collection")
        last = run.stderr.strip().splitlines()[-1]
        assert run.returncode == 1 and last.startswith("error:") and "unknown collection 'no-such-collection'" in last
