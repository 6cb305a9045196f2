"""The arguments of the long-running commands: compare, serve, up and bench (parser.py has the rest).

Defaults are read from the options classes, never written here; those modules import nothing
heavy, so `app.py --help` stays instant.
"""

import argparse
from pathlib import Path

from executors.urls import data_source
from imgsearch import options as o
from imgsearch.bench.options import BenchOptions
from imgsearch.cli.arguments import (
    RUNTIME_CHOICES,
    default,
    encoder_args,
    json_arg,
    metrics_args,
    model_arg,
    resize_arg,
    runtime_arg,
    store_args,
)
from imgsearch.compare.options import CompareOptions
from imgsearch.exposure import TLS_CERT_ENV, TLS_KEY_ENV


def add_compare(p: argparse.ArgumentParser) -> None:
    c = CompareOptions
    p.add_argument("--data", type=data_source, help=f"folder of images or s3://bucket/prefix; sub-folder names are labels (default: {c.data})")
    encoder_args(
        p,
        extra_help="; ENCODER@RUNTIME (torch, onnx, torch-bf16, onnx-int8) runs that entry on that runtime, "
        "into its own collection, e.g. efficientnet-lite0@torch efficientnet-lite0@onnx-int8 "
        "(no suffix: --runtime)",
    )
    model_arg(p)
    p.add_argument(
        "--tiny-models",
        type=Path,
        metavar="DIR",
        help="where a default checkpoint is unreachable, use the tiny random model from DIR (built by `app.py tiny-models`); the report flags it",
    )
    q = p.add_mutually_exclusive_group()
    q.add_argument("--queries", type=Path, metavar="DIR", help="query images from outside the indexed set (sub-folder = label)")
    q.add_argument(
        "--query-fraction", type=float, metavar="F", help=f"query with this share of each label's indexed images (default {c.query_fraction})"
    )
    p.add_argument("--captions", type=Path, metavar="JSON", help="text queries for text-capable encoders: {label: caption}; default: the label names")
    p.add_argument("--top-k", type=int, help=f"(default {c.top_k})")
    p.add_argument(
        "--score-depth", type=int, help=f"results scored per query for AUC/threshold (the whole collection when smaller; default {c.score_depth})"
    )
    p.add_argument(
        "--max-queries", type=int, metavar="N", help=f"at most N queries: past it, those with the lowest content hash (default {c.max_queries})"
    )
    p.add_argument(
        "--grid-rows", type=int, help=f"query rows in the result grid: where encoders disagree most, and a quarter at random (default {c.grid_rows})"
    )
    p.add_argument("--grid-k", type=int, help=f"thumbnails per grid cell (default {c.grid_k})")
    p.add_argument("--batch-size", type=int, help="images per request (default: each encoder's batch size)")
    p.add_argument("--out", type=Path, help=f"report folder (default: {c.out})")
    p.add_argument("--vertex-project", help="Google Cloud project for the vertex encoder (default: GOOGLE_CLOUD_PROJECT / credentials)")
    p.add_argument("--vertex-region", help="Vertex AI region (default: us-central1)")
    p.add_argument(
        "--vertex-price",
        type=float,
        metavar="USD",
        help=f"Vertex price per 1,000 images in the cost table (default: the list price, {c.vertex_price:.2f})",
    )
    p.add_argument(
        "--no-index-check",
        action="store_false",
        dest="index_check",
        help="skip measuring HNSW / int8 / binary quantisation recall@10 against exact search",
    )
    json_arg(p, "print report.json on stdout")
    p.add_argument("--no-progress", action="store_true")
    resize_arg(p)
    store_args(p, store_default="OUT/store")
    p.add_argument(
        "--fresh",
        action="store_true",
        help="re-index and re-evaluate every encoder (default: resume, reusing complete collections and cached evaluations)",
    )
    p.add_argument(
        "--near-duplicates",
        choices=("keep", "exclude"),
        help=f"leave a query's near-duplicates out of its candidates (exclude) or keep them (default {c.near_duplicates}: copies flatter recall)",
    )
    p.add_argument(
        "--near-duplicate-threshold",
        type=float,
        metavar="COS",
        help=f"cosine at which two images are near-duplicates (default {c.near_duplicate_threshold})",
    )
    p.add_argument(
        "--prompts",
        type=Path,
        metavar="FILE",
        help="zero-shot prompt templates, one a line with {} for the label (default: CLIP's 80-prompt ensemble)",
    )
    runtime_arg(p)


def add_serve(p: argparse.ArgumentParser) -> None:
    s = o.ServeOptions
    encoder_args(p, extra_help="; with --host: what the gateways serve")
    model_arg(p)
    p.add_argument("--port", type=int, help=f"the page's port (default {s.port}; 0 = any free port)")
    p.add_argument("--bind", help=f"address to listen on (default {s.bind}: this machine only)")
    p.add_argument(
        "--allow-host",
        action="append",
        metavar="NAME",
        dest="allow_hosts",
        help="a Host name the page answers besides localhost, 127.0.0.1 and --bind (repeatable; e.g. the machine's name when --bind 0.0.0.0)",
    )
    p.add_argument("--dataset", help="dataset shown first (default: the one most encoders have indexed)")
    p.add_argument("--top-k", type=int, help=f"results per page, \"more\" fetches the next ones (default {s.top_k})")
    p.add_argument(
        "--report",
        type=Path,
        action="append",
        metavar="JSON",
        dest="reports",
        help="compare report(s) whose suggested thresholds dim weaker results (default: report.json beside the store and under ./results)",
    )
    p.add_argument("--max-upload-mb", type=float, help=f"largest accepted upload (default {s.max_upload_mb} MB)")
    p.add_argument("--thumb-cache", type=Path, metavar="DIR", help="thumbnail cache (default: STORE/thumbs)")
    p.add_argument("--resize", type=int, metavar="N", help="search the collections indexed with --resize N")
    store_args(p)
    p.add_argument(
        "--host",
        nargs="+",
        metavar="GRPC_URL",
        dest="hosts",
        help="running gateways, one per encoder (e.g. grpc://HOST:PORT), instead of starting flows",
    )
    runtime_arg(p)


def add_up(p: argparse.ArgumentParser) -> None:
    u = o.UpOptions
    encoder_args(p)
    model_arg(p)
    p.add_argument("--port", type=int, help=f"the first gateway's port; the next encoders get the next ports (default {u.port})")
    p.add_argument(
        "--bind",
        metavar="ADDRESS",
        help=f"the address the gateways listen on (default {u.bind}: this machine only); executors always stay on loopback",
    )
    p.add_argument("--tls-cert", help=f"serve gRPC over TLS with this certificate (PEM; default ${TLS_CERT_ENV})")
    p.add_argument("--tls-key", help=f"the certificate's private key (PEM; default ${TLS_KEY_ENV})")
    resize_arg(p)
    store_args(p)
    runtime_arg(p)
    metrics_args(p)


def add_bench(p: argparse.ArgumentParser) -> None:
    def d(name: str) -> object:
        value = default(BenchOptions, name)
        return " ".join(map(str, value)) if isinstance(value, list) else value

    encoder_args(p, extra_help=f"; here default: {d('encoders')} (clip: full-size ViT-B/32, random weights; efficientnet-lite0: real weights)")
    model_arg(p)
    p.add_argument("--data", type=Path, help="images to measure on (default: a sample of data/memes, else synthetic)")
    p.add_argument("--images", type=int, help=f"how many images (default {d('images')})")
    p.add_argument("--batch-sizes", type=int, nargs="+", help=f"(default {d('batch_sizes')})")
    p.add_argument("--bare-seconds", type=float, help=f"minimum timed seconds per bare batch size (default {d('bare_seconds')})")
    p.add_argument(
        "--rounds", type=int, help=f"warm end-to-end runs, each between two bare-model runs; the median ratio is reported (default {d('rounds')})"
    )
    p.add_argument("--clients", type=int, help=f"concurrent gRPC search clients (0 = skip; default {d('clients')})")
    p.add_argument("--per-client", type=int, help=f"queries per concurrent client (default {d('per_client')})")
    p.add_argument("--store-sizes", type=int, nargs="*", metavar="N", help=f"(default {d('store_sizes')})")
    p.add_argument("--local-size", type=int, help=f"qdrant-client local mode size (0 = skip; default {d('local_size')})")
    p.add_argument("--growth", type=int, nargs="*", metavar="N", help=f"(default {d('growth')})")
    p.add_argument("--growth-model", help="checkpoint for the growth runs (default: the tiny CLIP)")
    p.add_argument(
        "--prune-sizes",
        type=int,
        nargs="*",
        metavar="N",
        help=f"time `index --prune` over collections of these sizes (none = skip; default {d('prune_sizes')})",
    )
    p.add_argument("--quick", action="store_true", help="a small, fast run (checks the benchmark works)")
    p.add_argument("--out", type=Path, help=f"(default {d('out')})")
    p.add_argument("--cache", type=Path, help=f"built models and synthetic images, reused (default {d('cache')})")
    json_arg(p, "print bench.json on stdout")
    runtime_arg(p)
    p.add_argument(
        "--runtimes",
        nargs="*",
        choices=("torch-plain", *RUNTIME_CHOICES[1:]),
        help=f"bare model on each of these runtimes, side by side (none = skip; default {d('runtimes')}); "
        "torch-plain: torch with glibc's default allocator (IMGSEARCH_MALLOC_TUNING=0), as a plain script runs it",
    )
    p.add_argument(
        "--script-images",
        type=int,
        metavar="N",
        help=f"time `app.py index` of N images against the plain one-process torch script (0 = skip; default {d('script_images')})",
    )
    p.add_argument(
        "--lanes",
        help=f"encoder lanes while indexing end to end: auto (as `app.py index` runs) or a number "
        f"(default {d('lanes')}); searches are measured on one lane, as `search` and `serve` run",
    )
    scale = p.add_argument_group("scale-out (imgsearch/bench/scaleout.py)")
    scale.add_argument(
        "--simulate-gpu-ms",
        type=float,
        metavar="MS",
        help="measure the scale-out alone: encoder replicas that each hold a batch MS milliseconds, as a GPU would, with almost "
        "no CPU (a stand-in of the first --encoders' dimension; never a runtime); images/s per replica count, speed-up and efficiency",
    )
    scale.add_argument(
        "--encoder-replicas", type=int, nargs="+", metavar="N", help=f"encoder replica counts to measure (default {d('encoder_replicas')})"
    )
    scale.add_argument("--simulate-batch", type=int, metavar="N", help=f"images per request and simulated batch (default {d('simulate_batch')})")
    scale.add_argument(
        "--next-stage-replicas",
        type=int,
        metavar="N",
        help=f"then the busiest CPU stage (loader or normalizer) with N replicas at the most encoders, measured again "
        f"(0 = skip; default {d('next_stage_replicas')})",
    )
