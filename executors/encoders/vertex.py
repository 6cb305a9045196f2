"""VertexEncoder: Google Vertex AI's multimodal embedding model over its REST ``predict`` API.

The cloud encoder of the CLIP-vs-Vertex study: images and texts in one space, computed by
Google. The one encoder that needs the network, so it checks what it needs (credentials,
a project) when it starts, and fails with one clear message before any work.

Request (one instance per request, as the model accepts)::

    POST {base}/v1/projects/{project}/locations/{region}/publishers/google/models/multimodalembedding@001:predict
    {"instances": [{"image": {"bytesBase64Encoded": "..."}} | {"text": "..."}],
     "parameters": {"dimension": 1408}}
    → {"predictions": [{"imageEmbedding": [...]} | {"textEmbedding": [...]}]}

Images are re-encoded as JPEG and shrunk until the base64 payload is under the API's
2 MB image limit. 429 and 5xx answers (and dropped connections) are retried with
exponential backoff, honouring ``Retry-After``; a 401 refreshes the token once; any other
error (400, 403, 404) fails that document with the API's own message.

Credentials come from Google's application-default chain (``GOOGLE_APPLICATION_CREDENTIALS``,
``gcloud auth application-default login``, the metadata server), or an explicit access
token (``access_token`` / ``VERTEX_ACCESS_TOKEN``). ``base_url`` / ``VERTEX_BASE_URL``
points it elsewhere (the tests use a fake server on loopback).
"""

import base64
import dataclasses
import io
import json
import logging
import os
import random
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
from docarray import DocList
from jina import requests

from executors.contracts import EncoderInfo
from executors.docs import ImageDoc, failed
from executors.encoders.encoder_stage import EncoderStage
from executors.encoders.specs import get_spec
from executors.errors import first_line
from executors.flow_kwargs import flow_kwarg

logger = logging.getLogger(__name__)

CLOUD_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
DEFAULT_REGION = "us-central1"
MAX_IMAGE_B64_BYTES = 2 * 1024 * 1024  # the API's per-image limit, on the encoded string to be safe
DIMENSIONS = (128, 256, 512, 1408)
RETRY_STATUSES = {429, 500, 502, 503, 504}


class VertexConfigError(RuntimeError):
    """Credentials, project or options are missing: raised before any work."""


class VertexRequestError(RuntimeError):
    """The API refused a request (after retries where retrying makes sense)."""


@dataclass
class VertexSettings:
    project: str
    region: str
    base_url: str
    model: str
    credentials: str  # where the token comes from, in words
    token: Callable[[bool], str] = field(repr=False)  # token(force_refresh) -> bearer token

    @property
    def endpoint(self) -> str:
        return f"{self.base_url.rstrip('/')}/v1/projects/{self.project}/locations/{self.region}/publishers/google/models/{self.model}:predict"


_NO_CREDENTIALS = (
    "encoder 'vertex' needs Google Cloud credentials and a project: run "
    "`gcloud auth application-default login` (or set GOOGLE_APPLICATION_CREDENTIALS to a service-account "
    "key file, or VERTEX_ACCESS_TOKEN to an access token) and give the project with --vertex-project or "
    "GOOGLE_CLOUD_PROJECT"
)


def _env(*names: str) -> Optional[str]:
    for n in names:
        if os.environ.get(n):
            return os.environ[n]
    return None


def resolve_settings(
    project: Optional[str] = None,
    region: Optional[str] = None,
    base_url: Optional[str] = None,
    access_token: Optional[str] = None,
    model: Optional[str] = None,
) -> VertexSettings:
    """Everything a request needs, checked now; raises VertexConfigError with one clear message.

    Arguments win over environment variables (VERTEX_PROJECT / GOOGLE_CLOUD_PROJECT,
    VERTEX_REGION / GOOGLE_CLOUD_REGION, VERTEX_BASE_URL, VERTEX_ACCESS_TOKEN).
    """
    project = project or _env("VERTEX_PROJECT", "GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT")
    region = region or _env("VERTEX_REGION", "GOOGLE_CLOUD_REGION") or DEFAULT_REGION
    base_url = base_url or _env("VERTEX_BASE_URL") or f"https://{region}-aiplatform.googleapis.com"
    model = model or get_spec("vertex").checkpoint
    access_token = access_token or _env("VERTEX_ACCESS_TOKEN")
    if access_token:
        token = lambda force=False: access_token  # noqa: E731 (a fixed token cannot be refreshed)
        source = "access token given"
    else:
        try:
            import google.auth
            import google.auth.transport.requests
            from google.auth.exceptions import DefaultCredentialsError, GoogleAuthError
        except ImportError:
            raise VertexConfigError(
                f"{_NO_CREDENTIALS}; the application-default chain needs the google-auth package (pip install google-auth)"
            ) from None
        try:
            creds, default_project = google.auth.default(scopes=[CLOUD_SCOPE])
        except DefaultCredentialsError as exc:
            raise VertexConfigError(f"{_NO_CREDENTIALS} ({first_line(exc, 200)})") from None
        project = project or default_project
        lock = threading.Lock()

        def token(force: bool = False) -> str:
            with lock:
                if force or not creds.valid:
                    creds.refresh(google.auth.transport.requests.Request())
                return creds.token

        try:
            token(True)
        except GoogleAuthError as exc:
            raise VertexConfigError(f"{_NO_CREDENTIALS} (refreshing the credentials failed: {str(exc)[:200]})") from None
        source = f"application default credentials ({type(creds).__name__})"
    if not project:
        raise VertexConfigError(f"{_NO_CREDENTIALS} (no project: set --vertex-project or GOOGLE_CLOUD_PROJECT)")
    return VertexSettings(project, region, base_url, model, source, token)


def jpeg_under_limit(pixels: np.ndarray, limit: int = MAX_IMAGE_B64_BYTES) -> bytes:
    """uint8 RGB pixels → JPEG bytes whose base64 form is under ``limit`` (quality, then size, down)."""
    from PIL import Image

    img = Image.fromarray(np.asarray(pixels, dtype=np.uint8)).convert("RGB")
    quality = 90
    while True:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=quality)
        data = buf.getvalue()
        if (len(data) + 2) // 3 * 4 <= limit:
            return data
        if quality > 60:
            quality -= 15
        else:
            img = img.resize((max(1, img.width * 3 // 4), max(1, img.height * 3 // 4)), Image.Resampling.BICUBIC)


class VertexClient:
    """The predict call with retries; thread-safe (one urllib request per call)."""

    def __init__(
        self,
        settings: VertexSettings,
        dimension: int = 1408,
        max_retries: int = 5,
        backoff_s: float = 1.0,
        timeout_s: float = 60.0,
        max_backoff_s: float = 60.0,
    ):
        self.settings = settings
        self.dimension = int(dimension)
        self.max_retries = int(max_retries)
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.timeout_s = float(timeout_s)
        self.retries = 0  # how many retries all calls needed (reported in /info)

    def embed_image(self, jpeg: bytes) -> np.ndarray:
        instance = {"image": {"bytesBase64Encoded": base64.b64encode(jpeg).decode("ascii")}}
        return self._predict(instance, "imageEmbedding")

    def embed_text(self, text: str) -> np.ndarray:
        return self._predict({"text": text}, "textEmbedding")

    def _predict(self, instance: dict, key: str) -> np.ndarray:
        body = json.dumps({"instances": [instance], "parameters": {"dimension": self.dimension}}).encode()
        answer = self._post(body)
        try:
            vec = np.asarray(answer["predictions"][0][key], dtype=np.float32)
        except (KeyError, IndexError, TypeError, ValueError):
            raise VertexRequestError(f"Vertex AI answered without '{key}': {json.dumps(answer)[:300]}") from None
        norm = float(np.linalg.norm(vec))
        if vec.ndim != 1 or not np.isfinite(vec).all() or norm == 0:
            raise VertexRequestError(f"Vertex AI returned an invalid {key} (shape {vec.shape})")
        return vec / norm

    def _post(self, body: bytes) -> dict:
        refreshed = False
        attempt = 0
        while True:
            req = urllib.request.Request(
                self.settings.endpoint,
                data=body,
                method="POST",
                headers={"Authorization": f"Bearer {self.settings.token(False)}", "Content-Type": "application/json; charset=utf-8"},
            )
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    raw = resp.read()
                try:
                    return json.loads(raw)
                except ValueError:  # a proxy's HTML page, a cut-off body: the call failed, clearly
                    raise VertexRequestError(f"Vertex AI answered with a body that is not JSON: {raw[:200]!r}") from None
            except urllib.error.HTTPError as exc:
                status, message = exc.code, _api_message(exc)
                retry_after = exc.headers.get("Retry-After") if exc.headers else None
                if status == 401 and not refreshed:
                    refreshed = True
                    self.settings.token(True)
                    continue
                if status not in RETRY_STATUSES or attempt >= self.max_retries:
                    tried = f" after {attempt + 1} attempts" if attempt else ""
                    raise VertexRequestError(f"Vertex AI answered HTTP {status}{tried}: {message}") from None
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                reason = getattr(exc, "reason", exc)
                if attempt >= self.max_retries:
                    raise VertexRequestError(f"cannot reach Vertex AI at {self.settings.base_url} after {attempt + 1} attempts: {reason}") from None
                retry_after = None
            delay = min(self.max_backoff_s, self.backoff_s * 2**attempt) * (0.5 + random.random() / 2)
            if retry_after:
                try:
                    delay = max(delay, min(self.max_backoff_s, float(retry_after)))
                except ValueError:
                    pass
            attempt += 1
            self.retries += 1
            logger.info("vertex: retry %d in %.2fs", attempt, delay)
            time.sleep(delay)


def _api_message(exc: urllib.error.HTTPError) -> str:
    try:
        payload = json.loads(exc.read() or b"{}")
        err = payload.get("error", {})
        return f"{err.get('status') or exc.reason}: {err.get('message') or payload}"[:500]
    except Exception:
        return str(exc.reason)


class VertexEncoder(EncoderStage):
    """Images and texts → Vertex AI multimodal embeddings (L2-normalised float32)."""

    family = "vertex"

    def __init__(
        self,
        name: str = "vertex",
        model: Optional[str] = None,
        project: Optional[str] = None,
        region: Optional[str] = None,
        base_url: Optional[str] = None,
        access_token: Optional[str] = None,
        dimension: int = 1408,
        batch_size: int = 8,
        max_retries: int = 5,
        backoff_s: float = 1.0,
        timeout_s: float = 60.0,
        **kwargs,
    ):
        super().__init__(name, **kwargs)
        if int(dimension) not in DIMENSIONS:
            raise VertexConfigError(f"vertex dimension must be one of {DIMENSIONS}, not {dimension}")
        started = time.perf_counter()
        # Unset or empty ${{ ENV.* }} in the flow YAML mean the environment's or the default.
        given = {"project": project, "region": region, "base_url": base_url, "access_token": access_token, "model": model}
        self.settings = resolve_settings(**{k: flow_kwarg(k, v, None) for k, v in given.items()})
        self.checkpoint = self.settings.model
        self.dim = int(dimension)
        self.batch_size = int(batch_size)  # concurrent requests
        self.client = VertexClient(self.settings, self.dim, max_retries, backoff_s, timeout_s)
        self.load_seconds = time.perf_counter() - started
        logger.info("vertex: %s in %s/%s (%s)", self.checkpoint, self.settings.project, self.settings.region, self.settings.credentials)

    def _run(self, docs: list[ImageDoc], fn) -> None:
        def one(doc: ImageDoc) -> None:
            try:
                vec = fn(doc)
            except Exception as exc:  # one refused document must not fail the request
                doc.error = str(exc)
                vec = None
            doc.tensor = None
            if vec is not None:
                doc.embedding, doc.model = vec.astype(np.float32), self.checkpoint

        if len(docs) <= 1 or self.batch_size <= 1:
            for d in docs:
                one(d)
            return
        with ThreadPoolExecutor(max_workers=min(self.batch_size, len(docs))) as pool:
            list(pool.map(one, docs))

    @requests(on=["/index", "/search"])
    def encode(self, docs: DocList[ImageDoc], **kwargs) -> DocList[ImageDoc]:
        images = [d for d in docs if not failed(d) and d.tensor is not None]
        texts = [d for d in docs if not failed(d) and d.tensor is None and d.text is not None]
        self._run(images, lambda d: self.client.embed_image(jpeg_under_limit(np.asarray(d.tensor))))
        self._run(texts, lambda d: self.client.embed_text(d.text))
        return docs

    def info(self) -> EncoderInfo:
        return dataclasses.replace(
            super().info(),
            text=True,
            device=f"remote: Vertex AI {self.settings.region}",
            dtype="float32",
            preprocess={"format": "JPEG q≤90", "max_base64_bytes": MAX_IMAGE_B64_BYTES},
            extra={
                "api": self.settings.endpoint,
                "project": self.settings.project,
                "credentials": self.settings.credentials,
                "retries": self.client.retries,
            },
        )
