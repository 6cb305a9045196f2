"""Behaviour 1 (first half): SIGKILL `app.py index` partway; the re-run finishes the job.

The run starts its own flow (executors forked from it), so the kill takes the whole flow
down at an arbitrary point: nothing may be left holding the store, and nothing stored twice.
"""

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from faults_helpers import app, app_popen, sha256, wait_for_progress, write_photos

from executors.indexer.store import EdgeStore, StoreInUseError, point_id
from imgsearch.flow import collection_name

pytestmark = [pytest.mark.faults, pytest.mark.flow]


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    if text.encode() in fh.read():
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


def _wait_store_free(store: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            EdgeStore(str(store)).close()
            return
        except StoreInUseError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_sigkill_mid_index_then_rerun_embeds_only_the_rest(tmp_path):
    data = tmp_path / "imgs"
    files = write_photos(data, 160)
    shutil.copy(files[0], data / "same bytes, other name.jpg")  # one duplicate
    unique = {sha256(p) for p in files}
    store = tmp_path / "store"
    name = collection_name("imgs", "efficientnet-lite0")

    # The progress bar counts images the indexer acknowledged as stored: kill once it shows 32.
    run = app_popen("index", "--data", str(data), "--store", str(store), "--batch-size", "16")
    acknowledged = wait_for_progress(run, at_least=32, timeout=240)
    run.kill()  # SIGKILL: no handler, no flush, no goodbye
    run.wait()
    run.stdout.close(), run.stderr.close()

    # Its executors die with it (they were forked with a parent-death signal): no orphan keeps
    # the store locked or keeps running.
    _wait_store_free(store, timeout=30)
    deadline = time.monotonic() + 30
    while _processes_mentioning(str(store)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_mentioning(str(store)) == []
    with EdgeStore(str(store), read_only=True) as st:
        partial = st.count(name)
    # Every acknowledged image kept (the bar counts files: one of them is the duplicate), killed partway.
    assert acknowledged - 1 <= partial < len(unique), (acknowledged, partial)

    rerun = app("index", "--data", str(data), "--store", str(store), "--batch-size", "16", "--json")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    summary = json.loads(rerun.stdout)
    assert summary["already_indexed"] == partial  # what was stored before the kill is kept...
    assert summary["indexed"] == len(unique) - partial  # ...and only the rest is embedded
    assert summary["count"] == len(unique) and summary["skipped"] == []

    with EdgeStore(str(store), read_only=True) as st:
        points = list(st.scroll(name, with_vectors=True))
    assert sorted(p.id for p in points) == sorted(point_id(h) for h in unique)  # each exactly once
    vectors = np.stack([p.vector for p in points])
    assert np.isfinite(vectors).all()
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)  # no zero vector either
    dup = next(p for p in points if p.id == point_id(sha256(files[0])))
    assert set(dup.payload["paths"]) == {str(files[0]), str(data / "same bytes, other name.jpg")}
