"""Issue 27's findings, each as a probe through a real gateway over loopback (the server holds a
token; the attacker does not, or holds it and asks for what it may not have). Every probe
failed on the main branch before the read paths were closed."""

import http.server
import threading

import numpy as np
import pytest

from executors.docs import ImageDoc
from tests.security.attack_helpers import TOKEN, answers, leaked, peaks, png, secured_flow

pytestmark = [pytest.mark.flow, pytest.mark.slow]

NEVER_READS = "never reads a path or URL"


@pytest.fixture(scope="module")
def target(tmp_path_factory, photo_dir):
    with secured_flow(tmp_path_factory.mktemp("attack"), photo_dir) as t:
        yield t


@pytest.fixture(scope="module")
def anon(target):
    from imgsearch.flow import Gateway

    return Gateway(target.host, token="")


@pytest.fixture(scope="module")
def good(target):
    from imgsearch.flow import Gateway

    return Gateway(target.host, token=TOKEN)


def search(gw, target, docs, target_executor=None, **params):
    return gw.post("/search", docs, {"collection": target.collection, "top_k": 3, **params}, target=target_executor)


@pytest.mark.parametrize("target_executor", [None, "loader", "normalizer"])
def test_a_search_never_reads_a_server_file(target, anon, target_executor):
    """Finding 1: a query's uri was read from the server's disk (byte-identical with
    target_executor=loader), and its error told a text file from a missing one."""
    got = {}
    for name, uri in (("secret", str(target.secret)), ("passwd", "/etc/passwd"), ("missing", "/no/such/file.png")):
        doc = search(anon, target, [ImageDoc(uri=uri)], target_executor)[0]
        assert not leaked(target.secret_bytes, *answers([doc]))
        assert doc.blob is None and doc.tensor is None and not doc.matches
        got[name] = doc.error
    if target_executor != "normalizer":  # which does nothing at all with a path in a search
        assert all(NEVER_READS in (e or "") for e in got.values()), got
    assert len(set(got.values())) == 1, got  # the same answer whatever the path: nothing to probe with


def test_a_search_never_fetches_a_url(target, anon):
    """Finding 1: an http:// uri made the loader fetch it (server-side request forgery)."""
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(target.secret_bytes)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for t in (None, "loader"):
            doc = search(anon, target, [ImageDoc(uri=f"http://127.0.0.1:{server.server_port}/latest/meta-data")], t)[0]
            assert NEVER_READS in (doc.error or "")
    finally:
        server.shutdown()
    assert hits == []


def test_index_reads_only_under_the_named_folder(target, good):
    """A uri is read by /index alone, with the token, and only under the folder it names."""
    before = int(good.call("/count", {"collection": target.collection})["count"])
    params = {"collection": target.collection, "data": str(target.data), "encoder_name": target.info.encoder, "dataset": "x"}
    escape = str(target.data / ".." / "private" / "secret.png")
    for t in (None, "loader", "normalizer"):
        # Straight to the normalizer, as the loader passes a file by path (its send_paths).
        state = {"file_state": f"{len(target.secret_bytes)}:0"} if t == "normalizer" else {}
        docs = good.post("/index", [ImageDoc(uri=str(target.secret), **state), ImageDoc(uri=escape, **state)], params, target=t)
        assert all("not under the indexed folder" in (d.error or "") for d in docs), [d.error for d in docs]
        assert not leaked(target.secret_bytes, *answers(docs))
    assert int(good.call("/count", {"collection": target.collection})["count"]) == before


def test_fit_cannot_set_a_stages_memory(target, anon):
    """Finding 2: a 74-byte 1×10 PNG with fit shortest_edge 4096 became a 480 MiB tensor."""
    strip = png(1, 10)
    assert len(strip) < 200
    before = peaks(anon)
    for t in (None, "normalizer"):
        doc = search(anon, target, [ImageDoc(blob=strip)], t, fit={"shortest_edge": 4096})[0]
        assert doc.tensor is None and "pixels, over the limit" in (doc.error or ""), doc.error
    grown = {k: peaks(anon)[k] - v for k, v in before.items()}
    assert max(grown.values()) < 100, grown  # MB; the strip alone would have cost 480


def test_the_encoder_checks_what_skips_the_normalizer(target, anon):
    """Finding 3: target_executor=encoder handed it bytes and pixels no stage had checked."""
    strip = np.zeros((1, 5000, 3), np.uint8)  # the model's resize would make it 224×1,120,000
    floats = np.zeros((8, 8, 3), np.float32)
    docs = search(anon, target, [ImageDoc(tensor=strip), ImageDoc(tensor=floats), ImageDoc(blob=png(1, 10))], "encoder")
    assert "elongated" in (docs[0].error or ""), docs[0].error
    assert "uint8" in (docs[1].error or ""), docs[1].error
    assert "not a plain JPEG" in (docs[2].error or ""), docs[2].error
    assert all(d.embedding is None for d in docs)


def test_top_k_and_documents_per_request_are_capped(target, anon):
    """Finding 4 (first half): top_k was unbounded; so was the number of documents."""
    from imgsearch.flow import FlowError

    count = int(anon.call("/count", {"collection": target.collection})["count"])
    with pytest.raises(FlowError, match="top_k must be between 1 and 1000"):
        search(anon, target, [ImageDoc(text="x")], top_k=10**6)
    with pytest.raises(FlowError, match="documents in one request"):
        anon.post("/search", [ImageDoc(hash="0" * 64)] * 2100, {"collection": target.collection, "top_k": 1}, request_size=2100)
    assert int(anon.call("/count", {"collection": target.collection})["count"]) == count


def test_paths_come_back_only_to_token_holders(target, anon, good):
    """Finding 4: /count then /search top_k=count listed what /stored_paths guards."""
    photo = next(target.data.glob("*/*.jpg")).read_bytes()
    count = int(anon.call("/count", {"collection": target.collection})["count"])
    for params in ({}, {"with_paths": True}, {"with_paths": True, "token": "wrong"}):
        matches = search(anon, target, [ImageDoc(blob=photo)], top_k=count, **params)[0].matches
        assert len(matches) == count
        assert all("uri" not in m and "paths" not in m for m in matches), matches[0]
        assert not any(str(target.data) in str(m) for m in matches)
        assert all(m.get("hash") and m.get("label") for m in matches)  # what a search is for stays
    matches = search(good, target, [ImageDoc(blob=photo)], top_k=count, with_paths=True)[0].matches
    assert all(str(target.data) in m["uri"] and m["paths"] for m in matches)
    # The token holder asking for no paths sends no token, and gets none.
    assert all("uri" not in m for m in search(good, target, [ImageDoc(blob=photo)])[0].matches)


def test_sixteen_bit_images_are_not_copied_as_float64(target, anon):
    """Finding 2 (second half): a 16-bit PNG was copied as float64 (+258 MB for 3000²).
    Measured in this process (numpy reports its buffers to tracemalloc), then searched."""
    import tracemalloc

    from executors.normalizer.decode import decode_image

    big = png(2000, 2000, "I;16", seed=3)
    tracemalloc.start()
    try:
        pixels, _, _ = decode_image(big, max_side=1024)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    assert pixels.dtype == np.uint8 and pixels.shape == (1024, 1024, 3)
    # uint16 8 MB + uint8 4 MB + its RGB 12 MB; the float64 copy alone was 32 MB more.
    assert peak < 36, peak
    doc = search(anon, target, [ImageDoc(blob=big)])[0]
    assert doc.error is None and doc.matches, doc.error


def test_an_empty_search_is_answered_at_once(target, anon):
    """The fuzz pass found it: a /search with no documents waited in the encoder's dynamic
    batching until the client's 60 s deadline, a coroutine and a stream held per request
    (executors/worker_fixes.py). Now it is answered, empty, like any endpoint without batching."""
    for to in (None, "encoder"):
        assert list(anon.post("/search", [], {"collection": target.collection}, target=to, timeout=10)) == []


# --------------------------------------------------------------------------- the fuzz pass

# 25 in the suite; IMGSEARCH_FUZZ_EXAMPLES=300 for a long pass.
FUZZ_EXAMPLES = int(__import__("os").environ.get("IMGSEARCH_FUZZ_EXAMPLES", "25"))
FUZZ_GROWTH_MB = 300  # what any stage's peak memory may grow by over the whole pass


def _fuzz_strategies(target):
    from hypothesis import strategies as st

    uris = st.sampled_from(
        [
            str(target.secret),
            "/etc/passwd",
            "/dev/zero",
            str(target.data / ".." / "private"),
            "http://127.0.0.1:9/x.png",
            "s3://bucket/key.jpg",
            "file:///etc/passwd",
        ]
    )
    tensors = st.builds(
        lambda h, w, c, dt: np.zeros((h, w, c), dt),
        st.integers(0, 48),
        st.integers(0, 48),
        st.sampled_from([1, 3, 4]),
        st.sampled_from([np.uint8, np.float32, np.int64]),
    )
    docs = st.one_of(
        st.builds(lambda t: ImageDoc(text=t), st.text(max_size=200)),
        st.builds(lambda h: ImageDoc(hash=h), st.one_of(st.text(max_size=70), st.from_regex(r"[0-9a-f]{64}", fullmatch=True))),
        st.builds(lambda b: ImageDoc(blob=b), st.binary(max_size=2048)),
        st.builds(lambda w, h, s: ImageDoc(blob=png(w, h, seed=s)), st.integers(1, 40), st.integers(1, 40), st.integers(0, 9)),
        st.builds(lambda u, s: ImageDoc(uri=u, file_state=s), uris, st.one_of(st.none(), st.just("1:1"))),
        st.builds(lambda t: ImageDoc(tensor=t), tensors),
    )
    numbers = st.one_of(st.integers(-10, 10**9), st.floats(allow_nan=True), st.text(max_size=8), st.none())
    fit = st.one_of(
        st.none(),
        st.text(max_size=10),
        st.fixed_dictionaries({}, optional={"shortest_edge": numbers, "width": numbers, "height": numbers, "resample": numbers}),
    )
    params = st.fixed_dictionaries(
        {"collection": st.one_of(st.just(target.collection), st.text(max_size=20))},
        optional={
            "top_k": numbers,
            "fit": fit,
            "keep_jpeg": st.one_of(st.booleans(), st.text(max_size=4)),
            "exclude_self": st.booleans(),
            "with_paths": st.booleans(),
            "score_threshold": numbers,
            "data": uris,
            "token": st.text(max_size=12),
        },
    )
    return (
        st.lists(docs, min_size=0, max_size=6),
        params,
        st.sampled_from([None, "loader", "normalizer", "encoder", "indexer"]),
        st.sampled_from(["/search", "/index", "/count", "/stats"]),
    )


def test_fuzz_the_gateways_request_parameters(target, anon):
    """Random documents, parameters and targets, without the token: no crash (the chain answers
    after every one), no file content outside the index in any answer, bounded memory."""
    from hypothesis import HealthCheck, given, settings

    from imgsearch.flow import FlowError

    docs_s, params_s, target_s, endpoint_s = _fuzz_strategies(target)
    before = peaks(anon)

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(docs=docs_s, params=params_s, to=target_s, endpoint=endpoint_s)
    def one(docs, params, to, endpoint):
        try:
            got = anon.post(endpoint, docs, params, target=to, timeout=60)
        except FlowError as exc:
            assert not leaked(target.secret_bytes, str(exc))
            return
        assert not leaked(target.secret_bytes, *answers(got))
        assert not any(str(target.data) in str(d.matches or "") for d in got)  # no paths without the token

    one()
    assert anon.encoder_info().encoder  # every stage still up
    grown = {k: round(peaks(anon)[k] - v, 1) for k, v in before.items()}
    print(f"fuzz: {FUZZ_EXAMPLES} requests; peak memory growth per stage (MB): {grown}")
    assert max(grown.values()) < FUZZ_GROWTH_MB, grown
