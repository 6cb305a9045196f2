"""The bare model: images/s of the encoder alone on pre-decoded tensors (the ceiling).

Runs in its own clean process (``python -m imgsearch.bench.bare``), so the benchmark
process never runs torch itself (a forked flow would inherit its OpenMP state) and the
model gets the same threads an encoder executor gets. The model is loaded by the same
executor class, checkpoint, dtype and device as in the flow; the images are decoded and
preprocessed first (those costs are reported apart), then only the forward pass and the
L2 normalisation are timed, per batch size.
"""

import argparse
import importlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional


def encoder_class(encoder: str):
    """The executor class that serves ``encoder`` in the flow (from its family module)."""
    from executors.encoders.base import TorchEncoder
    from executors.encoders.specs import get_spec

    family = get_spec(encoder).family
    module = importlib.import_module(f"executors.encoders.{family}")
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, TorchEncoder) and value.family == family:
            return value
    raise ValueError(f"encoder '{encoder}' is not a torch encoder (nothing to measure bare)")


def measure(encoder: str, model: Optional[str], files: list[Path], batch_sizes: list[int], min_seconds: float) -> dict:
    import torch

    from executors.normalizer.decode import decode_image

    enc = encoder_class(encoder)(name=encoder, model=model, batch_size=max(batch_sizes))
    rule = enc.preprocess.resize_rule()
    blobs = [p.read_bytes() for p in files]
    t = time.perf_counter()
    arrays = [decode_image(b, max_side=1024, fit=rule)[0] for b in blobs]
    decode_s = time.perf_counter() - t
    t = time.perf_counter()
    pixels = torch.cat([enc.preprocess(arrays[s : s + 32]) for s in range(0, len(arrays), 32)])
    preprocess_s = time.perf_counter() - t
    pixels = pixels.to(enc.device, enc.dtype)
    if enc.channels_last:
        pixels = pixels.contiguous(memory_format=torch.channels_last)

    def forward(batch: torch.Tensor) -> None:
        enc._normalise(enc.image_tower(batch))
        if enc.device.type == "cuda":
            torch.cuda.synchronize()

    rates = {}
    with torch.inference_mode():
        for b in batch_sizes:
            batches = [pixels[s : s + b] for s in range(0, len(pixels), b)]
            forward(batches[0])  # warm-up (allocator, kernels)
            done, started = 0, time.perf_counter()
            while True:
                for batch in batches:
                    forward(batch)
                    done += len(batch)
                if time.perf_counter() - started >= min_seconds:
                    break
            rates[b] = done / (time.perf_counter() - started)
    best = max(rates, key=lambda b: rates[b])
    return {
        "encoder": encoder,
        "model": enc.checkpoint,
        "device": str(enc.device),
        "dtype": str(enc.dtype).removeprefix("torch."),
        "runtime": enc.runtime,
        "provider": getattr(enc.image_tower, "provider", f"torch {enc.device.type}"),
        "threads": enc.num_threads,
        "images": len(files),
        "input_size": list(enc.preprocess.input_size),
        "images_per_second": {str(b): round(r, 2) for b, r in rates.items()},
        "best_batch_size": best,
        "best_images_per_second": round(rates[best], 2),
        "decode_ms_per_image": round(decode_s / len(files) * 1e3, 3),
        "preprocess_ms_per_image": round(preprocess_s / len(files) * 1e3, 3),
        "load_seconds": round(enc.load_seconds, 2),
    }


def run_in_subprocess(
    encoder: str,
    model: Optional[str],
    files: list[Path],
    batch_sizes: list[int],
    min_seconds: float,
    workdir: Path,
    runtime: Optional[str] = None,
    extra_env: Optional[dict[str, str]] = None,
) -> dict:
    """``measure`` in a fresh interpreter (on ``runtime``, default: as the flow's; ``extra_env`` added to
    its environment); returns its JSON."""
    import subprocess

    from imgsearch.flow import REPO

    listing = workdir / f"bare-{encoder}-files.json"
    listing.write_text(json.dumps([str(p) for p in files]))
    cmd = [
        sys.executable,
        "-m",
        "imgsearch.bench.bare",
        "--encoder",
        encoder,
        "--files",
        str(listing),
        "--batch-sizes",
        *map(str, batch_sizes),
        "--min-seconds",
        str(min_seconds),
    ]
    if model:
        cmd += ["--model", str(model)]
    # The ceiling: OpenMP's default (spinning) wait, fastest for a model alone; the flow's
    # processes use passive waiting (cli.py), better when stages share the cores.
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if runtime:
        env["ENCODER_RUNTIME"] = runtime
    env.update(extra_env or {})
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"bare-model run of {encoder} failed: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: Optional[list[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--encoder", required=True)
    ap.add_argument("--model")
    ap.add_argument("--files", type=Path, required=True, help="JSON list of image paths")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 16, 32])
    ap.add_argument("--min-seconds", type=float, default=5.0)
    args = ap.parse_args(argv)
    files = [Path(p) for p in json.loads(args.files.read_text())]
    print(json.dumps(measure(args.encoder, args.model, files, args.batch_sizes, args.min_seconds)))


if __name__ == "__main__":
    main()
