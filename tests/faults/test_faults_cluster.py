"""Faults against a running deployment: the committed k8s/ pods replayed as local processes
(tests/k8s_replay.py), so each executor is a process we can SIGKILL, SIGSTOP and restart
while the gateway lives on. Two encoder replicas; the loader runs without the capabilities
its container drops (so a mode-000 file is unreadable to it, as on the cluster).

Each test uses its own collection (dataset), so they do not lean on each other's data.
"""

import json
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from corpus import DANGLING, DUPLICATES, FIFO, OK, SKIP, SYMLINK_LOOP, UNREADABLE, make_corpus
from faults_helpers import SOAK_SECONDS, app, app_popen, proc_usage, sha256, shared_dir, tiny_clip, write_photos  # noqa: F401  (fixtures)
from k8s_replay import Replay

from executors.docs import ImageDoc
from executors.indexer.store import EdgeStore, point_id
from imgsearch import searching
from imgsearch.flow import ExecutorUnreachable, FlowError, Gateway, collection_name
from imgsearch.indexing import encoder_info, run_index
from imgsearch.searching import QueryError, run_search

pytestmark = [pytest.mark.faults, pytest.mark.flow]

ENCODER = "encoder-clip"


@pytest.fixture(scope="module")
def cluster(shared_dir, tiny_clip):
    store = shared_dir / "store"
    replay = Replay(
        "clip", dict(QDRANT_URL="", IMGSEARCH_STORE=str(store), CLIP_MODEL=str(tiny_clip)), replicas={ENCODER: 2}, drop_capabilities=("loader",)
    )
    replay.store = store
    try:
        replay.start_all()
        yield replay
    finally:
        replay.stop_all()


@pytest.fixture(scope="module")
def gw(cluster):
    return Gateway(cluster.host)


@pytest.fixture(scope="module")
def info(gw):
    return encoder_info(gw)


def _cli(cluster, tiny_clip, *args):
    return ("--host", cluster.host, "--encoder", "clip", "--model", str(tiny_clip), *args)


def _alive(cluster) -> None:
    dead = {k: p.returncode for k, p in cluster.procs.items() if p.poll() is not None}
    assert not dead, f"processes died: {dead}"


# --------------------------------------------------------------------------- 5. hostile input


def test_hostile_corpus_every_bad_file_reported_every_good_one_indexed_once(cluster, tiny_clip, gw, shared_dir):
    data = shared_dir / "hostile"
    cases = make_corpus(data, special=True)
    run = app("index", *_cli(cluster, tiny_clip, "--data", str(data), "--json"))
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout)

    reasons = {Path(s["path"]).relative_to(data).as_posix(): s["reason"] for s in summary["skipped"]}
    assert set(reasons) == {rel for rel, want in cases.items() if want == SKIP}
    assert all(reasons.values())
    assert "Permission denied" in reasons[UNREADABLE]  # the loader has no CAP_DAC_OVERRIDE, as in its pod
    assert all("symbolic links" in reasons[rel] for rel in SYMLINK_LOOP)
    assert "No such file" in reasons[DANGLING] and "not a regular file" in reasons[FIFO]

    unique = {sha256(data / rel) for rel, want in cases.items() if want == OK}
    assert summary["indexed"] == len(unique) == summary["count"]  # nothing good lost, nothing twice
    dup_hash = sha256(data / DUPLICATES[0])
    found = gw.post("/search", [ImageDoc(hash=dup_hash)], {"collection": summary["collection"], "top_k": 1})
    assert found[0].matches[0]["hash"] == dup_hash
    assert set(found[0].matches[0]["paths"]) == {str(data / rel) for rel in DUPLICATES}  # indexed once, all paths

    third = data / "dups" / "a third name.jpg"
    shutil.copy(data / DUPLICATES[0], third)
    rerun = app("index", *_cli(cluster, tiny_clip, "--data", str(data), "--json"))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    again = json.loads(rerun.stdout)
    assert again["indexed"] == 0 and again["count"] == len(unique) and again["paths_added"] == 1
    found = gw.post("/search", [ImageDoc(hash=dup_hash)], {"collection": summary["collection"], "top_k": 1})
    assert set(found[0].matches[0]["paths"]) == {str(data / rel) for rel in DUPLICATES} | {str(third)}


# --------------------------------------------------------------------------- 6a. a second writer


def test_second_writer_on_the_same_store_gets_in_use_and_changes_nothing(cluster, gw, shared_dir):
    data = shared_dir / "second"
    write_photos(data, 4, seed=500)
    before = gw.call("/stats")["collections"]
    run = app("index", "--data", str(data), "--store", str(cluster.store), "--json")
    assert run.returncode == 2 and "is in use by another process" in run.stderr, run.stderr[-2000:]
    assert gw.call("/stats")["collections"] == before
    _alive(cluster)


# --------------------------------------------------------------------------- 1b + 2. indexer killed


def test_indexer_killed_mid_index_then_rerun_and_acknowledged_writes_survive_kill9(cluster, tiny_clip, gw, shared_dir):
    data = shared_dir / "many"
    files = write_photos(data, 400, seed=1000)
    unique = {sha256(p) for p in files}
    name = collection_name("many", str(tiny_clip))
    run = app_popen("index", *_cli(cluster, tiny_clip, "--data", str(data), "--batch-size", "8", "--json"))
    deadline = time.monotonic() + 120
    while gw.call("/count", {"collection": name})["count"] < 8:
        assert run.poll() is None, run.stderr.read()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    cluster.kill("indexer")  # SIGKILL mid-index
    out, err = run.communicate(timeout=120)
    assert run.returncode == 1, err[-3000:]
    assert "executor 'indexer' is down" in json.loads(out)["error"]  # names the executor that died
    assert cluster.procs[(cluster.gateway, 0)].poll() is None  # the gateway lives on

    cluster.restart("indexer")  # replays its WAL
    partial = gw.call("/count", {"collection": name})["count"]
    assert 0 < partial < len(unique), partial
    rerun = app("index", *_cli(cluster, tiny_clip, "--data", str(data), "--batch-size", "8", "--json"))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    summary = json.loads(rerun.stdout)
    assert summary["already_indexed"] == partial and summary["indexed"] == len(unique) - partial
    assert summary["count"] == len(unique)

    # 2. `index` reported N stored: kill -9 the indexer (no flush, no close) and look.
    cluster.kill("indexer")
    with EdgeStore(str(cluster.store), read_only=True) as st:
        points = list(st.scroll(name, with_vectors=True))
    assert sorted(p.id for p in points) == sorted(point_id(h) for h in unique)
    vectors = np.stack([p.vector for p in points])
    assert np.isfinite(vectors).all() and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    cluster.restart("indexer")
    assert gw.call("/count", {"collection": name})["count"] == len(unique)


# --------------------------------------------------------------------------- 3. encoder killed


@pytest.fixture(scope="module")
def searchable(cluster, gw, info, shared_dir):
    """A small indexed collection and its files."""
    data = shared_dir / "searchable"
    files = write_photos(data, 24, seed=2000)
    summary = run_index(gw, data, info, batch_size=8, progress=False)
    assert summary.count == len(files)
    return summary.collection, files


def test_encoder_replica_killed_under_load_loses_no_request_then_all_dead_fails_fast(cluster, gw, info, searchable):
    collection, files = searchable
    blobs = [f.read_bytes() for f in files[:8]]
    errors: list[str] = []
    done = [0]
    stop = threading.Event()

    def client(k: int) -> None:
        mine = Gateway(cluster.host)
        while not stop.is_set():
            try:  # no client-side retry: only the gateway's failover may save the request
                got = mine.post("/search", [ImageDoc(blob=blobs[k % len(blobs)])], {"collection": collection, "top_k": 3}, timeout=30)
                assert got[0].error is None and len(got[0].matches) == 3, got[0].error
                done[0] += 1
            except Exception as exc:  # noqa: BLE001 - every failure counts
                errors.append(repr(exc))
            k += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    time.sleep(2)
    before = done[0]
    cluster.kill(ENCODER, 0)  # SIGKILL one replica while requests are in flight
    time.sleep(4)
    stop.set()
    for t in threads:
        t.join(60)
    assert errors == [] and done[0] > before > 0, (errors[:3], before, done[0])

    # Every replica dead: the next search fails fast, within its deadline, naming the executor.
    cluster.kill(ENCODER, 1)
    gateway_pid = cluster.pid(cluster.gateway)
    started = time.monotonic()
    with pytest.raises(ExecutorUnreachable) as err:
        run_search(gw, collection, info, image=files[0], top_k=3)
    elapsed = time.monotonic() - started
    assert err.value.executor == "encoder" and "executor 'encoder' is down" in str(err.value)
    assert elapsed < searching.SEARCH_TIMEOUT_S, elapsed

    # Restart it: searches work again through the same gateway process.
    cluster.restart(ENCODER, 0)
    result = run_search(gw, collection, info, image=files[0], top_k=3)
    assert result.matches[0]["path"] == str(files[0])
    assert cluster.pid(cluster.gateway) == gateway_pid and cluster.procs[(cluster.gateway, 0)].poll() is None
    cluster.restart(ENCODER, 1)
    print(f"\nencoder failover: {done[0]} searches across the replica kill, 0 errors; all replicas dead -> error after {elapsed:.2f}s")


# --------------------------------------------------------------------------- 4. deadlines and limits


def test_oversized_request_is_refused_clearly_and_executors_stay_up(cluster, tiny_clip, gw, info, searchable, shared_dir):
    collection, files = searchable
    big = shared_dir / "big.png"
    big.write_bytes(files[0].read_bytes() + np.random.default_rng(0).bytes(50 * 2**20))  # a 50 MB "image"

    run = app("search", *_cli(cluster, tiny_clip, "--image", str(big), "--collection", collection, "--json"))
    assert run.returncode == 2 and "too large" in run.stderr and "Traceback" not in run.stderr, run.stderr[-2000:]
    with pytest.raises(QueryError, match="too large"):
        run_search(gw, collection, info, image=big)

    # A client that skips the check: the loader refuses the bytes, the request still completes.
    got = gw.post("/search", [ImageDoc(uri="big.png", blob=big.read_bytes())], {"collection": collection}, timeout=60)
    assert "too large" in got[0].error and not got[0].matches
    _alive(cluster)
    assert run_search(gw, collection, info, image=files[1], top_k=1).matches[0]["path"] == str(files[1])


def test_a_hung_executor_costs_the_caller_its_deadline_not_forever(cluster, gw, info, searchable, monkeypatch):
    collection, files = searchable
    monkeypatch.setattr(searching, "SEARCH_TIMEOUT_S", 3.0)
    pid = cluster.pid("indexer")
    cluster.procs[("indexer", 0)].send_signal(signal.SIGSTOP)  # alive, connected, never answers
    try:
        started = time.monotonic()
        with pytest.raises(FlowError, match="deadline"):
            run_search(gw, collection, info, image=files[0])
        elapsed = time.monotonic() - started
    finally:
        cluster.procs[("indexer", 0)].send_signal(signal.SIGCONT)
    assert elapsed < 3.0 + 5, elapsed
    assert cluster.pid("indexer") == pid
    assert run_search(gw, collection, info, image=files[0], top_k=1).matches[0]["path"] == str(files[0])


# --------------------------------------------------------------------------- 6b. concurrent clients


def test_eight_concurrent_clients_200_queries_each_zero_errors(cluster, searchable):
    collection, files = searchable
    hashes = [sha256(f) for f in files]
    blobs = [f.read_bytes() for f in files]
    errors: list[str] = []
    served = [0]

    def client(k: int) -> None:
        gw = Gateway(cluster.host)
        for q in range(200):
            i = (k * 200 + q) % len(files)
            # Mostly "more like this" by stored hash; every 10th query is an image sent as bytes.
            doc = ImageDoc(blob=blobs[i]) if q % 10 == 0 else ImageDoc(hash=hashes[i])
            try:
                got = gw.post("/search", [doc], {"collection": collection, "top_k": 5}, timeout=30)
                best = got[0].matches[0]
                if got[0].error or best["hash"] != hashes[i]:
                    errors.append(f"client {k} query {q}: {got[0].error or best}")
                served[0] += 1
            except Exception as exc:  # noqa: BLE001
                errors.append(f"client {k} query {q}: {exc!r}")

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    elapsed = time.monotonic() - started
    assert errors == [] and served[0] == 1600, errors[:5]
    print(f"\n8 clients x 200 queries: {served[0]} served, 0 errors, {elapsed:.1f}s ({served[0] / elapsed:.0f} queries/s)")


# --------------------------------------------------------------------------- 7. soak


def test_soak_mixed_index_and_search_memory_and_fds_flat(cluster, gw, info, shared_dir):
    data = shared_dir / "soak"
    write_photos(data, 8, seed=10_000)
    collection = run_index(gw, data, info, batch_size=8, progress=False).collection
    query = sorted(data.rglob("*.jpg"))[0]

    def cycle(i: int) -> None:
        write_photos(data / f"round{i}", 4, seed=20_000 + 4 * i)
        summary = run_index(gw, data, info, batch_size=8, progress=False)
        assert summary.indexed == 4 and summary.skipped == [], summary
        for _ in range(10):
            assert run_search(gw, collection, info, image=query, top_k=5).matches[0]["path"] == str(query)
        for _ in range(20):
            gw.post("/search", [ImageDoc(hash=sha256(query))], {"collection": collection, "top_k": 5}, timeout=30)

    for i in range(3):  # warm-up: first-time allocations, caches, gRPC channels
        cycle(i)
    pids = {f"{stage}[{r}]": p.pid for (stage, r), p in cluster.procs.items()}
    before = {k: proc_usage(pid) for k, pid in pids.items()}
    started, rounds = time.monotonic(), 3
    while time.monotonic() - started < SOAK_SECONDS:
        cycle(rounds)
        rounds += 1
    after = {k: proc_usage(pid) for k, pid in pids.items()}
    report = {k: (before[k][0] // 1024, after[k][0] // 1024, before[k][1], after[k][1]) for k in pids}
    print(
        f"\nsoak {time.monotonic() - started:.0f}s, {rounds - 3} rounds (4 images indexed + 30 searches each); "
        "process: RSS MB before->after, fds before->after"
    )
    for k, (m0, m1, f0, f1) in report.items():
        print(f"  {k:<16} {m0:>5} -> {m1:>5} MB   {f0:>3} -> {f1:>3} fds")
    for k, (m0, m1, f0, f1) in report.items():
        assert f1 - f0 <= 8, (k, f0, f1)  # no descriptor leak
        assert m1 - m0 <= max(64, m0 * 0.15), (k, m0, m1)  # flat, allowing allocator noise
    assert gw.call("/count", {"collection": collection})["count"] == 8 + 4 * rounds
