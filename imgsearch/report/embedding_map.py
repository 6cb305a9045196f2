"""The 2-D maps of the encoders' spaces in report.html: points coloured by label, the image's
thumbnail on hover, two encoders side by side (each panel picks its encoder).

Every encoder's map holds the same sample of images (compare/embedding_map.py), so each thumbnail
is inlined once, in a table the panels share.
"""

import colorsys
import hashlib
import html
import json
from collections import Counter

from imgsearch.grid import _data_uri
from imgsearch.report.common import PALETTE, thumb

SIZE = 440
HOVER_THUMB = 64


def _colour(label, rank: int) -> str:
    if label is None:
        return "#999999"
    if rank < len(PALETTE):
        return "#%02x%02x%02x" % PALETTE[rank]
    hue = int(hashlib.sha256(str(label).encode()).hexdigest()[:6], 16) / 0xFFFFFF
    return "#%02x%02x%02x" % tuple(int(255 * c) for c in colorsys.hsv_to_rgb(hue, 0.65, 0.85))


def map_section(result: dict) -> str:
    runs = [r for r in result["encoders"] if r.get("status") == "ok" and (r.get("map") or {}).get("points")]
    if not runs:
        return ""
    e = html.escape
    labels = result["images"]["labels"]
    paths = result["images"]["paths"]
    shown = sorted({p[0] for r in runs for p in r["map"]["points"]})
    ranks = {lab: i for i, (lab, _) in enumerate(Counter(labels[i] for i in shown if labels[i] is not None).most_common())}
    colour = {lab: _colour(lab, ranks.get(lab, 99)) for lab in set(labels[i] for i in shown)}
    thumbs = {i: _data_uri(thumb(paths[i], HOVER_THUMB)) for i in shown}
    info = {i: [str(labels[i]) if labels[i] is not None else "", paths[i].rsplit("/", 1)[-1]] for i in shown}
    panels = []
    for r in runs:
        dots = "".join(
            f"<circle cx='{6 + x * (SIZE - 12):.1f}' cy='{6 + (1 - y) * (SIZE - 12):.1f}' r='3.2' fill='{colour[labels[i]]}' data-i='{i}'/>"
            for i, x, y in r["map"]["points"]
        )
        panels.append(f"<svg class='map' data-encoder='{e(r['encoder'])}' width='{SIZE}' height='{SIZE}' viewBox='0 0 {SIZE} {SIZE}'>{dots}</svg>")
    options = "".join(f"<option value='{e(r['encoder'])}'>{e(r['encoder'])}</option>" for r in runs)
    legend = "".join(
        f"<span class='key'><i style='background:{colour[lab]}'></i>{e(str(lab))}</span>"
        for lab in sorted(colour, key=lambda lab: ranks.get(lab, 99))[:40]
    )
    second = runs[1]["encoder"] if len(runs) > 1 else runs[0]["encoder"]
    return (
        "<h2>Maps of the encoders' spaces</h2><p>" + e(runs[0]["map"]["method"]) + ": the same "
        f"{len(shown):,} images in every map, coloured by label; hover a point for its image. "
        "Pick an encoder per panel to set two side by side.</p>"
        f"<div id='maps'><div class='map-panel' id='map-left'><select>{options}</select><div class='holder'></div></div>"
        f"<div class='map-panel' id='map-right'><select>{options}</select><div class='holder'></div></div></div>"
        f"<div id='map-legend'>{legend}</div><div id='map-store' hidden>{''.join(panels)}</div>"
        "<div id='map-tip' hidden><img><div></div></div>"
        f"<script>const MAP_THUMBS={json.dumps(thumbs)};const MAP_INFO={json.dumps(info)};"
        "(function(){const store=document.getElementById('map-store'),tip=document.getElementById('map-tip');"
        "function show(panel,enc){const h=panel.querySelector('.holder');h.innerHTML='';"
        "const svg=store.querySelector(`svg[data-encoder=\"${CSS.escape(enc)}\"]`).cloneNode(true);h.appendChild(svg);"
        "panel.querySelector('select').value=enc;panel.dataset.encoder=enc;}"
        "document.querySelectorAll('.map-panel').forEach((p,n)=>{const sel=p.querySelector('select');"
        f"show(p,n?{json.dumps(second)}:sel.options[0].value);sel.addEventListener('change',()=>show(p,sel.value));}});"
        "document.getElementById('maps').addEventListener('mouseover',ev=>{const c=ev.target.closest('circle');"
        "if(!c){tip.hidden=true;return;}const i=c.dataset.i;tip.querySelector('img').src=MAP_THUMBS[i];"
        "tip.querySelector('div').textContent=MAP_INFO[i][0]+' · '+MAP_INFO[i][1];tip.dataset.i=i;"
        "tip.style.left=(ev.pageX+12)+'px';tip.style.top=(ev.pageY+12)+'px';tip.hidden=false;});"
        "document.getElementById('maps').addEventListener('mouseleave',()=>{tip.hidden=true;});})();</script>"
    )


MAP_CSS = (
    "#maps{display:flex;gap:12px}.map-panel{border:1px solid #ccc;padding:4px}svg.map{background:#fcfcfc}"
    "svg.map circle{stroke:#fff;stroke-width:.5}svg.map circle:hover{stroke:#000;stroke-width:1.5}"
    "#map-legend .key{font-size:11px;margin-right:10px;white-space:nowrap}#map-legend i{display:inline-block;width:10px;"
    "height:10px;margin-right:3px}#map-tip{position:absolute;background:#fff;border:1px solid #333;padding:3px;"
    "font-size:11px;pointer-events:none;z-index:9}#map-tip[hidden]{display:none}"
)
