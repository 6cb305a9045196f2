"""The shell commands that README.md and docs/*.md show, and the only substitutions allowed when
tests/test_readme.py runs them.

Every fenced ``bash`` block is read; a line ending in ``\\`` continues on the next; a ``#``
after two spaces starts a comment, and a line starting with ``#`` is sample output. Each
command must match exactly one entry of PLAN: it is either run (tests/test_readme.py), or it
needs what this machine has not, said in its entry.

The substitutions, all of them:

| what | as written | as run here, and why |
|---|---|---|
| interpreter | `python`, `.venv/bin/python` | the interpreter running the tests (the venv the test command made) |
| the checkout | `app.py`, `examples/…` | this checkout's files, run from a temporary folder (relative paths land there) |
| installing | `python3 -m venv … && pip install … && CMD` | `CMD` alone: the install is the test command's own first half, which has just run |
| small data | `app.py sample` | `--limit 56 --variants 2` appended (56 templates, doge the last, not 207); the demo and the examples read that set |
| tiny models | a hub encoder (clip, dinov2…) whose checkpoint is unreachable | `--model ENCODER=<tiny random model>` appended; a collection named after a model is named after the tiny one |
| ports | `8080`, `8000`, `localhost:8080` | free ports on 127.0.0.1 |
| optional parts | `[--opt value]` | given |
| a file the prose asks for | `query.jpg` | an image of the small data set |
| writing into the checkout | `app.py k8s` | `--out` a temporary folder |
| a benchmark's size | `app.py bench --simulate-gpu-ms …` | `SMALL_SCALEOUT` appended (the last given wins): 32 images, 1 and 2 replicas, 60 ms per batch of 4 |
| pushed images' digests | `digests.json` | a file naming a made-up sha256 for every image the manifests use |
| benchmark sizes | `python -m imgsearch.bench.listing` | `--sizes 300,900 --cold 50` appended: the documented run (100,000 objects) takes minutes; the test checks the table's rows and ratios |
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SMALL_SAMPLE = ["--limit", "56", "--variants", "2"]  # 56: the README searches doge, the 55th template
SMALL_SCALEOUT = ["--images", "32", "--encoder-replicas", "1", "2", "--simulate-gpu-ms", "60", "--simulate-batch", "4", "--next-stage-replicas", "0"]
LISTING_SIZES = ["--sizes", "300,900", "--cold", "50"]  # the bucket-listing benchmark, scaled down


@dataclass(frozen=True)
class Command:
    doc: str  # README.md, docs/deploy.md...
    line: int
    text: str  # continuation lines joined, comments removed


@dataclass(frozen=True)
class Entry:
    pattern: str  # a regular expression the whole command must match
    test: Optional[str] = None  # the test in tests/test_readme.py that runs it
    elsewhere: Optional[str] = None  # why it cannot run here, and what checks it instead


def documented_commands() -> list[Command]:
    out = []
    for doc in DOCS:
        lines = doc.read_text().splitlines()
        inside, pending, start = False, "", 0
        for i, line in enumerate(lines, 1):
            if line.startswith("```"):
                inside = line.strip() in ("```bash", "```sh", "```shell")
                continue
            if not inside or not line.strip() or (line.lstrip().startswith("#") and not pending):
                continue
            text = re.sub(r"\s{2,}#.*$", "", line).rstrip()
            if not pending:
                start = i
            if text.endswith("\\"):
                pending += text[:-1].strip() + " "
                continue
            out.append(Command(str(doc.relative_to(ROOT)), start, (pending + text.strip()).strip()))
            pending = ""
    return out


CLUSTER = "needs a Kubernetes cluster with GPU nodes; the manifests are validated offline by tests/test_deploy.py"
PLAN = [
    # README.md
    Entry(r"python3 -m venv \.venv && .* && \.venv/bin/python app\.py demo", test="test_readme_demo_with_an_empty_home"),
    Entry(
        r"\( \(command -v chromium .*\.venv/bin/python -m pytest -q .*tests/test_containers\.py\)",
        elsewhere="the test command itself: .ci/run runs it, and this test runs inside it",
    ),
    Entry(r"python app\.py sample", test="test_readme_use_and_compare"),
    Entry(r"python app\.py index --data data/memes --encoder efficientnet-lite0 clip dinov2", test="test_readme_use_and_compare"),
    Entry(r"python app\.py search --image data/memes/doge/doge__v1\.jpg --encoder dinov2 --top-k 8", test="test_readme_use_and_compare"),
    Entry(r'python app\.py search --text "doge" --encoder clip', test="test_readme_use_and_compare"),
    Entry(r"python app\.py stats", test="test_readme_use_and_compare"),
    Entry(r"python app\.py encoders", test="test_readme_use_and_compare"),
    Entry(r"python app\.py sample --hard --out data/memes-hard", test="test_readme_use_and_compare"),
    Entry(r"python app\.py tiny-models --out data/tiny-models", test="test_readme_use_and_compare"),
    Entry(
        r"python app\.py compare --data data/memes-hard --tiny-models data/tiny-models --encoder .*vertex --out results/compare-memes-hard",
        test="test_readme_use_and_compare",
    ),
    Entry(r"python app\.py export-fashion-mnist --out data/fashion-mnist --per-class 100", test="test_readme_fashion_mnist"),
    # docs/performance.md
    Entry(r"python -m imgsearch\.bench\.listing", test="test_performance_md_listing_bench"),
    # docs/deploy.md
    Entry(r"(REGISTRY=\S+ )?docker/build\.sh", elsewhere="needs a Docker engine (none runs here)"),
    Entry(
        r"docker/e2e\.sh( build| run)?|\.venv/bin/python -m pytest -m containers tests/test_containers\.py",
        elsewhere="the containers tier (tests/test_containers.py: e2e.sh build, then the run and check that e2e.sh "
        "run does), which the test command runs where podman is installed and it runs as root",
    ),
    Entry(r"python app\.py k8s --registry registry\.example\.com/me", test="test_deploy_md_commands"),
    Entry(r"python app\.py k8s --image-digests digests\.json", test="test_deploy_md_commands"),
    Entry(r"kubectl .*", elsewhere=CLUSTER),
    Entry(r"python app\.py k8s --min-replicas encoder-clip=4 --max-replicas encoder-clip=4", test="test_deploy_md_scale_out_commands"),
    Entry(r"python app\.py k8s --mesh linkerd", test="test_deploy_md_scale_out_commands"),
    Entry(
        r"helm install prometheus-adapter prometheus-community/prometheus-adapter .*",
        elsewhere="needs a cluster with Prometheus and the chart repository; the rule it mounts is checked by tests/test_deploy_scale.py",
    ),
    Entry(r"export IMGSEARCH_TOKEN=\$\(kubectl .*", elsewhere=CLUSTER),
    Entry(
        r"python app\.py (index|search) +--host grpc://localhost:8080 --encoder clip (--image query\.jpg )?--data /data/memes",
        test="test_deploy_md_commands",
    ),
    Entry(
        r"python app\.py index --host grpc://localhost:8080 --encoder clip --data s3://my-bucket/photos( --json)?",
        elsewhere="needs the cluster's gateway and a bucket; listing and indexing a bucket run against moto's S3 server in tests/test_s3_flow.py",
    ),
    Entry(r"IMGSEARCH_TOKEN= python app\.py index --host grpc://localhost:8080 .*", test="test_deploy_md_commands"),
    Entry(r"openssl req -x509 .*", test="test_deploy_md_commands"),
    Entry(
        r"docker run .*",
        elsewhere="needs a Docker engine and the Qdrant image; the server path runs against qdrant-client's local mode in tests/test_store_server.py",
    ),
    Entry(
        r"QDRANT_API_KEY=dev-key python app\.py .* --qdrant-url http://127\.0\.0\.1:6333.*",
        elsewhere="needs a Qdrant server (no server binary here): tests/test_store_server.py",
    ),
    # docs/grpc.md
    Entry(
        r"IMGSEARCH_TOKEN=\$\(openssl rand -hex 16\) python app\.py up --encoder clip efficientnet-lite0 --port 8080", test="test_grpc_md_commands"
    ),
    Entry(r"python examples/compile_stubs\.py stubs/", test="test_grpc_md_commands"),
    Entry(r"python examples/grpc_search_client\.py --host localhost:8080 .*", test="test_grpc_md_commands"),
    Entry(
        r"python examples/grpc_search_client\.py --host grpcs://localhost:8080 --ca-cert gateway\.crt \.\.\.",
        elsewhere="the TLS variant of the line above; TLS through this client is tests/test_grpc_client.py's",
    ),
    # docs/performance.md
    Entry(r"python app\.py bench --simulate-gpu-ms 400 --encoder-replicas 1 2 4 8 --images 1024", test="test_performance_md_command"),
    # docs/metrics.md
    Entry(r"openssl rand -hex 16 > metrics\.token", test="test_metrics_md_commands"),
    Entry(r"python app\.py up --encoder efficientnet-lite0 --port 8080 --metrics-token-file metrics\.token", test="test_metrics_md_commands"),
    Entry(r"curl -s (-H .* \"\$METRICS_URL\" \| grep .*|-o /dev/null -w .* \"\$METRICS_URL\")", test="test_metrics_md_commands"),
    Entry(r"curl -s -H .*\$\(kubectl .* http://localhost:9090/metrics", elsewhere=CLUSTER),
    # docs/reliability.md
    Entry(
        r"(IMGSEARCH_SOAK_SECONDS=\d+ )?\.venv/bin/python -m pytest -q( -s)? -m faults.*",
        elsewhere="the faults tier runs inside this suite (tests/faults/)",
    ),
    Entry(
        r"(IMGSEARCH_FUZZ_EXAMPLES=\d+ )?\.venv/bin/python -m pytest -q( -s)? tests/security/.*",
        elsewhere="the attacker's suite runs inside this suite (tests/security/)",
    ),
    # docs/web.md
    Entry(r"python app\.py serve --encoder efficientnet-lite0 clip --port 8000", test="test_web_md_command"),
]


def entry_for(command: Command) -> list[Entry]:
    return [e for e in PLAN if re.fullmatch(e.pattern, command.text)]
