"""Finding 6, the search page: `app.py serve --host` in front of a real gateway with a token,
probed over real sockets as a hostile browser page or client would. Each probe failed on main."""

import http.client
import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

from tests.security.attack_helpers import leaked, secured_flow

pytestmark = [pytest.mark.flow, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
UPLOAD_MB = 1


@pytest.fixture(scope="module")
def page(tmp_path_factory, photo_dir):
    from imgsearch.ports import free_port

    root = tmp_path_factory.mktemp("page")
    with secured_flow(root, photo_dir) as target:
        port = free_port()
        log = open(root / "serve.log", "w")
        proc = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "app.py"),
                "serve",
                "--host",
                target.host,
                "--port",
                str(port),
                "--max-upload-mb",
                str(UPLOAD_MB),
                "--thumb-cache",
                str(root / "thumbs"),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "IMGSEARCH_START_METHOD": "fork"},
        )
        line = proc.stdout.readline()
        if "Search page:" not in line:
            proc.kill()
            pytest.fail(f"app.py serve did not start: {line!r}\n{(root / 'serve.log').read_text()[-4000:]}")
        deadline = time.monotonic() + 60
        while True:  # bound when it printed; listening once uvicorn runs
            try:
                request({"port": port}, "GET", "/api/health", timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        try:
            yield {"port": port, "target": target, "root": root}
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()


def request(page, method: str, path: str, body=None, headers=None, timeout: float = 30.0):
    conn = http.client.HTTPConnection("127.0.0.1", page["port"], timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Host": f"localhost:{page['port']}", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def multipart(fields: dict, filename: str | None = None, data: bytes | None = None) -> tuple[bytes, str]:
    boundary = "----attack" + os.urandom(6).hex()
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()]
    if data is not None:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def search_upload(page, data: bytes, k: int = 20) -> dict:
    body, ctype = multipart({"encoders": "efficientnet-lite0", "dataset": "data", "k": str(k)}, "q.jpg", data)
    status, _, raw = request(page, "POST", "/api/search", body, {"Content-Type": ctype})
    assert status == 200, raw[:500]
    return json.loads(raw)


def test_only_local_names_and_the_bind_address_are_answered(page):
    """A DNS-rebinding page reaches 127.0.0.1 under its own name: its Host header gives it away."""
    for host in ("evil.example", f"evil.example:{page['port']}", "127.0.0.1.nip.io", ""):
        status, _, _ = request(page, "GET", "/api/config", headers={"Host": host})
        assert status == 400, host
    for host in (f"localhost:{page['port']}", f"127.0.0.1:{page['port']}", "localhost"):
        status, _, _ = request(page, "GET", "/api/config", headers={"Host": host})
        assert status == 200, host


def test_a_chunked_upload_is_counted_as_it_arrives(page):
    """A chunked upload (no Content-Length) was spooled whole, 200 MiB, before the 413: the
    answer now comes while the client is still sending, after a few MiB."""
    import select
    import socket

    boundary = "----attack-chunked"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="encoders"\r\n\r\nefficientnet-lite0\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="big.jpg"\r\n\r\n'
    ).encode()
    chunk = b"\0" * (256 << 10)
    sent, answer = 0, b""
    with socket.create_connection(("127.0.0.1", page["port"]), timeout=30) as sock:
        sock.sendall(
            (
                f"POST /api/search HTTP/1.1\r\nHost: localhost:{page['port']}\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                "Transfer-Encoding: chunked\r\n\r\n"
            ).encode()
            + b"%x\r\n%s\r\n" % (len(head), head)
        )
        try:
            while sent < 200 << 20:
                if select.select([sock], [], [], 0)[0]:
                    break  # the page answered
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
            answer = sock.recv(4096)
        except (BrokenPipeError, ConnectionResetError):
            answer = answer or b""
    assert sent < 16 << 20, f"{sent >> 20} MiB sent before the answer"  # limit 1 MB, read on to 4 MB
    assert not answer or answer.startswith(b"HTTP/1.1 413"), answer[:200]


def _known(page, name: str) -> dict:
    """A match shown by the page (so it may serve it), by file name."""
    target = page["target"]
    query = next(target.data.glob(f"*/{name}")).read_bytes()
    for column in search_upload(page, query)["columns"]:
        for m in column["matches"]:
            if m["name"] == name:
                return m
    raise AssertionError(f"{name} not among the matches")


def test_original_of_a_non_latin1_name_is_served_with_an_rfc6266_filename(page):
    match = _known(page, "写真.jpg")
    status, headers, body = request(page, "GET", f"/api/original/{match['hash']}")
    assert status == 200 and len(body) > 1000
    disposition = headers["content-disposition"]
    assert re.fullmatch(r'inline; filename="[ -~]+"; filename\*=UTF-8\'\'\S+', disposition), disposition
    assert urllib.parse.unquote(disposition.split("''", 1)[1]) == "写真.jpg"


def test_a_fifo_in_an_indexed_files_place_neither_hangs_nor_fills_memory(page):
    """A thumbnail read the whole file before checking its hash: a FIFO hung a thread."""
    target = page["target"]
    victim = sorted(p for p in target.data.glob("*/*_crop.jpg"))[0]
    match = _known(page, victim.name)
    victim.unlink()
    os.mkfifo(victim)
    started = time.monotonic()
    status, _, body = request(page, "GET", f"/api/thumb/{match['hash']}?s=128", timeout=20)
    assert status == 404 and b"not a regular file" in body, body
    assert time.monotonic() - started < 10
    status, _, _ = request(page, "GET", f"/api/original/{match['hash']}", timeout=20)
    assert status in (404, 200) and status != 500


def test_dev_zero_in_an_indexed_files_place_is_refused_before_reading(tmp_path):
    """/dev/zero behind an indexed path filled memory; read in a child held to 1 GiB of memory."""
    link = tmp_path / "photo.jpg"
    link.symlink_to("/dev/zero")
    code = (
        "import resource,sys; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30));"
        "from imgsearch.web.thumbs import ThumbError, read_verified\n"
        "try:\n  read_verified(sys.argv[1], '0' * 64)\nexcept ThumbError as e:\n  print('refused:', e)\n"
        "print('maxrss_kib:', [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')][0])"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(link)], cwd=ROOT, capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    assert run.returncode == 0 and "refused:" in run.stdout and "not a regular file" in run.stdout, run.stderr[-2000:]
    # The child's own peak resident memory, VmHWM: its ru_maxrss, like RUSAGE_CHILDREN here, would
    # carry over the peak of the process that forked it (Linux keeps it across exec).
    assert int(run.stdout.split("maxrss_kib:")[1]) < 1 << 20  # KiB: under 1 GiB


def test_page_answers_carry_no_file_outside_the_index(page):
    target = page["target"]
    body, ctype = multipart({"encoders": "efficientnet-lite0", "dataset": "data", "hash": "a" * 64})
    for path in (
        f"/api/original/{'0' * 64}",
        f"/api/thumb/{'0' * 64}",
        "/api/original/..%2f..%2fetc%2fpasswd",
        "/api/thumb/" + urllib.parse.quote(str(target.secret), safe=""),
    ):
        status, _, raw = request(page, "GET", path)
        assert status in (400, 404) and not leaked(target.secret_bytes, raw), (path, status)
    status, _, raw = request(page, "POST", "/api/search", body, {"Content-Type": ctype})
    assert status in (200, 400) and not leaked(target.secret_bytes, raw)


def test_fuzz_the_pages_api(page):
    """Random forms, uploads and image ids: never a 5xx, never a file outside the index."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    target = page["target"]
    field = st.one_of(st.none(), st.text(max_size=40), st.sampled_from(["efficientnet-lite0", "data", "0", "-1", "9" * 30]))
    names = st.sampled_from(["encoders", "dataset", "k", "text", "hash"])
    upload = st.one_of(st.none(), st.tuples(st.text(max_size=30), st.binary(max_size=4096)))
    path = st.one_of(
        st.from_regex(r"[0-9a-f]{64}", fullmatch=True), st.text(max_size=80), st.sampled_from(["..%2f..%2fetc%2fpasswd", "%00", str(target.secret)])
    )

    @settings(
        max_examples=int(os.environ.get("IMGSEARCH_FUZZ_EXAMPLES", "25")),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        fields=st.dictionaries(names, field, max_size=5),
        file=upload,
        route=st.sampled_from(["thumb", "original"]),
        ident=path,
        size=st.integers(-5, 10**6),
    )
    def one(fields, file, route, ident, size):
        clean = {k: v.replace('"', "").replace("\r", "").replace("\n", "") for k, v in fields.items() if v is not None}
        name, data = file if file else (None, None)
        body, ctype = multipart(clean, (name or "x").replace('"', "").replace("\r", "").replace("\n", ""), data)
        status, _, raw = request(page, "POST", "/api/search", body, {"Content-Type": ctype})
        assert status < 500 and not leaked(target.secret_bytes, raw), (status, raw[:300])
        quoted = urllib.parse.quote(ident, safe="%")
        status, _, raw = request(page, "GET", f"/api/{route}/{quoted}?s={size}")
        assert status < 500 and not leaked(target.secret_bytes, raw), (status, raw[:300])

    one()
    status, _, _ = request(page, "GET", "/api/health")
    assert status == 200
