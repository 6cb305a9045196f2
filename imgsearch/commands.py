"""What each sub-command does, from its options value (imgsearch/options.py); argument parsing
and exit codes live in imgsearch/cli/."""

import contextlib
import dataclasses
import json
import logging
import os
import sys
import time
from typing import Iterator, Optional, TextIO

from executors.contracts import COUNT, CollectionStats, EncoderInfo
from executors.encoders.resolve import CheckpointError, resolve_checkpoint
from executors.encoders.specs import DEFAULT_ENCODER, SPECS, get_spec
from executors.errors import UserError
from imgsearch import options as o
from imgsearch.datasource import check_data, data_name
from imgsearch.demo import pick_query, prepare_demo_data
from imgsearch.flow import REPO, FlowConfig, Gateway, collection_name, local_flow
from imgsearch.grid import render_html, render_png
from imgsearch.indexing import run_index
from imgsearch.searching import run_search

logger = logging.getLogger(__name__)


def connect(host: str) -> Gateway:
    """A running gateway, answering: else one clear error (exit 2), as for every command."""
    gateway = Gateway(host)
    if not gateway.ready():
        raise UserError(f"no flow is answering at {host} (is the gateway running and reachable?)")
    return gateway


@contextlib.contextmanager
def gateway_for(host: Optional[str], config: FlowConfig) -> Iterator[tuple[Gateway, EncoderInfo]]:
    """A gateway serving ``config.encoder``: the user's (``host``) or a flow started here."""
    get_spec(config.encoder)  # unknown names fail before anything starts
    if host:
        gateway = connect(host)
        info = gateway.encoder_info()
        if info.encoder != config.encoder or (config.model and info.model != config.model):
            raise UserError(f"the gateway at {host} serves encoder '{info.encoder}' ({info.model}), not '{config.encoder}'")
        yield gateway, info
        return
    resolve_checkpoint(config.encoder, config.model)  # one clear error before the flow starts
    with local_flow(config.encoder, config.model, config=config) as address:
        gateway = Gateway(address)
        yield gateway, gateway.encoder_info()


def flow_config(
    encoder: str,
    model: Optional[str],
    store: o.StoreOptions,
    resize: Optional[int] = None,
    runtime: Optional[str] = None,
    lanes: Optional[str] = None,
) -> FlowConfig:
    return FlowConfig(
        encoder,
        model,
        **store.flow_settings(),
        resize=resize,
        runtime=runtime,
        lanes=lanes,
    )


def cmd_index(opts: o.IndexOptions, out: TextIO) -> int:
    if not opts.host:
        _check_data(opts.data)
    summaries = []
    for name in opts.encoders:
        started = time.perf_counter()
        # This flow only indexes: its encoder runs batches side by side, one thread each, where
        # that is faster (ONNX Runtime on a CPU): opts.lanes, "auto" unless $ENCODER_LANES says otherwise.
        config = flow_config(name, opts.models.get(name), opts.store, opts.resize, opts.runtime, opts.lanes)
        with gateway_for(opts.host, config) as (gateway, info):
            summary = run_index(
                gateway,
                opts.data,
                info,
                opts.batch_size,
                opts.dataset,
                progress=opts.progress,
                resize=opts.resize,
                prune=opts.prune,
                max_prune=opts.max_prune,
                quantization=opts.quantization,
            )
        summary.seconds = time.perf_counter() - started  # wall time, flow start-up included
        if summary.files_seen == 0:
            raise UserError(f"no image files found under {opts.data}")
        summaries.append(summary)
        if not opts.json:
            _print_index_summary(summary, info, out)
    if opts.json:
        json.dump(summaries[0].to_json() if len(summaries) == 1 else {"runs": [s.to_json() for s in summaries]}, out, indent=2)
        out.write("\n")
    return 0


def _check_data(data: o.DataSource) -> None:
    check_data(data, " (build the sample set with `python app.py sample`)" if data == o.SAMPLE_DATA else "")


def _print_index_summary(s, info: EncoderInfo, out: TextIO) -> None:
    size = f"{s.disk_bytes / 1e6:.1f} MB on disk" if s.disk_bytes is not None else "size on disk: n/a (server)"
    print(f"Collection '{s.collection}'  encoder {s.encoder}  model {s.model}  ({info.device}, {info.dtype})", file=out)
    print(
        f"  indexed now: {s.indexed}   already indexed: {s.already_indexed}   duplicates: {len(s.duplicates)}   skipped: {len(s.skipped)}", file=out
    )
    print(
        f"  time: {s.seconds:.1f} s (flow start-up and model load included; model load {info.load_seconds:.1f} s)   "
        f"encoding: {s.images_per_second:.1f} images/s ({s.in_flight} requests in flight for {s.encoder_replicas} encoder replica(s))",
        file=out,
    )
    index_note = f", search index built in {s.optimize_seconds:.1f} s" if s.optimize_seconds >= 0.05 else ""
    print(f"  collection: {s.count} vectors, {size}{index_note}", file=out)
    if s.pruned_paths:
        print(f"  pruned: forgot {s.pruned_paths} paths whose files are gone or changed; {s.pruned_images} images deleted (no path left)", file=out)
    if s.not_seen:
        print(
            f"  not seen in this scan: {s.not_seen} stored images (files deleted, moved or edited, or indexed "
            f"from another folder into this collection); `index --prune` forgets those under {s.data}",
            file=out,
        )
    for d in s.duplicates[:20]:
        print(f"  duplicate: {d['path']} (same bytes as {d['same_as']})", file=out)
    if s.skipped:
        print("  skipped:", file=out)
        for item in s.skipped:
            print(f"    {item['path']}: {item['reason']}", file=out)


def _collection_for(opts: o.SearchOptions, gateway: Gateway, info: EncoderInfo) -> str:
    if opts.collection:
        return opts.collection
    if opts.dataset or opts.data:
        return collection_name(opts.dataset or data_name(opts.data), info.model, opts.resize)  # type: ignore[arg-type]
    mine = [c.name for c in gateway.collections() if c.model == info.model]
    if not mine:
        raise UserError(
            f"nothing is indexed with encoder '{info.encoder}' ({info.model}) yet: run `python app.py index --encoder {info.encoder}` first"
        )
    if len(mine) > 1:
        raise UserError(f"several collections use {info.model}: {', '.join(mine)}; pick one with --data, --dataset or --collection")
    return mine[0]


def cmd_search(opts: o.SearchOptions, out: TextIO) -> int:
    if opts.image is not None and not opts.image.is_file():
        raise UserError(f"query image not found: {opts.image}")
    spec = get_spec(opts.encoder)
    if opts.text is not None and not spec.text and not opts.model:
        raise UserError(
            f"encoder '{spec.name}' cannot embed text; search with --image, or use a text-capable encoder: "
            + ", ".join(n for n, s in SPECS.items() if s.text)
        )
    config = flow_config(opts.encoder, opts.model, opts.store, opts.resize, opts.runtime)
    with gateway_for(opts.host, config) as (gateway, info):
        collection = _collection_for(opts, gateway, info)
        count = int(gateway.call(COUNT, {"collection": collection}).get("count", 0))
        if count == 0:
            raise UserError(f"collection '{collection}' is empty or does not exist: run `python app.py index` first")
        result = run_search(gateway, collection, info, image=opts.image, text=opts.text, top_k=opts.top_k, score_threshold=opts.threshold)
    stem = f"search-{opts.encoder}-{int(time.time())}"
    title = f"{result.encoder} ({result.model}) · {collection}"
    rows = [(title, result.matches)]
    png = render_png(result.query, rows, opts.out / f"{stem}.png")
    page = render_html(result.query, rows, opts.out / f"{stem}.html", title=f"Search: {title}")
    if opts.json:
        json.dump({**result.to_json(), "grid_png": str(png), "grid_html": str(page)}, out, indent=2)
        out.write("\n")
        return 0
    query = opts.image if opts.image is not None else f"\u201c{opts.text}\u201d"
    print(f"Top {len(result.matches)} for {query} in '{collection}' ({result.encoder}, {result.model}):", file=out)
    for i, m in enumerate(result.matches, 1):
        print(f"  {i:>3}. {m['score']:.4f}  {m['path']}" + (f"  [{m['label']}]" if m.get("label") else ""), file=out)
    if not result.matches:
        print("  (no results" + (f" above the threshold {opts.threshold}" if opts.threshold is not None else "") + ")", file=out)
    print(f"Grid: {png}\n      {page}", file=out)
    return 0


def _stored_collections(opts: o.StatsOptions) -> list[CollectionStats]:
    if opts.host:
        return connect(opts.host).collections()
    from executors.indexer.store import EdgeStore, ServerStore, VectorStore  # local: both Qdrant clients, only for stats

    store: VectorStore
    if opts.store.qdrant_url:
        store = ServerStore(opts.store.qdrant_url, read_only=True, api_key=opts.store.qdrant_api_key)
    else:
        if not opts.store.store.is_dir():
            raise UserError(f"no store at {opts.store.store}: nothing indexed yet (run `python app.py index`)")
        store = EdgeStore(str(opts.store.store), read_only=True)
    try:
        return [CollectionStats.from_dict({"name": c.name, "count": c.count, "disk_bytes": c.disk_bytes, **c.meta}) for c in store.list_collections()]
    finally:
        store.close()


def cmd_stats(opts: o.StatsOptions, out: TextIO) -> int:
    collections = _stored_collections(opts)
    if opts.json:
        json.dump({"collections": [c.to_dict() for c in collections]}, out, indent=2)
        out.write("\n")
        return 0
    if not collections:
        print("no collections yet: run `python app.py index`", file=out)
        return 0
    print(f"{'collection':<48} {'encoder':<20} {'model':<40} {'vectors':>8} {'dim':>5} {'disk MB':>8}", file=out)
    for c in collections:
        mb = f"{c.disk_bytes / 1e6:.1f}" if c.disk_bytes is not None else "n/a"
        print(f"{c.name:<48} {c.encoder or '':<20} {c.model or '':<40} {c.count:>8} {c.dim or '':>5} {mb:>8}", file=out)
    return 0


def cmd_sample(opts: o.SampleOptions, out: TextIO) -> int:
    from imgsearch.sample_data import build_memes  # local: image generation, only for sample

    started = time.perf_counter()
    summary = build_memes(opts.out, variants=opts.variants, hard=opts.hard, limit=opts.limit, wheel=opts.wheel)
    print(
        f"Sample set: {summary['images']} images of {summary['templates']} meme templates in {summary['out_dir']} "
        f"({time.perf_counter() - started:.1f} s)",
        file=out,
    )
    return 0


def cmd_encoders(opts: o.EncodersOptions, out: TextIO) -> int:
    print(f"{'name':<20} {'default checkpoint':<38} {'dim':>5}  text  vector", file=out)
    for name in sorted(SPECS):
        s = SPECS[name]
        print(f"{s.name:<20} {s.checkpoint:<38} {s.dim:>5}  {'yes ' if s.text else 'no  '}  {s.pooling}", file=out)
    return 0


def cmd_demo(opts: o.DemoOptions, out: TextIO) -> int:
    """The README's first command: everything a new user should see, offline (imgsearch/demo.py)."""
    if prepare_demo_data(opts.data, opts.host):
        cmd_sample(o.SampleOptions(out=opts.data), out)
    shared = dict(resize=opts.resize, runtime=opts.runtime, host=opts.host, store=opts.store)
    index = o.IndexOptions(data=opts.data, encoders=(DEFAULT_ENCODER,), **shared)  # type: ignore[arg-type]
    cmd_index(index, out)
    search = o.SearchOptions(encoder=DEFAULT_ENCODER, data=opts.data, top_k=8, out=opts.out, **shared)  # type: ignore[arg-type]
    query = pick_query(opts.data)
    print(f"\nImage search with {query}:", file=out)
    cmd_search(dataclasses.replace(search, image=query), out)
    text_encoder, reason = _demo_text_encoder(opts)
    if text_encoder is None:
        print(f"\nText search skipped: {reason}", file=out)
        return 0
    if not opts.host:
        cmd_index(dataclasses.replace(index, encoders=(text_encoder,)), out)
    print(f"\nText search for \u201c{opts.text}\u201d:", file=out)
    cmd_search(dataclasses.replace(search, encoder=text_encoder, text=opts.text), out)
    return 0


def _demo_text_encoder(opts: o.DemoOptions) -> tuple[Optional[str], str]:
    """The encoder the demo's text search uses, or None and why there is none. With --host, only
    the gateway's own encoder: the demo never indexes another encoder against it."""
    if opts.host:
        info = connect(opts.host).encoder_info()
        if info.text:
            return info.encoder, ""
        return None, (
            f"the gateway at {opts.host} serves {info.encoder}, which cannot embed text (a text-capable encoder's gateway, e.g. clip's, can)"
        )
    text_encoder = next((n for n, s in SPECS.items() if s.text), "clip")
    try:
        resolve_checkpoint(text_encoder)
    except CheckpointError as exc:
        return None, str(exc)
    return text_encoder, ""


def cmd_compare(opts, out: TextIO) -> int:  # opts: CompareOptions
    """Several encoders, the same images and queries, one report (imgsearch/compare/)."""
    from imgsearch.compare import run_compare  # local: reports, plots

    _check_data(opts.data)
    result = run_compare(opts)
    if opts.json:
        json.dump(result, out, indent=2, default=str)
        out.write("\n")
        return 0
    ran = [r["encoder"] for r in result["encoders"] if r["status"] == "ok"]
    print(
        f"Compared {len(ran)} of {len(opts.encoders)} encoders on {result['data']['images']} images "
        f"({result['seconds']} s): {', '.join(ran) or 'none'}",
        file=out,
    )
    for r in result["encoders"]:
        if r["status"] != "ok":
            print(f"  {r['encoder']}: {r['status']}: {r.get('reason')}", file=out)
    print(f"Report: {opts.out / 'report.html'}\n        {opts.out / 'report.md'}\n        {opts.out / 'report.json'}", file=out)
    return 0 if ran else 1


@contextlib.contextmanager
def _runtime_env(runtime: Optional[str]) -> Iterator[None]:
    """The bench's --runtime for the processes it starts (its flows' encoders and the bare-model
    subprocesses read $ENCODER_RUNTIME), and the variable as it was afterwards."""
    from executors.encoders.runtime_env import ENV_RUNTIME

    before = os.environ.get(ENV_RUNTIME)
    if runtime:
        os.environ[ENV_RUNTIME] = runtime
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV_RUNTIME, None)
        else:
            os.environ[ENV_RUNTIME] = before


def cmd_bench(opts, out: TextIO) -> int:  # opts: BenchOptions
    from imgsearch.bench.run import print_report, run_bench  # local: torch and the models

    if opts.data is not None:
        _check_data(opts.data)
    with _runtime_env(opts.runtime):
        result = run_bench(opts, sys.stderr if opts.json else out)
    if opts.json:
        json.dump(result, out, indent=2)
        out.write("\n")
    else:
        print_report(result, out)
    return 0


def cmd_tiny_models(opts: o.TinyModelsOptions, out: TextIO) -> int:
    from imgsearch.tiny_models import build_for_encoders  # local: transformers' model classes

    built = build_for_encoders(opts.out)
    print(f"Tiny RANDOM models (for offline runs; their numbers mean nothing) in {opts.out}:", file=out)
    for encoder, folder in built.items():
        print(f"  {encoder:<13} {folder}", file=out)
    return 0


def cmd_k8s(opts: o.K8sOptions, out: TextIO) -> int:
    """Regenerate k8s/ and docker/ from flows/index.yml (imgsearch/deploy/)."""
    from imgsearch.deploy import write  # local: Jina's Kubernetes export

    root = opts.out or REPO
    paths = write(
        root,
        encoders=opts.encoders,
        registry=opts.registry,
        model_cache=opts.model_cache,
        qdrant_nodes=opts.qdrant_nodes,
        shared_data=opts.shared_data,
        image_digests=opts.image_digests,
        mesh=opts.mesh,
        prometheus_namespace=opts.prometheus_namespace,
        min_replicas=opts.min_replicas,
        max_replicas=opts.max_replicas,
        target_inflight=opts.target_inflight,
    )
    for path in paths:
        print(path, file=out)
    print(f"{len(paths)} files written; deploy with `kubectl apply -f {root / 'k8s'}`", file=out)
    return 0


def cmd_export_fashion_mnist(opts: o.FashionMnistOptions, out: TextIO) -> int:
    from imgsearch.fashion_mnist import export  # local: only for this export

    try:
        summary = export(opts.out, opts.split, opts.per_class or None, opts.source)
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None
    print(
        f"Fashion-MNIST ({summary['split']}): {summary['images']} images in {len(summary['per_class'])} labelled folders under {summary['out_dir']}",
        file=out,
    )
    return 0


def cmd_up(opts: o.UpOptions, out: TextIO) -> int:
    """A long-lived gRPC server (imgsearch/up.py)."""
    from imgsearch.up import serve_flows  # local: only for up

    return serve_flows(opts, out)
