"""The embedded store's files: the workspace lock, atomic metadata writes, allocated size."""

from __future__ import annotations

import errno
import fcntl
import os

from executors import atomic_json

from .interface import StoreInUseError


def lock_workspace(root: str, workspace: str) -> int:
    """Hold ``root/.lock`` (flock) for this process; its pid goes in the file for the error others get."""
    path = os.path.join(root, ".lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            os.close(fd)
            raise
        try:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
        finally:
            os.close(fd)
        who = f"pid {holder}" + (", this process" if holder == str(os.getpid()) else "")
        raise StoreInUseError(
            f"workspace {workspace} is in use by another process ({who}); stop that indexer first, or open the store read-only"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def unlock_workspace(fd: int) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def du(path: str) -> int:
    """Bytes actually allocated under path (like du): WAL segments are sparse."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                st = os.lstat(os.path.join(root, f))
            except FileNotFoundError:  # the optimiser may swap segments while we walk
                continue
            total += st.st_blocks * 512
    return total


def write_json_atomic(path: str, data: dict) -> None:
    """The store's metadata, durable (it must survive a crash), readable by people."""
    atomic_json.write_json_atomic(path, data, durable=True, indent=2, sort_keys=True, ensure_ascii=False)
