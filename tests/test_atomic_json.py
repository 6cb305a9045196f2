"""The one atomic JSON writer: whole files only, no temporary left behind, the umask's mode."""

import json
import os
import threading

import pytest

from executors.atomic_json import write_json_atomic


def test_concurrent_writers_leave_one_whole_file_and_no_temporaries(tmp_path):
    path = tmp_path / "meta.json"
    blobs = [{"writer": i, "payload": "x" * 200_000} for i in range(8)]
    seen: list[dict] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                seen.append(json.loads(path.read_text()))  # never half a file
            except FileNotFoundError:
                pass

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write_json_atomic, args=(path, b), kwargs={"durable": i % 2 == 0}) for i, b in enumerate(blobs)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    reader.join()
    assert json.loads(path.read_text()) in blobs
    assert all(s in blobs for s in seen)
    assert os.listdir(tmp_path) == ["meta.json"]
    assert (path.stat().st_mode & 0o777) == 0o666 & ~_umask()


def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary(tmp_path):
    path = tmp_path / "plan.json"
    write_json_atomic(path, {"v": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"v": object()})  # not JSON: fails mid-write
    assert json.loads(path.read_text()) == {"v": 1}
    assert os.listdir(tmp_path) == ["plan.json"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
