"""The Vertex AI encoder against a fake predict server on loopback (no network, no Google)."""

import base64
import hashlib
import io
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from executors.docs import ImageDoc
from executors.encoders.vertex import (
    MAX_IMAGE_B64_BYTES,
    VertexClient,
    VertexConfigError,
    VertexEncoder,
    VertexRequestError,
    jpeg_under_limit,
    resolve_settings,
)

PATH = re.compile(r"^/v1/projects/([^/]+)/locations/([^/]+)/publishers/google/models/multimodalembedding@001:predict$")
TOKEN = "test-token"


def fake_embedding(instance: dict, dim: int) -> tuple[str, list[float]]:
    """Images: mean colour spread over the vector (similar images, similar vectors); texts: a hash."""
    if "image" in instance:
        raw = base64.b64decode(instance["image"]["bytesBase64Encoded"])
        pixels = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"), dtype=np.float64)
        mean = pixels.reshape(-1, 3).mean(0) / 255 + 0.05
        vec = np.resize(np.concatenate([mean, mean[::-1]]), dim) * np.linspace(1, 2, dim)
        return "imageEmbedding", (vec * 3.0).tolist()  # deliberately not unit length
    seed = int(hashlib.sha256(instance["text"].encode()).hexdigest()[:8], 16)
    return "textEmbedding", np.random.default_rng(seed).standard_normal(dim).tolist()


class FakeVertex:
    """POST …/multimodalembedding@001:predict as documented; ``plan`` queues error statuses first."""

    def __init__(self):
        self.plan: list[int | str] = []  # statuses, or "html": a 200 whose body is not JSON
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, payload: dict, headers: dict | None = None):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                    planned = fake.plan.pop(0) if fake.plan else None
                m = PATH.match(self.path)
                if not m:
                    return self._send(404, {"error": {"code": 404, "message": "no such model", "status": "NOT_FOUND"}})
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._send(401, {"error": {"code": 401, "message": "bad token", "status": "UNAUTHENTICATED"}})
                if planned == "html":  # a proxy's page in front of the API
                    data = b"<html><body>Service Unavailable</body></html>"
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    return self.wfile.write(data)
                if planned == 429:
                    return self._send(
                        429,
                        {
                            "error": {
                                "code": 429,
                                "message": "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model",
                                "status": "RESOURCE_EXHAUSTED",
                            }
                        },
                        {"Retry-After": "0"},
                    )
                if planned == 503:
                    return self._send(503, {"error": {"code": 503, "message": "The service is currently unavailable.", "status": "UNAVAILABLE"}})
                instances = body.get("instances") or []
                dim = int(body.get("parameters", {}).get("dimension", 1408))
                if planned == 400 or len(instances) != 1 or dim not in (128, 256, 512, 1408):
                    return self._send(400, {"error": {"code": 400, "message": "Image is not valid or is too large.", "status": "INVALID_ARGUMENT"}})
                key, vec = fake_embedding(instances[0], dim)
                self._send(200, {"predictions": [{key: vec}], "deployedModelId": "fake"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake():
    with FakeVertex() as server:
        yield server


def _client(fake, **kw) -> VertexClient:
    settings = resolve_settings(project="proj-1", region="europe-west4", base_url=fake.url, access_token=TOKEN)
    return VertexClient(settings, dimension=kw.pop("dimension", 128), backoff_s=0.01, **kw)


def _jpeg(color, size=(64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "JPEG")
    return buf.getvalue()


def test_request_shape_and_unit_vectors(fake):
    client = _client(fake)
    vec = client.embed_image(_jpeg((200, 30, 30)))
    assert vec.shape == (128,) and vec.dtype == np.float32 and np.isclose(np.linalg.norm(vec), 1, atol=1e-6)
    text = client.embed_text("a doge meme")
    assert text.shape == (128,) and np.isclose(np.linalg.norm(text), 1, atol=1e-6)
    (img_req, text_req) = fake.requests
    assert PATH.match(img_req["path"]).groups() == ("proj-1", "europe-west4")
    assert img_req["auth"] == f"Bearer {TOKEN}"
    assert img_req["body"]["parameters"] == {"dimension": 128}
    assert base64.b64decode(img_req["body"]["instances"][0]["image"]["bytesBase64Encoded"])[:2] == b"\xff\xd8"
    assert text_req["body"]["instances"] == [{"text": "a doge meme"}]


def test_quota_and_unavailable_are_retried_with_backoff(fake):
    client = _client(fake)
    fake.plan = [429, 503, 429]
    vec = client.embed_image(_jpeg((10, 200, 10)))
    assert np.isclose(np.linalg.norm(vec), 1, atol=1e-6)
    assert len(fake.requests) == 4 and client.retries == 3


def test_retries_give_up_with_the_api_message(fake):
    client = _client(fake, max_retries=2)
    fake.plan = [429] * 5
    with pytest.raises(VertexRequestError, match=r"HTTP 429 after 3 attempts: RESOURCE_EXHAUSTED: Quota exceeded"):
        client.embed_text("doge")
    assert len(fake.requests) == 3


def test_bad_request_is_one_clear_error_not_retried(fake):
    client = _client(fake)
    fake.plan = [400]
    with pytest.raises(VertexRequestError, match=r"HTTP 400: INVALID_ARGUMENT: Image is not valid"):
        client.embed_image(_jpeg((1, 2, 3)))
    assert len(fake.requests) == 1


def test_a_body_that_is_not_json_is_one_clear_error(fake):
    client = _client(fake)
    fake.plan = ["html"]
    with pytest.raises(VertexRequestError, match=r"not JSON: b'<html>"):
        client.embed_text("doge")
    assert np.isclose(np.linalg.norm(client.embed_text("doge")), 1, atol=1e-6)  # the next call is fine


def test_wrong_token_and_unreachable_server(fake):
    settings = resolve_settings(project="p", base_url=fake.url, access_token="wrong")
    with pytest.raises(VertexRequestError, match="HTTP 401"):
        VertexClient(settings, 128, backoff_s=0.01).embed_text("x")
    dead = resolve_settings(project="p", base_url="http://127.0.0.1:9", access_token=TOKEN)
    with pytest.raises(VertexRequestError, match="cannot reach Vertex AI .* after 2 attempts"):
        VertexClient(dead, 128, max_retries=1, backoff_s=0.01).embed_text("x")


def test_images_are_shrunk_under_the_2mb_limit():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (1800, 1800, 3), dtype=np.uint8)  # incompressible: ~4 MB at q90
    data = jpeg_under_limit(noise)
    assert len(base64.b64encode(data)) <= MAX_IMAGE_B64_BYTES
    small = jpeg_under_limit(noise, limit=50_000)
    assert len(base64.b64encode(small)) <= 50_000 and Image.open(io.BytesIO(small)).width < 1800


def test_no_credentials_is_one_clear_message_before_any_work(monkeypatch, tmp_path):
    for var in ("VERTEX_ACCESS_TOKEN", "VERTEX_PROJECT", "GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing-key.json"))
    with pytest.raises(VertexConfigError, match=r"needs Google Cloud credentials .*gcloud auth application-default login"):
        VertexEncoder(name="vertex")
    with pytest.raises(VertexConfigError, match="no project"):
        resolve_settings(access_token=TOKEN)


def test_executor_encodes_images_and_texts_per_document(fake):
    enc = VertexEncoder(name="vertex", project="proj-1", base_url=fake.url, access_token=TOKEN, dimension=256, batch_size=4, backoff_s=0.01)
    red = np.full((40, 30, 3), (220, 20, 20), np.uint8)
    red2 = np.full((50, 50, 3), (210, 30, 25), np.uint8)
    blue = np.full((40, 30, 3), (20, 20, 220), np.uint8)
    docs = [
        ImageDoc(uri="r", tensor=red),
        ImageDoc(uri="r2", tensor=red2),
        ImageDoc(uri="b", tensor=blue),
        ImageDoc(text="doge"),
        ImageDoc(uri="bad", error="not an image"),
    ]
    fake.plan = [429]
    enc.encode(docs)
    r, r2, b = (np.asarray(d.embedding) for d in docs[:3])
    assert all(d.tensor is None and d.model == "multimodalembedding@001" for d in docs[:4])
    assert r @ r2 > r @ b  # the fake's meaning survives the round trip
    assert np.asarray(docs[3].embedding).shape == (256,)
    assert docs[4].embedding is None and docs[4].error == "not an image"
    info = enc.info()
    assert info.dim == 256 and info.text is True and info.extra["retries"] == 1 and info.peak_rss_mb > 0
    fake.plan = [400]
    one = [ImageDoc(uri="x", tensor=red)]
    enc.encode(one)
    assert one[0].embedding is None and "HTTP 400" in one[0].error
