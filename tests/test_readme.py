"""Every shell command that README.md and docs/ show, run as written, checked as a reader would.

tests/readme_commands.py lists the commands, where each runs, and the table of the only
substitutions allowed (tiny models, small data, temporary folders, free ports). A command
added to the docs without an entry fails the first test.
"""

import hashlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from readme_commands import LISTING_SIZES, PLAN, ROOT, SMALL_SAMPLE, SMALL_SCALEOUT, Command, documented_commands, entry_for

PY = sys.executable
HUB = {"clip": "clip", "dinov2": "dinov2", "bit": "bit", "vit": "vit", "efficientnet": "efficientnet", "blip2": "blip2-itm"}


def test_every_documented_command_has_exactly_one_entry():
    commands = documented_commands()
    assert len(commands) > 30  # the reader found the docs' commands at all
    problems = [f"{c.doc}:{c.line}: {c.text!r} matches {len(entry_for(c))} entries" for c in commands if len(entry_for(c)) != 1]
    assert problems == []
    tests = {e.test for e in PLAN if e.test}
    assert tests <= {name for name in globals() if name.startswith("test_")}, tests
    used = {e.pattern for c in commands for e in entry_for(c)}
    assert [e.pattern for e in PLAN if e.pattern not in used] == []  # no entry outlives its command


def commands_for(test: str) -> list[Command]:
    return [c for c in documented_commands() if entry_for(c)[0].test == test]


def as_run(text: str, tiny: dict[str, Path] | None = None, ports: dict[str, int] | None = None) -> str:
    """The table's substitutions, applied to one documented command."""
    text = re.sub(r"^.*&& \.venv/bin/python app\.py", "python app.py", text)  # the install has run
    text = re.sub(r"(?<![\w/.])(?:\.venv/bin/)?python (app\.py|examples/)", lambda m: f"{PY} {ROOT}/{m.group(1)}", text)
    text = re.sub(r"\[(--[^\]]+)\]", r"\1", text)  # optional parts: given
    for written, free in (ports or {}).items():
        text = text.replace(written, str(free))
    if re.search(r"app\.py sample\b", text):
        text += " " + " ".join(SMALL_SAMPLE)
    if re.search(r"app\.py bench\b.* --simulate-gpu-ms ", text):
        text += " " + " ".join(SMALL_SCALEOUT)
    if re.fullmatch(r"python -m imgsearch\.bench\.listing", text):
        text = f"{PY} -m imgsearch.bench.listing " + " ".join(LISTING_SIZES)
    if tiny and " --model " not in text and "compare" not in text:
        named = re.search(r"--encoder ((?:[\w-]+ ?)+)", text)
        for name in named.group(1).split() if named else []:
            if name in HUB:
                text += f" --model {name}={tiny[HUB[name]]}"
    return text


def sh(text: str, cwd: Path, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    run = subprocess.run(
        ["bash", "-c", text],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "IMGSEARCH_START_METHOD": "fork", **(env or {})},
    )
    assert run.returncode == 0, f"{text}\n{run.stderr[-3000:]}"
    return run


@pytest.fixture
def workdir(tmp_path) -> Path:
    (tmp_path / "home").mkdir()
    return tmp_path


@pytest.mark.flow
def test_readme_demo_with_an_empty_home(workdir):
    (command,) = commands_for("test_readme_demo_with_an_empty_home")
    sh(as_run("python app.py sample"), workdir)  # small data: the demo reads the set `sample` wrote
    run = sh(as_run(command.text), workdir, env={"HOME": str(workdir / "home")})
    query = run.stdout.split("Image search with ", 1)[1].split(":\n", 1)[0]
    first = next(line for line in run.stdout.splitlines() if line.strip().startswith("1."))
    assert query.endswith("__v1.jpg") and query.split("/")[-2] in first  # its own template comes first
    assert "Text search skipped" in run.stdout and "Hugging Face" in run.stdout  # no hub here, said why
    assert list((workdir / "results").glob("search-*.html"))


@pytest.mark.flow
def test_readme_use_and_compare(workdir, tiny_models):
    out = {}
    for c in commands_for("test_readme_use_and_compare"):
        out[c.text] = sh(as_run(c.text, tiny_models), workdir).stdout
    memes = workdir / "data" / "memes"
    assert len([p for p in memes.iterdir() if p.is_dir()]) == 56 and (memes / "doge" / "doge__v1.jpg").is_file()
    index = next(v for k, v in out.items() if " index " in k)
    assert index.count("Collection 'memes--") == 3 and "skipped: 0" in index and "\n  skipped:\n" not in index
    image = next(v for k, v in out.items() if "--image" in k)
    hits = [line for line in image.splitlines() if re.match(r"\s+\d+\. ", line)]
    assert len(hits) == 8 and "doge/doge__v1.jpg" in hits[0]  # the query is indexed: it finds itself
    text = next(v for k, v in out.items() if "--text" in k)
    assert "Top 10 for “doge”" in text and "Grid:" in text
    stats = next(v for k, v in out.items() if k.endswith("stats"))
    assert len([line for line in stats.splitlines() if line.startswith("memes--")]) == 3
    assert "efficientnet-lite0" in next(v for k, v in out.items() if k.endswith("encoders"))
    assert (workdir / "data" / "tiny-models" / "clip" / "config.json").is_file()
    report = json.loads((workdir / "results" / "compare-memes-hard" / "report.json").read_text())
    status = {r["encoder"]: r["status"] for r in report["encoders"]}
    assert len(status) == 8 and status["efficientnet-lite0"] == "ok" and status["vertex"] != "ok"
    assert [e for e, s in status.items() if s != "ok"] == ["vertex"]  # the tiny stand-ins filled in the rest
    assert (workdir / "results" / "compare-memes-hard" / "report.html").stat().st_size > 10_000


def test_readme_fashion_mnist(workdir):
    source = Path("/usr/share/datasets/fashion-mnist")
    if not source.is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed (the README's test command installs it)")
    (command,) = commands_for("test_readme_fashion_mnist")
    run = sh(as_run(command.text), workdir)
    folders = sorted(p for p in (workdir / "data" / "fashion-mnist").iterdir() if p.is_dir())
    assert len(folders) == 10 and all(len(list(f.glob("*.png"))) == 100 for f in folders), run.stdout


class Up:
    """`app.py up` as docs/grpc.md starts it, until SIGTERM."""

    def __init__(self, text: str, cwd: Path, env: dict):
        launch = f"exec env {text}" if re.match(r"\w+=", text) else f"exec {text}"  # exec: SIGTERM reaches app.py
        self.proc = subprocess.Popen(["bash", "-c", launch], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        self.lines: list[str] = []
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not (self.lines and self.lines[-1].startswith("Serving gRPC")):
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
        assert self.lines and self.lines[-1].startswith("Serving gRPC"), self.lines

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=60) == 0


@pytest.mark.flow
def test_grpc_md_commands(workdir, tiny_models):
    from imgsearch.flow import free_port

    up, stubs, client = (c.text for c in commands_for("test_grpc_md_commands"))
    ports = {"8080": free_port()}
    sh(as_run("python app.py sample"), workdir)
    token = "readme-test-token"
    env = {**os.environ, "IMGSEARCH_TOKEN": token, "IMGSEARCH_START_METHOD": "fork"}
    up_run = as_run(up, tiny_models, ports).replace("$(openssl rand -hex 16)", token)  # the token the test knows
    server = Up(up_run, workdir, env)
    try:
        host = f"grpc://127.0.0.1:{ports['8080']}"
        assert server.lines[0].split()[:2] == ["clip", host]
        sh(f"{PY} {ROOT}/app.py index --host {host} --encoder clip --data data/memes", workdir, env=env)
        sh(as_run(stubs), workdir)
        assert (workdir / "stubs" / "jina_pb2.py").is_file()
        (workdir / "query.jpg").write_bytes((workdir / "data" / "memes" / "doge" / "doge__v1.jpg").read_bytes())
        collection = f"memes--{tiny_models['clip'].name}"  # tiny models: the collection is named after the tiny one
        # The reader who started the server holds its token: the matches' paths come back only with it.
        run = sh(as_run(client, ports=ports).replace("memes--openai-clip-vit-base-patch32", collection), workdir, env={"IMGSEARCH_TOKEN": token})
        matches = json.loads(run.stdout)  # a tiny random model: its ranking means nothing, its answer's shape does
        scores = [m["score"] for m in matches]
        assert len(matches) == 5 and scores == sorted(scores, reverse=True) and all(-1.0001 <= x <= 1.0001 for x in scores)
        assert all(m["uri"].startswith(str(workdir / "data" / "memes")) and len(m["hash"]) == 64 for m in matches), matches
    finally:
        server.stop()


def test_deploy_md_scale_out_commands(workdir):
    """docs/deploy.md, "Scale out": the autoscaler's limits pinned, and the Linkerd variant, as generated."""
    import yaml

    for i, command in enumerate(commands_for("test_deploy_md_scale_out_commands")):
        out = workdir / f"gen{i}"
        sh(as_run(command.text) + f" --out {out}", workdir)
        objects = [d for p in sorted((out / "k8s").glob("*.yml")) for d in yaml.safe_load_all(p.read_text()) if d]
        named = {(d["kind"], d["metadata"]["name"]): d for d in objects}
        pod = named[("Deployment", "encoder-clip")]["spec"]["template"]["metadata"]
        if "--mesh linkerd" in command.text:
            assert pod["annotations"] == {"linkerd.io/inject": "enabled"} and ("NetworkPolicy", "linkerd-proxy") in named
            assert "clusterIP" not in named[("Service", "encoder-clip")]["spec"]
        else:
            hpa = named[("HorizontalPodAutoscaler", "encoder-clip")]["spec"]
            config = named[("ConfigMap", "imgsearch-config")]["data"]
            assert hpa["minReplicas"] == hpa["maxReplicas"] == 4
            assert config["ENCODER_CLIP_MIN_REPLICAS"] == config["ENCODER_CLIP_MAX_REPLICAS"] == "4"
            assert "annotations" not in pod and named[("Service", "encoder-clip")]["spec"]["clusterIP"] == "None"


@pytest.mark.flow
def test_deploy_md_commands(workdir, tiny_models):
    from imgsearch.flow import free_port

    commands = [c.text for c in commands_for("test_deploy_md_commands")]
    k8s, pinned, index, search, refused, openssl = (
        next(c for c in commands if pred(c))
        for pred in (
            lambda c: " k8s --registry" in c,
            lambda c: " k8s --image-digests" in c,
            lambda c: c.startswith("python app.py index") and "/data/memes" in c,
            lambda c: " search " in c,
            lambda c: c.startswith("IMGSEARCH_TOKEN="),
            lambda c: c.startswith("openssl"),
        )
    )
    run = sh(as_run(k8s) + f" --out {workdir / 'gen'}", workdir)
    manifest = (workdir / "gen" / "k8s" / "40-gateway-clip.yml").read_text()
    assert "registry.example.com/me/gateway:" in manifest and "deploy with `kubectl apply" in run.stdout
    # digests.json names a made-up digest for every image the default manifests use.
    sh(f"{PY} {ROOT}/app.py k8s --out {workdir / 'plain'}", workdir)
    images = sorted(
        {
            line.split("image:", 1)[1].strip()
            for p in (workdir / "plain" / "k8s").glob("*.yml")
            for line in p.read_text().splitlines()
            if line.strip().startswith("image:")
        }
    )
    digests = {name: "sha256:" + hashlib.sha256(name.encode()).hexdigest() for name in images}
    (workdir / "digests.json").write_text(json.dumps(digests))
    sh(as_run(pinned) + f" --out {workdir / 'pinned'}", workdir)
    pinned_text = "".join(p.read_text() for p in (workdir / "pinned" / "k8s").glob("*.yml"))
    assert all(f"{name}@{digest}" in pinned_text for name, digest in digests.items()) and len(images) >= 5
    sh(openssl, workdir)
    assert b"PRIVATE KEY" in (workdir / "gateway.key").read_bytes() and (workdir / "gateway.crt").stat().st_size > 0

    # The cluster's gateway is, here, `app.py up` with the write token; /data/memes is the small set.
    ports = {"localhost:8080": f"127.0.0.1:{free_port()}"}
    sh(as_run("python app.py sample"), workdir)
    data = str(workdir / "data" / "memes")
    env = {**os.environ, "IMGSEARCH_TOKEN": "deploy-token", "IMGSEARCH_START_METHOD": "fork"}
    port = ports["localhost:8080"].rsplit(":", 1)[1]
    server = Up(f"{PY} {ROOT}/app.py up --encoder clip --model clip={tiny_models['clip']} --port {port}", workdir, env)
    try:
        no_token = subprocess.run(
            ["bash", "-c", as_run(refused, ports=ports).replace("/data/memes", data)],
            cwd=workdir,
            capture_output=True,
            text=True,
            env={**env, "IMGSEARCH_TOKEN": ""},
            timeout=300,
        )
        assert no_token.returncode != 0 and "token" in no_token.stderr.lower()  # "must be refused"
        sh(as_run(index, ports=ports).replace("/data/memes", data), workdir, env=env)
        (workdir / "query.jpg").write_bytes((workdir / "data" / "memes" / "doge" / "doge__v1.jpg").read_bytes())
        hits = sh(as_run(search, ports=ports).replace("/data/memes", data), workdir, env=env).stdout
        first = next(line for line in hits.splitlines() if line.strip().startswith("1."))
        assert "doge__v1.jpg" in first
    finally:
        server.stop()


@pytest.mark.flow
def test_web_md_command(workdir, tiny_models):
    from imgsearch.flow import free_port

    (command,) = commands_for("test_web_md_command")
    port = free_port()
    text = as_run(command.text, tiny_models, {"8000": port})
    proc = subprocess.Popen(
        ["bash", "-c", f"exec {text}"],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "IMGSEARCH_START_METHOD": "fork"},
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"Search page: http://localhost:{port}/"), line
        deadline = time.monotonic() + 60  # the socket is bound before the line; uvicorn listens a moment later
        while True:
            try:
                config = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/config", timeout=30).read())
                break
            except urllib.error.URLError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        assert [e["name"] for e in config["encoders"]] == ["efficientnet-lite0", "clip"]
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30).read().decode()
        assert "<html" in page.lower()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)


@pytest.mark.flow
@pytest.mark.slow
def test_performance_md_command(workdir):
    (command,) = commands_for("test_performance_md_command")
    run = sh(as_run(command.text), workdir, timeout=300)
    assert "Scale-out: simulated GPU encoders standing in for clip, 60 ms per batch of 4, 32 images" in run.stdout
    rows = [line.split() for line in run.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [r[:2] for r in rows] == [["1", "-"], ["2", "-"]] and all(float(r[2]) > 0 for r in rows)
    assert (workdir / "results" / "bench" / "bench.json").is_file()  # --out's default, relative to where it ran


@pytest.mark.slow
def test_performance_md_listing_bench(workdir):
    """The bucket-listing benchmark, scaled down: every row, and the growth and paged/whole ratios."""
    (bench,) = (c.text for c in commands_for("test_performance_md_listing_bench"))
    run = sh(as_run(bench), workdir, env={"PYTHONPATH": str(ROOT)})
    rows = [line.split() for line in run.stdout.splitlines() if "µs/object" in line]
    assert [r[0] for r in rows] == ["300"] * 3 + ["900"] * 3 + ["50"], run.stdout
    assert "growth from 300 to 900 objects (x3)" in run.stdout and "paged / whole listing" in run.stdout


def test_substitutions_are_the_tables():
    """The rewriting itself, on fixed input: a reader can check what ran."""
    tiny = {k: Path(f"/t/{k}") for k in ("clip", "dinov2", "blip2-itm")}
    assert as_run("python app.py index --data data/memes --encoder efficientnet-lite0 clip dinov2", tiny) == (
        f"{PY} {ROOT}/app.py index --data data/memes --encoder efficientnet-lite0 clip dinov2 --model clip=/t/clip --model dinov2=/t/dinov2"
    )
    assert as_run("python app.py sample") == f"{PY} {ROOT}/app.py sample " + " ".join(SMALL_SAMPLE)
    assert as_run("python app.py bench --simulate-gpu-ms 400 --images 1024").endswith("--images 1024 " + " ".join(SMALL_SCALEOUT))
    assert as_run("python -m imgsearch.bench.listing") == f"{PY} -m imgsearch.bench.listing --sizes 300,900 --cold 50"
    assert shlex.split(as_run("python examples/x.py --host localhost:8080 [--json]", ports={"8080": 1}))[-3:] == ["--host", "localhost:1", "--json"]


@pytest.mark.flow
def test_metrics_md_commands(workdir):
    """docs/metrics.md: `up --metrics-token-file` prints every process's metrics address, and
    the curl lines read one with the token and get 401 without it."""
    from imgsearch.flow import free_port

    token_cmd, up, read, refused = (c.text for c in commands_for("test_metrics_md_commands"))
    sh(token_cmd, workdir)
    token = (workdir / "metrics.token").read_text().strip()
    assert len(token) == 32
    ports = {"8080": free_port()}
    env = {k: v for k, v in os.environ.items() if k not in ("IMGSEARCH_TOKEN", "IMGSEARCH_METRICS_TOKEN")}
    server = Up(as_run(up, ports=ports), workdir, {**env, "IMGSEARCH_START_METHOD": "fork"})
    try:
        urls = {line.split()[2]: line.split()[3] for line in server.lines if line.startswith("metrics ")}
        assert sorted(urls) == ["encoder", "gateway", "indexer", "loader", "normalizer"], server.lines
        assert all(u.startswith("http://127.0.0.1:") and u.endswith("/metrics") for u in urls.values())
        lines = sh(read, workdir, env={"METRICS_URL": urls["gateway"]}).stdout.splitlines()
        # `up` asked each encoder for /info and the store for its collections before printing.
        assert lines and all(line.startswith('imgsearch_requests_total{endpoint="') for line in lines), lines
        assert any('endpoint="/info"' in line and 'stage="gateway"' in line for line in lines), lines
        assert sh(refused, workdir, env={"METRICS_URL": urls["encoder"]}).stdout.strip() == "401"
    finally:
        server.stop()
