"""The report's text: report.md and report.html (self-contained), from the same rows."""

from imgsearch.report.common import (
    as_int,
    ci_text,
    fmt,
    runtime_text,
)
from imgsearch.report.selection import ok_runs, winner_counts

QUALITY = ("recall@1", "recall@5", "recall@10", "mAP@10")


def _q(q: dict, key: str) -> str:
    """A quality number with its 95% interval."""
    return fmt(q.get(key)) + ci_text((q.get("ci") or {}).get(key))


def headline_rows(result: dict) -> tuple[list[str], list[list[str]]]:
    cols = [
        "encoder",
        "model",
        "weights",
        "runtime",
        "wall s (with start-up)",
        "flow start s",
        "model load s",
        "encode img/s",
        "vectors",
        "disk MB",
        "bytes/vector",
        "dim",
        "peak RSS MB",
        "R@1 [95% CI]",
        "R@5",
        "R@10",
        "mAP@10 [95% CI]",
        "text R@1",
        "text R@5",
        "text mAP@10",
        "AUC [95% CI]",
        "separation",
        "break gap",
        "threshold (P / R)",
        "queries won (ties split)",
    ]
    wins = winner_counts(result)
    rows = []
    for r in ok_runs(result):
        q = r.get("quality") or {}
        tq = r.get("text_quality") or {}
        lab = q.get("labelled")
        thr = q.get("threshold")
        no = "no labels"
        rows.append(
            [
                r["encoder"] + (" (reused)" if r.get("resumed") else ""),
                r.get("model", ""),
                "RANDOM (tiny test model)" if r.get("random_weights") else r.get("checkpoint_note", ""),
                runtime_text(r),
                fmt(r.get("wall_seconds"), 1),
                fmt(r.get("flow_start_seconds"), 1),
                fmt(r.get("load_seconds"), 2),
                fmt(r.get("images_per_second"), 1),
                fmt(as_int(r.get("count"))),
                fmt(r.get("disk_mb"), 2),
                fmt(r.get("bytes_per_vector"), 0),
                fmt(as_int(r.get("dim"))),
                fmt(r.get("peak_rss_mb"), 0),
                *([_q(q, k) for k in QUALITY] if lab else [no] * 4),
                *(
                    [_q(tq, k) for k in ("recall@1", "recall@5", "mAP@10")]
                    if tq.get("labelled")
                    else ["no labels" if "text_quality" in r else "image-only"] * 3
                ),
                *(
                    [
                        _q(q, "auc"),
                        _q(q, "separation"),
                        _q(q, "break_gap"),
                        f"{thr['threshold']:.3f} ({thr['precision']:.2f} / {thr['recall']:.2f})" if thr else "–",
                    ]
                    if lab
                    else [no] * 4
                ),
                fmt(wins.get(r["encoder"]), 1) if lab else "–",
            ]
        )
    return cols, rows


LABEL_ROWS_SHOWN = 20
LABEL_ROWS_MAX = 2000  # the folded rest is bounded too: report.html stays small at 100k labels


def label_rows(result: dict) -> tuple[list[str], list[list[str]]]:
    """recall@1 per label, worst or most disputed first: by the larger of the encoders' spread
    and how far their mean falls short of 1."""
    labels = result.get("labels") or {}
    table = labels.get("recall@1") or {}
    if not table:
        return [], []
    encs = [r["encoder"] for r in ok_runs(result) if r["encoder"] in next(iter(table.values()), {})]

    def stats(lab: str) -> tuple[float, float]:
        vals = [v for v in table[lab].values() if v is not None]
        return (max(vals) - min(vals), sum(vals) / len(vals)) if vals else (0.0, 1.0)

    order = sorted(table, key=lambda lab: (-max(stats(lab)[0], 1 - stats(lab)[1]), lab))[:LABEL_ROWS_MAX]
    return (
        ["label", *encs, "mean", "spread"],
        [[lab, *[fmt(table[lab].get(e)) for e in encs], fmt(stats(lab)[1]), fmt(stats(lab)[0])] for lab in order],
    )


def run_line(result: dict) -> str:
    t = result.get("timing") or {}
    q = result["queries"]
    return (
        f"{q['count']} queries ({q['source']}) · indexing {t.get('indexing_seconds')} s, evaluation "
        f"{t.get('evaluation_seconds')} s, report {t.get('report_seconds')} s"
        + (f" · reused: {', '.join(t['reused'])}" if t.get("reused") else "")
        + f" · client peak RSS {result.get('client_peak_rss_mb')} MB · run took {result['seconds']} s"
    )


def not_run(result: dict) -> list[tuple[str, str, str]]:
    return [(r["encoder"], r["status"], r.get("reason", "")) for r in result["encoders"] if r.get("status") != "ok"]


def settings(result: dict) -> dict:
    per = {}
    for r in ok_runs(result):
        info = dict(r.get("info") or {})
        per[r["encoder"]] = {**info, "random_weights": bool(r.get("random_weights")), "checkpoint_note": r.get("checkpoint_note")}
    return {"run": result["settings"], "environment": result["environment"], "encoders": per}
