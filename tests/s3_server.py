"""A real S3-compatible server on loopback for tests: moto's server mode, counting GETs per object.

Not a fixture module: the tests import ``s3_server`` and ``fill_bucket`` from here.
"""

import contextlib
import io
import threading
from collections import Counter
from typing import Iterator
from urllib.parse import unquote

import boto3
from corpus import make_photo
from moto.server import DomainDispatcherApplication, MotoRequestHandler, ThreadedMotoServer, create_backend_app
from s3fs import S3FileSystem
from werkzeug.serving import make_server

S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


class CountingMotoServer(ThreadedMotoServer):
    """moto's threaded server, bound to 127.0.0.1 on a free port, that counts GET requests by path."""

    def __init__(self):
        super().__init__(ip_address="127.0.0.1", port=0, verbose=False)
        self.gets: Counter[str] = Counter()  # "/bucket/key" -> object fetches (GetObject, ranged or not)
        self.lists: Counter[str] = Counter()  # "/bucket" -> ListObjectsV2 requests (one per listing page)
        self._count_lock = threading.Lock()

    def _server_entry(self) -> None:
        app = DomainDispatcherApplication(create_backend_app)

        def counting(environ, start_response):
            if environ["REQUEST_METHOD"] == "GET" and not environ.get("QUERY_STRING"):  # not a listing
                with self._count_lock:
                    self.gets[unquote(environ["PATH_INFO"])] += 1
            elif environ["REQUEST_METHOD"] == "GET" and "list-type=2" in environ.get("QUERY_STRING", ""):
                with self._count_lock:
                    self.lists[unquote(environ["PATH_INFO"]).rstrip("/")] += 1
            return app(environ, start_response)

        self._server = make_server(self._ip_address, self._port, counting, True, request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()

    @property
    def url(self) -> str:
        host, port = self.get_host_and_port()
        return f"http://{host}:{port}"

    def env(self) -> dict:
        """What a client process needs: dummy credentials and the endpoint override."""
        return {**S3_ENV, "AWS_ENDPOINT_URL": self.url}

    def object_gets(self, bucket: str) -> Counter:
        with self._count_lock:
            return Counter({p: n for p, n in self.gets.items() if p.startswith(f"/{bucket}/") and n})


@contextlib.contextmanager
def s3_server(monkeypatch=None) -> Iterator[CountingMotoServer]:
    server = CountingMotoServer()
    server.start()
    S3FileSystem.clear_instance_cache()  # fsspec keeps a filesystem per arguments: one made for another port
    try:
        if monkeypatch is not None:
            for k, v in server.env().items():
                monkeypatch.setenv(k, v)
        yield server
    finally:
        server.stop()


def client(server: CountingMotoServer):
    return boto3.client(
        "s3",
        endpoint_url=server.url,
        **{k.lower(): v for k, v in S3_ENV.items() if k != "AWS_DEFAULT_REGION"},
        region_name=S3_ENV["AWS_DEFAULT_REGION"],
    )


def put_many(server: CountingMotoServer, bucket: str, objects: dict[str, bytes], threads: int = 8) -> None:
    """Put many objects at once (moto's server answers each PUT in a thread of its own)."""
    from concurrent.futures import ThreadPoolExecutor

    s3 = client(server)
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda kv: s3.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]), objects.items()))


def jpeg(seed: int, size: tuple[int, int] = (48, 40)) -> bytes:
    buf = io.BytesIO()
    make_photo(None, size, seed=seed).save(buf, "JPEG", quality=85)
    return buf.getvalue()


def fill_bucket(server: CountingMotoServer, bucket: str, prefix: str, n_good: int, oversized: int = 0) -> dict[str, str]:
    """Put ``n_good`` labelled JPEGs and hostile objects under ``prefix``; {key below prefix: "ok", "ignored"
    or a word of the reason it is skipped with}.

    Hostile objects: plain text named .jpg, zero bytes, HTML, two bytes of JPEG, a truncated JPEG, and
    a JPEG padded past ``oversized`` bytes when given; a README and a hidden key are left out silently.
    """
    s3 = client(server)
    s3.create_bucket(Bucket=bucket)
    cases: dict[str, str] = {}

    def put(key: str, data: bytes, outcome: str) -> None:
        s3.put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=data)
        cases[key] = outcome

    for i in range(n_good):  # one name full of glob characters: a key is never a pattern
        put(f"label{i % 4}/photo_{i:05d}.jpg" if i != 1 else "label1/photo [00001]*?.jpg", jpeg(i), "ok")
    put("label0/notes.jpg", b"these are my holiday notes, not a picture\n", "plain text")
    put("label1/zero.jpg", b"", "empty file")
    put("label2/page.jpg", b"<!DOCTYPE html><html><body>404</body></html>", "HTML")
    put("label3/sig.jpg", b"\xff\xd8", "unrecognised content")  # two bytes: no full JPEG signature
    whole = jpeg(10_002, (96, 80))
    put("label3/truncated.jpg", whole[: len(whole) // 2], "truncated")  # a JPEG signature: fails at decoding
    put("README.txt", b"not an image, not named like one", "ignored")
    put(".hidden/photo.jpg", jpeg(10_000), "ignored")
    if oversized:
        put("label0/huge.jpg", jpeg(10_001) + b"\0" * oversized, "too large")
    return cases
