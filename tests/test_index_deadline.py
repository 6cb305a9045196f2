"""The index deadline is per request, not per page: a stage that stops answering mid-run fails
`run_index` within one request's deadline (imgsearch/stall.py), however many requests remain."""

import os
import signal
import time

import pytest

from imgsearch import indexing
from imgsearch.stall import Stalled, run_guarded


def test_guard_passes_results_errors_and_flags_silence():
    assert run_guarded(lambda beat: [beat() for _ in range(3)] and "ok", 1.0) == "ok"
    with pytest.raises(KeyError):
        run_guarded(lambda beat: {}["missing"], 1.0)

    def slow_after_one(beat):
        beat()
        time.sleep(5)

    started = time.monotonic()
    with pytest.raises(Stalled):
        run_guarded(slow_after_one, 0.5)
    assert time.monotonic() - started < 3


@pytest.mark.flow
@pytest.mark.slow
def test_a_stuck_indexer_fails_the_run_within_one_request_deadline(tmp_path, photo_dir, monkeypatch):
    from imgsearch.flow import FlowError, Gateway, local_flow

    files = len(list(photo_dir.rglob("*.jpg")))
    assert files >= 6
    monkeypatch.setattr(indexing, "INDEX_REQUEST_TIMEOUT_S", 5.0)
    with local_flow("efficientnet-lite0", store=str(tmp_path / "store")) as host:
        gw = Gateway(host)
        info = indexing.encoder_info(gw)
        stages = {v["stage"]: int(v["pid"]) for v in gw.call_each("/timings").values()}
        indexer = stages["QdrantIndexer"]
        record, stopped = indexing._record, []

        def stop_after_first(docs, summary, bar):  # the indexer hangs once one request is answered
            record(docs, summary, bar)
            if not stopped:
                os.kill(indexer, signal.SIGSTOP)
                stopped.append(time.monotonic())

        monkeypatch.setattr(indexing, "_record", stop_after_first)
        try:
            with pytest.raises(FlowError, match="deadline of one request"):
                indexing.run_index(gw, photo_dir, info, batch_size=1, progress=False)
            elapsed = time.monotonic() - stopped[0]
        finally:
            os.kill(indexer, signal.SIGCONT)
    # Per page it would have been 5 s x one request per image.
    assert elapsed < 5.0 + 4, elapsed
