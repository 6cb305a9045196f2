"""imgsearch/deploy/pods.py: a Deployment's container spec → `podman run`, without podman.

The runner must start each container as its manifest says (user, capabilities, read-only root,
env from the ConfigMap and Secrets, volumes, limits) and substitute only what a cluster provides
(loopback ports for the pod network, Service names, Secrets' values, claims' folders).
The containers themselves run in the `containers` tier (tests/test_containers.py).
"""

import copy
import json

import pytest
from k8s_replay import objects

from imgsearch import deploy
from imgsearch.deploy.pods import Cluster, SpecError, cpus, memory, run_argv


def _cluster(tmp_path, **secrets):
    return Cluster(
        configmap=dict(objects("ConfigMap")[deploy.CONFIGMAP]["data"], QDRANT_URL=""),
        secrets={("imgsearch-token", "token"): "tok", ("qdrant-api-key", "api-key"): "key", ("imgsearch-metrics-token", "token"): "m", **secrets},
        claims={"imgsearch-data": tmp_path / "data"},
        store=tmp_path / "store",
    )


def _opts(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def _env(argv: list[str]) -> dict[str, str]:
    return dict(e.split("=", 1) for e in _opts(argv, "--env"))


def test_a_pod_runs_as_its_spec_says(tmp_path):
    dep = objects("Deployment")["loader"]
    ports = {"loader": 4101}
    argv = run_argv(dep, _cluster(tmp_path), 4101, ports, "t-loader")
    assert argv[:2] == ["run", "-d"] and _opts(argv, "--network") == ["host"]
    pod = dep["spec"]["template"]["spec"]
    assert _opts(argv, "--user") == [f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}"]
    assert _opts(argv, "--cap-drop") == ["ALL"] and "no-new-privileges" in _opts(argv, "--security-opt")
    assert _opts(argv, "--cpus") == ["2.0"] and _opts(argv, "--memory") == ["4g"]  # the container's limits
    env = _env(argv)
    assert env["IMGSEARCH_TOKEN"] == "tok" and env["QDRANT_URL"] == ""  # Secret, and the ConfigMap override
    assert env["IMGSEARCH_OBJECT_CACHE"].startswith(deploy.DATA_MOUNT)
    assert not any(k.startswith("AWS_") for k in env)  # optional Secret keys the cluster lacks stay unset
    assert env["K8S_POD_NAME"] == "loader"  # fieldRef metadata.name
    assert _opts(argv, "-v") == [f"{tmp_path / 'data'}:{deploy.DATA_MOUNT}:rw"]
    c = pod["containers"][0]
    i = argv.index(c["image"])
    assert _opts(argv, "--entrypoint") == c["command"] and argv[i + 1] == c["args"][0]
    args = argv[i + 1 :]
    assert args[args.index("--port") + 1] == "4101" and args[args.index("--host") + 1] == "127.0.0.1"
    assert "--read-only" in argv and "--read-only-tmpfs=false" in argv  # the manifest asks for it (issue 27)
    assert any(m.startswith("type=tmpfs,destination=/tmp,") for m in _opts(argv, "--mount"))  # its /tmp emptyDir


def test_read_only_root_and_empty_dirs_as_kubernetes_makes_them(tmp_path):
    dep = copy.deepcopy(objects("Deployment")["encoder-efficientnet-lite0"])
    dep["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = True
    argv = run_argv(dep, _cluster(tmp_path), 4102, {}, "t-enc")
    assert "--read-only" in argv and "--read-only-tmpfs=false" in argv  # no /tmp unless a volume gives one
    mounts = {m.split("destination=", 1)[1].split(",", 1)[0]: m for m in _opts(argv, "--mount")}
    assert sorted(mounts) == ["/dev/shm", "/tmp"]  # the manifest's emptyDirs, and nothing else writable
    assert mounts["/dev/shm"].startswith("type=tmpfs,") and "tmpfs-size=1073741824" in mounts["/dev/shm"]
    assert "nvidia.com/gpu" not in " ".join(argv)


def test_the_gateway_reaches_each_stage_on_its_loopback_port(tmp_path):
    dep = objects("Deployment")["gateway-efficientnet-lite0"]
    ports = {"loader": 1, "normalizer": 2, "encoder-efficientnet-lite0": 3, "indexer": 4}
    argv = run_argv(dep, _cluster(tmp_path), 4103, ports, "t-gw")
    args = argv[argv.index(dep["spec"]["template"]["spec"]["containers"][0]["image"]) + 1 :]
    addresses = json.loads(args[args.index("--deployments-addresses") + 1])
    assert addresses == {
        "loader": ["grpc://127.0.0.1:1"],
        "normalizer": ["grpc://127.0.0.1:2"],
        "encoder": ["grpc://127.0.0.1:3"],
        "indexer": ["grpc://127.0.0.1:4"],
    }
    assert "IMGSEARCH_TOKEN" not in _env(argv)  # gateways get no token
    assert "--host" not in dep["spec"]["template"]["spec"]["containers"][0]["args"]  # Jina's default: 0.0.0.0
    assert args[args.index("--host") + 1] == "127.0.0.1"  # on the host network: loopback only
    assert "--monitoring" not in dep["spec"]["template"]["spec"]["containers"][0]["args"] and "--monitoring" not in args  # unauthenticated


def test_the_indexer_gets_a_store_volume_only_where_no_qdrant_runs(tmp_path):
    dep = objects("Deployment")["indexer"]
    argv = run_argv(dep, _cluster(tmp_path), 4104, {}, "t-idx")
    assert _env(argv)["QDRANT_API_KEY"] == "key"
    assert _env(argv)["IMGSEARCH_STORE"] == "/var/lib/imgsearch/store"
    assert f"{tmp_path / 'store'}:/var/lib/imgsearch/store:rw" in _opts(argv, "-v")
    cluster = _cluster(tmp_path)
    cluster.configmap["QDRANT_URL"] = "http://127.0.0.1:6333"
    argv = run_argv(dep, cluster, 4104, {}, "t-idx")
    assert _opts(argv, "-v") == [] and _env(argv)["QDRANT_URL"] == "http://127.0.0.1:6333"


def test_what_a_cluster_would_refuse_is_refused(tmp_path):
    dep = objects("Deployment")["indexer"]
    cluster = _cluster(tmp_path)
    del cluster.secrets[("qdrant-api-key", "api-key")]
    with pytest.raises(SpecError, match="qdrant-api-key"):  # a missing Secret: the pod would not start
        run_argv(dep, cluster, 1, {}, "x")
    dep = copy.deepcopy(objects("Deployment")["loader"])
    dep["spec"]["template"]["spec"]["volumes"][0] = {"name": "data", "hostPath": {"path": "/"}}
    with pytest.raises(SpecError, match="only emptyDir and persistentVolumeClaim"):
        run_argv(dep, _cluster(tmp_path), 1, {}, "x")
    cluster = _cluster(tmp_path)
    cluster.claims.clear()
    with pytest.raises(SpecError, match="imgsearch-data"):
        run_argv(objects("Deployment")["loader"], cluster, 1, {}, "x")


def test_security_settings_a_hardened_manifest_may_add(tmp_path):
    """seccomp (RuntimeDefault is podman's own profile) and runAsNonRoot, as issue 27's manifests set them."""
    dep = copy.deepcopy(objects("Deployment")["normalizer"])
    pod = dep["spec"]["template"]["spec"]
    pod["securityContext"]["seccompProfile"] = {"type": "RuntimeDefault"}
    argv = run_argv(dep, _cluster(tmp_path), 1, {}, "x")
    assert not any(o.startswith("seccomp=") for o in _opts(argv, "--security-opt"))
    pod["containers"][0]["securityContext"]["seccompProfile"] = {"type": "Unconfined"}  # the container's wins
    assert "seccomp=unconfined" in _opts(run_argv(dep, _cluster(tmp_path), 1, {}, "x"), "--security-opt")
    pod["containers"][0]["securityContext"]["seccompProfile"] = {"type": "Localhost", "localhostProfile": "p.json"}
    with pytest.raises(SpecError, match="Localhost"):
        run_argv(dep, _cluster(tmp_path), 1, {}, "x")
    dep = copy.deepcopy(objects("Deployment")["normalizer"])
    dep["spec"]["template"]["spec"]["securityContext"]["runAsUser"] = 0
    with pytest.raises(SpecError, match="runAsNonRoot"):
        run_argv(dep, _cluster(tmp_path), 1, {}, "x")


def test_quantities():
    assert cpus("500m") == "0.5" and cpus("2") == "2.0" and cpus("250m") == "0.25"
    assert memory("512Mi") == "512m" and memory("4Gi") == "4g" and memory("1000") == "1000"


def test_a_read_only_root_gets_a_writable_tmp_and_cache_once():
    """Jina makes a temp folder when a server starts and lock files under ~/.cache/jina: a read-only
    root needs both as volumes."""
    from imgsearch.deploy.container_check import read_only_root

    dep = copy.deepcopy(objects("Deployment")["encoder-efficientnet-lite0"])
    read_only_root(dep)
    read_only_root(dep)
    c, pod = dep["spec"]["template"]["spec"]["containers"][0], dep["spec"]["template"]["spec"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    for path in ("/tmp", "/home/app/.cache"):
        assert [m["mountPath"] for m in c["volumeMounts"]].count(path) == 1
    (tmp,) = [v for v in pod["volumes"] if v["name"] == "tmp"]  # the manifest's own (issue 27), kept as it is
    assert tmp == {"name": "tmp", "emptyDir": {"sizeLimit": "4Gi"}}
    argv = run_argv(
        dep,
        Cluster(
            configmap=dict(objects("ConfigMap")[deploy.CONFIGMAP]["data"]),
            secrets={("imgsearch-token", "token"): "t", ("imgsearch-metrics-token", "token"): "m"},
        ),
        1,
        {},
        "x",
    )
    assert "type=tmpfs,destination=/tmp,tmpfs-mode=1777,tmpfs-size=4294967296" in _opts(argv, "--mount")


def test_the_bases_make_jinas_folders_for_a_read_only_root():
    """`import jina` makes ~/.cache/jina and ~/.jina; on a read-only root they must exist already, owned by the pods' user."""
    from pathlib import Path

    for base in ("base-cpu", "base-gpu"):
        text = (Path(__file__).resolve().parent.parent / "docker" / f"{base}.Dockerfile").read_text()
        assert "mkdir -p" in text and "/home/app/.cache/jina /home/app/.jina" in text
        assert "chown -R 10001:10001 /home/app/.cache /home/app/.jina" in text
