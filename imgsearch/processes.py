"""How a local flow's executor processes start: forked with their imports, and never outliving us."""

import ctypes
import importlib
import multiprocessing
import os
import signal

from executors.encoders.specs import get_spec

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def prepare_start_method(encoder: str) -> None:
    """Fork by default: executor processes then inherit the imports (torch, transformers,
    jina) instead of paying for them again, which cuts flow start-up several-fold. A forked
    child of a process that has already run torch compute can deadlock in OpenMP, so such
    processes (the test-suite embeds in process) set IMGSEARCH_START_METHOD=spawn.
    """
    method = os.environ.get("IMGSEARCH_START_METHOD", "fork")
    multiprocessing.set_start_method(method, force=True)
    if method == "fork":
        _forked_children_die_with_us()
        for module in ("executors.loader", "executors.normalizer", "executors.indexer",
                       f"executors.encoders.{get_spec(encoder).family}"):
            importlib.import_module(module)


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
