"""How a local flow's executor processes start: forked with their imports, and never outliving us."""

import ctypes
import importlib
import logging
import multiprocessing
import os
import signal
from multiprocessing import forkserver
from typing import Iterable, Optional

from executors.encoders.specs import SPECS, get_spec

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


EXECUTOR_MODULES = ("executors.loader", "executors.normalizer", "executors.indexer")
# The fork server holds every family's imports, so no encoder makes it start again.
FORKSERVER_PRELOAD = sorted({*EXECUTOR_MODULES, *(spec.module for spec in SPECS.values())})


def prepare_start_method(encoder: str, per_flow: Iterable[str] = ()) -> None:
    """Fork by default: executor processes then inherit the imports (torch, transformers,
    jina) instead of paying for them again, which cuts flow start-up several-fold. A forked
    child of a process that has already run torch compute can deadlock in OpenMP, so such
    processes (the test-suite embeds in process) set IMGSEARCH_START_METHOD to forkserver
    (children fork from a clean server holding the imports) or spawn (a fresh interpreter
    each: several seconds more per flow on two cores).

    ``per_flow``: variables the caller sets for each flow but hands its executors as
    arguments, so a fork server started under other values of them still serves.
    """
    method = os.environ.get("IMGSEARCH_START_METHOD", "fork")
    if method == "forkserver" and not _forkserver_serves(set(per_flow)):
        method = "spawn"
    multiprocessing.set_start_method(method, force=True)
    if method == "fork":
        _forked_children_die_with_us()
        for module in (*EXECUTOR_MODULES, get_spec(encoder).module):
            importlib.import_module(module)


# Variables that change all the time and that no executor reads: Jina's byte counters and
# pytest's current test name.
_VOLATILE = {"JINA_GRPC_RECV_BYTES", "JINA_GRPC_SEND_BYTES", "PYTEST_CURRENT_TEST"}
_forkserver_env: Optional[dict[str, str]] = None


def _forkserver_serves(per_flow: set[str]) -> bool:
    """Whether the fork server can start this flow's executors. Its children get the
    environment it started with, not ours now: when ours has changed since (a variable an
    executor reads), it is restarted, unless children of it still run (stopping it would
    orphan them): then spawn."""
    global _forkserver_env
    env = {k: v for k, v in os.environ.items() if k not in per_flow and k not in _VOLATILE}
    if _forkserver_env is not None and env != _forkserver_env:
        changed = sorted(k for k in env.keys() | _forkserver_env.keys() if env.get(k) != _forkserver_env.get(k))
        if multiprocessing.active_children():
            logger.info("environment changed (%s) while executors run: spawning this flow's", ", ".join(changed))
            return False
        stop = getattr(forkserver._forkserver, "_stop", None)  # private, but the stdlib's own way to stop it
        if stop is None:  # a Python without it: spawn rather than serve a stale environment
            logger.info("environment changed (%s); this Python cannot restart the fork server: spawning", ", ".join(changed))
            return False
        logger.info("restarting the fork server: %s changed", ", ".join(changed))
        stop()
    forkserver.set_forkserver_preload(FORKSERVER_PRELOAD)
    _forkserver_env = env
    return True


_die_hook_registered = False


def _forked_children_die_with_us() -> None:
    """Executors forked from here are killed when this process dies, even by SIGKILL.

    Without it a killed `app.py index` leaves its executors running as orphans, and the
    orphaned indexer keeps the store locked: the re-run would fail with "in use". SIGKILL,
    not SIGTERM: Jina's gateway, orphaned, ignores SIGTERM and spins; and the store's WAL
    already makes every acknowledged write survive a kill.
    """
    global _die_hook_registered
    if _die_hook_registered or not hasattr(os, "register_at_fork"):
        return
    forking = [0]

    def before() -> None:
        forking[0] = os.getpid()

    def in_child() -> None:
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):  # not Linux: no parent-death signal to ask for
            return
        if os.getppid() != forking[0]:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    os.register_at_fork(before=before, after_in_child=in_child)
    _die_hook_registered = True
