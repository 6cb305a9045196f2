"""Grids of images for the near-duplicate pairs and the label audit (HTML, thumbnails inlined)."""

import html
from pathlib import Path

from imgsearch.grid import _data_uri
from imgsearch.report.common import thumb

GRID_PAIRS = 40  # pairs shown: cross-label ones first (the telling ones), then those more encoders found
GRID_FLAGGED = 60  # flagged images shown: those more encoders flag first
TILE = 96


def _fig(path: str, caption: str, cls: str = "") -> str:
    e = html.escape
    return (
        f"<figure class='tile {cls}' data-path='{e(path)}'><img src='{_data_uri(thumb(path, TILE))}' alt='{e(Path(path).name)}'>"
        f"<figcaption>{caption}</figcaption></figure>"
    )


def near_duplicate_grid(result: dict) -> str:
    nd = (result.get("tasks") or {}).get("near_duplicates") or {}
    pairs = sorted(nd.get("pairs", []), key=lambda p: (p["same_label"], -len(p["encoders"])))[:GRID_PAIRS]
    if not pairs:
        return ""
    e = html.escape
    cells = []
    for p in pairs:
        kind = "same-label" if p["same_label"] else "cross-label"
        best = max(p["score"].values())
        cells.append(
            f"<div class='pair {kind}' data-a='{e(p['a'])}' data-b='{e(p['b'])}' data-kind='{kind}'>"
            + _fig(p["a"], f"<b>{e(str(p['label_a']))}</b><br>{e(Path(p['a']).name)}")
            + _fig(p["b"], f"<b>{e(str(p['label_b']))}</b><br>{e(Path(p['b']).name)}")
            + f"<div class='pairnote'>{kind} · cos {best:.3f} · {e(', '.join(p['encoders']))}</div></div>"
        )
    return (
        "<h2>Near-duplicate pairs</h2><p>Pairs at cosine ≥ " + f"{nd['threshold']:.2f}" + f" in some encoder's space: "
        f"{nd['total']:,} in all, {nd['cross_label']:,} across labels (shown first: a copy filed under two labels). "
        f"Queries' near-duplicates are <b>{e(nd['mode'])}d</b> from their candidates (--near-duplicates). "
        f"report.json lists the first {nd['cap']:,} pairs by path.</p><div id='near-duplicates' class='tiles'>" + "".join(cells) + "</div>"
    )


def audit_grid(result: dict) -> str:
    audit = (result.get("tasks") or {}).get("label_audit") or {}
    flagged = audit.get("flagged", [])[:GRID_FLAGGED]
    if not flagged:
        return ""
    e = html.escape
    n_enc = len([r for r in result["encoders"] if r.get("status") == "ok"])
    cells = []
    for f in flagged:
        if f["kind"] == "mislabel":
            cap = f"<b>{e(str(f['label']))}</b> → {e(str(f['suggested']))}"
        else:
            cap = f"<b>{e(str(f['label']))}</b> · far from all"
        cells.append(
            f"<div class='flag {f['kind']}' data-path='{e(f['path'])}' data-kind='{f['kind']}' data-label='{e(str(f['label']))}' "
            f"data-suggested='{e(str(f.get('suggested') or ''))}' data-encoders='{len(f['encoders'])}'>"
            + _fig(f["path"], f"{cap}<br>{len(f['encoders'])}/{n_enc} encoders<br>{e(Path(f['path']).name)}")
            + "</div>"
        )
    t = audit.get("total", {})
    return (
        "<h2>Label audit: possible mislabels and outliers</h2><p>"
        f"{t.get('mislabel', 0):,} possible mislabels (folder label → the label the encoder's space suggests) and "
        f"{t.get('outlier', 0):,} outliers; those more encoders flag first. {e(audit.get('method', ''))}. "
        f"report.json lists the first {audit.get('cap', 0):,} by path.</p><div id='audit' class='tiles'>" + "".join(cells) + "</div>"
    )


GRID_CSS = (
    ".tiles{display:flex;flex-wrap:wrap;gap:6px}.pair,.flag{border:1px solid #ccc;padding:3px;background:#fafafa}"
    ".pair.cross-label{border-color:#c82828}.flag.mislabel{border-color:#c82828}.flag.outlier{border-color:#888}"
    f"figure.tile{{width:{TILE + 8}px}}figure.tile img{{width:{TILE}px;height:{TILE}px}}.pairnote{{font-size:11px}}"
)
