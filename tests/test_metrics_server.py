"""The metrics endpoint's pieces without a flow: the wire count, the tracker, the server's
authentication and bounds (tests/test_metrics_endpoint.py runs them in a real flow)."""

import asyncio
import logging
import socket
import time
import urllib.error
import urllib.request

import pytest
from docarray import DocList
from http_status import http_status
from jina.types.request.data import DataRequest

from executors.docs import ImageDoc
from executors.metrics import registry, server, worker
from executors.metrics.registry import REGISTRY, Tracker, docs_in
from executors.metrics.wire import count_docs
from imgsearch.metrics_scrape import parse, value
from imgsearch.ports import free_port

TOKEN = "unit-token"


def _request(n: int, as_bytes: bool = False) -> DataRequest:
    request = DataRequest()
    request.header.exec_endpoint = "/index"
    docs = DocList[ImageDoc]([ImageDoc(uri=f"/x/{i}.jpg", blob=b"\xff" * (i * 300)) for i in range(n)])
    if as_bytes:
        request.data.docs_bytes = docs.to_bytes()
    else:
        request.data.docs = docs
    return request


@pytest.mark.parametrize("n", [0, 1, 7, 130])
def test_wire_count_matches_protobuf(n):
    serialised = _request(n).proto.SerializeToString()
    from jina.proto import jina_pb2

    parsed = jina_pb2.DataRequestProto.FromString(serialised)  # the independent count
    assert count_docs(serialised) == len(parsed.data.docs.docs) == n
    fresh = DataRequest(serialised)  # as gRPC hands it over: bytes, not parsed
    assert docs_in(fresh) == n and fresh._pb_body is None  # counted without unpacking


def test_wire_count_unknown_or_broken():
    assert count_docs(_request(3, as_bytes=True).proto.SerializeToString()) is None  # one opaque blob
    whole = _request(5).proto.SerializeToString()
    assert count_docs(whole[:-3]) is None  # truncated
    assert count_docs(b"\xff" * 20) is None  # not protobuf
    assert count_docs(b"") == 0


def _sample(name: str, **labels: str) -> float:
    from prometheus_client import generate_latest

    return value(parse(generate_latest(REGISTRY).decode()), name, **labels)


def test_queued_requests_are_in_flight_and_wait():
    """Two requests for a synchronous handler: the second waits for Jina's lock, in flight
    all along, and its queue time is the first one's work."""
    tracker = Tracker("normalizer")
    before = _sample("imgsearch_queue_seconds_count", stage="normalizer")
    hold = 0.2
    seen = []

    async def one(lock):
        record = tracker.receive("/index", 4)
        token = registry.CURRENT.set(record)
        try:
            async with lock:
                await asyncio.sleep(0.02)  # the other request arrives meanwhile
                seen.append(_sample("imgsearch_inflight_requests", stage="normalizer"))
                await asyncio.sleep(hold)
        finally:
            registry.CURRENT.reset(token)
            tracker.answer(record, error=False)
        return record

    async def both():
        lock = worker.StartsWork(asyncio.Lock())
        return await asyncio.gather(one(lock), one(lock))

    first, second = asyncio.run(both())
    assert seen == [2, 1]  # the first ran with the second queued behind it
    assert second.started - second.received >= hold * 0.9 > first.started - first.received
    assert _sample("imgsearch_inflight_requests", stage="normalizer") == 0
    assert _sample("imgsearch_queue_seconds_count", stage="normalizer") == before + 2
    assert _sample("imgsearch_images_total", stage="normalizer") >= 8


def test_batched_requests_start_with_their_batch():
    tracker = Tracker("encoder")
    a, b, c = (tracker.receive("/search", 1, batched=True) for _ in range(3))
    time.sleep(0.01)
    tracker.start_batch("/search", 2)  # Jina's queue handed the first two to the handler
    assert a.started and b.started and c.started is None
    for record in (a, b, c):
        tracker.answer(record, error=record is c)  # c failed before its batch ran
    assert tracker._waiting["/search"] == type(tracker._waiting["/search"])()
    assert _sample("imgsearch_request_errors_total", stage="encoder", endpoint="/search") >= 1


def test_unknown_endpoints_share_one_label():
    tracker = Tracker("indexer")
    tracker.answer(tracker.receive("/made-up-by-a-client-1", None), error=True)
    tracker.answer(tracker.receive("/made-up-by-a-client-2", None), error=True)
    assert _sample("imgsearch_requests_total", stage="indexer", endpoint="other") >= 2
    assert "made-up" not in __import__("prometheus_client").generate_latest(REGISTRY).decode()


@pytest.fixture
def endpoint(monkeypatch):
    monkeypatch.setenv(server.TOKEN_ENV, TOKEN)
    monkeypatch.delenv(server.HOST_ENV, raising=False)
    port = free_port()
    srv = server.serve("127.0.0.1", port, lambda: [REGISTRY], "test")
    assert srv is not None
    yield f"http://127.0.0.1:{port}"
    srv.shutdown()
    srv.server_close()


def test_token_required(endpoint):
    status, body = http_status(endpoint + "/metrics", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and b"imgsearch_requests_total" in body
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}):
        assert http_status(endpoint + "/metrics", headers) == (401, b"")
        assert http_status(endpoint + "/elsewhere", headers) == (401, b"")  # not even whether a path exists
    assert http_status(endpoint + "/metrics", {}, method="POST") == (401, b"")
    assert http_status(endpoint + "/metrics", {"Authorization": f"Bearer {TOKEN}"}, method="POST")[0] == 405
    assert http_status(endpoint + "/other", {"Authorization": f"Bearer {TOKEN}"})[0] == 404
    assert http_status(endpoint + "/metrics", {"Authorization": f"Bearer {TOKEN}", "X-Pad": "a" * 9000})[0] == 431


def test_connections_bounded(endpoint):
    port = int(endpoint.rsplit(":", 1)[1])
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(server.MAX_CONNECTIONS)]
    time.sleep(0.2)
    extra = socket.create_connection(("127.0.0.1", port))
    extra.settimeout(2)
    try:
        assert extra.recv(10) == b""  # closed at once, not queued behind the idle ones
    except ConnectionResetError:
        pass
    for sock in idle:
        sock.close()
    deadline = time.monotonic() + server.TIMEOUT_S + 2
    while True:  # served again once the idle ones' slots are free (closed, or timed out)
        try:
            if http_status(endpoint + "/metrics", {"Authorization": f"Bearer {TOKEN}"})[0] == 200:
                break
        except (ConnectionError, urllib.error.URLError):  # turned away while the slots are still held
            pass
        assert time.monotonic() < deadline
        time.sleep(0.1)


@pytest.mark.parametrize("env", [None, "", " padded "])
def test_no_usable_token_no_server(monkeypatch, caplog, env):
    if env is None:
        monkeypatch.delenv(server.TOKEN_ENV, raising=False)
    else:
        monkeypatch.setenv(server.TOKEN_ENV, env)
    port = free_port()
    with caplog.at_level(logging.INFO, logger=server.__name__):
        assert server.serve("127.0.0.1", port, lambda: [REGISTRY], "test") is None
    assert len([r for r in caplog.records if "not started" in r.getMessage()]) == 1
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)


def test_stage_labels():
    assert [registry.stage_label(n) for n in ("encoder/rep-2", "encoder-clip", "indexer", "gateway/rep-0")] == [
        "encoder",
        "encoder",
        "indexer",
        "gateway",
    ]


def test_worker_hook_fits_the_pinned_jina():
    assert worker.internals_changed() == []


def test_gateway_serves_jinas_metrics_behind_the_token(monkeypatch):
    """A gateway started with --monitoring: Jina's own metrics, through our endpoint only."""
    from prometheus_client import Counter

    from executors.metrics.gateway import setup_monitoring

    monkeypatch.setenv(server.TOKEN_ENV, TOKEN)
    port = free_port()
    srv, jina_registry = setup_monitoring("127.0.0.1", True, port)
    assert srv is not None and jina_registry is not None
    try:
        Counter("jina_successful_requests", "as Jina names it", registry=jina_registry).inc()
        status, body = http_status(f"http://127.0.0.1:{port}/metrics", {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and b"jina_successful_requests_total 1.0" in body and b"imgsearch_inflight_requests" in body
        assert http_status(f"http://127.0.0.1:{port}/metrics", {}) == (401, b"")
    finally:
        srv.shutdown()
        srv.server_close()
    monkeypatch.delenv(server.TOKEN_ENV)
    assert setup_monitoring("127.0.0.1", True, free_port()) == (None, None)  # no token: Jina's stay unserved too


def test_up_metrics_options(tmp_path, monkeypatch):
    from executors.errors import UserError
    from imgsearch.cli.parser import build_parser
    from imgsearch.cli.settings import resolve

    def settings_for(ns):
        return resolve(ns).options

    monkeypatch.delenv(server.TOKEN_ENV, raising=False)
    parse = build_parser().parse_args
    assert settings_for(parse(["up"])).metrics_token is None
    (tmp_path / "t").write_text("abc123\n")
    assert settings_for(parse(["up", "--metrics-token-file", str(tmp_path / "t")])).metrics_token == "abc123"
    with pytest.raises(UserError, match="--metrics needs a read token"):
        settings_for(parse(["up", "--metrics"]))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(UserError, match="is empty"):
        settings_for(parse(["up", "--metrics-token-file", str(tmp_path / "empty")]))
    monkeypatch.setenv(server.TOKEN_ENV, "from-env")
    assert settings_for(parse(["up", "--metrics"])).metrics_token == "from-env"


def test_oversized_request_line_and_garbage(endpoint):
    port = int(endpoint.rsplit(":", 1)[1])
    for payload in (b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n", b"\x00\xff" * 100 + b"\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(payload)
            answer = sock.recv(100)
        assert answer.split(b" ")[1] in (b"400", b"414", b"431"), answer
    assert http_status(endpoint + "/metrics", {"Authorization": f"Bearer {TOKEN}"})[0] == 200  # still serving


def test_gateway_wrappers_chain_in_either_order():
    """Another wrapper of the gateway's handler (the replica count on /info) and ours: both
    run, whichever wraps first."""
    from executors.metrics.gateway import GatewayCounter

    class Handler:
        async def stream(self, request_iterator, context=None):
            async for request in request_iterator:
                yield request

        Call = stream

        async def process_single_data(self, request, context=None):
            return request

        streamer = None

    def other(handler, seen):  # as the lead's gateway wraps: reads stream, sets Call
        stream = handler.stream

        async def annotated(*args, **kwargs):
            async for response in stream(*args, **kwargs):
                seen.append("other")
                yield response

        handler.Call = annotated

    async def one_call(handler):
        async def requests():
            yield _request(2)

        return [r async for r in handler.Call(requests(), None)]

    for ours_first in (True, False):
        handler, seen = Handler(), []
        counter = GatewayCounter()
        before = _sample("imgsearch_requests_total", stage="gateway", endpoint="/index")
        if ours_first:
            counter.install(handler)
            other(handler, seen)
        else:
            other(handler, seen)
            counter.install(handler)
        assert len(asyncio.run(one_call(handler))) == 1
        assert seen == ["other"] and _sample("imgsearch_requests_total", stage="gateway", endpoint="/index") == before + 1
