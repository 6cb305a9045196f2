"""Buckets of many objects on moto's S3 server, for the listing benchmark (imgsearch/bench/listing.py).

The server runs in a process of its own, so the benchmark's measurements (memory, CPU) see the
client alone. Objects are put straight into moto's in-memory backend (140,000 S3 PUTs over HTTP
would take minutes on a small machine; the benchmark measures reading them back, not writing).

moto answers each ListObjectsV2 page by sorting every key of the bucket, so a listing of N keys
costs the fake server O(N² log N) where S3 answers a page in about the same time whatever the
bucket holds. So that times measure the client, the server here answers from a sorted index
of the keys, O(page + log N) a page: :func:`_indexed_listing`. Everything else is moto's.
"""

import hashlib
import logging
import multiprocessing
from bisect import bisect_left, bisect_right
from multiprocessing.synchronize import Event
from typing import Any, Callable

logger = logging.getLogger(__name__)

ACCOUNT = "123456789012"  # moto's default account
ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def object_key(i: int) -> str:
    """Keys as a photo library names them: ten labels, names in order."""
    return f"photos/label{i % 10}/img_{i:07d}.jpg"


def object_body(i: int, jpeg: bytes) -> bytes:
    """A small JPEG with four bytes after its end: each object its own bytes (and hash), decodable."""
    return jpeg + i.to_bytes(4, "big")


def _indexed_listing(backend: Any) -> Callable[..., Any]:
    """``backend.list_objects_v2`` answered from each bucket's sorted key names (kept until the bucket
    changes), as S3 answers a page; listings with a delimiter go to moto's own code."""
    original = backend.list_objects_v2
    names: dict[str, tuple[int, list[str]]] = {}

    def list_objects_v2(bucket: Any, prefix: Any, delimiter: Any, continuation_token: Any, start_after: Any, max_keys: int) -> Any:
        if delimiter:
            return original(
                bucket=bucket, prefix=prefix, delimiter=delimiter, continuation_token=continuation_token, start_after=start_after, max_keys=max_keys
            )
        cached = names.get(bucket.name)
        if cached is None or cached[0] != len(bucket.keys):
            cached = names[bucket.name] = (len(bucket.keys), sorted(bucket.keys.keys()))
        keys, prefix = cached[1], prefix or ""
        after = backend._pagination_tokens.get(continuation_token) if continuation_token else start_after
        i = max(bisect_left(keys, prefix), bisect_right(keys, after) if after else 0)
        out: list[Any] = []
        while i < len(keys) and len(out) < max_keys and keys[i].startswith(prefix):
            out.append(bucket.keys[keys[i]])
            i += 1
        more = i < len(keys) and keys[i].startswith(prefix)
        token = None
        if more:
            token = hashlib.md5(out[-1].name.encode()).hexdigest()
            backend._pagination_tokens[token] = out[-1].name
        return out, more, token

    return list_objects_v2


def _serve(buckets: dict[str, int], jpeg: bytes, ready: "multiprocessing.Queue[str]", stop: Event) -> None:
    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    backend = s3_backends[ACCOUNT]["global"]
    for name, n in buckets.items():
        backend.create_bucket(name, ENV["AWS_DEFAULT_REGION"])
        for i in range(n):
            backend.put_object(name, object_key(i), object_body(i, jpeg))
    backend.list_objects_v2 = _indexed_listing(backend)  # type: ignore[method-assign]  # this process only
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    ready.put(f"http://{host}:{port}")
    stop.wait()
    server.stop()


class MotoBuckets:
    """``with MotoBuckets({"b10k": 10_000}, jpeg) as url:`` a moto S3 server holding those buckets."""

    def __init__(self, buckets: dict[str, int], jpeg: bytes, start_timeout_s: float = 600):
        self.buckets, self.jpeg, self.start_timeout_s = buckets, jpeg, start_timeout_s
        ctx = multiprocessing.get_context("spawn")
        self._ready: multiprocessing.Queue[str] = ctx.Queue()
        self._stop = ctx.Event()
        self._process = ctx.Process(target=_serve, args=(buckets, jpeg, self._ready, self._stop), daemon=True)

    def __enter__(self) -> str:
        self._process.start()
        return self._ready.get(timeout=self.start_timeout_s)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
