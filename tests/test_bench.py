"""`app.py bench` runs end to end and its figures are well-formed (never timed assertions)."""

import json
import math

import pytest
from test_cli import app

pytestmark = [pytest.mark.flow, pytest.mark.slow]


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_bench_quick_run_reports_every_section(tmp_path, tiny_models, photo_dir):
    tiny_clip = str(tiny_models["clip"])
    run = app(
        "bench",
        "--quick",
        "--json",
        "--encoders",
        "clip",
        "--model",
        f"clip={tiny_clip}",
        "--data",
        str(photo_dir),
        "--growth-model",
        tiny_clip,
        "--out",
        str(tmp_path / "out"),
        "--cache",
        str(tmp_path / "cache"),
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout)
    n_images = len(list(photo_dir.rglob("*.jpg")))
    assert result["images"]["count"] == n_images

    (rec,) = result["encoders"]
    bare, e2e = rec["bare"], rec["end_to_end"]
    assert rec["encoder"] == "clip"
    assert set(bare["images_per_second"]) == {"8", "16"} and all(map(_positive, bare["images_per_second"].values()))
    assert bare["best_images_per_second"] == max(bare["images_per_second"].values())
    # --quick: the bare model on torch and onnx side by side, with the provider each ran on.
    assert set(rec["runtimes"]) == {"torch", "onnx"} and rec["runtimes"]["torch"]["speedup_vs_torch"] == 1.0
    assert _positive(rec["runtimes"]["onnx"]["best_images_per_second"])
    assert rec["runtimes"]["onnx"]["provider"] == "CPUExecutionProvider"
    warm = e2e["warm"]
    assert warm["indexed"] == e2e["cold"]["indexed"] == n_images
    assert _positive(warm["images_per_second"])
    # Two warm runs, each between bare runs (--rounds): every round reported with its figures.
    rounds = e2e["rounds"]
    assert len(rounds) == 2 and all(_positive(r["bare_images_per_second"]) and _positive(r["ratio"]) for r in rounds)
    assert _positive(rec["ratio_e2e_to_bare"])
    assert 0 < e2e["startup"]["model_load_seconds"] < e2e["startup"]["flow_ready_seconds"]
    assert e2e["lanes"] >= 1  # indexing as `app.py index` runs it (lanes=auto); searches below on one lane

    procs = warm["breakdown"]["processes"]
    assert set(procs) == {"loader", "normalizer", "encoder", "indexer", "gateway", "client"}
    for name in ("loader", "normalizer", "encoder", "indexer"):
        assert procs[name]["handler_seconds"] > 0 and procs[name]["cpu_seconds"] >= 0
        assert 0 <= procs[name]["handler_cpu_seconds"] <= procs[name]["cpu_seconds"] + 0.05
        assert _positive(procs[name]["peak_rss_mb"])
    assert 0 < warm["breakdown"]["encoder_busy_share"] <= 1

    search = e2e["search"]
    assert search["image"]["n"] == 5 and search["image"]["p99_ms"] >= search["image"]["p50_ms"] > 0
    assert search["text"]["n"] == 5  # CLIP embeds text
    conc = e2e["concurrent"]
    assert conc["errors"] == 0 and conc["queries"] == 6 and _positive(conc["queries_per_second"])

    (store_row,) = result["store"]
    assert store_row["n"] == 2000 and _positive(store_row["upserts_per_second"])
    assert store_row["recall_at_10"] >= 0.95 and store_row["disk_vs_raw"] > 0
    assert 0 < store_row["wal_bytes"] < store_row["disk_bytes"]

    rows = result["growth"]["rows"]
    assert [r["images"] for r in rows] == [100, 300] and [r["indexed"] for r in rows] == [100, 300]
    assert all(_positive(r["search_p50_ms"]) and set(r["peak_rss_mb"]) == {"loader", "normalizer", "encoder", "indexer"} for r in rows)

    (prune_row,) = result["prune"]  # 2,000 stored, every 100th file gone: 20 forgotten, each image's last path
    assert (prune_row["stored"], prune_row["forgotten_paths"], prune_row["deleted"], prune_row["left"]) == (2000, 20, 20, 1980)
    assert _positive(prune_row["read_seconds"])

    saved = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert saved["encoders"][0]["bare"] == bare
    assert (tmp_path / "out" / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_disk_fit_separates_the_bounded_write_ahead_log():
    from imgsearch.bench.store import DIM, disk_fit

    raw = DIM * 4
    rows = [{"n": n, "disk_bytes": int(1.4 * raw * n + 2e6 + wal), "wal_bytes": int(wal)} for n, wal in ((10_000, 28e6), (100_000, 44e6))]
    fit = disk_fit(rows + [{"backend": "local mode", "n": 5_000, "disk_bytes_per_vector": 1}])
    assert fit["data_per_raw"] == pytest.approx(1.4, abs=1e-3) and fit["data_fixed_mb"] == pytest.approx(2.0, abs=0.1)
    assert fit["per_raw"] == pytest.approx(1.4 + 16e6 / (90_000 * raw), abs=1e-3)  # the WAL's growth lands in the slope
    assert fit["wal_mb"] == [28.0, 44.0]
    assert disk_fit(rows[:1]) is None
