"""End to end through the flow: start-up, indexing (cold and warm), where the time goes,
search latency, and concurrent clients.

Stage breakdown: every executor reports (``/timings``) the wall time inside its handlers
and its process's CPU time; CPU spent outside the handlers is gRPC (de)serialisation and
Jina's own work. The gateway's and this client's CPU are read from /proc. On a machine
with few cores, all of it competes with the encoder for the same CPU, which is why the
end-to-end rate can only approach the bare model's when the rest is small.
"""

import logging
import multiprocessing
import os
import queue
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from executors.contracts import EncoderInfo
from imgsearch.flow import Gateway, local_flow
from imgsearch.indexing import encoder_info, run_index
from imgsearch.searching import run_search

logger = logging.getLogger(__name__)

STAGE_HANDLERS = {  # what each stage's handler time means, in bench tables
    "loader": "read files",
    "normalizer": "decode + resize",
    "encoder": "preprocess + model",
    "indexer": "upsert / search",
}
TEXT_QUERIES = ("a dog", "a cat on a sofa", "funny meme with text", "a red car", "people at a party")


def _proc_cpu_seconds(pid: int) -> Optional[float]:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            out.append(child)
            stack.append(child)
    return out


def snapshot(gateway: Gateway) -> dict:
    """CPU and handler time of every process of the flow, now."""
    stages = {}
    for key, value in gateway.call_each("/timings").items():
        stages[key.split("/")[0]] = value
    executor_pids = {int(v["pid"]) for v in stages.values()}
    # What else the flow started is Jina's gateway (forked children of this process).
    others = [p for p in _descendants(os.getpid()) if p not in executor_pids]
    gateway_cpu = sum(c for c in map(_proc_cpu_seconds, others) if c is not None)
    return {"stages": stages, "gateway_cpu": gateway_cpu, "client_cpu": time.process_time()}


def _total(handlers: dict, key: str) -> float:
    return sum(float(h.get(key, 0.0)) for h in handlers.values())


def breakdown(before: dict, after: dict, images: int, wall: float) -> dict:
    """Per process: handler seconds, CPU seconds, CPU outside handlers, per image."""
    rows = {}
    for name, a in after["stages"].items():
        b = before["stages"].get(name, {"handlers": {}, "cpu_seconds": 0.0})
        handler_s = _total(a["handlers"], "seconds") - _total(b["handlers"], "seconds")
        handler_cpu = _total(a["handlers"], "cpu_seconds") - _total(b["handlers"], "cpu_seconds")
        cpu_s = float(a["cpu_seconds"]) - float(b["cpu_seconds"])
        rows[name] = {
            "work": STAGE_HANDLERS.get(name, name),
            "handler_seconds": round(handler_s, 3),
            "handler_cpu_seconds": round(handler_cpu, 3),
            "cpu_seconds": round(cpu_s, 3),
            # gRPC (de)serialisation and Jina's own work (what the process did between handlers)
            "outside_handlers_cpu_seconds": round(max(cpu_s - handler_cpu, 0.0), 3),
            "handler_ms_per_image": round(handler_s / max(images, 1) * 1e3, 3),
            "peak_rss_mb": a.get("peak_rss_mb"),
        }
    for name, key in (("gateway", "gateway_cpu"), ("client", "client_cpu")):
        cpu_s = after[key] - before[key]
        rows[name] = {
            "work": "gRPC routing" if name == "gateway" else "scan requests, callbacks",
            "handler_seconds": None,
            "handler_cpu_seconds": None,
            "cpu_seconds": round(cpu_s, 3),
            "outside_handlers_cpu_seconds": round(cpu_s, 3),
            "handler_ms_per_image": None,
            "peak_rss_mb": None,
        }
    encoder = rows.get("encoder", {})
    return {
        "wall_seconds": round(wall, 3),
        "images": images,
        "processes": rows,
        # Share of the wall time the encoder was computing: the most E2E/bare can be.
        "encoder_busy_share": round((encoder.get("handler_seconds") or 0.0) / wall, 3) if wall else None,
        "cpu_seconds_total": round(sum(r["cpu_seconds"] for r in rows.values()), 3),
    }


def _percentiles(latencies: list[float]) -> dict:
    if not latencies:
        return {"n": 0}
    ms = np.asarray(latencies) * 1e3
    return {
        "n": len(ms),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "mean_ms": round(float(ms.mean()), 2),
    }


def _latencies(search, items: list) -> dict:
    lat = []
    for item in items:
        t = time.perf_counter()
        search(item)
        lat.append(time.perf_counter() - t)
    return _percentiles(lat)


def search_latency(gateway: Gateway, collection: str, info: EncoderInfo, queries: list[Path], texts: list[str]) -> dict:
    run_search(gateway, collection, info, image=queries[0])  # warm-up
    out = {"image": _latencies(lambda q: run_search(gateway, collection, info, image=q), queries)}
    if info.text and texts:
        out["text"] = _latencies(lambda text: run_search(gateway, collection, info, text=text), texts)
    return out


def _search_client(host: str, collection: str, info: EncoderInfo, queries: list[Path], timeout: float, ready: Any, results: Any) -> None:
    """One concurrent client, in its own process: waits at ``ready``, then sends its queries."""
    gateway = Gateway(host, timeout=timeout)
    latencies: list[float] = []
    errors: list[str] = []
    ready.wait()
    for q in queries:
        t = time.perf_counter()
        try:
            run_search(gateway, collection, info, image=q)
            latencies.append(time.perf_counter() - t)
        except Exception as exc:  # counted and shown, never hidden
            errors.append(f"{type(exc).__name__}: {exc}"[:200])
    results.put((latencies, errors))


def concurrent_search(
    host: str, collection: str, info: EncoderInfo, queries: list[Path], clients: int, per_client: int, timeout: float = 60.0
) -> dict:
    """``clients`` processes, each its own gRPC client, each sending ``per_client`` image queries.

    Processes, not threads: Jina's client sends one request at a time per process whatever
    the number of threads, so threads would measure one client's queue, not concurrency.
    """
    ctx = multiprocessing.get_context("spawn")
    ready, results = ctx.Barrier(clients + 1), ctx.Queue()
    procs = [
        ctx.Process(
            target=_search_client,
            daemon=True,
            args=(host, collection, info, [queries[(i * per_client + j) % len(queries)] for j in range(per_client)], timeout, ready, results),
        )
        for i in range(clients)
    ]
    for p in procs:
        p.start()
    before = Gateway(host).call_each("/timings")
    ready.wait(timeout=120)  # every client has started (imports are not timed)
    started = time.perf_counter()
    latencies, errors = [], []
    for _ in procs:
        try:
            got, failed = results.get(timeout=timeout * per_client + 60)
        except queue.Empty:
            errors.append("a client process gave no result (it died, or every query hung)")
            break
        latencies += got
        errors += failed
    wall = time.perf_counter() - started
    for p in procs:
        p.join(timeout=10)
    after = Gateway(host).call_each("/timings")
    calls = docs = 0
    for key, value in after.items():
        if not key.startswith("encoder"):
            continue
        for handler in ("encode_images", "encode_jpegs"):  # pixels, or JPEG bytes decoded on its GPU
            h = value["handlers"].get(handler, {})
            hb = before.get(key, {}).get("handlers", {}).get(handler, {})
            calls += int(h.get("calls", 0)) - int(hb.get("calls", 0))
            docs += int(h.get("docs", 0)) - int(hb.get("docs", 0))
    return {
        "clients": clients,
        "queries": clients * per_client,
        "errors": len(errors),
        "error_examples": errors[:3],
        "queries_per_second": round(len(latencies) / wall, 2) if wall else None,
        "latency": _percentiles(latencies),
        # > 1 means concurrent queries shared forward passes (dynamic batching).
        "mean_encoder_batch": round(docs / calls, 2) if calls else None,
    }


def _warm_rounds(
    gateway: Gateway, encoder: str, folder: Path, info: EncoderInfo, batch_size: int, runs: int, bare_probe: Optional[Callable[[], float]]
) -> list[dict]:
    rounds = []
    bare_before = bare_probe() if bare_probe else None
    for i in range(runs):
        before = snapshot(gateway)
        t = time.perf_counter()
        warm = run_index(gateway, folder, info, batch_size=batch_size, dataset=f"bench-warm{i}-{encoder}", progress=False)
        wall = time.perf_counter() - t
        after = snapshot(gateway)
        images_per_second = round(warm.indexed / wall, 2)
        run = {
            "indexed": warm.indexed,
            "index_seconds": round(wall, 2),
            "images_per_second": images_per_second,
            "disk_bytes": warm.disk_bytes,
            "breakdown": breakdown(before, after, warm.indexed, wall),
        }
        record = {"images_per_second": images_per_second, "run": run, "collection": warm.collection}
        if bare_probe is not None and bare_before is not None:  # both or neither
            bare_after = bare_probe()
            bare = (bare_before + bare_after) / 2
            record.update(bare_images_per_second=round(bare, 2), ratio=round(images_per_second / bare, 6))
            bare_before = bare_after
        rounds.append(record)
    return rounds


def run_pipeline(
    encoder: str,
    model: Optional[str],
    folder: Path,
    batch_size: int,
    store: Path,
    search_queries: int = 50,
    clients: int = 8,
    per_client: int = 25,
    warm_runs: int = 1,
    bare_probe: Optional[Callable[[], float]] = None,
    lanes: Optional[str] = "auto",
) -> dict:
    """Start the flow, index ``folder`` cold, then warm ``warm_runs`` times, search. With
    ``bare_probe`` (the bare model's images/s, measured now) the bare model is measured before
    and after every warm run, and each run's ratio is taken against the mean of the two: this
    machine's speed drifts by ±20% over minutes, so a ratio of figures taken minutes apart
    would measure the drift as much as the flow.

    Indexing runs with the encoder ``lanes`` `app.py index` asks for (auto); searches run on a
    one-lane flow over the same store, as `search` and `serve` run them (on a lane a query
    gets one thread), in the same flow when indexing had one lane anyway.
    """
    from imgsearch.bench.images import image_files

    files = image_files(folder)
    queries = files[:: max(1, len(files) // search_queries)][:search_queries]
    texts = [TEXT_QUERIES[i % len(TEXT_QUERIES)] for i in range(min(search_queries, 20))]
    result: dict = {"encoder": encoder, "images": len(files), "batch_size": batch_size}
    started = time.perf_counter()
    with local_flow(encoder, model=model, store=str(store), lanes=lanes) as host:
        ready = time.perf_counter() - started
        gateway = Gateway(host)
        info = encoder_info(gateway)
        result["model"] = info.model
        result["lanes"], result["lanes_asked"] = int(info.lanes or 1), lanes
        result["startup"] = {
            "flow_ready_seconds": round(ready, 2),
            "model_load_seconds": info.load_seconds,
            "flow_ready_excluding_model_load_seconds": round(ready - float(info.load_seconds or 0.0), 2),
        }
        t = time.perf_counter()
        cold = run_index(gateway, folder, info, batch_size=batch_size, dataset=f"bench-cold-{encoder}", progress=False)
        cold_wall = time.perf_counter() - t
        result["cold"] = {
            "indexed": cold.indexed,
            "skipped": len(cold.skipped),
            "index_seconds": round(cold_wall, 2),
            "images_per_second_with_startup": round(cold.indexed / (ready + cold_wall), 2),
        }
        if warm_runs:
            rounds = _warm_rounds(gateway, encoder, folder, info, batch_size, warm_runs, bare_probe)
            # The round with the median ratio (or rate) stands for the run, breakdown included.
            key = "ratio" if bare_probe else "images_per_second"
            middle = sorted(rounds, key=lambda r: r[key])[len(rounds) // 2]
            result["warm"] = middle["run"]
            result["median_round"] = rounds.index(middle)
            result["ratio_median"] = middle.get("ratio")
            result["rounds"] = [{k: v for k, v in r.items() if k not in ("run", "collection")} for r in rounds]
            collection = middle["collection"]
        else:
            collection = cold.collection
        if result["lanes"] == 1:
            _searches(result, host, collection, queries, texts, clients, per_client)
    if result["lanes"] > 1:
        with local_flow(encoder, model=model, store=str(store), lanes="1") as host:
            _searches(result, host, collection, queries, texts, clients, per_client)
    return result


def _searches(result: dict, host: str, collection: str, queries: list[Path], texts: list[str], clients: int, per_client: int) -> None:
    gateway = Gateway(host)
    info = encoder_info(gateway)
    result["search"] = search_latency(gateway, collection, info, queries, texts)
    if clients:
        result["concurrent"] = concurrent_search(host, collection, info, queries, clients, per_client)
