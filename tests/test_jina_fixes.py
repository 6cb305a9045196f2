"""The Jina workarounds (executors/gateway/jina_fixes.py) and the gateway class that applies them."""

import asyncio
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import jina.helper
import jina.serve.stream
import jina_cli.lookup
import pytest
from jina.serve.runtimes.servers.grpc import GRPCServer
from jina.serve.stream.helper import AsyncRequestsIterator

from executors import patches, worker_fixes
from executors.gateway import jina_fixes
from imgsearch.flow import free_port

REPO = Path(__file__).resolve().parent.parent
JINA = Path(sys.executable).parent / "jina"


def test_gateway_waits_for_a_prefetch_slot_without_spinning():
    jina_fixes.apply()
    counter = jina.serve.stream._RequestsCounter()  # what Jina's request streamer makes per stream
    counter.count = 4  # every slot taken: the next request must wait
    iterator = AsyncRequestsIterator(iter(["req-1"]), request_counter=counter, prefetch=4, iterate_sync_in_thread=False)

    async def main() -> tuple[str, float, float]:
        async def free_a_slot_later() -> None:
            await asyncio.sleep(0.3)
            counter.count = 3

        asyncio.get_running_loop().create_task(free_a_slot_later())
        wall, cpu = time.perf_counter(), time.process_time()
        request = await iterator.__anext__()
        return request, time.perf_counter() - wall, time.process_time() - cpu

    request, waited, cpu = asyncio.run(main())
    assert request == "req-1"
    assert waited >= 0.29  # it did wait for the slot...
    assert cpu < 0.15  # ...without burning a core meanwhile (the original spin: ~0.3 s of CPU)
    assert isinstance(counter, jina_fixes._WakingCounter) and counter._freed.is_set()  # woken, not polled
    assert iterator._prefetch == 4


def test_load_config_skips_the_parser_build_when_nothing_is_unknown(monkeypatch):
    jina_fixes.apply()
    built = []
    monkeypatch.setattr(jina_cli.lookup, "_build_lookup_table", lambda: built.append(1) or ({}, {}))
    jina.helper.warn_unknown_args(set())
    assert built == []
    assert hasattr(jina.helper.warn_unknown_args, "__wrapped__")


async def _anext_without_prefetch(self):  # a Jina whose iterator no longer has the spin
    return await self.iterator.__anext__()


def _init_without_prefetch(self, iterator, request_counter=None):
    self.iterator = iterator


async def _setup_without_endpoints(self):
    self.server = None


def test_executor_addresses_read_every_form_jina_hands_the_gateway():
    raw = (
        '{"loader": ["127.0.0.1:5001"], "encoder": ["grpc://10.0.0.7:5002", "10.0.0.8:5002"],'
        ' "indexer": {"grpc": ["indexer.svc:8080"], "http": ["indexer.svc:80"]}, "x": ["[::1]:5003"]}'
    )
    assert jina_fixes.executor_addresses(raw) == [("127.0.0.1", 5001), ("10.0.0.7", 5002), ("10.0.0.8", 5002), ("indexer.svc", 8080), ("::1", 5003)]
    assert jina_fixes.executor_addresses("{}") == []


def test_the_gateway_asks_for_endpoints_once_a_late_executor_listens():
    """An executor that binds its port a moment after the gateway starts is waited for (a
    few polls), not found missing, which would cost gRPC's 1 s reconnect backoff."""
    import socket

    port = free_port()
    server = socket.socket()

    async def main() -> tuple[list, float]:
        async def listen_later() -> None:
            await asyncio.sleep(0.3)
            server.bind(("127.0.0.1", port))
            server.listen()

        started = time.perf_counter()
        late = asyncio.create_task(listen_later())
        silent = await jina_fixes.wait_listening([("127.0.0.1", port)], limit_s=5.0)
        await late
        return silent, time.perf_counter() - started

    try:
        silent, waited = asyncio.run(main())
    finally:
        server.close()
    assert silent == [] and waited >= 0.3  # waited for it, and found it listening
    # and one that never listens is given up on at the limit, for Jina's own retries
    start = time.perf_counter()
    assert asyncio.run(jina_fixes.wait_listening([("127.0.0.1", free_port())], limit_s=0.2)) != []
    assert time.perf_counter() - start < 2.0


def test_the_pinned_jina_has_the_internals_the_patches_expect():
    """The "internals changed" check lives here: a lock update that moves them fails CI."""
    assert jina_fixes.internals_changed() == []
    assert jina.__version__.startswith(jina_fixes.WRITTEN_FOR) and jina_fixes.apply() is True
    assert worker_fixes.internals_changed() == [] and worker_fixes.apply() is True


@pytest.mark.parametrize(
    "change, said",
    [
        (lambda mp: mp.delattr(jina.serve.stream, "_RequestsCounter"), "_RequestsCounter is gone"),
        (lambda mp: mp.setattr(AsyncRequestsIterator, "__anext__", _anext_without_prefetch), "no longer waits"),
        (lambda mp: mp.setattr(AsyncRequestsIterator, "__init__", _init_without_prefetch), "not request_counter and prefetch"),
        (lambda mp: mp.setattr(jina.helper, "warn_unknown_args", lambda: None), "warn_unknown_args"),
        (lambda mp: mp.setattr(GRPCServer, "setup_server", _setup_without_endpoints), "endpoints"),
        (lambda mp: mp.setattr(jina, "__version__", "3.35.0"), "written for jina 3.34.x"),
    ],
    ids=["counter-gone", "iterator-changed", "signature-changed", "warn-changed", "setup-changed", "other-version"],
)
def test_a_changed_jina_keeps_its_own_behaviour_with_one_warning(monkeypatch, caplog, change, said):
    monkeypatch.setattr(patches, "_warned", set())
    change(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="executors.patches"):
        assert jina_fixes.apply() is False
        assert jina_fixes.apply() is False
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and said in warnings[0] and "own behaviour" in warnings[0]


@pytest.mark.slow
def test_the_gateway_image_entrypoint_serves_on_a_changed_jina(tmp_path):
    """`jina gateway --uses executors/gateway/config.yml` (the gateway image's ENTRYPOINT) on a
    Jina whose internals changed: it serves with Jina's own behaviour, saying why, rather than
    refuse to start over an optimisation."""
    (tmp_path / "sitecustomize.py").write_text("import jina\njina.__version__ = '3.35.0'\n")  # a Jina it was not written for
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    port = free_port()
    proc = subprocess.Popen(
        [
            str(JINA),
            "gateway",
            "--uses",
            "executors/gateway/config.yml",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--graph-description",
            '{"start-gateway": []}',
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        assert proc.poll() is None  # serving
    finally:
        proc.terminate()
        out = proc.communicate(timeout=60)[0]
    assert "jina 3.35.0: imgsearch's patches are not applied (written for jina 3.34.x)" in out
