"""Quality against cost: what each encoder costs to run, and which are Pareto-optimal.

Per compared entry (encoder, or encoder@runtime): milliseconds of encoding per image of the bare
model (the encoder's own ``encode_images`` handler time, read from its ``/timings`` in the same
run: preprocessing and the forward pass, no decoding or gRPC), the encoder process's peak memory,
bytes per vector on disk and in RAM, index time per 10,000 images and, for a cloud API, the
price per 1,000 images. An entry is Pareto-optimal when no other is at least as good on mAP@10
and at least as cheap in ms per image, and strictly better on one (immich's model table).
"""

import logging
from typing import Optional

logger = logging.getLogger(__name__)

# Vertex AI multimodal embeddings, image input: USD 0.0001 per image (list price, December 2026);
# --vertex-price overrides it.
VERTEX_PRICE_PER_1000 = 0.10
QUALITY_KEY = "mAP@10"
MODEL_HANDLERS = ("encode_images", "encode_jpegs")  # the bare model's handlers (executors/encoders/base.py)


def model_timing(timings: dict[str, dict]) -> dict:
    """From the flow's ``/timings`` answers: the encoder's time in its model handlers per image."""
    seconds, images = 0.0, 0
    for answer in timings.values():
        for name, h in (answer.get("handlers") or {}).items():
            if name in MODEL_HANDLERS:
                seconds += float(h.get("seconds") or 0.0)
                images += int(h.get("docs") or 0)
    if not images:
        return {}
    return {"model_ms_per_image": round(1000 * seconds / images, 3), "model_timed_images": images}


def is_remote(rec: dict) -> bool:
    return (rec.get("info") or {}).get("family") == "vertex" or rec.get("registry_name") == "vertex"


def ram_bytes_per_vector(dim: Optional[int], quantization: str = "int8") -> Optional[int]:
    """What one vector holds in RAM in the store: fp32 (searched exactly), plus the quantised copy
    the HNSW search reads (int8: one byte a dimension; binary: one bit)."""
    if not dim:
        return None
    extra = {"none": 0, "int8": dim, "binary": (dim + 7) // 8}[quantization]
    return 4 * int(dim) + extra


def cost_of(rec: dict, price_per_1000: float = VERTEX_PRICE_PER_1000) -> dict:
    """One entry's costs (None where the run could not measure it)."""
    ms = rec.get("model_ms_per_image")
    how = "bare model"
    if ms is None and rec.get("encode_seconds") and rec.get("indexed"):
        ms, how = round(1000 * rec["encode_seconds"] / rec["indexed"], 3), "/index requests"  # an API: its round trips
    indexed = rec.get("indexed") or 0
    remote = is_remote(rec)
    return {
        "ms_per_image": ms,
        "ms_measured_on": how if ms is not None else None,
        "runtime": rec.get("runtime") or ("remote API" if remote else None),
        "threads": (rec.get("info") or {}).get("num_threads"),
        "peak_rss_mb": rec.get("peak_rss_mb"),
        "disk_bytes_per_vector": rec.get("bytes_per_vector"),
        "ram_bytes_per_vector": ram_bytes_per_vector(rec.get("dim")),
        "index_s_per_10k": round(10_000 * rec["index_seconds"] / indexed, 1) if indexed and rec.get("index_seconds") else None,
        "price_per_1000": price_per_1000 if remote else 0.0,
        "leaves_machine": remote,
    }


def pareto(points: dict[str, tuple[Optional[float], Optional[float]]]) -> dict[str, Optional[bool]]:
    """{name: (quality, cost)} → on the front or not (None where either number is missing).
    Higher quality and lower cost are better."""
    known = {n: (q, c) for n, (q, c) in points.items() if q is not None and c is not None}
    out: dict[str, Optional[bool]] = {n: None for n in points}
    for n, (q, c) in known.items():
        out[n] = not any(q2 >= q and c2 <= c and (q2 > q or c2 < c) for m, (q2, c2) in known.items() if m != n)
    return out


def cost_table(runs: list[dict], price_per_1000: float = VERTEX_PRICE_PER_1000, extra: Optional[dict[str, dict]] = None) -> dict[str, dict]:
    """Per entry: its costs, mAP@10 and its Pareto flag. ``extra``: rows made elsewhere (fusion),
    each {quality, ms_per_image, ...}, put on the same front."""
    rows = {}
    for r in runs:
        if r.get("status") != "ok":
            continue
        q = r.get("quality") or {}
        rows[r["encoder"]] = {**cost_of(r, price_per_1000), "quality": q.get(QUALITY_KEY) if q.get("labelled") else None}
    rows.update(extra or {})
    flags = pareto({n: (row["quality"], row["ms_per_image"]) for n, row in rows.items()})
    for n, row in rows.items():
        row["pareto"] = flags[n]
    return rows
