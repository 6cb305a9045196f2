"""The simulated scale-out (`app.py bench --simulate-gpu-ms MS`): images/s through the flow with
1, 2, 4, 8... encoder replicas, each a latency-bound stand-in for a GPU (simulated_gpu.py).

Each replica count runs in a fresh flow on a fresh store: a warm-up pass over a few images,
then `app.py index`'s own loop (imgsearch/indexing.run_index) over the folder, with at least
two requests in flight per encoder replica. The rate is the /index phase's (the scan before it
and the search index built after it are not what replicas speed up). Every replica's
``/timings`` (Jina's gateway sends each call to the next replica, so N calls reach N replicas)
gives each stage's busy share of the wall, per replica: the stage nearest 100% at the most
replicas is the one that saturates next. That stage (the loader or the normalizer; the
embedded store admits one indexer process) is then run with more replicas and measured again.
"""

import logging
import os
import time
from collections import Counter
from pathlib import Path
from typing import Mapping, Optional, TextIO

from executors.contracts import TIMINGS
from imgsearch.bench.options import BenchOptions
from imgsearch.bench.pipeline import _descendants, _proc_cpu_seconds
from imgsearch.flow import PREFETCH, FlowConfig, Gateway, local_flow
from imgsearch.indexing import encoder_info, index_prefetch, run_index

logger = logging.getLogger(__name__)

STAGES = ("loader", "normalizer", "encoder", "indexer")
# The handler each stage runs for /index (executors' Stage.timed names).
INDEX_HANDLERS = {"loader": "read", "normalizer": "normalize", "encoder": "encode_images", "indexer": "upsert"}
WORK = {"loader": "read files", "normalizer": "decode + resize", "encoder": "simulated GPU", "indexer": "Qdrant writes"}
SCALABLE = ("loader", "normalizer")  # the indexer: the embedded store admits one process
IMAGE_SIZE = (128, 96)  # synthetic JPEGs: small, so decoding is not what limits 2 cores
FIT = 64  # the stand-in's input: the normalizer resizes to 64x64 as it decodes


def replica_timings(gateway: Gateway, replicas: Mapping[str, int]) -> dict[str, dict]:
    """Every replica's ``/timings``, keyed ``stage/rep-i`` as Jina names them."""
    want = {s: int(replicas.get(s, 1)) for s in STAGES}
    seen: dict[str, dict] = {}
    counts: Counter = Counter()
    for _ in range(4 * max(want.values())):
        seen.update(gateway.call_each(TIMINGS))
        counts = Counter(key.split("/")[0] for key in seen)
        if all(counts[s] >= n for s, n in want.items()):
            return seen
    raise RuntimeError(f"/timings reached {dict(counts)} replicas, not the {want} started")


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of every core so far, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [float(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0.0)
    return sum(values) - idle, sum(values)


def _gateway_cpu(executor_pids: set[int]) -> float:
    return sum(c for c in map(_proc_cpu_seconds, [p for p in _descendants(os.getpid()) if p not in executor_pids]) if c is not None)


def _snapshot(gateway: Gateway, replicas: Mapping[str, int]) -> dict:
    timings = replica_timings(gateway, replicas)
    pids = {int(v["pid"]) for v in timings.values()}
    return {"timings": timings, "gateway_cpu": _gateway_cpu(pids), "client_cpu": time.process_time(), "machine": _machine_cpu()}


def stage_figures(before: dict, after: dict, replicas: Mapping[str, int], wall: float, images: int) -> dict:
    """Per stage: busy share of the wall per replica (its /index handler), CPU ms per image,
    and per replica the /index requests it served."""
    out: dict[str, dict] = {}
    for stage in STAGES:
        handler, busy, cpu, calls, rss = INDEX_HANDLERS[stage], 0.0, 0.0, {}, 0.0
        for key, a in after["timings"].items():
            if key.split("/")[0] != stage:
                continue
            b = before["timings"].get(key, {"handlers": {}, "cpu_seconds": 0.0})
            ha, hb = a["handlers"].get(handler, {}), b["handlers"].get(handler, {})
            busy += float(ha.get("seconds", 0.0)) - float(hb.get("seconds", 0.0))
            cpu += float(a["cpu_seconds"]) - float(b["cpu_seconds"])
            calls[key] = int(ha.get("calls", 0)) - int(hb.get("calls", 0))
            rss += float(a.get("rss_mb") or 0.0)
        n = int(replicas.get(stage, 1))
        out[stage] = {
            "replicas": n,
            "work": WORK[stage],
            "busy_share": round(busy / (n * wall), 3) if wall else None,
            "cpu_ms_per_image": round(cpu / max(images, 1) * 1e3, 2),
            "requests_per_replica": [calls[k] for k in sorted(calls)],
            "rss_mb": round(rss, 1),  # all its replicas together, after the run
        }
    gw = after["gateway_cpu"] - before["gateway_cpu"]
    out["gateway"] = {
        "replicas": 1,
        "work": "gRPC routing",
        "busy_share": round(gw / wall, 3) if wall else None,
        "cpu_ms_per_image": round(gw / max(images, 1) * 1e3, 2),
    }
    return out


def _warmup_folder(folder: Path, count: int, out: Path) -> Path:
    from imgsearch.bench.images import sample_folder

    return sample_folder(folder, count, out)


def measure(opts: BenchOptions, folder: Path, config_yaml: Path, replicas: Mapping[str, int], work: Path) -> dict:
    """One row: a fresh flow with these ``replicas``, warmed up, then indexing ``folder``."""
    stands_for = opts.encoders[0]
    label = "-".join(f"{s}{n}" for s, n in sorted(replicas.items()))
    config = FlowConfig(stands_for, store=str(work / f"store-{label}"), uses={"encoder": str(config_yaml)}, replicas=dict(replicas))
    encoders = int(replicas.get("encoder", 1))
    started = time.perf_counter()
    with local_flow(stands_for, config=config) as host:
        ready = time.perf_counter() - started
        gateway = Gateway(host)
        info = encoder_info(gateway)
        batch = int(info.batch_size or opts.simulate_batch)
        # Enough requests in flight that every replica has one while the next waits in the stages before it.
        prefetch = max(index_prefetch(info), PREFETCH, 2 * encoders)
        warm = _warmup_folder(folder, 2 * encoders * batch, work / f"warmup-{label}")
        run_index(gateway, warm, info, batch_size=batch, dataset=f"warmup-{label}", progress=False, prefetch=prefetch)
        before = _snapshot(gateway, replicas)
        summary = run_index(gateway, folder, info, batch_size=batch, dataset=f"scaleout-{label}", progress=False, prefetch=prefetch)
        after = _snapshot(gateway, replicas)
    wall = summary.encode_seconds
    busy, total = (a - b for a, b in zip(after["machine"], before["machine"]))
    cores = os.cpu_count() or 1
    stages = stage_figures(before, after, replicas, wall, summary.indexed)
    flow_cpu = sum(s["cpu_ms_per_image"] for s in stages.values()) * summary.indexed / 1e3 + after["client_cpu"] - before["client_cpu"]
    return {
        "replicas": {s: int(replicas.get(s, 1)) for s in STAGES},
        "indexed": summary.indexed,
        "skipped": len(summary.skipped),
        "prefetch": prefetch,
        "batch_size": batch,
        "flow_ready_seconds": round(ready, 2),
        "index_seconds": round(wall, 3),
        "run_seconds": round(summary.seconds, 3),  # with the scan before and the search index after
        "images_per_second": round(summary.indexed / wall, 2) if wall else None,
        "stages": stages,
        "flow_cpu_cores": round(flow_cpu / wall, 2) if wall else None,  # every process of the flow, and this client
        "machine_cpu_cores": round(busy / total * cores, 2) if total else None,  # everything on the machine, other tenants too
        "cores": cores,
    }


def busiest(row: dict, among: tuple[str, ...]) -> str:
    return max(among, key=lambda s: row["stages"][s]["busy_share"] or 0.0)


def run_scaleout(opts: BenchOptions, work: Path, log: TextIO) -> dict:
    from imgsearch.bench.images import image_files, sample_folder, synthetic_folder
    from imgsearch.bench.simulated_gpu import write_config

    assert opts.simulate_gpu_ms is not None
    stands_for = opts.encoders[0]
    if opts.data is not None:
        folder = sample_folder(opts.data, opts.images, work / "images")
    else:
        folder = synthetic_folder(opts.cache / "scaleout-images", opts.images, *IMAGE_SIZE)
    config_yaml = write_config(work / "simulated-gpu", opts.simulate_gpu_ms, stands_for, opts.simulate_batch, FIT)
    rows = []
    for n in sorted(opts.encoder_replicas):
        print(f"[bench] scale-out: {n} simulated GPU encoder replica(s), {opts.simulate_gpu_ms:g} ms per batch", file=log, flush=True)
        rows.append(measure(opts, folder, config_yaml, {"encoder": n}, work))
    _speedups(rows, rows[0])
    top = rows[-1]
    result: dict = {
        "stands_for": stands_for,
        "ms_per_batch": opts.simulate_gpu_ms,
        "batch_size": top["batch_size"],
        "images": {"folder": str(opts.data or folder), "count": len(image_files(folder)), "fit": FIT},
        "rows": rows,
        "busiest_stage": busiest(top, ("loader", "normalizer", "indexer", "gateway")),
        "next_stage": busiest(top, SCALABLE),
    }
    if opts.next_stage_replicas > 1:
        stage, n = result["next_stage"], top["replicas"]["encoder"]
        print(f"[bench] scale-out: {n} encoder replicas with {opts.next_stage_replicas} {stage} replicas", file=log, flush=True)
        again = measure(opts, folder, config_yaml, {"encoder": n, stage: opts.next_stage_replicas}, work)
        _speedups([again], rows[0])
        again["vs_same_encoders"] = round(again["images_per_second"] / top["images_per_second"], 3) if top["images_per_second"] else None
        result["next_stage_row"] = again
    return result


def _speedups(rows: list[dict], base: dict) -> None:
    """Speed-up against the first row's rate per encoder replica; efficiency = speed-up / replicas."""
    per_replica = base["images_per_second"] / base["replicas"]["encoder"] if base["images_per_second"] else None
    for row in rows:
        n = row["replicas"]["encoder"]
        row["speedup"] = round(row["images_per_second"] / per_replica, 2) if per_replica and row["images_per_second"] else None
        row["efficiency"] = round(row["speedup"] / n, 3) if row["speedup"] else None


def _others(row: dict) -> str:
    more = [f"{s}×{n}" for s, n in row["replicas"].items() if s != "encoder" and n > 1]
    return ", ".join(more) or "-"


def print_scaleout(result: dict, out: TextIO) -> None:
    s = result.get("scaleout")
    if not s:
        return
    print(
        f"\nScale-out: simulated GPU encoders standing in for {s['stands_for']}, {s['ms_per_batch']:g} ms per batch of {s['batch_size']}, "
        f"{s['images']['count']} images resized to {s['images']['fit']}×{s['images']['fit']}; images/s of the /index phase",
        file=out,
    )
    busy_heads = " ".join(f"{st:>10}" for st in (*STAGES, "gateway"))
    print(
        f"  {'encoders':>8} {'others':>13} {'images/s':>9} {'speed-up':>8} {'efficiency':>10} {'prefetch':>8} | busy: {busy_heads} | "
        f"{'flow CPU':>8} {'machine CPU':>11}",
        file=out,
    )
    rows = list(s["rows"]) + ([s["next_stage_row"]] if s.get("next_stage_row") else [])
    for row in rows:
        busy = " ".join(f"{_fmt(row['stages'][st]['busy_share'], '.0%'):>10}" for st in (*STAGES, "gateway"))
        print(
            f"  {row['replicas']['encoder']:>8} {_others(row):>13} {row['images_per_second']:>9.1f} {_fmt(row['speedup'], '.2f'):>8} "
            f"{_fmt(row['efficiency'], '.2f'):>10} {row['prefetch']:>8} |       {busy} | {row['flow_cpu_cores']:>8.2f} "
            f"{row['machine_cpu_cores']:>9.2f}/{row['cores']}",
            file=out,
        )
    top = s["rows"][-1]
    spread = top["stages"]["encoder"]["requests_per_replica"]
    print(f"  requests per encoder replica at {top['replicas']['encoder']}: {' / '.join(map(str, spread))} (Jina's gateway round-robins)", file=out)
    print(
        "  busy: share of the wall each stage's replicas spent in their /index handler (the gateway: its CPU); "
        "flow CPU: cores used by the flow's processes and this client; machine CPU: by everything on the machine",
        file=out,
    )
    if top["images_per_second"] and top["flow_cpu_cores"]:
        per_image = top["flow_cpu_cores"] / top["images_per_second"] * 1e3
        parts = ", ".join(f"{st} {top['stages'][st]['cpu_ms_per_image']}" for st in (*STAGES, "gateway"))
        print(
            f"  CPU per image at {top['replicas']['encoder']} encoders: {per_image:.2f} ms in all ({parts} ms; the rest this client), "
            f"so {top['cores']} free cores would hold at most about {top['cores'] / per_image * 1e3:,.0f} images/s",
            file=out,
        )
    stage = s["busiest_stage"]
    note = ""
    if stage == "indexer":
        note = " (the embedded store admits one indexer process: it cannot be replicated; a Qdrant server behind --qdrant-url can)"
    share = _fmt(top["stages"][stage]["busy_share"], ".0%")
    print(
        f"  busiest stage at {top['replicas']['encoder']} encoder replicas: {stage} ({WORK.get(stage, 'gRPC routing')}, {share} busy){note}", file=out
    )
    again = s.get("next_stage_row")
    if again:
        print(
            f"  scaled next: {s['next_stage']} × {again['replicas'][s['next_stage']]}: {again['images_per_second']:.1f} images/s, "
            f"{again['vs_same_encoders']}× the rate with one {s['next_stage']}",
            file=out,
        )


def _fmt(v: Optional[float], spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def chart_panel(result: dict) -> Optional[tuple[str, list[tuple[str, Optional[float], str]]]]:
    s = result.get("scaleout")
    if not s:
        return None
    rows = list(s["rows"]) + ([s["next_stage_row"]] if s.get("next_stage_row") else [])
    bars = [
        (
            f"{r['replicas']['encoder']} encoder{'s' if r['replicas']['encoder'] > 1 else ''}" + (f", {_others(r)}" if _others(r) != "-" else ""),
            r["images_per_second"],
            f"{r['images_per_second']:.0f}/s",
        )
        for r in rows
    ]
    return (f"scale-out: images/s, simulated GPU {s['ms_per_batch']:g} ms/batch", bars)
