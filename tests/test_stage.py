"""What every executor shares (executors/stage.py): glibc keeps freed memory for reuse."""

import json
import os
import subprocess
import sys

from imgsearch.flow import REPO

# Allocate, touch and free a 64 MiB buffer (the size of a large activation) over and over,
# counting the page faults, before and after the tuning; in a fresh process, as the tuning
# is for the whole process and cannot be undone.
PROBE = """
import ctypes, json, resource
from executors.stage import keep_freed_memory

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]

def faults_per_cycle(cycles=8):
    # malloc itself, as torch's CPU allocator does (numpy would ask for huge pages)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(cycles):
        buf = libc.malloc(64 << 20)
        ctypes.memset(buf, 1, 64 << 20)  # touch every page
        libc.free(buf)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / cycles

default = faults_per_cycle()
tuned = keep_freed_memory()
faults_per_cycle(1)  # the first cycle after the tuning grows the heap once
print(json.dumps({"default": default, "tuned": tuned, "after": faults_per_cycle()}))
"""


def test_freed_tensors_are_reused_instead_of_faulted_in_again():
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["tuned"] is True  # glibc: this test's machine and the images' base
    pages = (64 << 20) // 4096
    assert got["default"] > pages * 0.9  # glibc's default: every cycle maps fresh pages
    assert got["after"] < pages * 0.05  # kept: the pages are reused, not faulted in again


def test_the_tuning_can_be_switched_off():
    # IMGSEARCH_MALLOC_TUNING=0: glibc's defaults stay (the bench's torch-plain baseline).
    env = {**os.environ, "IMGSEARCH_MALLOC_TUNING": "0"}
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    pages = (64 << 20) // 4096
    assert got["tuned"] is False and got["after"] > pages * 0.9


ARENAS_PROBE = """
import ctypes, json, sys, threading
from executors.stage import limit_malloc_arenas

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.fopen.restype = ctypes.c_void_p
limited = limit_malloc_arenas(2) if sys.argv[1] == "limited" else None
barrier = threading.Barrier(8)

def work():
    barrier.wait()  # all at once, so that each thread contends for a heap
    for _ in range(2000):
        libc.malloc(4096)

threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
fp = libc.fopen(sys.argv[2].encode(), b"w")
libc.malloc_info(0, ctypes.c_void_p(fp))
libc.fclose(ctypes.c_void_p(fp))
print(json.dumps({"limited": limited, "heaps": open(sys.argv[2]).read().count("<heap nr=")}))
"""


def test_the_encoder_threads_share_at_most_two_heaps(tmp_path):
    got = {}
    for mode in ("default", "limited"):
        proc = subprocess.run(
            [sys.executable, "-c", ARENAS_PROBE, mode, str(tmp_path / f"{mode}.xml")], cwd=REPO, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        got[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["limited"]["limited"] is True and got["limited"]["heaps"] <= 2
    assert got["default"]["heaps"] > 2  # glibc's default: a heap per contending thread


def test_timings_count_overlapping_calls_once():
    """With encoder lanes a handler runs several calls at once: its busy time is their
    union (two 0.3 s calls side by side are ~0.3 s busy, not 0.6 s), calls in flight count
    up to the reading, and a reset while one runs counts it on from the reset."""
    import threading
    import time

    from docarray import DocList

    from executors.docs import ImageDoc
    from executors.stage import Stage

    stage = Stage()
    barrier = threading.Barrier(2)

    def call():
        with stage.timed("encode", 4):
            barrier.wait()
            time.sleep(0.3)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    read = stage.timings(DocList[ImageDoc]())["handlers"]["encode"]
    assert (read["calls"], read["docs"]) == (2, 8)
    assert 0.3 <= read["seconds"] < 0.5, read  # the sum would be >= 0.6

    release = threading.Event()

    def long_call():
        with stage.timed("encode", 1):
            release.wait(5)

    runner = threading.Thread(target=long_call)
    runner.start()
    time.sleep(0.2)
    mid = stage.timings(DocList[ImageDoc](), parameters={"reset": True})["handlers"]["encode"]
    assert mid["calls"] == 2 and mid["seconds"] >= read["seconds"] + 0.15  # in flight: counted up to now
    time.sleep(0.2)
    release.set()
    runner.join()
    after = stage.timings(DocList[ImageDoc]())["handlers"]["encode"]
    assert after["calls"] == 1 and 0.15 <= after["seconds"] < 0.6, after  # from the reset on
