"""End to end through the flow: start-up, indexing (cold and warm), where the time goes,
search latency, and concurrent clients.

Stage breakdown: every executor reports (``/timings``) the wall time inside its handlers
and its process's CPU time; CPU spent outside the handlers is gRPC (de)serialisation and
Jina's own work. The gateway's and this client's CPU are read from /proc. On a machine
with few cores, all of it competes with the encoder for the same CPU, which is why the
end-to-end rate can only approach the bare model's when the rest is small.
"""

import logging
import os
import threading
import time
from pathlib import Path
from typing import Optional

import numpy as np

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


def breakdown(before: dict, after: dict, images: int, wall: float) -> dict:
    """Per process: handler seconds, CPU seconds, CPU outside handlers, per image."""
    rows = {}
    for name, a in after["stages"].items():
        b = before["stages"].get(name, {"handlers": {}, "cpu_seconds": 0.0})
        handler_s = sum(float(h["seconds"]) for h in a["handlers"].values()) - sum(
            float(h["seconds"]) for h in b["handlers"].values()
        )
        cpu_s = float(a["cpu_seconds"]) - float(b["cpu_seconds"])
        rows[name] = {
            "work": STAGE_HANDLERS.get(name, name),
            "handler_seconds": round(handler_s, 3),
            "cpu_seconds": round(cpu_s, 3),
            "outside_handlers_cpu_seconds": round(max(cpu_s - handler_s, 0.0), 3),
            "handler_ms_per_image": round(handler_s / max(images, 1) * 1e3, 3),
            "peak_rss_mb": a.get("peak_rss_mb"),
        }
    for name, key in (("gateway", "gateway_cpu"), ("client", "client_cpu")):
        cpu_s = after[key] - before[key]
        rows[name] = {
            "work": "gRPC routing" if name == "gateway" else "scan requests, callbacks",
            "handler_seconds": None,
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
    return {"n": len(ms), "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2), "mean_ms": round(float(ms.mean()), 2)}


def _latencies(search, items: list) -> dict:
    lat = []
    for item in items:
        t = time.perf_counter()
        search(item)
        lat.append(time.perf_counter() - t)
    return _percentiles(lat)


def search_latency(gateway: Gateway, collection: str, info: dict, queries: list[Path], texts: list[str]) -> dict:
    run_search(gateway, collection, info, image=queries[0])  # warm-up
    out = {"image": _latencies(lambda q: run_search(gateway, collection, info, image=q), queries)}
    if info.get("text") and texts:
        out["text"] = _latencies(lambda text: run_search(gateway, collection, info, text=text), texts)
    return out


def concurrent_search(host: str, collection: str, info: dict, queries: list[Path], clients: int, per_client: int,
                      timeout: float = 60.0) -> dict:
    """``clients`` threads, each its own gRPC client, each sending ``per_client`` image queries."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        gateway = Gateway(host, timeout=timeout)
        for j in range(per_client):
            q = queries[(i * per_client + j) % len(queries)]
            t = time.perf_counter()
            try:
                run_search(gateway, collection, info, image=q)
                with lock:
                    latencies.append(time.perf_counter() - t)
            except Exception as exc:  # counted and shown, never hidden
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])

    before = Gateway(host).call_each("/timings")
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    after = Gateway(host).call_each("/timings")
    calls = docs = 0
    for key, value in after.items():
        if key.startswith("encoder"):
            h = value["handlers"].get("encode_images", {})
            hb = before.get(key, {}).get("handlers", {}).get("encode_images", {})
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


def run_pipeline(
    encoder: str,
    model: Optional[str],
    folder: Path,
    batch_size: int,
    store: Path,
    search_queries: int = 50,
    clients: int = 8,
    per_client: int = 25,
    warm_run: bool = True,
) -> dict:
    """Start the flow, index ``folder`` cold and warm, search; every figure from one flow."""
    from imgsearch.bench.images import image_files

    files = image_files(folder)
    queries = files[:: max(1, len(files) // search_queries)][:search_queries]
    texts = [TEXT_QUERIES[i % len(TEXT_QUERIES)] for i in range(min(search_queries, 20))]
    result: dict = {"encoder": encoder, "images": len(files), "batch_size": batch_size}
    started = time.perf_counter()
    with local_flow(encoder, model=model, store=str(store)) as host:
        ready = time.perf_counter() - started
        gateway = Gateway(host)
        info = encoder_info(gateway)
        result["model"] = info["model"]
        result["startup"] = {
            "flow_ready_seconds": round(ready, 2),
            "model_load_seconds": info.get("load_seconds"),
            "flow_ready_excluding_model_load_seconds": round(ready - float(info.get("load_seconds") or 0.0), 2),
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
        if warm_run:
            before = snapshot(gateway)
            t = time.perf_counter()
            warm = run_index(gateway, folder, info, batch_size=batch_size, dataset=f"bench-warm-{encoder}", progress=False)
            wall = time.perf_counter() - t
            after = snapshot(gateway)
            result["warm"] = {
                "indexed": warm.indexed,
                "index_seconds": round(wall, 2),
                "images_per_second": round(warm.indexed / wall, 2),
                "disk_bytes": warm.disk_bytes,
                "breakdown": breakdown(before, after, warm.indexed, wall),
            }
            collection = warm.collection
        else:
            collection = cold.collection
        result["search"] = search_latency(gateway, collection, info, queries, texts)
        if clients:
            result["concurrent"] = concurrent_search(host, collection, info, queries, clients, per_client)
    return result
