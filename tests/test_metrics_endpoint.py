"""The metrics endpoint of every process of a real local flow (docs/metrics.md).

One flow (EfficientNet-Lite0, its packaged weights) indexes real photos and answers searches
and a bad request; then each executor's and the gateway's own /metrics is read with the token
and checked against what was sent. A second flow without a token must not listen at all.
"""

import math
import socket
import time

import pytest
from http_status import http_status

from executors.docs import ImageDoc
from imgsearch.flow import Gateway
from imgsearch.flow.local import FlowConfig, local_flow_handle
from imgsearch.indexing import encoder_info, run_index
from imgsearch.metrics_scrape import ScrapeError, metrics_addresses, scrape, value
from imgsearch.searching import run_search

pytestmark = pytest.mark.flow

TOKEN = "metrics-test-token"
STAGES = ("loader", "normalizer", "encoder", "indexer")
BATCH = 4


@pytest.fixture(scope="module")
def served(tmp_path_factory, photo_dir):
    """The flow's metrics after indexing the photos, two searches and one bad search."""
    store = tmp_path_factory.mktemp("metrics-store")
    images = sorted(photo_dir.rglob("*.jpg"))
    config = FlowConfig("efficientnet-lite0", store=str(store), metrics_token=TOKEN)
    with local_flow_handle(config) as (flow, host):
        urls = metrics_addresses(flow)
        gw = Gateway(host)
        info = encoder_info(gw)
        summary = run_index(gw, photo_dir, info, batch_size=BATCH, progress=False)
        for query in images[:2]:
            run_search(gw, summary.collection, info, image=query, top_k=3)
        with pytest.raises(Exception, match="top_k"):  # the indexer refuses it: an error answered
            gw.post("/search", [ImageDoc(hash=summary_hash(images[0]))], {"collection": summary.collection, "top_k": 0})
        samples = {name: _settled(url) for name, (url,) in urls.items()}
        refused = {
            (name, str(h)): http_status(url, h)
            for name, (url,) in urls.items()
            for h in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN})
        }
        yield {"samples": samples, "urls": urls, "summary": summary, "images": images, "refused": refused, "host": host, "info": info}


def summary_hash(path):
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _settled(url: str, limit_s: float = 10.0) -> dict:
    """The samples once nothing is in flight (a response leaves a moment before it is counted)."""
    deadline = time.monotonic() + limit_s
    while True:
        samples = scrape(url, TOKEN)
        if value(samples, "imgsearch_inflight_requests") == 0 or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


def test_every_process_serves_its_own_stage(served):
    assert set(served["urls"]) == {*STAGES, "gateway"}
    ports = [url for (url,) in served["urls"].values()]
    assert len(set(ports)) == len(ports) and all(u.startswith("http://127.0.0.1:") for u in ports)  # loopback
    for name, samples in served["samples"].items():
        stages = {dict(labels)["stage"] for (n, labels) in samples if n.startswith("imgsearch_") and "stage" in dict(labels)}
        assert stages == {name}, name


def test_index_requests_images_and_batch_sizes(served):
    n, gateway = len(served["images"]), served["samples"]["gateway"]
    sent = value(gateway, "imgsearch_requests_total", endpoint="/index")
    assert sent >= math.ceil(n / BATCH)
    assert value(gateway, "imgsearch_batch_size_sum", endpoint="/index") == n == served["summary"].indexed
    for name, samples in served["samples"].items():
        # Every /index request passes every stage once, each with the documents the client sent.
        assert value(samples, "imgsearch_requests_total", endpoint="/index") == sent, name
        assert value(samples, "imgsearch_batch_size_count", endpoint="/index") == sent, name
        assert value(samples, "imgsearch_batch_size_sum", endpoint="/index") == n, name
        assert value(samples, "imgsearch_batch_size_bucket", endpoint="/index", le=str(float(BATCH))) == sent, name
        assert value(samples, "imgsearch_images_total") == n, name


def test_searches_errors_latency_and_idle(served):
    for name, samples in served["samples"].items():
        searched = value(samples, "imgsearch_requests_total", endpoint="/search")
        errors = value(samples, "imgsearch_request_errors_total", endpoint="/search")
        # Two searches and the bad one reach every stage; only the indexer (and so the gateway) fails it.
        assert searched == 3, name
        assert errors == (1 if name in ("indexer", "gateway") else 0), name
        assert value(samples, "imgsearch_request_errors_total") == errors, name
        # One latency observation per answered request, per endpoint.
        for (sample, labels), count in samples.items():
            if sample == "imgsearch_requests_total":
                assert value(samples, "imgsearch_request_seconds_count", **dict(labels)) == count, (name, labels)
        assert value(samples, "imgsearch_request_seconds_sum") > 0
        assert value(samples, "imgsearch_inflight_requests") == 0, name
        # Every request reached its handler (the bad one fails inside the indexer's), so each has a queue time.
        assert value(samples, "imgsearch_queue_seconds_count") == value(samples, "imgsearch_requests_total"), name


def test_without_the_token_nothing_but_401(served):
    for name, status_body in served["refused"].items():
        assert status_body == (401, b""), name
    url = served["urls"]["gateway"][0]
    with pytest.raises(ScrapeError) as err:
        scrape(url, "wrong")
    assert err.value.status == 401


def test_no_token_no_listener(tmp_path, photo_dir):
    config = FlowConfig("efficientnet-lite0", store=str(tmp_path / "store"))
    with local_flow_handle(config) as (flow, host):
        Gateway(host).call("/info")
        urls = [url for urls in metrics_addresses(flow).values() for url in urls]
        assert len(urls) == 5
        for url in urls:
            port = int(url.rsplit(":", 1)[1].split("/")[0])
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_inflight_rises_while_requests_wait(served):
    """One client streams 48 one-image searches with 8 in flight: requests wait (for the
    gateway's prefetch slots, the normalizer's lock, the encoder), the gauges show them while
    they do, and fall back to 0 after."""
    import threading

    urls = {name: url for name, (url,) in served["urls"].items()}
    query = served["images"][0]
    docs = [ImageDoc(uri=str(query), blob=query.read_bytes()) for _ in range(48)]
    params = {"collection": served["summary"].collection, "top_k": 3}
    done, results = threading.Event(), []

    def client():
        try:
            results.append(Gateway(served["host"]).post("/search", docs, params, request_size=1, prefetch=8))
        except Exception as exc:  # reported below, not lost in the thread
            results.append(exc)
        done.set()

    thread = threading.Thread(target=client)
    thread.start()
    peak = dict.fromkeys(urls, 0.0)
    while not done.is_set():
        for name, url in urls.items():
            peak[name] = max(peak[name], value(scrape(url, TOKEN), "imgsearch_inflight_requests"))
    thread.join()
    assert len(results) == 1 and not isinstance(results[0], Exception) and len(results[0]) == 48, results
    print("peak in flight:", peak)
    assert peak["gateway"] >= 2, peak
    assert max(peak[s] for s in STAGES) >= 2, peak  # some stage had requests waiting
    assert all(value(_settled(url), "imgsearch_inflight_requests") == 0 for url in urls.values())


def test_each_replica_serves_its_own(tmp_path):
    """Three loader replicas behind one gateway: metrics_addresses lists each replica's own
    endpoint, and their counts add up to what the gateway answered (the balancing tests read
    the spread this way)."""
    from jina import Flow

    from executors.metrics.server import HOST_ENV, TOKEN_ENV
    from imgsearch.flowfile import REPO
    from imgsearch.ports import use_listening_range
    from imgsearch.processes import prepare_start_method

    use_listening_range()
    prepare_start_method("efficientnet-lite0")  # as local flows start: never fork from a process that ran torch
    env = {TOKEN_ENV: TOKEN, HOST_ENV: "127.0.0.1"}
    flow = (
        Flow(host="127.0.0.1")
        .config_gateway(uses=str(REPO / "executors/gateway/config.yml"), env=env)
        .add(name="loader", uses=str(REPO / "executors/loader/config.yml"), replicas=3, host="127.0.0.1", env=env)
    )
    with flow:
        urls = metrics_addresses(flow)
        assert len(urls["loader"]) == 3 and len(set(urls["loader"])) == 3
        gw = Gateway(f"grpc://127.0.0.1:{flow.port}")
        for _ in range(30):
            gw.call("/info")
        counts = [value(_settled(url), "imgsearch_requests_total", endpoint="/info") for url in urls["loader"]]
        answered = value(_settled(urls["gateway"][0]), "imgsearch_requests_total", endpoint="/info")
    assert sum(counts) == answered >= 30 and all(c > 0 for c in counts), counts
