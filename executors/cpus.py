"""How many CPUs this process may use: its CPU affinity, and its container's CPU quota.

torch and onnxruntime size their thread pools by the cores they see. In a container limited
to fewer (`docker run --cpus 4`, a Kubernetes CPU limit) on a many-core node, that many
threads share a few CPUs' time, and the kernel stops them all for the rest of every period
once the quota is spent. The quota is read as joblib/loky read it (cgroup v2 ``cpu.max``, else
v1 ``cpu.cfs_quota_us``/``cpu.cfs_period_us`` of the container's own cgroup, rounded up).
"""

import logging
import math
import os
from typing import Optional

logger = logging.getLogger(__name__)

CGROUP_ROOT = "/sys/fs/cgroup"


def cgroup_cpu_quota(root: str = CGROUP_ROOT) -> Optional[float]:
    """CPUs' worth of time per period the cgroup may use (e.g. 2.5), or None without a limit."""
    quota: Optional[str] = None
    period: Optional[str] = None
    try:
        with open(os.path.join(root, "cpu.max")) as f:  # v2: "max 100000" or "250000 100000"
            parts = f.read().split()
        if len(parts) == 2:
            quota, period = parts
    except OSError:
        pass
    if quota is None:
        try:
            with open(os.path.join(root, "cpu", "cpu.cfs_quota_us")) as f:  # v1: -1 without a limit
                quota = f.read().strip()
            with open(os.path.join(root, "cpu", "cpu.cfs_period_us")) as f:
                period = f.read().strip()
        except OSError:
            return None
    if quota is None or period is None:
        return None
    try:
        q, p = int(quota), int(period)
    except (TypeError, ValueError):  # "max", or unreadable
        return None
    return q / p if q > 0 and p > 0 else None


def usable_cpus(root: str = CGROUP_ROOT) -> int:
    """The CPUs this process may run on, capped by its cgroup's quota; at least 1."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    quota = cgroup_cpu_quota(root)
    if quota is not None:
        n = min(n, math.ceil(quota))
    return max(1, n)


def fit_torch_threads(requested: int = 0) -> int:
    """Set torch's CPU threads to ``requested``, else to the CPUs this process may use where
    those are fewer than torch's default (its cores); the count in use."""
    import torch  # here: this module is read where torch is not loaded (the CLI, the loader)

    threads = int(requested) or min(torch.get_num_threads(), usable_cpus())
    if threads != torch.get_num_threads():
        logger.info("torch threads: %d (cores seen %d)", threads, torch.get_num_threads())
        torch.set_num_threads(threads)
    return threads
