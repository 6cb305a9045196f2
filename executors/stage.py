"""Stage: what every executor of the flow shares.

- Endpoints a stage has no part in pass through untouched (Jina needs a default handler).
- ``/timings`` reports, per stage process, the busy time of each handler (the union of its
  calls: encoder lanes overlap them), the process's CPU time, peak and current memory and
  open file descriptors, so a benchmark can show where time goes (work in handlers vs.
  gRPC/serialisation around them) and a soak can show memory and descriptors staying flat. ``parameters: {"reset": true}`` zeroes the
  handler counters after reading them.
- The write credential (executors/auth.py) and the documents-per-request cap
  (executors/limits.py) are checked before any handler runs; an empty token stops start-up.
- Prometheus metrics (executors/metrics/worker.py says where each request is counted, and why).
"""

import contextlib
import ctypes
import logging
import os
import resource
import threading
import time
from typing import ClassVar, Iterator, Optional

from docarray import DocList
from jina import Executor, requests

from executors import worker_fixes
from executors.auth import check_token, require_usable_token
from executors.docs import ImageDoc, Reply
from executors.limits import check_request
from executors.metrics import worker as metrics

logger = logging.getLogger(__name__)

worker_fixes.apply()  # in every executor process: an empty batched request is answered, not left hanging


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def process_usage() -> dict:
    """CPU seconds, peak/current RSS (MB) and open descriptors of this process."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    try:
        with open("/proc/self/statm") as f:
            rss_mb = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        rss_mb = None
    try:
        fds: Optional[int] = len(os.listdir("/proc/self/fd"))
    except OSError:
        fds = None
    return {
        "pid": os.getpid(),
        "cpu_seconds": round(ru.ru_utime + ru.ru_stime, 3),
        "peak_rss_mb": peak_rss_mb(),
        "rss_mb": None if rss_mb is None else round(rss_mb, 1),
        "open_fds": fds,
    }


# glibc malloc options (mallopt(3)); values from malloc.h.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -2, -4, -8
_malloc_tuned = False
ENV_MALLOC_TUNING = "IMGSEARCH_MALLOC_TUNING"


def keep_freed_memory(trim_threshold: int = 1 << 30, top_pad: int = 64 << 20) -> bool:
    """Let glibc reuse freed memory instead of handing it back to the kernel at every free.

    Tensors and decoded images are large, so glibc serves each from a fresh ``mmap`` and
    ``munmap``s it when freed: every forward pass then page-faults its activations in again,
    and the kernel's share of the CPU reached 25-50% (EfficientNet-Lite0 on 2 cores ran at
    about half the speed it runs with this). Serving them from the heap and keeping up to
    ``trim_threshold`` of freed memory makes the steady state fault-free; peak memory is
    unchanged (the pages are the working set either way). Once per process; a no-op where
    the C library is not glibc. ``IMGSEARCH_MALLOC_TUNING=0`` leaves glibc's defaults (less
    memory held between batches, slower torch on a CPU; ``app.py bench`` measures both).
    """
    global _malloc_tuned
    if _malloc_tuned:
        return True
    if os.environ.get(ENV_MALLOC_TUNING, "").strip() == "0":
        return False
    _malloc_tuned = _mallopt((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, trim_threshold), (_M_TOP_PAD, top_pad))
    return _malloc_tuned


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """At most ``arenas`` glibc heaps for this process's threads (default: 8 per core).

    gRPC's threads unpack requests and the model's threads free them: with a heap per
    thread, each keeps its own high-water mark. A no-op where the C library is not glibc.
    """
    return _mallopt((_M_ARENA_MAX, arenas))


def _mallopt(*settings: tuple[int, int]) -> bool:
    """glibc's mallopt(3) for each (option, value), in order; False at the first it refuses,
    or where the C library is not glibc."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return all(mallopt(option, value) for option, value in settings)


def _new_timing() -> dict:
    return {"calls": 0, "docs": 0, "seconds": 0.0, "cpu_seconds": 0.0, "active": 0, "since": None, "cpu_since": 0.0}


class Stage(Executor):
    """Base of every flow executor: pass-through default, per-handler timings, /timings."""

    tune_malloc: ClassVar[bool] = True  # keep_freed_memory(); a stage that decides later sets False

    def __init__(self, **kwargs):
        require_usable_token()  # an empty token would leave every endpoint open: refuse to start
        metrics.install()  # before Jina's worker finishes loading us: it serves what we count
        super().__init__(**kwargs)
        self._lock = metrics.StartsWork(self._lock)  # a synchronous handler's work starts once it holds Jina's lock
        if self.tune_malloc:
            keep_freed_memory()
        self._timings: dict[str, dict] = {}
        self._timings_lock = threading.Lock()

    async def __acall__(self, req_endpoint: str, **kwargs):
        # Jina's one entry to every handler (batched or not): the token is checked once, here.
        check_token(req_endpoint, kwargs.get("parameters"))
        check_request(req_endpoint, kwargs.get("docs"))  # as if from a client: see executors/limits.py
        metrics.work_begins(req_endpoint, len(kwargs.get("docs") or ()))
        return await super().__acall__(req_endpoint, **kwargs)

    @contextlib.contextmanager
    def timed(self, handler: str, docs: int) -> Iterator[None]:
        # Busy time is the union of the handler's calls, not their sum: with encoder lanes
        # several run at once, and summing would read above 100% busy. CPU is the process's
        # over that union, not this thread's: a model's compute threads work for it too.
        with self._timings_lock:
            t = self._timings.setdefault(handler, _new_timing())
            if t["active"] == 0:
                t["since"], t["cpu_since"] = time.perf_counter(), time.process_time()
            t["active"] += 1
        try:
            yield
        finally:
            with self._timings_lock:
                t = self._timings.setdefault(handler, _new_timing())
                t["calls"] += 1
                t["docs"] += docs
                t["active"] = max(0, t["active"] - 1)
                if t["active"] == 0 and t["since"] is not None:
                    t["seconds"] += time.perf_counter() - t["since"]
                    t["cpu_seconds"] += time.process_time() - t["cpu_since"]
                    t["since"] = None

    @requests(on="/timings")
    def timings(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None, **kwargs) -> Reply:
        reset = bool((parameters or {}).get("reset"))
        with self._timings_lock:
            now, cpu = time.perf_counter(), time.process_time()
            handlers = {}
            for name, t in list(self._timings.items()):
                running = t["since"] is not None  # calls in flight count up to now
                handlers[name] = {
                    "calls": t["calls"],
                    "docs": t["docs"],
                    "seconds": round(t["seconds"] + (now - t["since"] if running else 0.0), 4),
                    "cpu_seconds": round(t["cpu_seconds"] + (cpu - t["cpu_since"] if running else 0.0), 4),
                }
                if reset:
                    if running:  # its calls go on: counted from now
                        self._timings[name] = {**_new_timing(), "active": t["active"], "since": now, "cpu_since": cpu}
                    else:
                        del self._timings[name]
        return {"stage": type(self).__name__, "handlers": handlers, **process_usage()}

    @requests
    def pass_through(self, docs: DocList[ImageDoc], **kwargs) -> Reply:
        """Endpoints this stage has no part in pass through untouched."""
        return None
