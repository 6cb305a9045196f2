"""The compare report: report.json (compact), report.md, report.html (self-contained), PNGs.

selection.py picks what is shown (grid rows, wins); plots.py and tradeoff.py draw; layout.py puts the
sections in order (recommend.py, decision.py, tables.py, grid_text.py give their content).
"""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from imgsearch.report.layout import write_html, write_markdown
from imgsearch.report.plots import plot_headline, plot_scores, render_grid_png
from imgsearch.report.selection import grid_rows, winner_counts
from imgsearch.report.tradeoff import plot_tradeoff

__all__ = ["write_report"]


def write_report(result: dict, out: Path, finish: Optional[Callable[[dict], None]] = None) -> dict:
    """Write every report file into ``out``; returns {kind: file name}. ``finish(result)`` runs
    just before the text is written (the run adds its total time and peak memory there)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = grid_rows(result)
    files = {}
    for key, fn in (
        ("tradeoff", lambda p: plot_tradeoff(result, p)),
        ("scores", lambda p: plot_scores(result, p)),
        ("headline", lambda p: plot_headline(result, p)),
        ("grid", lambda p: render_grid_png(result, rows, p)),
    ):
        if fn(out / f"{key}.png") is not None:
            files[key] = f"{key}.png"
    # The grid as query numbers: report.json keeps the per-query results once.
    result["grid"]["shown"] = [{"query": r["query"], "qi": r["qi"], "why": r["why"]} for r in rows]
    result["wins"] = winner_counts(result)
    result["files"] = {**files, "markdown": "report.md", "html": "report.html", "json": "report.json"}
    if finish is not None:
        finish(result)
    write_markdown(result, rows, out, files)
    write_html(result, rows, out, files)
    (out / "report.json").write_text(json.dumps(result, separators=(",", ":"), default=str), encoding="utf-8")
    return result["files"]
