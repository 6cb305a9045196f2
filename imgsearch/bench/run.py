"""`app.py bench`: every measurement of one run, printed as tables, saved as JSON and a chart."""

import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, TextIO

from imgsearch.bench.options import BenchOptions
from imgsearch.flow import REPO

logger = logging.getLogger(__name__)


def _versions() -> dict:
    from importlib.metadata import version

    out = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "omp_wait_policy_flow": os.environ.get("OMP_WAIT_POLICY"),
        "omp_wait_policy_bare": "default (active)",
    }
    for pkg in ("torch", "transformers", "jina", "docarray", "qdrant-edge-py", "qdrant-client", "grpcio"):
        try:
            out[pkg] = version(pkg)
        except Exception:
            out[pkg] = None
    try:
        out["cpu"] = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        out["cpu"] = None
    return out


def _checkpoints(opts: BenchOptions) -> dict[str, Optional[str]]:
    """Per encoder: the override, else a full-size random checkpoint (built in a clean process)."""
    from imgsearch.bench.models import BUILDERS

    need = [e for e in opts.encoders if e not in opts.models and e in BUILDERS]
    built: dict[str, str] = {}
    if need:
        proc = subprocess.run(
            [sys.executable, "-m", "imgsearch.bench.models", str(opts.cache / "models"), *need], cwd=REPO, capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise RuntimeError(f"building full-size random models failed: {proc.stderr.strip()[-1500:]}")
        built = dict(line.split("\t", 1) for line in proc.stdout.strip().splitlines())
    return {e: opts.models.get(e) or built.get(e) or None for e in opts.encoders}


def _images(opts: BenchOptions, work: Path, count: Optional[int] = None, name: str = "images") -> Path:
    from imgsearch.bench.images import sample_folder, synthetic_folder

    data = opts.data or (REPO / "data" / "memes")
    if data.is_dir():
        return sample_folder(data, count or opts.images, work / name)
    return synthetic_folder(opts.cache / name, count or opts.images)


def _growth_model(opts: BenchOptions) -> Optional[str]:
    if opts.growth_model:
        return opts.growth_model
    tiny = REPO / "data" / "tiny-models" / "clip"
    if not tiny.is_dir():
        subprocess.run([sys.executable, "app.py", "tiny-models"], cwd=REPO, check=True, capture_output=True)
    return str(tiny)


def run_bench(opts: BenchOptions, log: TextIO) -> dict:
    from imgsearch.bench.bare import run_in_subprocess
    from imgsearch.bench.growth import run_growth
    from imgsearch.bench.images import image_files
    from imgsearch.bench.pipeline import run_pipeline
    from imgsearch.bench.prune import run_prune
    from imgsearch.bench.runtimes import bare_by_runtime, index_vs_script
    from imgsearch.bench.store import run_store

    opts.out.mkdir(parents=True, exist_ok=True)
    result: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "versions": _versions(), "encoders": []}
    if opts.simulate_gpu_ms is not None:  # the scale-out alone: the other sections measure real models
        from imgsearch.bench.scaleout import run_scaleout

        with tempfile.TemporaryDirectory(prefix="imgsearch-scaleout-") as tmp:
            result["scaleout"] = run_scaleout(opts, Path(tmp), log)
        result["images"] = result["scaleout"]["images"]
        return _saved(result, opts.out)
    with tempfile.TemporaryDirectory(prefix="imgsearch-bench-") as tmp:
        work = Path(tmp)
        folder = _images(opts, work)
        files = image_files(folder)
        result["images"] = {"folder": str(opts.data or folder), "count": len(files)}
        checkpoints = _checkpoints(opts)
        for encoder in opts.encoders:
            model = checkpoints[encoder]
            print(f"[bench] {encoder}: bare model ({model or 'default checkpoint'})", file=log, flush=True)
            bare = run_in_subprocess(encoder, model, files, opts.batch_sizes, opts.bare_seconds, work)
            best = bare["best_batch_size"]
            runtimes = (
                bare_by_runtime(encoder, model, files, opts.batch_sizes, opts.bare_seconds, work, tuple(opts.runtimes)) if opts.runtimes else {}
            )
            print(f"[bench] {encoder}: end to end at batch {best}, {opts.rounds} warm runs between bare runs", file=log, flush=True)

            def bare_probe(encoder=encoder, model=model, best=best) -> float:
                return run_in_subprocess(encoder, model, files, [best], opts.bare_seconds, work)["best_images_per_second"]

            e2e = run_pipeline(
                encoder,
                model,
                folder,
                best,
                work / f"store-{encoder}",
                opts.search_queries,
                opts.clients,
                opts.per_client,
                warm_runs=opts.rounds,
                bare_probe=bare_probe,
                lanes=opts.lanes,
            )
            middle = e2e["rounds"][e2e["median_round"]] if "median_round" in e2e else {}
            result["encoders"].append(
                {
                    "encoder": encoder,
                    "random_weights": _random_weights(model),
                    "bare": bare,
                    "runtimes": runtimes,
                    "end_to_end": e2e,
                    # Bare images/s measured around the warm run that gave the median ratio.
                    "bare_same_time": middle.get("bare_images_per_second"),
                    "ratio_e2e_to_bare": e2e.get("ratio_median"),
                }
            )
        if opts.script_images and "efficientnet-lite0" in opts.encoders:
            print(f"[bench] app.py index vs the plain torch script, {opts.script_images} images", file=log, flush=True)
            result["index_vs_script"] = index_vs_script(_images(opts, work, opts.script_images, "script-images"), work)
        if opts.store_sizes or opts.local_size:
            print(f"[bench] store: {opts.store_sizes} (+ local mode at {opts.local_size})", file=log, flush=True)
            result["store"] = run_store(opts.store_sizes, opts.local_size)
        if opts.growth:
            model = _growth_model(opts)
            print(f"[bench] growth: {opts.growth} with {opts.growth_encoder} ({model})", file=log, flush=True)
            result["growth"] = {
                "encoder": opts.growth_encoder,
                "model": model,
                "rows": run_growth(opts.growth_encoder, model, opts.growth, opts.cache / "images", work / "growth"),
            }
        if opts.prune_sizes:
            model = _growth_model(opts)
            print(f"[bench] index --prune over {opts.prune_sizes} stored images", file=log, flush=True)
            result["prune"] = run_prune(opts.growth_encoder, model, opts.prune_sizes, work)
    return _saved(result, opts.out)


def _saved(result: dict, out: Path) -> dict:
    result["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    (out / "bench.json").write_text(json.dumps(result, indent=2))
    result["chart"] = str(write_chart(result, out / "bench.png"))
    return result


def _random_weights(model: Optional[str]) -> bool:
    """A full-size random checkpoint built for the bench, or a tiny random one (their marker files)."""
    from imgsearch.bench.models import MARKER
    from imgsearch.tiny_models import is_tiny_random

    if not model:
        return False
    return (Path(model) / MARKER).is_file() or is_tiny_random(model)


def write_chart(result: dict, out: Path) -> Path:
    from imgsearch.bench.chart import bar_panels

    panels = []
    rate_bars, ratio_bars = [], []
    for rec in result["encoders"]:
        bare = rec.get("bare_same_time") or rec["bare"]["best_images_per_second"]
        warm = rec["end_to_end"].get("warm", {}).get("images_per_second")
        rate_bars.append((f"{rec['encoder']} bare", bare, f"{bare:.1f}/s"))
        rate_bars.append((f"{rec['encoder']} end to end", warm, f"{warm:.1f}/s" if warm else "n/a"))
        ratio = rec["ratio_e2e_to_bare"]
        ratio_bars.append((rec["encoder"], ratio, f"{ratio:.2f}" if ratio is not None else "n/a"))
    if rate_bars:
        panels += [("images/s: bare model vs end to end (warm)", rate_bars), ("end to end ÷ bare (target ≥ 0.90)", ratio_bars)]
    for rec in result["encoders"][:2]:
        procs = rec["end_to_end"].get("warm", {}).get("breakdown", {}).get("processes", {})
        n = max(rec["end_to_end"].get("warm", {}).get("indexed", 0), 1)
        panels.append(
            (
                f"{rec['encoder']}: CPU ms per image by process",
                [(k, v["cpu_seconds"] / n * 1e3, f"{v['cpu_seconds'] / n * 1e3:.1f} ms") for k, v in procs.items()],
            )
        )
    if result.get("store"):
        panels.append(
            (
                "store search p99 ms (indexed)",
                [(f"{r['backend'][:12]} {r['n'] // 1000}k", r.get("p99_ms"), f"{r.get('p99_ms', 0):.2f}") for r in result["store"]],
            )
        )
    growth = (result.get("growth") or {}).get("rows") or []
    if growth:
        panels.append(("growth: index images/s", [(f"{r['images']:,}", r["images_per_second"], f"{r['images_per_second']}") for r in growth]))
        panels.append(("growth: search p99 ms", [(f"{r['images']:,}", r["search_p99_ms"], f"{r['search_p99_ms']}") for r in growth]))
    from imgsearch.bench.scaleout import chart_panel

    scaleout = chart_panel(result)
    if scaleout:
        panels.append(scaleout)
    return bar_panels(panels, out)


# --------------------------------------------------------------------------- printing


def _fmt(v, spec: str = "") -> str:
    if v is None:
        return "n/a"
    return format(v, spec) if spec else str(v)


def print_report(result: dict, out: TextIO) -> None:
    v = result["versions"]
    print(
        f"Machine: {v.get('cpu')} × {v.get('cpus')} CPUs; torch {v.get('torch')}, transformers {v.get('transformers')}, "
        f"jina {v.get('jina')}, qdrant-edge-py {v.get('qdrant-edge-py')}",
        file=out,
    )
    print(f"Images: {result['images']['count']} from {result['images']['folder']}\n", file=out)
    if result["encoders"]:
        print("1-3. Bare model vs end to end (warm), same images, same batch size, dtype and threads", file=out)
        print(
            f"  {'encoder':<20} {'weights':<8} {'batch':>5} {'bare img/s':>10} {'e2e img/s':>10} {'e2e/bare':>9} "
            f"{'cold+start img/s':>16} {'ready s':>8} {'(model load)':>12}",
            file=out,
        )
        for rec in result["encoders"]:
            b, e = rec["bare"], rec["end_to_end"]
            print(
                f"  {rec['encoder']:<20} {'RANDOM' if rec['random_weights'] else 'real':<8} {b['best_batch_size']:>5} "
                f"{rec.get('bare_same_time') or b['best_images_per_second']:>10.1f} "
                f"{_fmt(e.get('warm', {}).get('images_per_second'), '.1f'):>10} "
                f"{_fmt(rec['ratio_e2e_to_bare'], '.2f'):>9} {_fmt(e['cold']['images_per_second_with_startup'], '.1f'):>16} "
                f"{e['startup']['flow_ready_seconds']:>8.2f} {_fmt(e['startup']['model_load_seconds'], '.2f'):>12}",
                file=out,
            )
            print(
                f"  {'':<20} bare by batch size: {b['images_per_second']}; decode {b['decode_ms_per_image']} ms/img, "
                f"preprocess {b['preprocess_ms_per_image']} ms/img (outside the bare figure)",
                file=out,
            )
            print(
                f"  {'':<20} end to end with {e.get('lanes', 1)} encoder lane(s) (--lanes {e.get('lanes_asked')}; "
                f"`app.py index` asks for auto), each batch on {'one thread' if e.get('lanes', 1) > 1 else 'all threads'}; "
                f"searches (6.) on one lane",
                file=out,
            )
            rounds = e.get("rounds") or []
            if rounds and "ratio" in rounds[0]:
                print(
                    f"  {'':<20} warm runs (e2e img/s ÷ mean of the bare runs before and after): "
                    + ", ".join(f"{r['images_per_second']}/{r['bare_images_per_second']} = {r['ratio']:.2f}" for r in rounds)
                    + "; the median is reported",
                    file=out,
                )
        print("\n4. Where the time goes (warm indexing run): per process, wall in handlers and CPU", file=out)
        for rec in result["encoders"]:
            bd = rec["end_to_end"].get("warm", {}).get("breakdown")
            if not bd:
                continue
            print(
                f"  {rec['encoder']}: {bd['images']} images in {bd['wall_seconds']} s; encoder busy "
                f"{_fmt(bd['encoder_busy_share'], '.0%')} of the wall; CPU {bd['cpu_seconds_total']} s in all",
                file=out,
            )
            print(
                f"    {'process':<11} {'work':<26} {'handler s':>9} {'ms/img':>7} {'handler CPU s':>13} {'CPU s':>7} {'CPU outside handlers s':>23}",
                file=out,
            )
            for name, p in bd["processes"].items():
                print(
                    f"    {name:<11} {p['work']:<26} {_fmt(p['handler_seconds']):>9} {_fmt(p['handler_ms_per_image']):>7} "
                    f"{_fmt(p.get('handler_cpu_seconds')):>13} {p['cpu_seconds']:>7} {p['outside_handlers_cpu_seconds']:>23}",
                    file=out,
                )
        print("\n6. Search end to end through the gateway (latency includes the client)", file=out)
        for rec in result["encoders"]:
            s, c = rec["end_to_end"]["search"], rec["end_to_end"].get("concurrent") or {}
            text = s.get("text")
            print(
                f"  {rec['encoder']:<20} image p50 {s['image']['p50_ms']} ms p99 {s['image']['p99_ms']} ms; "
                + (f"text p50 {text['p50_ms']} ms p99 {text['p99_ms']} ms; " if text else "text n/a; ")
                + (
                    f"{c['clients']} clients × {c['queries'] // max(c['clients'], 1)}: {c['queries_per_second']} q/s, "
                    f"p50 {c['latency'].get('p50_ms')} ms p99 {c['latency'].get('p99_ms')} ms, errors {c['errors']}, "
                    f"mean encoder batch {c['mean_encoder_batch']}"
                    if c
                    else ""
                ),
                file=out,
            )
    if result.get("store"):
        print("\n5. Embedded store (512-d, clustered vectors, batches of 256)", file=out)
        print(
            f"  {'backend':<32} {'n':>7} {'upserts/s':>9} {'exact p50/p99 ms':>17} {'optimize s':>10} "
            f"{'p50/p99 ms':>12} {'recall@10':>9} {'B/vector':>8} {'×raw':>5}",
            file=out,
        )
        for r in result["store"]:
            exact = f"{r['exact_p50_ms']}/{r['exact_p99_ms']}" if "exact_p50_ms" in r else "-"
            print(
                f"  {r['backend']:<32} {r['n']:>7} {r['upserts_per_second']:>9} {exact:>17} "
                f"{_fmt(r.get('optimize_seconds')):>10} {r.get('p50_ms')}/{r.get('p99_ms'):<6} {r.get('recall_at_10'):>9} "
                f"{r['disk_bytes_per_vector']:>8} {r['disk_vs_raw']:>5}",
                file=out,
            )
        from imgsearch.bench.store import disk_fit

        fit = disk_fit(result["store"])
        if fit:
            print(
                f"  disk: {fit['per_raw']}× raw + {fit['fixed_mb']} MB; without the write-ahead log "
                f"({' / '.join(map(str, fit['wal_mb']))} MB, bounded) {fit['data_per_raw']}× raw + "
                f"{fit['data_fixed_mb']} MB",
                file=out,
            )
    growth = result.get("growth")
    if growth:
        print(f"\n7. Growth ({growth['encoder']}, {growth['model']}; synthetic 160×120 JPEGs; a fresh flow per size)", file=out)
        print(
            f"  {'images':>7} {'index s':>8} {'img/s':>7} {'optimize s':>10} {'search p50/p99 ms':>18} {'disk MB':>8}  peak RSS MB per process",
            file=out,
        )
        for r in growth["rows"]:
            print(
                f"  {r['images']:>7} {r['index_seconds']:>8} {r['images_per_second']:>7} {r['optimize_seconds']:>10} "
                f"{str(r['search_p50_ms']) + '/' + str(r['search_p99_ms']):>18} {r['disk_mb']:>8}  "
                f"{r['peak_rss_mb']} client {r['client_rss_mb']}",
                file=out,
            )
    if result.get("prune"):
        print("\n10. index --prune: every stored image's paths read through the flow, 1% of the files gone", file=out)
        print(
            f"  {'stored':>8} {'read s':>7} {'images/s':>9} {'forget s':>8} {'prune s':>8} {'forgotten':>9} {'deleted':>8} {'left':>8} "
            f"{'client RSS MB':>13}",
            file=out,
        )
        for r in result["prune"]:
            print(
                f"  {r['stored']:>8} {r['read_seconds']:>7} {_fmt(r['read_per_second']):>9} {r['forget_seconds']:>8} {r['prune_seconds']:>8} "
                f"{r['forgotten_paths']:>9} {r['deleted']:>8} {r['left']:>8} {r['client_rss_mb']:>13}",
                file=out,
            )
    from imgsearch.bench.runtimes import print_runtimes
    from imgsearch.bench.scaleout import print_scaleout

    print_runtimes(result, out)
    print_scaleout(result, out)
    print(f"\nbench.json and bench.png in {Path(result.get('chart', '.')).parent}", file=out)
