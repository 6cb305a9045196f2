"""Thread pools sized by the CPUs a container may use, not the node's cores."""

import os

import pytest

from executors.cpus import cgroup_cpu_quota, usable_cpus


def _cgroup(tmp_path, v2: str | None = None, v1: tuple[str, str] | None = None) -> str:
    if v2 is not None:
        (tmp_path / "cpu.max").write_text(v2 + "\n")
    if v1 is not None:
        (tmp_path / "cpu").mkdir()
        (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text(v1[0] + "\n")
        (tmp_path / "cpu" / "cpu.cfs_period_us").write_text(v1[1] + "\n")
    return str(tmp_path)


@pytest.mark.parametrize(
    "v2, v1, quota",
    [
        ("250000 100000", None, 2.5),  # docker --cpus 2.5 (cgroup v2)
        ("max 100000", None, None),  # no limit
        (None, ("150000", "100000"), 1.5),  # cgroup v1
        (None, ("-1", "100000"), None),  # v1 without a limit
        (None, None, None),  # no cgroup files at all (not Linux, or not mounted)
        ("garbage", ("50000", "100000"), 0.5),  # an unreadable v2 file: v1 is read
    ],
)
def test_the_quota_is_read_from_either_cgroup_version(tmp_path, v2, v1, quota):
    assert cgroup_cpu_quota(_cgroup(tmp_path, v2, v1)) == quota


def test_usable_cpus_is_the_affinity_capped_by_the_quota(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    for name, cpu_max, want in [
        ("none", "max 100000", affinity),
        ("half", "50000 100000", 1),  # half a CPU: one thread
        ("more", f"{(affinity + 8) * 100000} 100000", affinity),
    ]:
        (tmp_path / name).mkdir()
        assert usable_cpus(_cgroup(tmp_path / name, cpu_max)) == want, name


def test_this_machine_agrees_with_joblib():
    """joblib (loky) reads the same files: the reference for this rule."""
    from joblib import cpu_count

    assert usable_cpus() == cpu_count()


def test_an_encoder_in_a_one_cpu_container_runs_one_thread(tiny_models, monkeypatch):
    """A CPU quota of one CPU on a machine with more cores: torch and the ONNX session use one
    thread, and `lanes=auto` makes one lane, not one per core seen."""
    import torch
    from conftest import TINY_FOR_ENCODER
    from test_encoders import make_encoder

    from executors import cpus

    before = torch.get_num_threads()
    torch.set_num_threads(max(2, before))  # torch sees more cores than the quota allows
    monkeypatch.setattr(cpus, "usable_cpus", lambda root=cpus.CGROUP_ROOT: 1)
    try:
        enc = make_encoder("vit", str(tiny_models[TINY_FOR_ENCODER["vit"]]), runtime="onnx", batch_size=2, lanes="auto")
        assert enc.num_threads == 1 and torch.get_num_threads() == 1 and enc.lanes == 1
        assert enc.image_tower.session.get_session_options().intra_op_num_threads == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("cpus, asked, threads", [(12, 0, 12), (1, 0, 4), (12, 2, 2)])
def test_the_normalizer_decodes_on_a_thread_per_usable_cpu(monkeypatch, cpus, asked, threads):
    """Decoding a photo costs more CPU than Lite0 embeds it: a many-core machine gets a decode
    thread per CPU it may use (at least 4, the old fixed count), unless told a number."""
    from executors.normalizer import executor as normalizer_module

    monkeypatch.setattr(normalizer_module, "usable_cpus", lambda: cpus)
    normalizer = normalizer_module.ImageNormalizer(decode_threads=asked)
    try:
        assert normalizer._pool._max_workers == threads
    finally:
        normalizer.close()
