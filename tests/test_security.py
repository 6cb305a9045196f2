"""Local flows listen on loopback only; the executors' token guards every write; TLS on the gateway;
the gateway's request size cap. One real flow over gRPC (EfficientNet-Lite0, real weights)."""

import datetime
import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import pytest

from executors.auth import PROTECTED_ENDPOINTS, TokenError, check_token
from executors.docs import ImageDoc
from tests.netlisten import is_loopback, listening, process_tree

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "grpc_search_client.py"
TOKEN = "s3cret-token-for-tests"


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key (PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "gateway.crt", folder / "gateway.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_file, key_file


def test_token_rules():
    env = {"IMGSEARCH_TOKEN": TOKEN}
    for endpoint in PROTECTED_ENDPOINTS:
        with pytest.raises(TokenError, match="needs the server's token"):
            check_token(endpoint, {}, env)
        with pytest.raises(TokenError, match="wrong token"):
            check_token(endpoint, {"token": "nope"}, env)
        check_token(endpoint, {"token": TOKEN}, env)
        check_token(endpoint, {}, {})  # no token configured: open (a loopback-only local flow)
    check_token("/search", {}, env)  # search is open by default...
    with pytest.raises(TokenError):  # ...unless the server requires the token for it too
        check_token("/search", {}, {**env, "IMGSEARCH_TOKEN_FOR_SEARCH": "1"})
    check_token("/info", {}, {**env, "IMGSEARCH_TOKEN_FOR_SEARCH": "1"})  # the client's first question
    # The switch reads like every other (on/yes/true/1), and one it cannot read closes search.
    for value in ("on", " True ", "yes", "enabled?"):
        with pytest.raises(TokenError):
            check_token("/search", {}, {**env, "IMGSEARCH_TOKEN_FOR_SEARCH": value})
    for value in ("", "0", "off", "no"):
        check_token("/search", {}, {**env, "IMGSEARCH_TOKEN_FOR_SEARCH": value})


def test_loopback_parsing():
    assert is_loopback("127.0.0.1:80") and is_loopback("::1:80")
    assert not is_loopback("0.0.0.0:80") and not is_loopback(":::80") and not is_loopback("192.0.2.2:80")


@pytest.mark.flow
@pytest.mark.slow
def test_loopback_token_tls_and_size_cap(tmp_path, photo_dir, monkeypatch):
    from imgsearch.flow import FlowError, Gateway, local_flow
    from imgsearch.indexing import encoder_info, run_index
    from imgsearch.searching import run_search

    cert, key = self_signed(tmp_path)
    # The executors inherit this environment: the server's token, the gateway's TLS and size cap.
    monkeypatch.setenv("IMGSEARCH_TOKEN", TOKEN)
    monkeypatch.setenv("IMGSEARCH_TLS_CERT", str(cert))
    monkeypatch.setenv("IMGSEARCH_TLS_KEY", str(key))
    monkeypatch.setenv("IMGSEARCH_MAX_REQUEST_MB", "1")
    monkeypatch.setenv("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", str(cert))  # the jina client trusts it
    stubs = tmp_path / "stubs"
    subprocess.run([sys.executable, str(EXAMPLE.parent / "compile_stubs.py"), str(stubs)], check=True)
    query = photo_dir / "rocket" / "rocket_crop.jpg"

    with local_flow("efficientnet-lite0", store=str(tmp_path / "store")) as host:
        assert host.startswith("grpcs://127.0.0.1:")

        # 1. Every listening socket of every process of the flow is on loopback.
        sockets = {pid: addrs for pid, addrs in listening(process_tree(os.getpid())).items() if addrs}
        assert len(sockets) >= 5, sockets  # gateway + loader, normalizer, encoder, indexer
        assert all(is_loopback(a) for addrs in sockets.values() for a in addrs), sockets
        assert any(a.endswith(":" + host.rsplit(":", 1)[1]) for addrs in sockets.values() for a in addrs)

        # 2. The token: the right one indexes (over TLS)...
        good = Gateway(host, token=TOKEN)
        info = encoder_info(good)
        summary = run_index(good, photo_dir, info, batch_size=8, progress=False)
        count = summary.count
        assert summary.indexed == count > 0
        name = summary.collection
        stored = good.post("/search", [ImageDoc(blob=query.read_bytes())], {"collection": name, "top_k": 1, "with_paths": True})[0].matches[0]
        params = {"collection": name, "data": str(photo_dir), "encoder_name": info.encoder, "dataset": "x"}
        writes = {
            "/index": lambda gw: gw.post("/index", [ImageDoc(uri=str(query), hash="f" * 64)], params),
            "/delete": lambda gw: gw.call("/delete", {"collection": name, "drop": True}),
            "/delete by hash": lambda gw: gw.post("/delete", [ImageDoc(hash=stored["hash"])], {"collection": name}),
            "/optimize": lambda gw: gw.call("/optimize", {"collection": name}),
            "/add_paths": lambda gw: gw.post("/add_paths", [ImageDoc(hash=stored["hash"], paths=["/elsewhere.jpg"])], {"collection": name}),
            "/remove_paths": lambda gw: gw.post("/remove_paths", [ImageDoc(hash=stored["hash"], paths=stored["paths"])], {"collection": name}),
            "/stored_paths": lambda gw: gw.post("/stored_paths", [], {"collection": name, "limit": 10}),
            "/scan": lambda gw: gw.post("/scan", [ImageDoc()], {**params, "offset": 0, "limit": 10}),
            "/scan_total": lambda gw: gw.call("/scan_total", params),
        }
        # ...a missing or wrong one is refused with a clear error on every write endpoint, and changes nothing.
        for token, reason in (("", "needs the server's token"), ("wrong", "wrong token")):
            gw = Gateway(host, token=token)
            for endpoint, send in writes.items():
                with pytest.raises(FlowError, match=reason):
                    send(gw)
                assert int(good.call("/count", {"collection": name})["count"]) == count, endpoint
        after = good.post("/search", [ImageDoc(hash=stored["hash"])], {"collection": name, "top_k": 1, "with_paths": True})[0].matches[0]
        assert after["paths"] == stored["paths"]  # /add_paths and /remove_paths changed nothing

        # Search stays open without a token: the jina client and the plain gRPC client, both over TLS.
        anonymous = Gateway(host, token="")
        hit = run_search(anonymous, name, info, image=query, top_k=1).matches[0]
        assert hit["hash"] == stored["hash"] and hit["path"] is None  # the stored path only with the token
        assert run_search(good, name, info, image=query, top_k=1).matches[0]["path"] == str(query)
        run = subprocess.run(
            [
                sys.executable,
                str(EXAMPLE),
                "--host",
                host,
                "--ca-cert",
                str(cert),
                "--image",
                str(query),
                "--collection",
                name,
                "--top-k",
                "1",
                "--stubs",
                str(stubs),
                "--json",
            ],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "IMGSEARCH_TOKEN": ""},
        )
        assert run.returncode == 0, run.stderr[-3000:]
        assert stored["hash"] in run.stdout and str(query) not in run.stdout
        # Plain text to a TLS port fails: the gateway speaks only TLS.
        run = subprocess.run(
            [
                sys.executable,
                str(EXAMPLE),
                "--host",
                host.replace("grpcs://", "grpc://"),
                "--image",
                str(query),
                "--collection",
                name,
                "--stubs",
                str(stubs),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert run.returncode == 1

        # 3. A request over the gateway's cap (1 MiB here) gets a clear error.
        big = tmp_path / "big.jpg"
        big.write_bytes(query.read_bytes() + os.urandom(2 * 2**20))
        with pytest.raises(FlowError, match="larger than the gateway's limit"):
            good.post("/search", [ImageDoc(blob=big.read_bytes())], {"collection": name, "top_k": 1})
        assert int(good.call("/count", {"collection": name})["count"]) == count
