"""A Jina 3.34 hang worked around in every executor process: an empty request to an endpoint
with dynamic batching (the encoder's ``/search``) is never answered.

``BatchQueue.push`` files a request under its documents; one with none is in no batch, so its
queue is never completed and the request waits until the client's deadline, holding a
coroutine and a stream in the executor all that time: anyone who can reach the gateway could
pile them up with empty ``/search`` calls. Here such a request is answered at once, empty, as
an endpoint without batching answers it. Upstream, ``BatchQueue.push`` should complete a
request with no documents immediately.

:func:`apply` follows the project's policy for patches (executors/patches.py); the Stage base
(executors/stage.py) applies it when an executor's module is imported.
"""

import asyncio
import functools
import inspect
import logging
from typing import Any

import jina

from executors.patches import should_apply

logger = logging.getLogger(__name__)

WRITTEN_FOR = ("3.34.",)


def _batch_queue() -> Any:
    from jina.serve.runtimes.worker.batch_queue import BatchQueue

    return BatchQueue


def internals_changed() -> list[str]:
    push: Any = getattr(_batch_queue(), "push", None)
    try:
        source = inspect.getsource(getattr(push, "__wrapped__", push)) if push else ""
    except (OSError, TypeError):
        source = ""
    if not (inspect.iscoroutinefunction(push) and "asyncio.Queue()" in source and "self._requests_completed.append(queue)" in source):
        return ["BatchQueue.push no longer returns the asyncio.Queue a request's completion is put on"]
    return []


def answer_empty_requests_at_once() -> None:
    queue_class = _batch_queue()
    original = queue_class.push
    if hasattr(original, "__wrapped__"):
        return

    @functools.wraps(original)  # sets __wrapped__: applied once
    async def push(self: Any, request: Any, http: bool = False) -> asyncio.Queue:
        if len(request.docs) == 0:
            done: asyncio.Queue = asyncio.Queue()
            done.put_nowait(None)  # what the batch puts when a request's documents are done
            return done
        return await original(self, request, http=http)

    queue_class.push = push


def apply() -> bool:
    if not should_apply("jina", WRITTEN_FOR, internals_changed, version=getattr(jina, "__version__", None)):
        return False
    answer_empty_requests_at_once()
    return True
