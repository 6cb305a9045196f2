"""`app.py serve` in a real browser: headless Chromium (Debian's) driven by Playwright.

One served app for the module: a small labelled folder indexed with EfficientNet-Lite0 (real
weights) and a tiny random CLIP (text), plus a tiny DINOv2 with nothing indexed. Every grid the
page shows is compared, by file name and in order, with an answer computed independently:
brute-force cosine over the stored vectors, or `run_search` through the same gateways.
Screenshots go to tests/artifacts/web/ (printed at the end of the run).
"""

import base64
import hashlib
import http.client
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from browser import chromium
from conftest import ROOT
from corpus import _bomb_png, make_exif_rotated, make_photo
from PIL import Image

from imgsearch.tiny_models import MARKER as TINY_MARKER

pytestmark = [pytest.mark.flow, pytest.mark.web]

ARTIFACTS = ROOT / "tests" / "artifacts" / "web"
K = 4  # results per page: "more" has something to add on 13 images
LITE, CLIP, EMPTY = "efficientnet-lite0", "clip", "dinov2"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def app(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "IMGSEARCH_START_METHOD": "fork"}  # a fresh app.py has run no torch
    return subprocess.run([sys.executable, str(ROOT / "app.py"), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def brute_force(store: Path, collection: str) -> dict[str, list[tuple[str, float]]]:
    """{hash: [(file name, score)...] best first, itself excluded}: cosine over the stored vectors."""
    from executors.indexer.store import EdgeStore

    db = EdgeStore(str(store), read_only=True)
    try:
        points = list(db.scroll(collection, with_vectors=True))
    finally:
        db.close()
    vectors = np.stack([np.asarray(p.vector, dtype=np.float32) for p in points])
    names = [Path(p.payload["uri"]).name for p in points]
    out = {}
    for i, p in enumerate(points):
        scores = vectors @ vectors[i]
        order = [j for j in np.argsort(-scores, kind="stable") if j != i]
        out[p.payload["hash"]] = [(names[j], float(scores[j])) for j in order]
    return out


def http_get(base: str, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    """A raw GET: the path goes out exactly as written (no client-side normalisation of `..`)."""
    host, port = base.removeprefix("http://").rstrip("/").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def post_search(base: str, fields: dict, files: dict | None = None) -> tuple[int, dict]:
    """multipart/form-data POST to /api/search."""
    boundary = "----imgsearch-test"
    body = b""
    for name, value in fields.items():
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    for name, (filename, data) in (files or {}).items():
        body += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + data
            + b"\r\n"
        )
    body += f"--{boundary}--\r\n".encode()
    req = urllib.request.Request(base + "api/search", data=body, method="POST", headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(req, timeout=180) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _wait_healthy(base: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(base + "api/health", timeout=5).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture(scope="module")
def site(tmp_path_factory, photo_dir, tiny_models):
    """Index the folder with two encoders, then `app.py serve` three (one with nothing indexed)."""
    from imgsearch.flow import collection_name, free_port

    root = tmp_path_factory.mktemp("web")
    data = root / "photos"
    shutil.copytree(photo_dir, data)
    # A 4000×3000 photo (thumbnails must not send it whole) and a sideways-stored EXIF one.
    make_photo(data / "big" / "big_4000x3000.jpg", size=(4000, 3000), seed=7)
    make_exif_rotated(data / "big" / "exif_rotated_6.jpg", 6)
    make_photo(None, size=(300, 200), seed=8).save(data / "big" / "phone.heic", "HEIF", quality=90)  # phones' format
    store = root / "store"
    # The tiny CLIP as `app.py tiny-models` ships it: marked, so the page flags its scores as meaningless.
    clip_model = str(shutil.copytree(tiny_models["clip"], root / "tiny-clip"))
    (root / "tiny-clip" / TINY_MARKER).write_text("tiny random model\n")
    for extra in ([], ["--encoder", CLIP, "--model", clip_model]):
        run = app("index", "--data", str(data), "--store", str(store), "--json", *extra)
        assert run.returncode == 0, run.stderr[-3000:]
    collections = {LITE: collection_name("photos", LITE), CLIP: collection_name("photos", clip_model)}
    expected = {enc: brute_force(store, coll) for enc, coll in collections.items()}

    # A compare report in report.json's shape, thresholds placed mid-list so some results are dimmed.
    chelsea = sha(data / "chelsea" / "chelsea_full.jpg")
    thresholds = {enc: round((expected[enc][chelsea][1][1] + expected[enc][chelsea][2][1]) / 2, 6) for enc in expected}
    report = root / "report.json"
    report.write_text(
        json.dumps(
            {
                "encoders": [
                    {
                        "encoder": enc,
                        "status": "ok",
                        "index": {"collection": collections[enc]},
                        "quality": {"threshold": {"threshold": thresholds[enc], "precision": 0.9, "recall": 0.8, "f1": 0.85}},
                    }
                    for enc in expected
                ]
            }
        )
    )

    port = free_port()
    env = {**os.environ, "IMGSEARCH_START_METHOD": "fork"}
    log = open(root / "serve.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "app.py"),
            "serve",
            "--encoders",
            LITE,
            CLIP,
            EMPTY,
            "--model",
            f"{CLIP}={clip_model}",
            "--model",
            f"{EMPTY}={tiny_models['dinov2']}",
            "--store",
            str(store),
            "--port",
            str(port),
            "--report",
            str(report),
            "--top-k",
            str(K),
            "--max-upload-mb",
            "2",
            "--thumb-cache",
            str(root / "thumbs"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    base = f"http://localhost:{port}/"
    line = proc.stdout.readline()  # "Search page: URL (encoders: NAME at HOST, ...)" once everything is up
    if proc.poll() is not None or "Search page:" not in line:
        proc.kill()
        pytest.fail(f"app.py serve did not start: {line!r}\n{(root / 'serve.log').read_text()[-4000:]}")
    hosts = dict(re.findall(r"([\w-]+) at (grpc://[\d.:]+)", line))
    _wait_healthy(base)
    images = sum(p.is_file() for p in data.rglob("*"))  # all distinct, HEIC included: each indexed once
    yield {
        "base": base,
        "proc": proc,
        "data": data,
        "store": store,
        "hosts": hosts,
        "expected": expected,
        "collections": collections,
        "thresholds": thresholds,
        "thumbs": root / "thumbs",
        "clip_model": clip_model,
        "images": images,
    }
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # flows close cleanly, the store is released
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    log.close()


def names(matches) -> list[str]:
    return [Path(m["path"]).name for m in matches]


# ---------------------------------------------------------------------------- the command line


def test_serve_user_errors_are_one_clear_line(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        cases = [
            (["--encoders", "nope"], "unknown encoder 'nope'"),
            (["--port", str(busy.getsockname()[1])], "cannot listen on 127.0.0.1"),
            (["--report", str(tmp_path / "missing.json")], "report not found"),
            (["--encoders", CLIP, "--model", "vit=/x"], "--model names encoder 'vit'"),
        ]
        for args, message in cases:
            run = app("serve", "--store", str(tmp_path / "store"), *args, timeout=120)
            assert run.returncode == 2 and message in run.stderr, (args, run.returncode, run.stderr[-2000:])
            assert "Traceback" not in run.stderr


# ---------------------------------------------------------------------------- the HTTP side


def test_config_lists_encoders_collections_and_thresholds(site):
    cfg = json.loads(urllib.request.urlopen(site["base"] + "api/config").read())
    by_name = {e["name"]: e for e in cfg["encoders"]}
    assert list(by_name) == [LITE, CLIP, EMPTY] and cfg["default_dataset"] == "photos"
    assert by_name[CLIP]["text"] and not by_name[LITE]["text"] and by_name[CLIP]["random_weights"]
    assert site["images"] == 13 and by_name[LITE]["collections"]["photos"]["count"] == site["images"]
    assert by_name[LITE]["collections"]["photos"]["threshold"]["value"] == site["thresholds"][LITE]
    assert by_name[EMPTY]["collections"] == {}


def test_thumbnails_are_resized_cached_upright_and_originals_whole(site):
    data = site["data"]
    big, rotated = data / "big" / "big_4000x3000.jpg", data / "big" / "exif_rotated_6.jpg"
    # Images are served only once a search has returned them: every other image, here.
    query = sha(data / "chelsea" / "chelsea_full.jpg")
    status, result = post_search(site["base"], {"encoders": LITE, "dataset": "photos", "k": 12, "hash": query})
    assert status == 200 and {big.name, rotated.name} <= set(names(result["columns"][0]["matches"]))

    status, headers, body = http_get(site["base"], f"/api/thumb/{sha(big)}?s=256")
    assert status == 200 and headers["content-type"] == "image/jpeg"
    assert "immutable" in headers["cache-control"] and headers["etag"]
    with Image.open(io.BytesIO(body)) as img:
        assert img.size == (256, 192)  # not the 4000×3000 original
    assert len(body) < 100_000 and (site["thumbs"] / sha(big)[:2] / f"{sha(big)}-256.jpg").is_file()
    again, _, _ = http_get(site["base"], f"/api/thumb/{sha(big)}?s=256", {"If-None-Match": headers["etag"]})
    assert again == 304

    status, _, body = http_get(site["base"], f"/api/thumb/{sha(rotated)}?s=128")
    with Image.open(rotated) as raw, Image.open(io.BytesIO(body)) as thumb:
        assert raw.width > raw.height and thumb.width < thumb.height  # EXIF orientation 6: upright is portrait

    status, headers, body = http_get(site["base"], f"/api/original/{sha(big)}")
    assert status == 200 and body == big.read_bytes() and headers["content-type"] == "image/jpeg"
    assert headers["x-content-type-options"] == "nosniff"

    # HEIC, which most browsers cannot show: its thumbnail, and a JPEG rendition as the original.
    heic = data / "big" / "phone.heic"
    for url, size in ((f"/api/thumb/{sha(heic)}?s=128", (128, 85)), (f"/api/original/{sha(heic)}", (300, 200))):
        status, headers, body = http_get(site["base"], url)
        assert status == 200 and headers["content-type"] == "image/jpeg", (url, status, body[:200])
        with Image.open(io.BytesIO(body)) as img:
            assert img.format == "JPEG" and img.size == size, (url, img.size)


@pytest.mark.parametrize(
    "path",
    [
        "/api/original/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/api/original/../../../../etc/passwd",
        "/api/thumb/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/static/..%2F..%2F..%2Fapp.py",
        "/static/../../../app.py",
        "/api/original/" + hashlib.sha256(b"root:x:0:0:root:/root:/bin/bash\n").hexdigest(),
        "/api/original/" + "0" * 64,
    ],
)
def test_paths_outside_the_index_are_refused(site, path):
    status, _, body = http_get(site["base"], path)
    assert status in (400, 404), (status, body[:200])
    assert b"root:" not in body and b"import" not in body


def test_api_errors_are_clear(site):
    base = site["base"]
    status, body = post_search(base, {"encoders": "nope", "dataset": "photos", "text": "cat"})
    assert status == 400 and body["error"] == f"unknown encoder 'nope': this server serves {LITE}, {CLIP}, {EMPTY}"
    status, body = post_search(base, {"encoders": LITE, "dataset": "photos"}, {"image": ("big.jpg", os.urandom(2_100_000))})
    assert status == 413 and "too large" in body["error"] and "2.0 MB" in body["error"]
    # Far over the limit, more than the sockets buffer: the client is still sending when the
    # answer comes, and reads the 413 (the server drains the body), not a broken pipe.
    status, body = post_search(base, {"encoders": LITE, "dataset": "photos"}, {"image": ("huge.jpg", os.urandom(7_500_000))})
    assert status == 413 and "too large" in body["error"]
    status, body = post_search(base, {"encoders": LITE, "dataset": "photos"}, {"image": ("bomb.png", _bomb_png())})
    assert status == 200 and "decompression bomb refused" in body["columns"][0]["error"]
    # A new image is searched with, never stored.
    buf = io.BytesIO()
    make_photo(None, size=(90, 70), seed=999).save(buf, "PNG")
    status, body = post_search(base, {"encoders": f"{LITE},{CLIP}", "dataset": "photos", "k": 3}, {"image": ("new.png", buf.getvalue())})
    assert status == 200 and [len(c["matches"]) for c in body["columns"]] == [3, 3]
    cfg = json.loads(urllib.request.urlopen(base + "api/config").read())
    counts = [e["collections"].get("photos", {}).get("count") for e in cfg["encoders"]]
    assert counts == [site["images"], site["images"], None]  # the uploads added none
    status, body = post_search(base, {"encoders": f"{LITE},{EMPTY}", "dataset": "photos", "text": "cat"})
    lite, empty = body["columns"]
    assert lite["state"] == "unsupported" and "cannot embed text" in lite["error"]
    assert empty["state"] == "unsupported"  # dinov2 has no text side either
    status, body = post_search(base, {"encoders": EMPTY, "dataset": "photos", "hash": sha(site["data"] / "big" / "big_4000x3000.jpg")})
    assert body["columns"][0]["state"] == "empty" and "run `python app.py index --encoder dinov2` first" in body["columns"][0]["error"]


# ---------------------------------------------------------------------------- the page in Chromium


@pytest.fixture(scope="module")
def browser_page(site):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium("the page's browser tests") as browser:
        pg = browser.new_page(viewport={"width": 1400, "height": 900})
        pg.set_default_timeout(120_000)  # a search on this slow, shared machine can take a while
        pg.goto(site["base"])
        pg.wait_for_selector("#encoder option", state="attached")
        yield pg
    print(f"\nscreenshots: {ARTIFACTS}")


@pytest.fixture()
def page(site, browser_page):
    """The page freshly loaded for each test: no test depends on what another left on screen."""
    browser_page.set_viewport_size({"width": 1400, "height": 900})
    browser_page.goto(site["base"])
    browser_page.wait_for_selector("#encoder option", state="attached")
    return browser_page


def show_more_like_chelsea(site, page) -> None:
    """Upload chelsea_crop.jpg to the EfficientNet-Lite0 column, then "more like this" on chelsea_full.jpg."""
    page.select_option("#encoder", LITE)
    act(page, lambda: page.set_input_files("#file", str(site["data"] / "chelsea" / "chelsea_crop.jpg")))
    card = page.locator(f'.column[data-encoder="{LITE}"] li.card[data-name="chelsea_full.jpg"] .thumb')
    act(page, lambda: card.click())


def act(page, action) -> None:
    """Do something that starts a search, then wait until the page has shown its answer."""
    before = int(page.evaluate("document.body.dataset.started || '0'"))
    action()
    page.wait_for_function(f"Number(document.body.dataset.started || 0) > {before} && document.body.dataset.done === document.body.dataset.started")


def shown(page, encoder: str) -> list[str]:
    return page.eval_on_selector_all(f'.column[data-encoder="{encoder}"] li.card', "els => els.map(e => e.dataset.name)")


def snap(page, name: str) -> None:
    page.wait_for_function("[...document.images].every(img => img.hidden || !img.getAttribute('src') || img.complete)")
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_text_query(site, page):
    from imgsearch.flow import Gateway
    from imgsearch.searching import run_search

    page.select_option("#encoder", CLIP)
    page.fill("#text", "a cat on a sofa")
    act(page, lambda: page.press("#text", "Enter"))
    gw = Gateway(site["hosts"][CLIP])
    want = run_search(gw, site["collections"][CLIP], gw.encoder_info(), text="a cat on a sofa", top_k=K)
    assert shown(page, CLIP) == names(want.matches)
    header = page.inner_text(f'.column[data-encoder="{CLIP}"] header')
    assert "tiny random model" in header and "not applied to text" in header  # the report's cut is image→image
    assert page.locator(".card.below").count() == 0
    snap(page, "1-text")


def test_drop_and_upload_an_image(site, page):
    from imgsearch.flow import Gateway
    from imgsearch.searching import run_search

    gw = Gateway(site["hosts"][LITE])
    info = gw.encoder_info()
    page.select_option("#encoder", CLIP)
    page.fill("#text", "a cat on a sofa")
    act(page, lambda: page.press("#text", "Enter"))
    page.select_option("#encoder", LITE)  # re-runs the text query: this encoder says it cannot
    page.wait_for_function("document.body.dataset.done === document.body.dataset.started")
    assert "cannot embed text" in page.inner_text(f'.column[data-encoder="{LITE}"] .message')

    # Dropped anywhere on the page.
    dropped = site["data"] / "rocket" / "rocket_crop.jpg"
    act(page, lambda: page.evaluate(DROP, [base64.b64encode(dropped.read_bytes()).decode(), dropped.name]))
    assert shown(page, LITE) == names(run_search(gw, site["collections"][LITE], info, image=dropped, top_k=K).matches)
    assert page.inner_text("#query-panel .q-name") == "rocket_crop.jpg" and page.locator("#drop").is_hidden()

    # Chosen with the upload button.
    query = site["data"] / "chelsea" / "chelsea_crop.jpg"
    act(page, lambda: page.set_input_files("#file", str(query)))
    want = names(run_search(gw, site["collections"][LITE], info, image=query, top_k=K).matches)
    assert shown(page, LITE) == want
    assert want[:2] == ["chelsea_crop.jpg", "chelsea_full.jpg"]  # itself, then its other crop: real weights
    assert page.inner_text("#query-panel .q-name") == "chelsea_crop.jpg"
    snap(page, "2-upload")

    # A phone's HEIC photo: searched like any image; Chromium cannot show it, so no broken preview.
    assert 'accept="image/*,.heic' in page.content()
    heic = site["data"] / "big" / "phone.heic"
    act(page, lambda: page.set_input_files("#file", str(heic)))
    assert shown(page, LITE) == names(run_search(gw, site["collections"][LITE], info, image=heic, top_k=K).matches)
    assert shown(page, LITE)[0] == "phone.heic"
    page.wait_for_function("document.querySelector('#query-panel .q-img').hidden")


# A file dragged in from the desktop, as the browser delivers it.
DROP = """([b64, name]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const dt = new DataTransfer();
  dt.items.add(new File([bytes], name, { type: "image/jpeg" }));
  for (const type of ["dragenter", "dragover", "drop"]) {
    document.body.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
  }
}"""


def test_more_like_this_dims_below_the_threshold_and_pages(site, page):
    show_more_like_chelsea(site, page)
    want = site["expected"][LITE][sha(site["data"] / "chelsea" / "chelsea_full.jpg")]
    assert shown(page, LITE) == [n for n, _ in want[:K]]
    thr = site["thresholds"][LITE]
    dimmed = page.eval_on_selector_all(f'.column[data-encoder="{LITE}"] li.card', "els => els.map(e => e.classList.contains('below'))")
    assert dimmed == [s < thr for _, s in want[:K]] and any(dimmed) and not all(dimmed)
    assert f"suggested threshold {thr:.3f}" in page.inner_text(f'.column[data-encoder="{LITE}"] .threshold')
    assert page.text_content("#query-panel .q-label") == "More like this"
    act(page, lambda: page.click(f'.column[data-encoder="{LITE}"] button.more'))
    assert shown(page, LITE) == [n for n, _ in want[: 2 * K]]
    snap(page, "3-more-like-this")


def test_compare_mode(site, page):
    chelsea = sha(site["data"] / "chelsea" / "chelsea_full.jpg")
    show_more_like_chelsea(site, page)
    page.set_viewport_size({"width": 1500, "height": 900})
    act(page, lambda: page.check("input[name=mode][value=compare]"))  # the same query, every encoder
    for enc in (LITE, CLIP):
        assert shown(page, enc) == [n for n, _ in site["expected"][enc][chelsea][:K]], enc
    assert "nothing indexed with dinov2" in page.inner_text(f'.column[data-encoder="{EMPTY}"] .message')
    headers = page.eval_on_selector_all(".column h2", "els => els.map(e => e.textContent)")
    assert headers == [LITE, CLIP, EMPTY]
    snap(page, "4-compare")
    act(page, lambda: page.uncheck(f'#compare-set input[value="{EMPTY}"]'))
    snap(page, "5-compare-two")


def test_bad_uploads_get_clear_messages(site, page):
    page.check("input[name=mode][value=single]")
    page.wait_for_function("document.body.dataset.done === document.body.dataset.started")
    act(page, lambda: page.set_input_files("#file", files=[{"name": "bomb.png", "mimeType": "image/png", "buffer": _bomb_png()}]))
    assert "decompression bomb refused" in page.inner_text(f'.column[data-encoder="{LITE}"] .message')
    assert page.locator("#query-panel .q-img").is_hidden()  # never previewed: the browser does not decode it either
    snap(page, "6-bomb")
    act(page, lambda: page.set_input_files("#file", files=[{"name": "huge.jpg", "mimeType": "image/jpeg", "buffer": os.urandom(2_500_000)}]))
    assert "too large" in page.inner_text("#banner") and "2.0 MB" in page.inner_text("#banner")


def test_unknown_encoder_in_the_address(site, page):
    page.goto(site["base"] + "?encoder=nope")
    page.wait_for_selector("#banner:not([hidden])")
    assert f"Unknown encoder 'nope': this server serves {LITE}, {CLIP}, {EMPTY}" in page.inner_text("#banner")


def test_server_down_is_said_plainly(site, browser_page):
    """A second page server over the same gateways (`serve --host`), stopped under the page."""
    from imgsearch.flow import free_port

    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "app.py"),
            "serve",
            "--host",
            *site["hosts"].values(),
            "--port",
            str(port),
            "--store",
            str(site["store"]),
            "--thumb-cache",
            str(site["thumbs"]),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert "Search page:" in proc.stdout.readline()
        _wait_healthy(f"http://localhost:{port}/")
        page = browser_page
        page.goto(f"http://localhost:{port}/")
        page.wait_for_selector("#encoder option", state="attached")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    page.select_option("#encoder", CLIP)
    page.fill("#text", "anything")
    act(page, lambda: page.press("#text", "Enter"))
    assert "not answering" in page.inner_text("#banner")
    snap(page, "7-server-down")
