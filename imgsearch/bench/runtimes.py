"""Runtimes side by side: the bare model on torch, onnx and onnx-int8, and `app.py index`
as a whole process against the plain one-process torch script (script.py) on the same
images, both timed with start-up included."""

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, TextIO

from executors.encoders.runtime_env import RUNTIMES
from executors.stage import ENV_MALLOC_TUNING
from imgsearch.flow import REPO

logger = logging.getLogger(__name__)

# The bare model on torch as a plain script runs it: glibc's default allocator (stage.py's
# tuning off), the baseline the project's figures started from.
PLAIN_TORCH = "torch-plain"


def bare_by_runtime(
    encoder: str, model: Optional[str], files: list[Path], batch_sizes: list[int], seconds: float, work: Path, runtimes: tuple[str, ...] = RUNTIMES
) -> dict:
    """Per runtime: the bare images/s (its best batch size), or why it could not run."""
    from imgsearch.bench.bare import run_in_subprocess

    out = {}
    for runtime in runtimes:
        try:
            plain = runtime == PLAIN_TORCH
            bare = run_in_subprocess(
                encoder,
                model,
                files,
                batch_sizes,
                seconds,
                work,
                runtime="torch" if plain else runtime,
                extra_env={ENV_MALLOC_TUNING: "0"} if plain else None,
            )
            out[runtime] = {
                k: bare[k] for k in ("best_images_per_second", "best_batch_size", "images_per_second", "threads", "load_seconds", "provider", "dtype")
            }
        except RuntimeError as exc:
            out[runtime] = {"error": str(exc).splitlines()[-1][:300]}
    for key, baseline in (("speedup_vs_torch", "torch"), ("speedup_vs_plain_torch", PLAIN_TORCH)):
        base = out.get(baseline, {}).get("best_images_per_second")
        for rec in out.values():
            if base and "best_images_per_second" in rec:
                rec[key] = round(rec["best_images_per_second"] / base, 2)
    return out


def _timed(cmd: list[str], env: dict) -> dict:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        return {"error": proc.stderr.strip()[-500:], "seconds": round(seconds, 2)}
    return {"seconds": round(seconds, 2), "stdout": proc.stdout}


def index_vs_script(folder: Path, work: Path, runtimes: tuple[str, ...] = ("onnx", "torch")) -> dict:
    """Whole processes on the same images: the plain torch script, then `app.py index`
    (EfficientNet-Lite0) per runtime; images/s with start-up, and index ÷ script."""
    from imgsearch.bench.images import image_files

    n = len(image_files(folder))
    env = dict(os.environ)
    result: dict = {"images": n, "folder": str(folder)}
    script = _timed([sys.executable, "-m", "imgsearch.bench.script", str(folder)], env)
    if "error" not in script:
        script["images_per_second"] = round(n / script.pop("seconds") * 1, 2)
        script.pop("stdout")
    result["script"] = script
    for runtime in runtimes:
        store = work / f"index-{runtime}"
        cmd = [
            sys.executable,
            "app.py",
            "index",
            "--data",
            str(folder),
            "--encoder",
            "efficientnet-lite0",
            "--store",
            str(store),
            "--runtime",
            runtime,
            "--json",
            "--no-progress",
        ]
        run = _timed(cmd, env)
        if "error" not in run:
            summary = json.loads(run.pop("stdout"))
            run.update(
                indexed=summary.get("indexed"), images_per_second=round(n / run["seconds"], 2), encoder_peak_rss_mb=summary.get("encoder_peak_rss_mb")
            )
            if script.get("images_per_second"):
                run["ratio_to_script"] = round(run["images_per_second"] / script["images_per_second"], 2)
        result[runtime] = run
    return result


def print_runtimes(result: dict, out: TextIO) -> None:
    rows = [(r["encoder"], r["runtimes"]) for r in result.get("encoders", []) if r.get("runtimes")]
    if rows:
        columns = [rt for rt in (PLAIN_TORCH, *RUNTIMES) if any(rt in by_rt for _, by_rt in rows)]
        print(
            "\n8. Runtimes: bare images/s (best batch size) and speed-up over torch (fp32 on a CPU, bf16 on a GPU); "
            f"{PLAIN_TORCH} is torch with glibc's default allocator, as a plain script runs it",
            file=out,
        )
        print(f"  {'encoder':<20} " + " ".join(f"{rt:>22}" for rt in columns), file=out)
        for encoder, by_rt in rows:
            cells, plain = [], []
            for rt in columns:
                rec = by_rt.get(rt) or {}
                if "best_images_per_second" in rec:
                    cells.append(f"{rec['best_images_per_second']:>10.1f} ({rec.get('speedup_vs_torch', 1.0):.2f}×) b{rec['best_batch_size']:<2}")
                else:
                    cells.append(f"{'n/a: ' + (rec.get('error') or 'not run')[:16]:>22}")
                plain.append(f"{rec['speedup_vs_plain_torch']:.2f}×" if "speedup_vs_plain_torch" in rec else "")
            print(f"  {encoder:<20} " + " ".join(f"{c:>22}" for c in cells), file=out)
            if any(plain):
                print(f"  {'  over ' + PLAIN_TORCH:<20} " + " ".join(f"{c:>22}" for c in plain), file=out)
            # What each ran on: onnxruntime may fall back (TensorRT → CUDA → CPU) without failing.
            ran_on = [_ran_on(by_rt.get(rt) or {}) for rt in columns]
            print(f"  {'  ran on':<20} " + " ".join(f"{c:>22}" for c in ran_on), file=out)
    iv = result.get("index_vs_script")
    if iv:
        print(
            f"\n9. Whole processes, start-up included, {iv['images']} images: app.py index (EfficientNet-Lite0) "
            "vs the plain one-process torch script",
            file=out,
        )
        s = iv["script"]
        print(
            f"  {'plain torch script':<26} {s.get('images_per_second', 'n/a'):>8} img/s" + (f"  ({s['error'][:200]})" if "error" in s else ""),
            file=out,
        )
        for rt in ("onnx", "torch"):
            r = iv.get(rt)
            if not r:
                continue
            if "error" in r:
                print(f"  app.py index --runtime {rt:<6} failed: {r['error'][-300:]}", file=out)
                continue
            print(
                f"  app.py index --runtime {rt:<6} {r['images_per_second']:>6} img/s  ×{_f(r.get('ratio_to_script'))} the script; "
                f"encoder peak RSS {_f(r.get('encoder_peak_rss_mb'))} MB",
                file=out,
            )


def _ran_on(rec: dict) -> str:
    """The provider that ran a bare measurement and its precision, e.g. ``Tensorrt float32``."""
    if not rec.get("provider"):
        return ""
    return f"{str(rec['provider']).removesuffix('ExecutionProvider')} {rec.get('dtype') or ''}".strip()[:22]


def _f(v) -> str:
    return "n/a" if v is None else str(v)
