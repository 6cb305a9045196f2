"""The result grid as text: a Markdown table and the HTML table of thumbnails."""

from pathlib import Path

from imgsearch.grid import _data_uri
from imgsearch.report.common import CELL_THUMB, label, thumb
from imgsearch.report.markup import e
from imgsearch.report.selection import ok_runs


def grid_md(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    encs = list(rows[0]["cells"])
    lines = ["## Grid (text form)", "", "| query | " + " | ".join(encs) + " | winner | why shown |", "|" + "---|" * (len(encs) + 3)]
    for row in rows:
        cells = [
            ", ".join(
                f"{Path(m['path']).name} ({m['score']:.3f}{'' if m.get('relevant') is None else (' ✓' if m['relevant'] else ' ✗')})"
                for m in row["cells"].get(enc, [])
            )
            for enc in encs
        ]
        lines.append(
            f"| {Path(row['query']).name} [{row.get('label') or ''}] | "
            + " | ".join(cells)
            + f" | {'tie' if row.get('tie') else ', '.join(row.get('winner') or []) or '–'} | {row.get('why', '')} |"
        )
    return lines


def grid_html(result: dict, rows: list[dict]) -> list[str]:
    if not rows:
        return []
    recs = ok_runs(result)
    parts = [
        "<h2 id='grid-title'>Result grid</h2><p>One row per query image, one column per encoder: the top "
        f"{result['grid']['k']} results with scores; green frame = same label, red = other label. "
        "Winner: the best AP@10 for that query.</p><table id='grid'><tr><th>query</th>"
        + "".join(f"<th{' class=random' if r.get('random_weights') else ''}>{e(label(r))}</th>" for r in recs)
        + "<th>winner</th><th>why shown</th></tr>"
    ]
    for row in rows:
        parts.append(
            f"<tr class='grid-row' data-query='{e(row['query'])}'>"
            f"<td class='query'><figure><img src='{_data_uri(thumb(row['query'], CELL_THUMB))}' alt='query'>"
            f"<figcaption>{e(str(row.get('label') or ''))}<br>{e(Path(row['query']).name)}</figcaption></figure></td>"
        )
        for r in recs:
            parts.append(f"<td class='cell' data-encoder='{e(r['encoder'])}'>")
            for n, m in enumerate(row["cells"].get(r["encoder"], []), 1):
                cls = "" if m.get("relevant") is None or row.get("label") is None else (" rel" if m["relevant"] else " irr")
                parts.append(
                    f"<figure class='match{cls}' data-rank='{n}' data-path='{e(m['path'] or '')}' data-score='{m['score']:.6f}'>"
                    f"<img src='{_data_uri(thumb(m['path'], CELL_THUMB))}' alt='{e(Path(m['path'] or '?').name)}'>"
                    f"<figcaption>{m['score']:.3f}</figcaption></figure>"
                )
            parts.append("</td>")
        wtext = "tie" if row.get("tie") else ", ".join(row.get("winner") or []) or "–"
        parts.append(f"<td class='winner' data-winner='{e(wtext)}'>{e(wtext)}</td><td>{e(row.get('why', ''))}</td></tr>")
    parts.append("</table>")
    return parts
