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
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware

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
    # Host headers answered (besides localhost, 127.0.0.1 and ::1): the bind address and any
    # name the operator adds. Any other is refused, so a DNS-rebinding page in the user's
    # browser cannot read this server's answers under its own origin.
    allowed_hosts: tuple[str, ...] = ()


LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")


def host_allowlist(options: PageOptions) -> list[str]:
    """The Host names the page answers (a wildcard bind address adds nothing: name the
    machine with --allow-host)."""
    extra = [h for h in options.allowed_hosts if h and h not in ("0.0.0.0", "::", "")]
    return list(dict.fromkeys([*LOCAL_HOSTS, *(f"[{h}]" if ":" in h and not h.startswith("[") else h for h in extra)]))


def create_app(service: SearchService, thumbs: ThumbCache, options: Optional[PageOptions] = None) -> FastAPI:
    opts = options or PageOptions()
    app = FastAPI(title="imgsearch", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=host_allowlist(opts))

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
        return {**service.config(), "top_k": opts.top_k, "max_upload_bytes": opts.max_upload_bytes, "thumb_size": opts.thumb_size}

    @app.post("/api/search")
    async def search(request: Request) -> dict:
        # Refuse an oversize upload from its declared length, before the body is read.
        limit = opts.max_upload_bytes + FORM_OVERHEAD
        declared = _int(request.headers.get("content-length"), 0)
        if declared > limit:
            await _drain(request, DRAIN_FACTOR * opts.max_upload_bytes)
            raise ServiceError(_too_large(opts.max_upload_bytes), 413)
        # Counted as it arrives too: a chunked upload declares no length, and would otherwise
        # be spooled whole before the file's size is looked at.
        if not await _read_body(request, limit, DRAIN_FACTOR * opts.max_upload_bytes):
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
        # nosniff: the browser takes the type the loader detected from the content, nothing else.
        return Response(
            data,
            media_type=known["mime"],
            headers={
                "Cache-Control": IMMUTABLE,
                "Content-Disposition": content_disposition(Path(known["path"]).name),
                "X-Content-Type-Options": "nosniff",
            },
        )

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


def content_disposition(name: str) -> str:
    """``inline`` with the file's name as RFC 6266 gives it: an ASCII fallback (``filename``)
    and the exact name in UTF-8 (``filename*``, RFC 5987), so any name (写真.jpg) is a valid
    header (HTTP headers are Latin-1: a raw non-Latin-1 name made the answer fail with 500)."""
    fallback = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\%' else "_" for c in name) or "image"
    return f"inline; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


async def _read_body(request: Request, limit: int, drain: int) -> bool:
    """Read the request's body into the request (where its form parser takes it from), counting
    as it arrives; False, with nothing kept, once it passes ``limit`` bytes (the rest is read
    and dropped up to ``drain`` bytes, as _drain does)."""
    chunks: list[bytes] = []
    seen = 0
    try:
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > drain:
                break
            if seen <= limit:
                chunks.append(chunk)
            else:
                chunks.clear()
    except Exception:  # noqa: BLE001  the client went away mid-upload
        return False
    if seen > limit:
        return False
    request._body = b"".join(chunks)  # Starlette's cache of the body: form() parses it
    return True


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
    return f"the uploaded file is too large: the limit is {limit / 1e6:.1f} MB (start the server with --max-upload-mb to change it)"
