"""The gateway's replica lookups (executors/gateway/replicas.py), against a real DNS server on
loopback and Jina's own connection pool, without starting any executor."""

import asyncio
import json
import logging

import pytest
from dns_server import DnsServer

from executors.gateway import replicas
from executors.gateway.replicas import ReplicaWatcher, Target, expand, lookup, parse_target

NAME = "encoder-clip.imgsearch.svc"


@pytest.mark.parametrize(
    "address, want",
    [
        ("encoder-clip.imgsearch.svc:8080", Target("", "encoder-clip.imgsearch.svc", 8080)),
        ("grpc://encoder-clip:8080", Target("grpc", "encoder-clip", 8080)),
        ("grpcs://10.0.0.7:8080", Target("grpcs", "10.0.0.7", 8080)),
        ("grpc://[fd00::7]:8080", Target("grpc", "fd00::7", 8080)),
        ("grpc://encoder-clip", None),
        ("dns://10.0.0.1/encoder:8080", None),
    ],
)
def test_parse_target(address, want):
    assert parse_target(address) == want


def test_addresses_keep_their_scheme_and_bracket_ipv6():
    target = Target("grpcs", "encoder", 8080)
    assert target.address("10.1.2.3") == "grpcs://10.1.2.3:8080"
    assert target.address("fd00::7") == "grpcs://[fd00::7]:8080"
    assert not Target("", "10.1.2.3", 1).is_name and Target("", "encoder", 1).is_name


def test_expand_replaces_names_by_every_address_and_keeps_the_rest():
    with DnsServer() as dns:
        dns.set(NAME, ["10.0.0.3", "10.0.0.2"])
        server = _server(dns)
        given = {"encoder": [f"grpc://{NAME}:8080"], "loader": ["grpc://127.0.0.1:5000"], "indexer": {"grpc": [f"{NAME}:9"]}}
        out, named = expand(json.dumps(given), server)
    got = json.loads(out)
    assert got["encoder"] == ["grpc://10.0.0.2:8080", "grpc://10.0.0.3:8080"]
    assert got["loader"] == ["grpc://127.0.0.1:5000"]  # an IP is one replica, not looked up
    assert got["indexer"] == {"grpc": ["10.0.0.2:9", "10.0.0.3:9"]}
    assert set(named) == {"encoder", "indexer"}


def test_a_name_that_does_not_resolve_yet_is_kept_not_dropped(caplog):
    with DnsServer() as dns:
        server = _server(dns)
        with caplog.at_level(logging.WARNING):
            out, named = expand(json.dumps({"encoder": [f"grpc://{NAME}:8080"]}), server)
    assert json.loads(out) == {"encoder": [f"grpc://{NAME}:8080"]}
    assert named == {"encoder": [Target("grpc", NAME, 8080)]}
    assert "does not resolve yet" in caplog.text


def test_a_dns_server_that_does_not_answer_is_an_oserror():
    import socket

    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))  # bound, never answers
    try:
        with pytest.raises(OSError, match="did not answer"):
            lookup(Target("", NAME, 1), ("127.0.0.1", silent.getsockname()[1]))
    finally:
        silent.close()


def test_too_many_addresses_for_one_name_is_refused():
    with DnsServer() as dns:
        dns.set(NAME, [f"10.0.{i // 250}.{i % 250 + 1}" for i in range(replicas.MAX_REPLICAS + 1)])
        with pytest.raises(OSError, match="more than"):
            lookup(Target("", NAME, 1), _server(dns))


def test_the_watcher_follows_the_name_in_jinas_connection_pool(monkeypatch):
    """Jina's GrpcConnectionPool (channels connect lazily: nothing listens here) gains the new
    replica, loses the gone one, and keeps all it has while the lookup fails or finds none."""
    from jina.logging.logger import JinaLogger
    from jina.serve.networking import GrpcConnectionPool

    async def scenario() -> list[set[str]]:
        pool = GrpcConnectionPool(runtime_name="test", logger=JinaLogger("test"))
        seen = []
        with DnsServer() as dns:
            dns.set(NAME, ["10.0.0.2", "10.0.0.3"])
            out, named = expand(json.dumps({"encoder": [f"{NAME}:8080"]}), _server(dns))
            for address in json.loads(out)["encoder"]:
                pool.add_connection(deployment="encoder", address=address, head=True)
            watcher = ReplicaWatcher(pool, named, json.loads(out), _server(dns))

            def addresses() -> set[str]:
                replica_list = pool._connections.get_replicas("encoder", head=True)
                return set(replica_list._address_to_connection_idx)

            seen.append(addresses())
            dns.set(NAME, ["10.0.0.3", "10.0.0.4"])
            await watcher.refresh()
            seen.append(addresses())
            dns.set(NAME, [])  # no ready pod for a moment
            await watcher.refresh()
            seen.append(addresses())
            assert watcher.replicas() == {"encoder": 2}
        await watcher.refresh()  # the DNS server is gone: the lookup fails
        seen.append(addresses())
        await pool.close()
        return seen

    first, changed, empty, failed = asyncio.run(scenario())
    assert first == {"10.0.0.2:8080", "10.0.0.3:8080"}
    assert changed == {"10.0.0.3:8080", "10.0.0.4:8080"}
    assert empty == changed and failed == changed


def _server(dns: DnsServer) -> tuple[str, int]:
    host, _, port = dns.address.rpartition(":")
    return host, int(port)
