"""`app.py compare`: index the same images with several encoders, run the same queries, report.

Each encoder goes through the same flow as `app.py index` (loader → normalizer → encoder →
indexer), into its own collection of a store kept beside the report, so every number in the
report is measured in this run: wall time with flow start-up, encoding throughput, model
load time, size on disk, the encoder process's peak memory, retrieval quality and how well
scores separate relevant from irrelevant results.

Queries are images of the indexed set ("more like this" by their stored vector, the query
itself excluded from its results) or, with ``--queries DIR``, outside images sent as bytes;
text-capable encoders also get one text query per label (the label name, or a caption given
in a JSON file). Relevance is "same label" (sub-folder name).
"""

import hashlib
import json
import logging
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, TextIO

from executors.docs import ImageDoc
from executors.errors import UserError
from imgsearch.metrics import RankedQuery, evaluate, per_query_ap

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
# encoder → tiny model kind (tests/tiny_models.py); `app.py tiny-models` builds them.
TINY_KIND = {"clip": "clip", "bit": "bit", "efficientnet": "efficientnet", "vit": "vit",
             "dinov2": "dinov2", "blip2": "blip2-itm"}
TINY_MARKER = "IMGSEARCH_TINY_RANDOM_MODEL.txt"
SEARCH_CHUNK = 32


class CompareError(UserError, ValueError):
    """A mistake in the compare options (exit code 2)."""


@dataclass
class CompareOptions:
    data: Path
    encoders: list[str]
    out: Path
    models: dict[str, str] = field(default_factory=dict)
    tiny_models: Optional[Path] = None
    queries: Optional[Path] = None
    query_fraction: float = 0.2
    captions: Optional[Path] = None
    top_k: int = 10
    score_depth: int = 1000
    grid_rows: int = 8
    grid_k: int = 5
    batch_size: int = 32
    resize: Optional[int] = None
    store: Optional[Path] = None
    qdrant_url: Optional[str] = None
    vertex_project: Optional[str] = None
    vertex_region: Optional[str] = None
    progress: bool = True
    argv: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- options


def parse_encoders(text: str) -> list[str]:
    from executors.encoders.specs import get_spec

    names = [n.strip() for n in text.replace(" ", ",").split(",") if n.strip()]
    if not names:
        raise CompareError("--encoders needs at least one name")
    for n in names:
        get_spec(n)  # unknown names fail before anything starts
    if len(set(names)) != len(names):
        raise CompareError(f"an encoder is named twice in --encoders {text}")
    return names


def parse_models(items: Optional[list[str]], encoders: list[str]) -> dict[str, str]:
    """``--model clip=/path/to/tiny-clip`` (repeatable) → {encoder: checkpoint}."""
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, model = item.partition("=")
        if not sep or not name or not model:
            raise CompareError(f"--model takes ENCODER=CHECKPOINT (e.g. clip=openai/clip-vit-large-patch14), not '{item}'")
        if name not in encoders:
            raise CompareError(f"--model names encoder '{name}', which is not in --encoders ({', '.join(encoders)})")
        out[name] = model
    return out


# --------------------------------------------------------------------------- tiny models


def build_tiny_models(out: Path, seed: int = 0) -> dict[str, Path]:
    """Tiny random checkpoints for every hub encoder (for machines without a model hub).

    They load and run exactly like the real ones, but their weights are random: every
    report that uses one says so. Each folder carries a marker file.
    """
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from tiny_models import build_tiny_model
    finally:
        sys.path.remove(str(REPO / "tests"))
    built = {}
    for encoder, kind in TINY_KIND.items():
        folder = build_tiny_model(kind, Path(out) / kind, seed)
        (folder / TINY_MARKER).write_text(
            f"Tiny randomly initialised '{kind}' model (seed {seed}) built by `app.py tiny-models` for offline "
            "tests and demos. Its vectors carry no meaning: quality numbers from it are not a real encoder's.\n"
        )
        built[encoder] = folder
    return built


def is_tiny_random(model: Optional[str]) -> bool:
    return bool(model) and (Path(model) / TINY_MARKER).is_file()


def choose_checkpoint(encoder: str, opts: CompareOptions) -> tuple[Optional[str], str]:
    """(checkpoint override or None for the default, note); raises with the reason to skip."""
    from executors.encoders.resolve import CheckpointError, resolve_checkpoint
    from executors.encoders.specs import get_spec

    override = opts.models.get(encoder)
    if get_spec(encoder).family == "vertex":
        from executors.encoders.vertex import resolve_settings

        resolve_settings(opts.vertex_project, opts.vertex_region, model=override)  # raises VertexConfigError
        return override, "cloud API"
    if override:
        resolve_checkpoint(encoder, override)
        return override, "given with --model"
    try:
        resolve_checkpoint(encoder)
        return None, "default checkpoint"
    except CheckpointError as exc:
        kind = TINY_KIND.get(encoder)
        tiny = opts.tiny_models / kind if opts.tiny_models and kind else None
        if tiny is not None and (tiny / "config.json").is_file():
            return str(tiny), f"default checkpoint unreachable, tiny random stand-in used ({str(exc)[:160]})"
        raise


# --------------------------------------------------------------------------- images and queries


@dataclass
class Item:
    path: str
    hash: str
    label: Optional[str]


def scan(gateway, data: Path) -> list[Item]:
    """The indexable images as the loader sees them (first of each content hash)."""
    from imgsearch.indexing import SCAN_PAGE

    params = {"data": str(data), "collection": "compare-scan", "dataset": "compare-scan"}
    total = int(gateway.call("/scan_total", params).get("files", 0))
    seen, items = set(), []
    for offset in range(0, total, SCAN_PAGE):
        for doc in gateway.post("/scan", [ImageDoc()], {**params, "offset": offset, "limit": SCAN_PAGE}):
            if doc.error or not doc.hash or doc.hash in seen:
                continue
            seen.add(doc.hash)
            items.append(Item(doc.uri, doc.hash, doc.label))
    return items


def pick_queries(items: list[Item], fraction: float) -> list[Item]:
    """A stable, label-stratified sample: per label, ceil(fraction·n) images by content hash.

    Labels with a single image are skipped (nothing relevant to find) unless nothing is labelled.
    """
    by_label: dict[Optional[str], list[Item]] = {}
    for it in items:
        by_label.setdefault(it.label, []).append(it)
    labelled = any(lab is not None for lab in by_label)
    picked = []
    for label in sorted(by_label, key=lambda x: (x is None, x or "")):
        group = sorted(by_label[label], key=lambda it: it.hash)
        if labelled and (label is None or len(group) < 2):
            continue
        picked.extend(group[: max(1, math.ceil(fraction * len(group)))])
    return sorted(picked, key=lambda it: (it.label or "", it.path))


def outside_queries(folder: Path) -> list[Item]:
    from executors.loader.executor import label_for

    items = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts):
            data = path.read_bytes()
            if _looks_like_image(data):
                items.append(Item(str(path), hashlib.sha256(data).hexdigest(), label_for(path, folder)))
    return items


def _looks_like_image(data: bytes) -> bool:
    from PIL import Image
    import io

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.verify()
        return True
    except Exception:
        return False


# --------------------------------------------------------------------------- one encoder


def _search(gateway, collection: str, docs: list[ImageDoc], depth: int, info: Optional[dict] = None) -> list[ImageDoc]:
    from imgsearch.flow import fit_parameter

    params = {"collection": collection, "top_k": depth, "exclude_self": True, **fit_parameter(info or {})}
    out = []
    for start in range(0, len(docs), SEARCH_CHUNK):
        chunk = docs[start : start + SEARCH_CHUNK]
        got = gateway.post("/search", chunk, params, request_size=len(chunk))
        out.extend(got)
    return out


def _ranked(doc: ImageDoc, label: Optional[str], n_relevant: int) -> tuple[RankedQuery, list[dict]]:
    matches = [{"path": m.get("uri"), "label": m.get("label"), "score": float(m.get("score", 0.0))}
               for m in (doc.matches or [])]
    return RankedQuery(label, [m["label"] for m in matches], [m["score"] for m in matches], n_relevant), matches


def run_encoder(encoder: str, opts: CompareOptions, items_box: dict, log: TextIO) -> dict:
    from imgsearch.flow import Gateway, collection_name, local_flow
    from imgsearch.indexing import encoder_info, run_index

    rec: dict = {"encoder": encoder, "status": "skipped"}
    try:
        model, note = choose_checkpoint(encoder, opts)
    except Exception as exc:
        rec["reason"] = str(exc)
        print(f"[{encoder}] skipped: {exc}", file=log)
        return rec
    rec.update(requested_model=model, checkpoint_note=note, random_weights=is_tiny_random(model))
    data = opts.data.resolve()
    dataset = f"compare-{data.name}"
    started = time.perf_counter()
    try:
        with local_flow(encoder, model, store=str(opts.store), qdrant_url=opts.qdrant_url, resize=opts.resize) as host:
            gateway = Gateway(host)
            info = encoder_info(gateway)
            rec["flow_start_seconds"] = round(time.perf_counter() - started, 3)
            name = collection_name(dataset, info["model"], opts.resize)
            gateway.call("/delete", {"collection": name, "drop": True})  # measure a full index, every run
            summary = run_index(gateway, data, info, opts.batch_size, dataset, progress=opts.progress, resize=opts.resize)
            rec["wall_seconds"] = round(time.perf_counter() - started, 3)
            if "items" not in items_box:
                items_box["items"] = scan(gateway, data)
                items_box["queries"] = outside_queries(opts.queries) if opts.queries else pick_queries(items_box["items"], opts.query_fraction)
            rec.update(_queries(gateway, info, summary.collection, summary.count, opts, items_box))
            info = encoder_info(gateway)  # again: peak memory after indexing and searching
        if not opts.queries:
            # The flow is down, so the store can be read: score every query against every image.
            full = full_scores(opts, summary.collection, items_box["queries"], items_box["items"])
            rec["quality"] = merge_quality(items_box.pop("ranked"), full)
    except Exception as exc:
        rec.update(status="failed", reason=f"{type(exc).__name__}: {exc}")
        print(f"[{encoder}] failed: {exc}", file=log)
        return rec
    rec.update(
        status="ok",
        info=info,
        model=info["model"],
        index=summary.to_json(),
        indexed=summary.indexed,
        count=summary.count,
        skipped_files=len(summary.skipped),
        index_seconds=round(summary.seconds, 3),
        encode_seconds=round(summary.encode_seconds, 3),
        images_per_second=round(summary.images_per_second, 3),
        load_seconds=info.get("load_seconds"),
        disk_bytes=summary.disk_bytes,
        disk_mb=None if summary.disk_bytes is None else round(summary.disk_bytes / 1e6, 3),
        bytes_per_vector=None if not summary.disk_bytes or not summary.count else round(summary.disk_bytes / summary.count, 1),
        peak_rss_mb=info.get("peak_rss_mb"),
        dim=info.get("dim"),
    )
    q = rec.get("quality") or {}
    print(f"[{encoder}] {info['model']}: {summary.indexed} indexed in {rec['wall_seconds']:.1f} s wall "
          f"({rec['images_per_second']:.1f} img/s encoding, load {info.get('load_seconds', 0):.1f} s), "
          f"{rec['disk_mb']} MB, peak {rec['peak_rss_mb']} MB"
          + (f", R@1 {q.get('recall@1')}, mAP@10 {q.get('mAP@10')}, AUC {q.get('auc')}" if q.get("labelled") else ""),
          file=log)
    return rec


def _queries(gateway, info: dict, collection: str, count: int, opts: CompareOptions, box: dict) -> dict:
    items: list[Item] = box["items"]
    queries: list[Item] = box["queries"]
    label_count: dict[Optional[str], int] = {}
    hashes = {it.hash for it in items}
    for it in items:
        label_count[it.label] = label_count.get(it.label, 0) + 1
    # In-index queries: the flow ranks the top results; every score (for AUC, threshold, histograms)
    # comes afterwards from the stored vectors (`full_scores`). Outside queries: the flow scores
    # the first `score_depth` results.
    depth = max(1, min(opts.score_depth if opts.queries else max(opts.top_k, 10), count))
    if opts.queries:
        docs = [ImageDoc(uri=q.path, hash=q.hash, blob=Path(q.path).read_bytes()) for q in queries]
    else:
        docs = [ImageDoc(uri=q.path, hash=q.hash) for q in queries]
    t0 = time.perf_counter()
    results = {d.hash: d for d in _search(gateway, collection, docs, depth, info)}
    search_seconds = time.perf_counter() - t0
    ranked, per_query = [], []
    for q in queries:
        doc = results.get(q.hash)
        in_index = q.hash in hashes
        n_rel = label_count.get(q.label, 0) - (1 if in_index else 0) if q.label is not None else 0
        if doc is None or doc.error:
            per_query.append({"query": q.path, "label": q.label, "error": doc.error if doc else "no answer"})
            continue
        rq, matches = _ranked(doc, q.label, n_rel)
        ranked.append(rq)
        per_query.append({"query": q.path, "hash": q.hash, "label": q.label, "n_relevant": n_rel,
                          "ap": per_query_ap(rq, 10), "hit@1": bool(rq.relevance[:1] and rq.relevance[0]) if q.label else None,
                          "matches": [{**m, "relevant": r} for m, r in zip(matches[: opts.top_k], rq.relevance)]})
    box["ranked"] = ranked
    out = {
        "score_depth": depth if opts.queries else count,
        "scores_cover_collection": (depth >= count - 1) if opts.queries else True,
        "query_count": len(queries),
        "search_ms_per_query": round(1000 * search_seconds / max(1, len(queries)), 3),
        "quality": evaluate(ranked, ks=(1, 5, 10), map_k=10),
        "per_query": per_query,
    }
    if info.get("text"):
        captions = json.loads(opts.captions.read_text()) if opts.captions else {}
        labels = sorted(lab for lab, n in label_count.items() if lab is not None)
        texts = {lab: captions.get(lab) or lab.replace("-", " ").replace("_", " ") for lab in labels}
        tdocs = _search(gateway, collection, [ImageDoc(text=t) for t in texts.values()], depth)
        by_text = {d.text: d for d in tdocs}
        tranked = []
        for lab, t in texts.items():
            d = by_text.get(t)
            if d is not None and not d.error:
                tranked.append(_ranked(d, lab, label_count[lab])[0])
        tq = evaluate(tranked, ks=(1, 5, 10), map_k=10) if tranked else {"labelled": False, "queries": 0}
        out["text_quality"] = {k: v for k, v in tq.items() if not k.startswith("histogram")}
        out["text_queries"] = "captions file" if opts.captions else "label names"
    return out


def full_scores(opts: CompareOptions, collection: str, queries: list[Item], items: list[Item]) -> list[RankedQuery]:
    """Each in-index query against the whole collection (itself excluded), by the stored vectors."""
    import numpy as np

    from executors.indexer.executor import full_payload
    from executors.indexer.store import EdgeStore, ServerStore

    store = ServerStore(opts.qdrant_url) if opts.qdrant_url else EdgeStore(str(opts.store), read_only=True)
    try:
        points = list(store.scroll(collection, with_vectors=True))
    finally:
        store.close()
    hashes = [p.payload.get("hash") for p in points]
    labels = [full_payload(p.payload)["label"] for p in points]  # stored only where the folder does not say it
    vectors = np.stack([np.asarray(p.vector, dtype=np.float32) for p in points])
    where = {h: i for i, h in enumerate(hashes)}
    label_count: dict = {}
    for lab in labels:
        label_count[lab] = label_count.get(lab, 0) + 1
    out = []
    for q in queries:
        qi = where.get(q.hash)
        if qi is None:
            continue
        scores = vectors @ vectors[qi]
        scores[qi] = -np.inf
        order = np.argsort(-scores, kind="stable")[:-1]  # drop the query itself (last, at -inf)
        n_rel = label_count.get(q.label, 0) - 1 if q.label is not None else 0
        out.append(RankedQuery(q.label, [labels[i] for i in order], scores[order].astype(float).tolist(), n_rel))
    return out


STRATIFICATION = ("auc", "mean_relevant_score", "mean_irrelevant_score", "separation", "break_gap", "break_gap_queries",
                  "threshold", "relevant_scores", "irrelevant_scores", "histogram_relevant", "histogram_irrelevant")


def merge_quality(flow_ranked: list[RankedQuery], full: list[RankedQuery]) -> dict:
    """Ranking metrics from the flow's answers; score distributions over the whole collection."""
    quality = evaluate(flow_ranked, ks=(1, 5, 10), map_k=10)
    if quality.get("labelled") and full:
        whole = evaluate(full, ks=(1, 5, 10), map_k=10)
        quality.update({k: whole[k] for k in STRATIFICATION})
    return quality


# --------------------------------------------------------------------------- the whole run


def environment() -> dict:
    import importlib.metadata as md

    versions = {}
    for pkg in ("torch", "transformers", "jina", "docarray", "qdrant-edge-py", "qdrant-client", "numpy", "pillow",
                "efficientnet-lite-pytorch", "google-auth"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5).stdout.strip()
    except Exception:
        commit = None
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "machine": platform.machine(), "versions": versions, "git_commit": commit or None}


def run_compare(opts: CompareOptions, log: TextIO = sys.stderr) -> dict:
    """Run every encoder, then write the report; returns the report dict (report.json)."""
    from imgsearch.report import write_report

    if not opts.data.is_dir():
        raise CompareError(f"data folder not found: {opts.data}")
    if opts.queries is not None and not opts.queries.is_dir():
        raise CompareError(f"query folder not found: {opts.queries}")
    if opts.captions is not None and not opts.captions.is_file():
        raise CompareError(f"captions file not found: {opts.captions}")
    if not 0 < opts.query_fraction <= 1:
        raise CompareError("--query-fraction must be in (0, 1]")
    if opts.top_k < 1 or opts.grid_k < 1:
        raise CompareError("--top-k and --grid-k must be at least 1")
    opts.out.mkdir(parents=True, exist_ok=True)
    opts.store = Path(opts.store or opts.out / "store")
    if opts.vertex_project:
        os.environ["VERTEX_PROJECT"] = opts.vertex_project  # the executor process reads it
    if opts.vertex_region:
        os.environ["VERTEX_REGION"] = opts.vertex_region
    started = time.perf_counter()
    box: dict = {}
    runs = [run_encoder(name, opts, box, log) for name in opts.encoders]
    items = box.get("items", [])
    labels = {it.label for it in items if it.label is not None}
    result = {
        "title": f"Encoder comparison on {opts.data.resolve().name}",
        "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "seconds": None,
        "data": {"folder": str(opts.data.resolve()), "images": len(items), "labels": len(labels),
                 "labelled": bool(labels), "unlabelled_images": sum(1 for it in items if it.label is None)},
        "queries": {"source": str(opts.queries) if opts.queries else f"{opts.query_fraction:g} of each label's images (by content hash), excluded from their own results",
                    "count": len(box.get("queries", [])), "top_k": opts.top_k},
        "settings": {"encoders": opts.encoders, "models": opts.models, "tiny_models": str(opts.tiny_models) if opts.tiny_models else None,
                     "batch_size": opts.batch_size, "resize": opts.resize, "score_depth": opts.score_depth,
                     "query_fraction": opts.query_fraction, "store": str(opts.store), "qdrant_url": opts.qdrant_url,
                     "command": " ".join(opts.argv) if opts.argv else None},
        "environment": environment(),
        "encoders": runs,
        "grid": {"rows": opts.grid_rows, "k": opts.grid_k},
    }
    result["seconds"] = round(time.perf_counter() - started, 1)
    write_report(result, opts.out)
    return result
