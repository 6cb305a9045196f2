"""A deadline per response rather than per call: a streamed call that stops making progress fails.

A streamed /index call sends thousands of requests; a deadline for the whole call that grows
with them lets a stuck stage hang the caller for hours. Here the call runs in a worker thread
and fails as soon as ``idle_s`` pass with no response; the whole-call deadline stays as a cap.
"""

import threading
from typing import Callable, Optional, TypeVar

T = TypeVar("T")


class Stalled(TimeoutError):
    """No response within the per-request deadline."""


def run_guarded(call: Callable[[Callable[[], None]], T], idle_s: Optional[float]) -> T:
    """``call(progress)``; ``progress()`` must be called on each response. Raise Stalled when
    ``idle_s`` pass without one (the worker thread is a daemon: its gRPC call ends at its own
    deadline, and never holds the process open). ``idle_s`` None: just ``call``, here."""
    if idle_s is None:
        return call(lambda: None)
    beat = threading.Event()
    done = threading.Event()
    box: dict[str, object] = {}

    def worker() -> None:
        try:
            box["result"] = call(beat.set)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = exc
        finally:
            done.set()
            beat.set()

    threading.Thread(target=worker, name="guarded-call", daemon=True).start()
    while not done.is_set():
        if not beat.wait(idle_s):
            raise Stalled(f"no response for {idle_s:.0f} s")
        beat.clear()
    error: Optional[BaseException] = box.get("error")  # type: ignore[assignment]
    if error is not None:
        raise error
    return box["result"]  # type: ignore[return-value]
