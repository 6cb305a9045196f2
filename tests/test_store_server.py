"""ServerStore fit for a server: cluster layout at creation, cached existence, numpy vectors,
retries on transient errors within a deadline. Against qdrant-client's local mode (the real
engine in process; no Qdrant server binary here)."""

from unittest import mock

import grpc
import numpy as np
import pytest
from qdrant_client import QdrantClient

from executors.indexer.store import ServerStore
from executors.indexer.store.server import ClusterLayout, api_key_from_env, is_transient, with_retries


class Unavailable(grpc.RpcError):
    def code(self):
        return grpc.StatusCode.UNAVAILABLE


class Denied(grpc.RpcError):
    def code(self):
        return grpc.StatusCode.PERMISSION_DENIED


def _ids(n: int) -> list[str]:
    return [f"{i:032x}" for i in range(1, n + 1)]


def test_layout_is_passed_at_creation_and_recorded(monkeypatch):
    monkeypatch.setenv("QDRANT_SHARD_NUMBER", "6")
    monkeypatch.setenv("QDRANT_REPLICATION_FACTOR", "2")
    monkeypatch.setenv("QDRANT_WRITE_CONSISTENCY_FACTOR", "2")
    client = QdrantClient(":memory:")
    store = ServerStore(client=client)
    with mock.patch.object(client, "create_collection", wraps=client.create_collection) as create:
        store.ensure_collection("photos--m", 8, {"model": "m"})
        store.ensure_collection("photos--m", 8, {"model": "m"})  # exists: not created again
    assert create.call_count == 1
    kwargs = create.call_args.kwargs
    assert (kwargs["shard_number"], kwargs["replication_factor"], kwargs["write_consistency_factor"]) == (6, 2, 2)
    meta = store.collection_meta("photos--m")
    assert meta["shard_number"] == 6 and meta["replication_factor"] == 2 and meta["write_consistency_factor"] == 2
    assert meta["model"] == "m"


def test_bad_layout_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("QDRANT_REPLICATION_FACTOR", "0")
    with pytest.raises(ValueError, match="QDRANT_REPLICATION_FACTOR must be >= 1"):
        ClusterLayout.from_env()


def test_existence_is_asked_once_and_vectors_travel_as_numpy():
    client = QdrantClient(":memory:")
    store = ServerStore(client=client, layout=ClusterLayout())
    store.ensure_collection("photos--m", 4, {"model": "m"})
    rng = np.random.default_rng(0)
    with (
        mock.patch.object(client, "collection_exists", wraps=client.collection_exists) as exists,
        mock.patch.object(client, "upload_collection", wraps=client.upload_collection) as upsert,
    ):
        for start in range(0, 30, 10):
            ids = _ids(30)[start : start + 10]
            store.upsert("photos--m", ids, rng.random((10, 4), dtype=np.float32), [{"uri": i} for i in ids])
            store.search_batch("photos--m", rng.random((2, 4), dtype=np.float32), 3)
        assert exists.call_count == 0  # known since it was created here
        sent = upsert.call_args.kwargs
        assert isinstance(sent["vectors"], np.ndarray) and sent["vectors"].dtype == np.float32
        assert sent["wait"] is True and upsert.call_count == 3
    assert store.count("photos--m") == 30
    store.drop_collection("photos--m")
    assert not store.has_collection("photos--m")  # a drop forgets it


def test_transient_errors_are_retried_then_the_write_lands():
    client = QdrantClient(":memory:")
    store = ServerStore(client=client, layout=ClusterLayout(), retry_deadline_s=10)
    store.ensure_collection("photos--m", 4, {"model": "m"})
    real_upsert, failures = client.upload_collection, [Unavailable(), Unavailable()]

    def flaky(*args, **kwargs):
        if failures:
            raise failures.pop()
        return real_upsert(*args, **kwargs)

    with mock.patch.object(client, "upload_collection", side_effect=flaky), mock.patch("time.sleep") as slept:
        store.upsert("photos--m", _ids(3), np.ones((3, 4), np.float32), [{}, {}, {}])
    assert not failures and slept.call_count == 2 and store.count("photos--m") == 3
    waits = [c.args[0] for c in slept.call_args_list]
    assert waits[1] > waits[0]  # backoff


def test_retries_stop_at_the_deadline_and_permanent_errors_are_not_retried():
    clock = [0.0]
    calls = []

    def always_down():
        calls.append(1)
        raise Unavailable()

    def sleep(seconds):
        clock[0] += seconds

    with mock.patch("time.monotonic", lambda: clock[0]), pytest.raises(Unavailable):
        with_retries(always_down, "upsert", deadline_s=3.0, sleep=sleep)
    assert clock[0] <= 3.0 and len(calls) >= 3

    calls.clear()
    with pytest.raises(Denied):
        with_retries(lambda: calls.append(1) or (_ for _ in ()).throw(Denied()), "upsert", sleep=sleep)
    assert len(calls) == 1
    assert is_transient(ConnectionResetError()) and not is_transient(ValueError("bad vector"))


def test_readers_use_the_read_only_key_where_one_is_set(monkeypatch):
    monkeypatch.setenv("QDRANT_API_KEY", "write-key")
    monkeypatch.delenv("QDRANT_READ_ONLY_API_KEY", raising=False)
    assert api_key_from_env(read_only=True) == api_key_from_env(read_only=False) == "write-key"
    monkeypatch.setenv("QDRANT_READ_ONLY_API_KEY", "read-key")
    assert api_key_from_env(read_only=True) == "read-key"  # compare and stats only read
    assert api_key_from_env(read_only=False) == "write-key"  # the indexer writes
    monkeypatch.setenv("QDRANT_API_KEY", "")
    monkeypatch.setenv("QDRANT_READ_ONLY_API_KEY", "")
    assert api_key_from_env(read_only=True) is None  # empty means none, not an empty key
