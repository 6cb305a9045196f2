"""The page's HTTP side: a FastAPI app (the web stack Jina's gateway already brings).

Routes: ``/`` the page and ``/static/*`` its files; ``/api/config`` what is served;
``/api/search`` one query against one or several encoders; ``/api/thumb/{hash}`` and
``/api/original/{hash}`` indexed images, named only by the content hash a search returned.
"""

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from imgsearch.web.service import Query, SearchService, ServiceError
from imgsearch.web.thumbs import BROWSER_MIMES, SIZES, ThumbCache, ThumbError, read_verified, snap_size

logger = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
HASH_RE = re.compile(r"^[0-9a-f]{64}$")
IMMUTABLE = "public, max-age=31536000, immutable"  # URLs are content hashes: they never change
MAX_K = 500
FORM_OVERHEAD = 64 * 1024  # multipart framing and the small fields around the file
DRAIN_FACTOR = 4  # a refused upload's body is read (and dropped) up to this many times the limit


@dataclass
class PageOptions:
    top_k: int = 12
    max_upload_bytes: int = 20 * 1024 * 1024
    thumb_size: int = 256


def create_app(service: SearchService, thumbs: ThumbCache, options: Optional[PageOptions] = None) -> FastAPI:
    opts = options or PageOptions()
    app = FastAPI(title="imgsearch", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(ServiceError)
    def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.get("/")
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/api/health")
    def health() -> dict:
        return {"ok": True, "encoders": list(service.encoders)}

    @app.get("/api/config")
    def config() -> dict:
        return {**service.config(), "top_k": opts.top_k, "max_upload_bytes": opts.max_upload_bytes,
                "thumb_size": opts.thumb_size}

    @app.post("/api/search")
    async def search(request: Request) -> dict:
        # Refuse an oversize upload from its declared length, before the body is read.
        declared = int(request.headers.get("content-length") or 0)
        if declared > opts.max_upload_bytes + FORM_OVERHEAD:
            await _drain(request, DRAIN_FACTOR * opts.max_upload_bytes)
            raise ServiceError(_too_large(opts.max_upload_bytes), 413)
        form = await request.form(max_files=1, max_fields=8)
        try:
            query = Query(text=_field(form, "text"), hash=_field(form, "hash"))
            image = form.get("image")
            if image is not None and not isinstance(image, str):
                data = await image.read(opts.max_upload_bytes + 1)
                if len(data) > opts.max_upload_bytes:
                    raise ServiceError(_too_large(opts.max_upload_bytes), 413)
                if not data:
                    raise ServiceError("the uploaded file is empty")
                query.image, query.filename = data, image.filename
        finally:
            await form.close()
        k = _int(_field(form, "k"), opts.top_k)
        if not 1 <= k <= MAX_K:
            raise ServiceError(f"k must be between 1 and {MAX_K}")
        if query.hash is not None and not HASH_RE.match(query.hash):
            raise ServiceError("not an image id (a sha256 content hash)")
        names = [n for n in (x.strip() for x in (_field(form, "encoders") or "").split(",")) if n]
        # The gateways are called with blocking clients: off the event loop.
        return await run_in_threadpool(service.search, names, _field(form, "dataset") or "", query, k)

    @app.get("/api/thumb/{content_hash}")
    def thumb(content_hash: str, request: Request, s: int = 256) -> Response:
        return _thumb(content_hash, _known(content_hash), s, request.headers.get("if-none-match"))

    @app.get("/api/original/{content_hash}")
    def original(content_hash: str) -> Response:
        known = _known(content_hash)
        if known.get("mime") not in BROWSER_MIMES:
            return _thumb(content_hash, known, SIZES[-1], None)  # e.g. TIFF: the largest rendition
        try:
            data = read_verified(known["path"], content_hash)
        except ThumbError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        name = Path(known["path"]).name.replace('"', "")
        # nosniff: the browser takes the type the loader detected from the content, nothing else.
        return Response(data, media_type=known["mime"], headers={
            "Cache-Control": IMMUTABLE, "Content-Disposition": f'inline; filename="{name}"',
            "X-Content-Type-Options": "nosniff"})

    def _thumb(content_hash: str, known: dict, s: int, if_none_match: Optional[str]) -> Response:
        size = snap_size(s)
        etag = f'"{content_hash}-{size}"'
        if if_none_match == etag:
            return Response(status_code=304, headers={"ETag": etag, "Cache-Control": IMMUTABLE})
        try:
            path = thumbs.get(content_hash, known["path"], size)
        except ThumbError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return FileResponse(path, media_type="image/jpeg", headers={"ETag": etag, "Cache-Control": IMMUTABLE})

    def _known(content_hash: str) -> dict:
        # Only hashes the index returned: a URL can never name a path on this machine.
        if not HASH_RE.match(content_hash):
            raise ServiceError("not an image id (a sha256 content hash)", 400)
        known = service.known.get(content_hash)
        if known is None:
            raise ServiceError("no indexed image with this id has been shown by this server", 404)
        return known

    return app


async def _drain(request: Request, limit: int) -> None:
    """Read and drop a refused request's body, up to ``limit`` bytes. A client still sending
    when the answer comes (a browser uploading a photo over the limit) would otherwise get
    a reset connection instead of the 413 that says why; past ``limit`` it gets the reset."""
    seen = 0
    try:
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > limit:
                return
    except Exception:  # noqa: BLE001  the client went away: nothing to answer
        return


def _field(form, name: str) -> Optional[str]:
    value = form.get(name)
    return value if isinstance(value, str) else None


def _int(value: Optional[str], default: int) -> int:
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        raise ServiceError(f"not a number: {value!r}") from None


def _too_large(limit: int) -> str:
    return (f"the uploaded file is too large: the limit is {limit / 1e6:.1f} MB "
            "(start the server with --max-upload-mb to change it)")
