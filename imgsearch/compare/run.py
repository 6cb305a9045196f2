"""The run: each encoder through the same flow as `app.py index`, its evaluation, then the report.

Each encoder indexes into its own collection of a store kept beside the report, so every
number in the report is measured: wall time with flow start-up, encoding throughput, model
load time, size on disk, the encoder process's peak memory, retrieval quality and how
well scores separate relevant from irrelevant results. An encoder that fails is recorded
with its error; the others' results stand. A rerun resumes (compare/cache.py).
"""

import importlib.metadata as md
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, TextIO

from executors.indexer.store import EdgeStore, ServerStore
from executors.stage import peak_rss_mb  # this (client) process's; the executors report their own
from imgsearch.compare.cache import EvalCache, folder_digest, key_of
from imgsearch.compare.cost import cost_table, model_timing
from imgsearch.compare.evaluation import (
    content_digest,
    evaluate_in_index,
    per_label_recall,
    rank_outside_queries,
    ranking_cis,
    search_latency,
    text_quality,
)
from imgsearch.compare.fusion import cost_rows as fusion_cost_rows
from imgsearch.compare.fusion import fuse_runs, shown_rows
from imgsearch.compare.options import CompareOptions, choose_checkpoint, split_entry
from imgsearch.compare.quantization import index_recall
from imgsearch.compare.quantization import recommend as recommend_index
from imgsearch.compare.queries import QuerySet, in_index_queries, outside_queries, scan
from imgsearch.compare.stratify import read_vectors
from imgsearch.compare.summary import label_disagreement, significance
from imgsearch.compare.tasks_summary import tasks_summary
from imgsearch.compare.vector_tasks import run_tasks
from imgsearch.compare.zero_shot import prompt_vectors
from imgsearch.datasource import data_name, data_ref, listing_digest
from imgsearch.flow import REPO, FlowConfig, Gateway, collection_name, local_flow
from imgsearch.indexing import encoder_info, run_index
from imgsearch.report import write_report
from imgsearch.tiny_models import is_tiny_random

logger = logging.getLogger(__name__)

EVAL_VERSION = 3  # part of every cached evaluation's key: a change in what it holds invalidates old caches


def _open_store(opts: CompareOptions):
    return (
        ServerStore(opts.qdrant_url, read_only=True, api_key=opts.qdrant_api_key) if opts.qdrant_url else EdgeStore(str(opts.store), read_only=True)
    )


def _store_dir(opts: CompareOptions) -> Path:
    """The embedded store's folder: run_compare sets it (under --out unless --store names one)."""
    if opts.store is None:
        raise ValueError("compare options name no store folder: run_compare sets one before any encoder runs")
    return opts.store


def stored_content(opts: CompareOptions, collection: str) -> tuple[int, Optional[str]]:
    """(points, content digest) of a collection; (0, None) when there is none."""
    if not opts.qdrant_url and not _store_dir(opts).is_dir():
        return 0, None
    with _open_store(opts) as store:
        if not store.has_collection(collection):
            return 0, None
        hashes = [hit.payload.get("hash") for hit in store.scroll(collection)]
    return len(hashes), content_digest(hashes)


class Run:
    """State shared by the encoders of one compare: options, the query set and the cache."""

    def __init__(self, opts: CompareOptions, log: TextIO):
        self.opts, self.log = opts, log
        self.cache = EvalCache((opts.out if opts.qdrant_url else _store_dir(opts)) / "compare-eval")
        if opts.fresh:
            self.cache.clear()
        data_digest = listing_digest(opts.data) if isinstance(opts.data, str) else folder_digest(opts.data)
        self.data_key = key_of(data=data_digest, queries=folder_digest(opts.queries))
        self.query_key = key_of(data=self.data_key, fraction=opts.query_fraction, max_queries=opts.max_queries)
        cached = None if opts.fresh else self.cache.load("queries", self.query_key)
        self.qs: Optional[QuerySet] = QuerySet.from_json(cached) if cached else None

    def say(self, text: str) -> None:
        print(text, file=self.log, flush=True)

    def query_set(self, gateway) -> QuerySet:
        if self.qs is None:
            items = scan(gateway, data_ref(self.opts.data))
            if self.opts.queries:
                queries = outside_queries(self.opts.queries)
                self.qs = QuerySet(items, queries, len(queries), f"every image in {self.opts.queries}")
            else:
                self.qs = in_index_queries(items, self.opts.query_fraction, self.opts.max_queries)
            self.cache.save("queries", self.query_key, **self.qs.to_json())
        return self.qs

    def encoder(self, entry: str) -> dict:
        """One compared entry: an encoder, or ``encoder@runtime`` (its own flow and collection)."""
        opts = self.opts
        encoder, runtime = split_entry(entry)
        # "encoder" names the entry (the report's column); "runtime" is what it asked for, None: the
        # process's --runtime / $ENCODER_RUNTIME / auto. What ran is the encoder's own /info.
        rec: dict = {"encoder": entry, "status": "skipped", "registry_name": encoder, "requested_runtime": runtime}
        try:
            model, note = choose_checkpoint(encoder, opts)
        except Exception as exc:
            rec["reason"] = str(exc)
            self.say(f"{entry}: skipped: {exc}")
            return rec
        rec.update(requested_model=model, checkpoint_note=note, random_weights=is_tiny_random(model))
        # Keyed on the entry's runtime, as its collection is. A plain entry's key (and collection) has
        # none, as before runtimes had names: its cached evaluation is of the vectors stored, and says
        # which runtime made them.
        key = key_of(
            encoder=encoder,
            model=model,
            data=self.data_key,
            settings=opts.settings_key(),
            version=EVAL_VERSION,
            **({"runtime": runtime} if runtime else {}),
        )
        cached = self.cache.load(entry, key) if self.qs is not None else None
        if cached:
            count, digest = stored_content(opts, cached["rec"]["index"]["collection"])
            if digest == cached["digest"]:
                self.say(f"{entry}: reused ({count:,} vectors, evaluation cached)" + _other_runtime(entry, cached["rec"], self.opts))
                return {**cached["rec"], "resumed": "evaluation cached"}
        try:
            rec.update(self._measure(entry, model))
        except Exception as exc:
            logger.debug("%s failed", entry, exc_info=True)
            rec.update(status="failed", reason=f"{type(exc).__name__}: {exc}")
            self.say(f"{entry}: failed: {rec['reason']}")
            return rec
        self.cache.save(entry, key, digest=rec.pop("digest"), rec=rec)
        q = rec.get("quality") or {}
        self.say(
            f"{entry}: {rec['model']}{' on ' + rec['runtime'] if rec.get('runtime') else ''}: {rec['indexed']:,} indexed, {rec['count']:,} vectors, {rec['wall_seconds']:.1f} s "
            f"wall ({rec['images_per_second'] or 0:.1f} img/s encoding), evaluation {rec['eval_seconds']:.1f} s, "
            f"peak {rec['peak_rss_mb']} MB"
            + (f", R@1 {q.get('recall@1')}, mAP@10 {q.get('mAP@10')}, AUC {q.get('auc')}" if q.get("labelled") else "")
        )
        return rec

    def _measure(self, entry: str, model: Optional[str]) -> dict:
        opts = self.opts
        encoder, runtime = split_entry(entry)
        dataset = data_name(opts.data)
        started = time.perf_counter()
        rec: dict = {}
        text = None  # the zero-shot label vectors, for text-capable encoders
        with local_flow(encoder, model, config=flow_config(opts), runtime=runtime or opts.runtime) as host:
            gateway = Gateway(host)
            info = encoder_info(gateway)
            rec["flow_start_seconds"] = round(time.perf_counter() - started, 3)
            name = collection_name(f"compare-{dataset}", info.model, opts.resize, runtime)
            if opts.fresh:
                gateway.call("/delete", {"collection": name, "drop": True})
            summary = run_index(
                gateway, opts.data, info, opts.batch_size, f"compare-{dataset}", progress=opts.progress, resize=opts.resize, runtime=runtime
            )
            rec["wall_seconds"] = round(time.perf_counter() - started, 3)
            if summary.already_indexed and not summary.indexed:
                self.say(f"{entry}: reused ({summary.count:,} vectors), evaluating")
            t_eval = time.perf_counter()
            qs = self.query_set(gateway)
            if opts.queries:
                rec.update(rank_outside_queries(gateway, info, summary.collection, summary.count, opts, qs))
            else:
                rec.update(search_latency(gateway, info, summary.collection, qs))
            if info.text:
                rec.update(text_quality(gateway, summary.collection, summary.count, opts, qs))
                text = prompt_vectors(gateway, summary.collection, qs, opts, rec)
            rec.update(model_timing(gateway.call_each("/timings")))  # the bare model's ms per image, this run
            info = encoder_info(gateway)  # again: peak memory after indexing and searching
            flow_eval = time.perf_counter() - t_eval
        t_strat = time.perf_counter()
        with _open_store(opts) as store:  # the flow is down, so the store can be read
            data = read_vectors(store, summary.collection)
            if opts.queries:
                digest = content_digest(data[2])
                if rec["quality"].get("labelled"):
                    rec["quality"]["ci"] = ranking_cis(rec["per_query"], opts.bootstrap)
            else:  # every query against every image
                evaluated, digest = evaluate_in_index(store, summary.collection, qs, opts, data)
                rec.update(evaluated)
        if opts.index_check:  # what HNSW and quantisation cost in recall here, on the vectors just read
            rec["index_recall"] = index_recall(data[0])
        rec.update(run_tasks(*data, qs, opts, rec, text=text))  # compare/vector_tasks.py
        del data
        per = rec["per_query"]
        rec["per_label_recall@1"] = per_label_recall(per, qs.queries)
        rec["eval_seconds"] = round(flow_eval + time.perf_counter() - t_strat, 3)
        rec.update(
            status="ok",
            digest=digest,
            info=info.to_dict(),
            model=info.model,
            index=summary.to_json() | {"skipped": summary.skipped[:50], "duplicates": summary.duplicates[:50]},
            indexed=summary.indexed,
            already_indexed=summary.already_indexed,
            count=summary.count,
            skipped_files=len(summary.skipped),
            index_seconds=round(summary.seconds, 3),
            encode_seconds=round(summary.encode_seconds, 3),
            images_per_second=round(summary.images_per_second, 3) if summary.indexed else None,
            load_seconds=info.load_seconds,
            disk_bytes=summary.disk_bytes,
            disk_mb=None if summary.disk_bytes is None else round(summary.disk_bytes / 1e6, 3),
            bytes_per_vector=None if not summary.disk_bytes or not summary.count else round(summary.disk_bytes / summary.count, 1),
            peak_rss_mb=info.peak_rss_mb,
            dim=info.dim,
            runtime=info.runtime,
            onnx_provider=info.onnx_provider,
        )
        return rec


def flow_config(opts: CompareOptions) -> FlowConfig:
    """The flows' settings: the run's store, and the Vertex project and region for its encoder
    (read by the executor's process: executors/encoders/vertex.py)."""
    vertex = {k: v for k, v in (("VERTEX_PROJECT", opts.vertex_project), ("VERTEX_REGION", opts.vertex_region)) if v}
    return FlowConfig(
        opts.encoders[0],
        store=str(opts.store),
        qdrant_url=opts.qdrant_url,
        qdrant_api_key=opts.qdrant_api_key,
        resize=opts.resize,
        encoder_env=vertex,
    )


def _other_runtime(entry: str, rec: dict, opts: CompareOptions) -> str:
    """A hint when a plain entry's stored vectors come from another runtime than --runtime asks for."""
    asked = (opts.runtime or os.environ.get("ENCODER_RUNTIME") or "").strip().lower()
    made = rec.get("runtime")
    if split_entry(entry)[1] or asked in ("", "auto") or not made or made == asked:
        return ""
    return f"; its vectors were made on {made}: to compare runtimes, name them ({entry}@{asked})"


def environment() -> dict:
    versions: dict[str, Optional[str]] = {}  # None: not installed
    for pkg in (
        "torch",
        "transformers",
        "jina",
        "docarray",
        "qdrant-edge-py",
        "qdrant-client",
        "numpy",
        "pillow",
        "efficientnet-lite-pytorch",
        "google-auth",
    ):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5).stdout.strip()
    except Exception:
        commit = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "versions": versions,
        "git_commit": commit or None,
    }


def run_compare(opts: CompareOptions, log: TextIO = sys.stderr) -> dict:
    """Run every encoder, then write the report; returns the report dict (report.json)."""
    opts.check()
    opts.out.mkdir(parents=True, exist_ok=True)
    opts.store = Path(opts.store or opts.out / "store")
    started = time.perf_counter()
    run = Run(opts, log)
    runs = [run.encoder(name) for name in opts.encoders]
    qs = run.qs or QuerySet()
    t_summary = time.perf_counter()
    labels = {it.label for it in qs.items if it.label is not None}
    measured = [r for r in runs if r.get("status") == "ok" and not r.get("resumed")]
    costs = cost_table(runs, opts.vertex_price)
    fusion = fuse_runs(
        runs, [it.label for it in qs.items], [it.path for it in qs.items], [[q.path, q.label] for q in qs.queries], costs, opts.bootstrap
    )
    costs = cost_table(runs, opts.vertex_price, extra=fusion_cost_rows(fusion))
    costs = {n: r for n, r in costs.items() if not r.get("fused") or n in shown_rows(costs)}
    result = {
        "title": f"Encoder comparison on {data_name(opts.data)}",
        "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "seconds": None,
        "data": {
            "folder": data_ref(opts.data),
            "images": len(qs.items),
            "labels": len(labels),
            "labelled": bool(labels),
            "unlabelled_images": sum(1 for it in qs.items if it.label is None),
        },
        "queries": {
            "source": qs.how,
            "count": len(qs.queries),
            "candidates": qs.candidates,
            "max_queries": opts.max_queries,
            "top_k": opts.top_k,
            "list": [[q.path, q.label] for q in qs.queries],
        },
        # Per-query results name images by their number here, so no path is written twice.
        "images": {"paths": [it.path for it in qs.items], "labels": [it.label for it in qs.items]},
        "settings": {
            "encoders": opts.encoders,
            "models": opts.models,
            "tiny_models": str(opts.tiny_models) if opts.tiny_models else None,
            "batch_size": opts.batch_size,
            "resize": opts.resize,
            "score_depth": opts.score_depth,
            "query_fraction": opts.query_fraction,
            "max_queries": opts.max_queries,
            "bootstrap": opts.bootstrap,
            "store": str(opts.store),
            "qdrant_url": opts.qdrant_url,
            "command": " ".join(opts.argv) if opts.argv else None,
        },
        "environment": environment(),
        "encoders": runs,
        "significance": significance(runs, opts.bootstrap),
        "cost": {"vertex_price_per_1000": opts.vertex_price, "quality": "mAP@10", "cost": "ms per image", "rows": costs},
        "fusion": fusion,
        "quantization": {
            "per_encoder": {r["encoder"]: r["index_recall"] for r in runs if r.get("index_recall")},
            "recommended": recommend_index({r["encoder"]: r["index_recall"] for r in runs if r.get("index_recall")}),
        },
        "labels": label_disagreement(runs),
        "tasks": tasks_summary(runs, qs, opts),  # issue 25: zero-shot, kNN, probe, near-duplicates, label audit, maps
        "grid": {"rows": opts.grid_rows, "k": opts.grid_k},
    }
    summary_seconds = time.perf_counter() - t_summary
    t_report = time.perf_counter()
    write_report(
        result,
        opts.out,
        finish=lambda r: r.update(
            seconds=round(time.perf_counter() - started, 1),
            timing={
                "indexing_seconds": round(sum(r.get("wall_seconds") or 0 for r in measured), 1),
                "evaluation_seconds": round(sum(r.get("eval_seconds") or 0 for r in measured) + summary_seconds, 1),
                "report_seconds": round(time.perf_counter() - t_report, 1),
                "reused": [r["encoder"] for r in runs if r.get("resumed")],
            },
            client_peak_rss_mb=peak_rss_mb(),
        ),
    )
    return result
