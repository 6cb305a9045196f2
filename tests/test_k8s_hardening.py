"""The committed k8s/ manifests, as an attacker inside a pod would meet them: read-only roots,
no capabilities, no service-account token, egress limited for every workload (never the cloud's
metadata address), the gateways' request cap, images pinned by digest on demand, and the
Secret keys the docs' own commands create being the ones the pods read."""

import ipaddress
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from imgsearch import deploy
from imgsearch.deploy import digests

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "k8s"
METADATA = ipaddress.ip_address("169.254.169.254")


def _docs(files: dict[str, str] | None = None) -> list[dict]:
    texts = files.values() if files else (f.read_text() for f in sorted(K8S.glob("*.yml")))
    return [d for t in texts for d in yaml.safe_load_all(t) if d]


def _workloads(docs: list[dict]) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] in ("Deployment", "StatefulSet")}


def test_every_pod_is_read_only_non_root_without_capabilities_or_api_token():
    workloads = _workloads(_docs())
    assert "qdrant" in workloads and "loader" in workloads
    for name, w in workloads.items():
        pod = w["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        (c,) = pod["containers"]
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, name
        assert sc["capabilities"] == {"drop": ["ALL"]} and sc.get("privileged") is False, name
        assert sc["runAsNonRoot"] is True or pod["securityContext"]["runAsNonRoot"] is True, name
        assert (sc.get("runAsUser") or pod["securityContext"].get("runAsUser")) not in (None, 0), name
        # What must be written goes to a volume: /tmp at least, an emptyDir with a size limit.
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        assert volumes[mounts["/tmp"]]["emptyDir"]["sizeLimit"], name
    qdrant = workloads["qdrant"]["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in qdrant["containers"][0]["env"]}
    mounts = {m["mountPath"] for m in qdrant["containers"][0]["volumeMounts"]}
    assert env["QDRANT_INIT_FILE_PATH"].rsplit("/", 1)[0] in mounts  # else it panics on the read-only root
    assert env["QDRANT__STORAGE__SNAPSHOTS_PATH"] in mounts
    assert qdrant["containers"][0]["image"].endswith("-unprivileged")


def _egress(policies: list[dict], labels: dict) -> list[list[dict]]:
    """The egress rules of every policy that selects a pod with these labels."""
    return [
        p["spec"].get("egress", [])
        for p in policies
        if "Egress" in p["spec"]["policyTypes"] and all(labels.get(k) == v for k, v in p["spec"]["podSelector"].get("matchLabels", {}).items())
    ]


def test_every_workload_has_its_own_egress_and_none_reaches_the_metadata_address():
    docs = _docs()
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    assert any(p["metadata"]["name"] == "default-deny-egress" and p["spec"]["podSelector"] == {} for p in policies)
    for name, w in _workloads(docs).items():
        labels = w["spec"]["template"]["metadata"]["labels"]
        rules = [r for rs in _egress(policies, labels) for r in rs]
        assert len(_egress(policies, labels)) >= 2, name  # the default deny and its own
        for rule in rules:
            for to in rule.get("to", []):
                block = to.get("ipBlock")
                if block and ipaddress.ip_network(block["cidr"]).version == 4:
                    net = ipaddress.ip_network(block["cidr"])
                    excepted = any(METADATA in ipaddress.ip_network(e) for e in block.get("except", []))
                    assert METADATA not in net or excepted, (name, block)
        if name == "normalizer":
            assert rules == [], rules  # it reads what it is sent, and calls nobody
        if name == "indexer":
            assert "qdrant" in {t.get("podSelector", {}).get("matchLabels", {}).get("app") for r in rules for t in r["to"]}


def test_gateways_cap_requests_from_the_configmap():
    config = next(d for d in _docs() if d["kind"] == "ConfigMap")["data"]
    assert float(config["IMGSEARCH_MAX_REQUEST_MB"]) == 64
    for name, w in _workloads(_docs()).items():
        if name.startswith("gateway-"):
            c = w["spec"]["template"]["spec"]["containers"][0]
            assert {"configMapRef": {"name": deploy.CONFIGMAP}} in c["envFrom"]
            assert "executors/gateway/config.yml" in c["args"]  # the class that applies the cap


def test_image_digests_pin_every_image_or_fail(tmp_path):
    files = deploy.render(encoders=("clip",))
    refs = digests.images(_docs({k: v for k, v in files.items() if k.startswith("k8s/")}))
    assert "qdrant/qdrant:v1.19.0-unprivileged" in refs and len(refs) >= 5
    pins = {ref: "sha256:" + f"{i:064x}" for i, ref in enumerate(sorted(refs))}
    path = tmp_path / "digests.json"
    path.write_text(json.dumps(pins))
    pinned = deploy.render(encoders=("clip",), image_digests=path)
    images = {c for d in _docs({k: v for k, v in pinned.items() if k.startswith("k8s/")}) for c in digests.images([d])}
    assert images == {f"{ref}@{digest}" for ref, digest in pins.items()}
    del pins["qdrant/qdrant:v1.19.0-unprivileged"]
    path.write_text(json.dumps(pins))
    with pytest.raises(digests.DigestError, match="no digest for qdrant/qdrant"):
        deploy.render(encoders=("clip",), image_digests=path)
    path.write_text(json.dumps({"x": "latest"}))
    with pytest.raises(digests.DigestError, match="not a sha256 digest"):
        deploy.render(encoders=("clip",), image_digests=path)


def _doc_commands() -> str:
    """Every shell block of the docs and README, line continuations joined."""
    text = "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])
    # Every fenced block, its language read so that a yaml block's closing fence opens nothing.
    blocks = [b for lang, b in re.findall(r"```(\w*)\n(.*?)```", text, re.S) if lang in ("", "bash", "sh")]
    return "\n".join(b.replace("\\\n", " ") for b in blocks)


def test_the_docs_create_every_secret_key_the_pods_read():
    created: dict[str, set[str]] = {}
    read_back: set[tuple[str, str]] = set()
    for line in _doc_commands().splitlines():
        if "create secret generic" in line:
            words = shlex.split(line.split("#")[0], posix=True)
            name = words[words.index("generic") + 1]
            keys = {w.split("=", 1)[1].split("=", 1)[0] for w in words if w.startswith("--from-literal=")}
            created.setdefault(name, set()).update(keys)
        for name, key in re.findall(r"get secret (\S+) .*?jsonpath='\{\.data\.([\w.-]+)\}'", line):
            read_back.add((name, key))
    assert {"imgsearch-token", "qdrant-api-key"} <= set(created), created
    wanted = set()
    for w in _workloads(_docs()).values():
        for e in w["spec"]["template"]["spec"]["containers"][0].get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref and not ref.get("optional"):
                wanted.add((ref["name"], ref["key"]))
    assert ("imgsearch-token", "token") in wanted
    for name, key in wanted:
        assert key in created.get(name, set()), f"the pods read {name}/{key}, the docs create {created.get(name)}"
    for name, key in read_back:
        assert key in created.get(name, set()), (name, key)
