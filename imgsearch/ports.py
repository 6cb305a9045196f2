"""Ports for local flows, drawn outside the kernel's range for outgoing connections.

Jina reserves every executor's port when the flow is built (bind, check, release) and the
executor binds it seconds later, once its model is loaded. Jina draws from 49153-65535, which
on Linux overlaps the ephemeral range (32768-60999) that every outgoing TCP connection takes
its local port from; a connection made in between (a readiness probe, a client) can hold the
port and the executor fails to start with "bind: Address already in use". A fresh-clone CI
run hit exactly that. Ports outside the ephemeral range are never handed out that way.
"""

import logging
import os
import threading
from pathlib import Path

logger = logging.getLogger(__name__)

EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
# Jina's own floor when it runs short of ports; below it lie many services' well-known ports.
FLOOR = 16384
TOP = 65535
ENV_MIN, ENV_MAX = "JINA_RANDOM_PORT_MIN", "JINA_RANDOM_PORT_MAX"

_lock = threading.Lock()
_applied = False


def ephemeral_range(path: Path = EPHEMERAL_RANGE_FILE) -> tuple[int, int] | None:
    """The kernel's (low, high) for outgoing connections' local ports; None where unknown."""
    try:
        low, high = (int(x) for x in path.read_text().split())
    except (OSError, ValueError):
        return None
    return (low, high) if 0 < low <= high <= TOP else None


def listening_range(ephemeral: tuple[int, int] | None) -> tuple[int, int] | None:
    """The larger stretch of [FLOOR, TOP] outside ``ephemeral``; None to keep Jina's default."""
    if ephemeral is None:
        return None
    low, high = ephemeral
    below = (FLOOR, low - 1)
    above = (high + 1, TOP)
    best = max((below, above), key=lambda r: r[1] - r[0])
    return best if best[1] - best[0] >= 1000 else None


def use_listening_range() -> None:
    """Point Jina's port draws (and ``free_port``) at ``listening_range``, once per process.

    A range the user set in JINA_RANDOM_PORT_MIN/MAX is kept."""
    global _applied
    with _lock:
        if _applied:
            return
        _applied = True
        if ENV_MIN in os.environ or ENV_MAX in os.environ:
            return
        span = listening_range(ephemeral_range())
        if span is None:
            return
        os.environ[ENV_MIN], os.environ[ENV_MAX] = str(span[0]), str(span[1])
        from jina import helper

        # Jina fills its shuffled list of ports on its first draw (empty: refilled from the
        # environment on the next); keep only what lies in the range of one drawn before this.
        helper.unassigned_ports[:] = [p for p in helper.unassigned_ports if span[0] <= p <= span[1]]
        logger.debug("local flows listen on ports %d-%d (outside the ephemeral range)", *span)


def free_port() -> int:
    """A port free now, from the listening range, that this process's Jina will not draw again."""
    use_listening_range()
    from jina.helper import random_port

    return random_port()
