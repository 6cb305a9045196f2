"""`app.py index --data s3://...` through the real flow against a real S3 server (moto) on loopback:
killed partway with SIGKILL, then run again.

Checks: every good image stored exactly once, every bad object reported with its reason, and the
rerun fetches nothing that is already stored (GETs counted at the server).
"""

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faults.faults_helpers import wait_for_progress
from s3_server import client, fill_bucket, jpeg, put_many, s3_server

from executors.docs import MAX_IMAGE_BYTES
from executors.indexer.store import EdgeStore, StoreInUseError, point_id
from executors.loader.storage import KNOWN_OBJECTS_ENV
from imgsearch.flow import collection_name

pytestmark = [pytest.mark.slow, pytest.mark.flow]

ROOT = Path(__file__).resolve().parents[1]
N_GOOD = 300
URL = "s3://imgs/set"


def _app(env: dict, *args: str, popen: bool = False):
    cmd = [sys.executable, str(ROOT / "app.py"), *args]
    env = {**os.environ, "IMGSEARCH_START_METHOD": "fork", **env}
    if popen:
        return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)


def _stored(store: Path, name: str, timeout: float = 60) -> dict[str, str]:
    """point id -> uri of every stored point, once the killed run's executors let go of the store."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with EdgeStore(str(store), read_only=True) as st:
                return {str(p.id): p.payload.get("uri") for p in st.scroll(name)} if st.has_collection(name) else {}
        except StoreInUseError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_index_from_s3_killed_then_rerun_stores_each_image_once_and_fetches_nothing_stored(tmp_path):
    with s3_server() as s3:
        cases = fill_bucket(s3, "imgs", "set", n_good=N_GOOD, oversized=MAX_IMAGE_BYTES)
        s3c = client(s3)
        body = {k: s3c.get_object(Bucket="imgs", Key=f"set/{k}")["Body"].read() for k, v in cases.items() if v in ("ok", "truncated")}
        good = {f"{URL}/{k}": hashlib.sha256(body[k]).hexdigest() for k, v in cases.items() if v == "ok"}
        s3.gets.clear()  # count only what the runs fetch
        env = {**s3.env(), KNOWN_OBJECTS_ENV: str(tmp_path / "objects.sqlite")}
        store = tmp_path / "store"
        name = collection_name("set", "efficientnet-lite0")
        args = ("index", "--data", URL, "--store", str(store), "--batch-size", "16")

        run = _app(env, *args, popen=True)
        try:
            wait_for_progress(run, at_least=64, timeout=300)
        finally:
            run.kill()  # SIGKILL: the flow's executors die with it
            run.wait()
            run.stdout.close(), run.stderr.close()
        stored_before = _stored(store, name)
        assert 0 < len(stored_before) < N_GOOD
        first_gets = s3.object_gets("imgs")
        assert first_gets["/imgs/set/label0/huge.jpg"] == 0  # too large by its listed size: never fetched

        rerun = _app(env, *args, "--json")
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        summary = json.loads(rerun.stdout)
        rerun_gets = s3.object_gets("imgs") - first_gets

    # Every good image stored exactly once, under its content hash, named by its URL.
    stored = _stored(store, name)
    assert stored == {point_id(h): uri for uri, h in good.items()}
    assert summary["already_indexed"] == len(stored_before) and summary["indexed"] == N_GOOD - len(stored_before)
    assert summary["count"] == N_GOOD and summary["files_seen"] == N_GOOD + 6

    # Every bad object reported with its reason.
    reasons = {item["path"].removeprefix(URL + "/"): item["reason"] for item in summary["skipped"]}
    bad = {k: v for k, v in cases.items() if v not in ("ok", "ignored")}
    assert set(reasons) == set(bad), reasons
    for key, word in bad.items():
        assert word in reasons[key] or (word == "truncated" and reasons[key]), (key, reasons[key])

    # The rerun fetched nothing already stored: only the images the killed run had not stored (once
    # each, by /index: the scan knew them all) and the truncated JPEG, which is never stored.
    stored_keys = {f"/imgs/{uri.removeprefix('s3://imgs/')}" for uri in stored_before.values()}
    assert not stored_keys & set(rerun_gets), sorted(stored_keys & set(rerun_gets))[:5]
    expected = {f"/imgs/{uri.removeprefix('s3://imgs/')}" for uri in good if point_id(good[uri]) not in stored_before}
    assert dict(rerun_gets) == {**{k: 1 for k in expected}, "/imgs/set/label3/truncated.jpg": 1}


def test_index_through_a_running_gateway_reads_the_bucket_where_the_loader_runs(tmp_path, monkeypatch):
    """The cluster path: `app.py index --host … --data s3://…`; the client holds no credentials, the loader does."""
    from imgsearch.flow import local_flow

    with s3_server(monkeypatch) as s3:
        cases = fill_bucket(s3, "remote", "photos", n_good=20)
        monkeypatch.setenv(KNOWN_OBJECTS_ENV, str(tmp_path / "objects.sqlite"))
        with local_flow("efficientnet-lite0", store=str(tmp_path / "store")) as host:
            bare = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            run = subprocess.run(
                [sys.executable, str(ROOT / "app.py"), "index", "--host", host, "--data", "s3://remote/photos", "--json"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=300,
                env={**bare, "IMGSEARCH_START_METHOD": "fork"},
            )
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout)
    assert summary["data"] == "s3://remote/photos" and summary["collection"] == collection_name("photos", "efficientnet-lite0")
    assert summary["indexed"] == summary["count"] == 20
    assert {s["path"].removeprefix("s3://remote/photos/") for s in summary["skipped"]} == {k for k, v in cases.items() if v not in ("ok", "ignored")}


def test_a_bucket_of_several_listing_pages_is_indexed_once_with_in_flight_sized_for_the_replicas(tmp_path, monkeypatch):
    """2,100 objects: three ListObjectsV2 pages of 1,000 at the loader, scanned in client pages of 700
    that straddle them; 300 distinct images, each under 7 keys that fall on different pages. Every
    image stored exactly once with all 7 of its paths, a second run stores nothing; and the /index
    requests kept in flight follow the encoder replicas /info reports (4 here, as a gateway would say)."""
    import dataclasses

    from executors.indexer.executor import stored_paths
    from imgsearch import indexing
    from imgsearch.flow import Gateway, local_flow

    n, distinct = 2100, 300
    monkeypatch.setattr(indexing, "SCAN_PAGE", 700)
    with s3_server(monkeypatch) as s3:
        base = jpeg(7)
        bulk = {f"set/part{i % 3}/img_{i:05d}.jpg": base + (i % distinct).to_bytes(4, "big") for i in range(n)}  # trailing bytes: a hash of its own
        client(s3).create_bucket(Bucket="paged")
        put_many(s3, "paged", bulk)
        want: dict[str, set[str]] = {}
        for key, body in bulk.items():
            want.setdefault(point_id(hashlib.sha256(body).hexdigest()), set()).add(f"s3://paged/{key}")
        monkeypatch.setenv(KNOWN_OBJECTS_ENV, str(tmp_path / "objects.sqlite"))
        store = tmp_path / "store"
        with local_flow("efficientnet-lite0", store=str(store)) as host:
            gw = Gateway(host)
            info = dataclasses.replace(indexing.encoder_info(gw), replicas=4)
            in_flight: list[int] = []
            post = gw.post

            def spy(endpoint, *args, **kwargs):
                if endpoint == "/index":
                    in_flight.append(kwargs["prefetch"])
                return post(endpoint, *args, **kwargs)

            monkeypatch.setattr(gw, "post", spy)
            first = indexing.run_index(gw, "s3://paged/set", info, batch_size=32, progress=False)
            again = indexing.run_index(gw, "s3://paged/set", info, batch_size=32, progress=False)
        lists = s3.lists["/paged"]
    assert first.files_seen == n and not first.skipped and len(first.duplicates) == n - distinct
    assert first.indexed == first.count == distinct and first.paths_added == distinct
    assert again.indexed == 0 and again.already_indexed == distinct and again.count == distinct and again.paths_added == 0
    assert lists == 2 * 3  # each run listed the bucket once, in three pages
    with EdgeStore(str(store), read_only=True) as st:
        got = {str(p.id): set(stored_paths(p.payload)) for p in st.scroll(collection_name("set", "efficientnet-lite0"))}
    assert got == want  # each image once, under every key that holds it
    assert in_flight and set(in_flight) == {indexing.index_prefetch(info)} == {first.in_flight}
    assert first.in_flight > indexing.index_prefetch(dataclasses.replace(info, replicas=1)) and first.encoder_replicas == 4
