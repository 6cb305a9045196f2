"""What each sub-command does; argument parsing and exit codes live in cli.py."""

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Iterator, Optional, TextIO

from executors.encoders.resolve import CheckpointError, parse_model_overrides, resolve_checkpoint
from executors.encoders.runtime_env import ENV_LANES
from executors.encoders.specs import DEFAULT_ENCODER, SPECS, get_spec
from executors.errors import UserError
from imgsearch.datasource import check_data, data_name
from imgsearch.flow import Gateway, collection_name, local_flow
from imgsearch.grid import render_html, render_png
from imgsearch.indexing import encoder_info, run_index
from imgsearch.searching import run_search

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def gateway_for(args: argparse.Namespace, encoder: str, model: Optional[str],
                lanes: Optional[str] = None) -> Iterator[tuple[Gateway, dict]]:
    """A gateway serving `encoder`: the user's (--host) or a flow started here (its encoder
    with ``lanes``, executors/encoders/runtimes.index_lanes)."""
    get_spec(encoder)  # unknown names fail before anything starts
    if args.host:
        gateway = Gateway(args.host)
        if not gateway.ready():
            raise UserError(f"no flow is answering at {args.host} (is the gateway running and reachable?)")
        info = encoder_info(gateway)
        if info["encoder"] != encoder or (model and info["model"] != model):
            raise UserError(f"the gateway at {args.host} serves encoder '{info['encoder']}' ({info['model']}), not '{encoder}'")
        yield gateway, info
        return
    resolve_checkpoint(encoder, model)  # one clear error before the flow starts
    with local_flow(encoder, model, store=args.store, qdrant_url=args.qdrant_url, resize=getattr(args, "resize", None),
                    lanes=lanes) as host:
        gateway = Gateway(host)
        yield gateway, encoder_info(gateway)


def cmd_index(args: argparse.Namespace, out: TextIO) -> int:
    if args.model and len(args.encoder) > 1:
        raise UserError("--model overrides the checkpoint of one encoder; give a single --encoder with it")
    for name in args.encoder:
        get_spec(name)
    if not args.host:
        _check_data(args.data)
    summaries = []
    for name in args.encoder:
        started = time.perf_counter()
        # This flow only indexes: its encoder runs batches side by side, one thread each, where
        # that is faster (ONNX Runtime on a CPU), unless $ENCODER_LANES says otherwise.
        with gateway_for(args, name, args.model, lanes=os.environ.get(ENV_LANES) or "auto") as (gateway, info):
            summary = run_index(gateway, args.data, info, args.batch_size, args.dataset,
                                progress=not (args.json or args.no_progress), resize=args.resize,
                                prune=args.prune, max_prune=args.max_prune)
        summary.seconds = time.perf_counter() - started  # wall time, flow start-up included
        if summary.files_seen == 0:
            raise UserError(f"no image files found under {args.data}")
        summaries.append(summary)
        if not args.json:
            _print_index_summary(summary, info, out)
    if args.json:
        json.dump(summaries[0].to_json() if len(summaries) == 1 else {"runs": [s.to_json() for s in summaries]}, out, indent=2)
        out.write("\n")
    return 0


def _check_data(data) -> None:
    check_data(data, " (build the sample set with `python app.py sample`)" if data == Path("data/memes") else "")


def _print_index_summary(s, info: dict, out: TextIO) -> None:
    size = f"{s.disk_bytes / 1e6:.1f} MB on disk" if s.disk_bytes is not None else "size on disk: n/a (server)"
    print(f"Collection '{s.collection}'  encoder {s.encoder}  model {s.model}  ({info['device']}, {info['dtype']})", file=out)
    print(f"  indexed now: {s.indexed}   already indexed: {s.already_indexed}   duplicates: {len(s.duplicates)}   skipped: {len(s.skipped)}", file=out)
    print(f"  time: {s.seconds:.1f} s (flow start-up and model load included; model load {info['load_seconds']:.1f} s)   "
          f"encoding: {s.images_per_second:.1f} images/s", file=out)
    index_note = f", search index built in {s.optimize_seconds:.1f} s" if s.optimize_seconds >= 0.05 else ""
    print(f"  collection: {s.count} vectors, {size}{index_note}", file=out)
    if s.pruned_paths:
        print(f"  pruned: forgot {s.pruned_paths} paths whose files are gone or changed; "
              f"{s.pruned_images} images deleted (no path left)", file=out)
    if s.not_seen:
        print(f"  not seen in this scan: {s.not_seen} stored images (files deleted, moved or edited, or indexed "
              f"from another folder into this collection); `index --prune` forgets those under {s.data}", file=out)
    for d in s.duplicates[:20]:
        print(f"  duplicate: {d['path']} (same bytes as {d['same_as']})", file=out)
    if s.skipped:
        print("  skipped:", file=out)
        for item in s.skipped:
            print(f"    {item['path']}: {item['reason']}", file=out)


def _collection_for(args: argparse.Namespace, gateway: Gateway, info: dict) -> str:
    if args.collection:
        return args.collection
    if args.dataset or args.data:
        return collection_name(args.dataset or data_name(args.data), info["model"], args.resize)
    mine = [c["name"] for c in gateway.call("/stats").get("collections", []) if c.get("model") == info["model"]]
    if not mine:
        raise UserError(f"nothing is indexed with encoder '{info['encoder']}' ({info['model']}) yet: run `python app.py index --encoder {info['encoder']}` first")
    if len(mine) > 1:
        raise UserError(f"several collections use {info['model']}: {', '.join(mine)}; pick one with --data, --dataset or --collection")
    return mine[0]


def cmd_search(args: argparse.Namespace, out: TextIO) -> int:
    if args.image is not None and not args.image.is_file():
        raise UserError(f"query image not found: {args.image}")
    if args.top_k < 1:
        raise UserError("--top-k must be at least 1")
    spec = get_spec(args.encoder)
    if args.text is not None and not spec.text and not args.model:
        raise UserError(f"encoder '{spec.name}' cannot embed text; search with --image, or use a text-capable encoder: "
                        + ", ".join(n for n, s in SPECS.items() if s.text))
    with gateway_for(args, args.encoder, args.model) as (gateway, info):
        collection = _collection_for(args, gateway, info)
        count = int(gateway.call("/count", {"collection": collection}).get("count", 0))
        if count == 0:
            raise UserError(f"collection '{collection}' is empty or does not exist: run `python app.py index` first")
        result = run_search(gateway, collection, info, image=args.image, text=args.text, top_k=args.top_k, score_threshold=args.threshold)
    stem = f"search-{args.encoder}-{int(time.time())}"
    title = f"{result.encoder} ({result.model}) · {collection}"
    rows = [(title, result.matches)]
    png = render_png(result.query, rows, args.out / f"{stem}.png")
    page = render_html(result.query, rows, args.out / f"{stem}.html", title=f"Search: {title}")
    if args.json:
        json.dump({**result.to_json(), "grid_png": str(png), "grid_html": str(page)}, out, indent=2)
        out.write("\n")
        return 0
    query = args.image if args.image is not None else f"“{args.text}”"
    print(f"Top {len(result.matches)} for {query} in '{collection}' ({result.encoder}, {result.model}):", file=out)
    for i, m in enumerate(result.matches, 1):
        print(f"  {i:>3}. {m['score']:.4f}  {m['path']}" + (f"  [{m['label']}]" if m.get("label") else ""), file=out)
    if not result.matches:
        print("  (no results" + (f" above the threshold {args.threshold}" if args.threshold is not None else "") + ")", file=out)
    print(f"Grid: {png}\n      {page}", file=out)
    return 0


def cmd_stats(args: argparse.Namespace, out: TextIO) -> int:
    if args.host:
        collections = Gateway(args.host).call("/stats").get("collections", [])
    else:
        from executors.indexer.store import EdgeStore, ServerStore  # local: both Qdrant clients, only for stats

        if args.qdrant_url:
            store = ServerStore(args.qdrant_url, read_only=True)
        else:
            if not Path(args.store).is_dir():
                raise UserError(f"no store at {args.store}: nothing indexed yet (run `python app.py index`)")
            store = EdgeStore(args.store, read_only=True)
        try:
            collections = [{"name": c.name, "count": c.count, "disk_bytes": c.disk_bytes, **c.meta} for c in store.list_collections()]
        finally:
            store.close()
    if args.json:
        json.dump({"collections": collections}, out, indent=2)
        out.write("\n")
        return 0
    if not collections:
        print("no collections yet: run `python app.py index`", file=out)
        return 0
    print(f"{'collection':<48} {'encoder':<20} {'model':<40} {'vectors':>8} {'dim':>5} {'disk MB':>8}", file=out)
    for c in collections:
        mb = f"{c['disk_bytes'] / 1e6:.1f}" if c.get("disk_bytes") is not None else "n/a"
        print(f"{c['name']:<48} {str(c.get('encoder') or ''):<20} {str(c.get('model') or ''):<40} {c['count']:>8} {str(c.get('dim') or ''):>5} {mb:>8}", file=out)
    return 0


def cmd_sample(args: argparse.Namespace, out: TextIO) -> int:
    from imgsearch.sample_data import build_memes  # local: image generation, only for sample

    started = time.perf_counter()
    summary = build_memes(args.out, variants=args.variants, hard=args.hard, limit=args.limit, wheel=args.wheel)
    print(f"Sample set: {summary['images']} images of {summary['templates']} meme templates in {summary['out_dir']} "
          f"({time.perf_counter() - started:.1f} s)", file=out)
    return 0


def cmd_encoders(args: argparse.Namespace, out: TextIO) -> int:
    print(f"{'name':<20} {'default checkpoint':<38} {'dim':>5}  text  vector", file=out)
    for name in sorted(SPECS):
        s = SPECS[name]
        print(f"{s.name:<20} {s.checkpoint:<38} {s.dim:>5}  {'yes ' if s.text else 'no  '}  {s.pooling}", file=out)
    return 0


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    """The README's first command: everything a new user should see, offline."""

    if not (args.data.is_dir() and any(args.data.rglob("*.jpg"))):
        cmd_sample(argparse.Namespace(out=args.data, variants=4, hard=False, limit=None, wheel=None), out)
    common = dict(store=args.store, qdrant_url=args.qdrant_url, host=args.host, resize=args.resize, json=False)
    index_args = argparse.Namespace(data=args.data, encoder=[DEFAULT_ENCODER], model=None, dataset=None,
                                    batch_size=None, no_progress=False, **common)
    cmd_index(index_args, out)
    query = sorted(args.data.rglob("*__v1.jpg"))[0]
    search = dict(encoder=DEFAULT_ENCODER, model=None, data=args.data, dataset=None, collection=None,
                  top_k=8, threshold=None, out=args.out, **common)
    print(f"\nImage search with {query}:", file=out)
    cmd_search(argparse.Namespace(image=query, text=None, **search), out)
    text_encoder = next((n for n, s in SPECS.items() if s.text), "clip")
    try:
        resolve_checkpoint(text_encoder)
    except CheckpointError as exc:
        print(f"\nText search skipped: {exc}", file=out)
        return 0
    cmd_index(argparse.Namespace(**{**vars(index_args), "encoder": [text_encoder]}), out)
    print(f"\nText search for \u201c{args.text}\u201d:", file=out)
    cmd_search(argparse.Namespace(**{**search, "encoder": text_encoder, "image": None, "text": args.text}), out)
    return 0


def cmd_compare(args: argparse.Namespace, out: TextIO) -> int:
    """Several encoders, the same images and queries, one report (imgsearch/compare/)."""
    from imgsearch.compare import CompareOptions, parse_encoders, run_compare, split_entry  # local: reports, plots

    encoders = parse_encoders(args.encoders)
    models = parse_model_overrides(args.model, [split_entry(e)[0] for e in encoders])  # per encoder, every runtime
    opts = CompareOptions(
        data=args.data, encoders=encoders, out=args.out, models=models,
        tiny_models=args.tiny_models, queries=args.queries, query_fraction=args.query_fraction, max_queries=args.max_queries,
        captions=args.captions, top_k=args.top_k, score_depth=args.score_depth, grid_rows=args.grid_rows,
        grid_k=args.grid_k, batch_size=args.batch_size, resize=args.resize, store=args.store,
        qdrant_url=args.qdrant_url, vertex_project=args.vertex_project, vertex_region=args.vertex_region,
        fresh=args.fresh, progress=not (args.json or args.no_progress), argv=["app.py", *sys.argv[1:]],
    )
    _check_data(args.data)
    result = run_compare(opts)
    if args.json:
        json.dump(result, out, indent=2, default=str)
        out.write("\n")
        return 0
    ran = [r["encoder"] for r in result["encoders"] if r["status"] == "ok"]
    print(f"Compared {len(ran)} of {len(encoders)} encoders on {result['data']['images']} images "
          f"({result['seconds']} s): {', '.join(ran) or 'none'}", file=out)
    for r in result["encoders"]:
        if r["status"] != "ok":
            print(f"  {r['encoder']}: {r['status']}: {r.get('reason')}", file=out)
    print(f"Report: {args.out / 'report.html'}\n        {args.out / 'report.md'}\n        {args.out / 'report.json'}", file=out)
    return 0 if ran else 1


def cmd_bench(args: argparse.Namespace, out: TextIO) -> int:
    from imgsearch.bench.run import BenchOptions, print_report, run_bench  # local: torch and the models

    for name in args.encoders:
        get_spec(name)  # unknown names fail before anything starts
    models = parse_model_overrides(args.model, args.encoders)
    opts = BenchOptions(
        encoders=args.encoders, models=models, data=args.data, images=args.images, batch_sizes=args.batch_sizes,
        bare_seconds=args.bare_seconds, rounds=args.rounds, clients=args.clients, per_client=args.per_client,
        store_sizes=args.store_sizes, local_size=args.local_size, growth=args.growth,
        growth_model=args.growth_model, prune_sizes=args.prune_sizes, out=args.out, cache=args.cache, runtimes=args.runtimes,
        script_images=args.script_images, lanes=args.lanes,
    )
    if args.quick:
        opts.images, opts.batch_sizes, opts.bare_seconds, opts.rounds = min(opts.images, 32), [8, 16], 0.5, 2
        opts.runtimes = [r for r in opts.runtimes if r not in ("onnx-int8", "torch-plain")]
        opts.script_images = min(opts.script_images, 48)
        opts.search_queries, opts.clients, opts.per_client = 5, min(opts.clients, 2), 3
        opts.store_sizes, opts.local_size, opts.growth, opts.prune_sizes = [2_000], 0, [100, 300], [2_000]
    if args.data is not None:
        _check_data(args.data)
    result = run_bench(opts, sys.stderr if args.json else out)
    if args.json:
        json.dump(result, out, indent=2)
        out.write("\n")
    else:
        print_report(result, out)
    return 0


def cmd_tiny_models(args: argparse.Namespace, out: TextIO) -> int:
    from imgsearch.tiny_models import build_for_encoders  # local: transformers' model classes

    built = build_for_encoders(args.out)
    print(f"Tiny RANDOM models (for offline runs; their numbers mean nothing) in {args.out}:", file=out)
    for encoder, folder in built.items():
        print(f"  {encoder:<13} {folder}", file=out)
    return 0


def cmd_k8s(args: argparse.Namespace, out: TextIO) -> int:
    """Regenerate k8s/ and docker/ from flows/index.yml (imgsearch/deploy/)."""
    from imgsearch.deploy import write  # local: Jina's Kubernetes export

    paths = write(args.out, encoders=tuple(args.encoders), registry=args.registry, model_cache=args.model_cache,
                  qdrant_nodes=args.qdrant_nodes, shared_data=args.shared_data,
                  image_digests=args.image_digests)
    for path in paths:
        print(path, file=out)
    print(f"{len(paths)} files written; deploy with `kubectl apply -f {args.out / 'k8s'}`", file=out)
    return 0


def cmd_export_fashion_mnist(args: argparse.Namespace, out: TextIO) -> int:
    from imgsearch.fashion_mnist import export  # local: only for this export

    try:
        summary = export(args.out, args.split, args.per_class or None, args.source)
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None
    print(f"Fashion-MNIST ({summary['split']}): {summary['images']} images in {len(summary['per_class'])} labelled "
          f"folders under {summary['out_dir']}", file=out)
    return 0


def cmd_up(args: argparse.Namespace, out: TextIO) -> int:
    """A long-lived gRPC server (imgsearch/up.py)."""
    from imgsearch.up import cmd_up as up  # local: only for up

    return up(args, out)
