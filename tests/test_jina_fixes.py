"""The Jina workarounds app.py applies before forking its flow (imgsearch/jina_fixes.py)."""

import asyncio
import time

import pytest

from imgsearch import jina_fixes


@pytest.mark.parametrize("waking", [True, False], ids=["jina-stream-counter", "plain-counter"])
def test_gateway_waits_for_a_prefetch_slot_without_spinning(waking):
    import jina.serve.stream
    from jina.serve.stream.helper import AsyncRequestsIterator, _RequestsCounter

    jina_fixes.gateway_waits_without_spinning()
    # The counter Jina's request streamer makes is the waking one; any other is polled.
    counter = jina.serve.stream._RequestsCounter() if waking else _RequestsCounter()
    counter.count = 4  # every slot taken: the next request must wait
    iterator = AsyncRequestsIterator(iter(["req-1"]), request_counter=counter, prefetch=4,
                                     iterate_sync_in_thread=False)

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
    if waking:  # woken by the freed slot itself, not by polling
        assert isinstance(counter, jina_fixes._WakingCounter) and counter._freed.is_set()
    assert iterator._prefetch == 4


def test_load_config_skips_the_parser_build_when_nothing_is_unknown(monkeypatch):
    import jina.helper
    import jina_cli.lookup

    jina_fixes.skip_empty_unknown_arg_warning()
    built = []
    monkeypatch.setattr(jina_cli.lookup, "_build_lookup_table", lambda: built.append(1) or ({}, {}))
    jina.helper.warn_unknown_args(set())
    assert built == []
