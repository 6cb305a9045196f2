"""The report's decision tables: the short headline table (quality, cost, the Pareto flag) and
the significance section (top group, rank intervals, Holm-adjusted verdicts)."""

from imgsearch.report.common import as_int, ci_text, fmt, runtime_text
from imgsearch.report.selection import ok_runs

SUMMARY_COLS = [
    "entry",
    "runtime",
    "threads",
    "mAP@10 [95% CI]",
    "R@1",
    "rank [95% CI]",
    "top group",
    "ms / image",
    "peak RSS MB",
    "RAM B / vector",
    "disk B / vector",
    "index s / 10k",
    "USD / 1k images",
    "Pareto",
]


def _rank(sig: dict, name: str) -> str:
    r = (sig.get("ranks") or {}).get(name)
    if not r:
        return "–"
    lo, hi = r["ci"]
    return f"{r['rank']} [{lo}–{hi}]" if lo != hi else f"{r['rank']} [{lo}]"


def _pareto(flag) -> str:
    return "–" if flag is None else ("yes" if flag else "no")


def summary_rows(result: dict) -> tuple[list[str], list[list[str]], list[str]]:
    """(columns, rows, row keys): one row per entry, then the fused rows."""
    sig = result.get("significance") or {}
    cost = (result.get("cost") or {}).get("rows") or {}
    group = set(sig.get("top_group") or [])
    rows, keys = [], []
    names = [r["encoder"] for r in ok_runs(result)] + [n for n, c in cost.items() if c.get("fused")]  # fused: those kept
    by_name = {r["encoder"]: r for r in ok_runs(result)}
    for name in names:
        c = cost.get(name) or {}
        r = by_name.get(name) or {}
        q = r.get("quality") or c.get("quality_detail") or {}
        lab = q.get("labelled") or c.get("quality") is not None
        rows.append(
            [
                name + (" (random)" if r.get("random_weights") else ""),
                runtime_text(r) if r else c.get("runtime") or "–",
                fmt(as_int(c.get("threads"))),
                (fmt(c.get("quality")) + ci_text((q.get("ci") or {}).get("mAP@10"))) if lab else "no labels",
                fmt(q.get("recall@1")) if lab else "–",
                _rank(sig, name),
                "yes" if name in group else ("–" if not lab else "no"),
                fmt(c.get("ms_per_image"), 2),
                fmt(c.get("peak_rss_mb"), 0),
                fmt(as_int(c.get("ram_bytes_per_vector"))),
                fmt(c.get("disk_bytes_per_vector"), 0),
                fmt(c.get("index_s_per_10k"), 1),
                fmt(c.get("price_per_1000"), 2) + (" (leaves the machine)" if c.get("leaves_machine") else ""),
                _pareto(c.get("pareto")),
            ]
        )
        keys.append(name)
    return SUMMARY_COLS, rows, keys


RANK_COLS = ["entry", "mAP@10", "rank", "95% interval of the rank", "first in (share of resamples)", "top group"]


def rank_rows(result: dict) -> list[list[str]]:
    sig = result.get("significance") or {}
    ranks = sig.get("ranks") or {}
    group = set(sig.get("top_group") or [])
    means = {r["encoder"]: (r.get("quality") or {}).get("mAP@10") for r in ok_runs(result)}
    order = sorted(ranks, key=lambda n: (ranks[n]["rank"], n))
    return [
        [
            n,
            fmt(means.get(n)),
            str(ranks[n]["rank"]),
            f"{ranks[n]['ci'][0]}–{ranks[n]['ci'][1]}",
            f"{100 * ranks[n]['first']:.0f}%",
            "yes" if n in group else "no",
        ]
        for n in order
    ]


def significance_text(result: dict) -> tuple[str, str, list[str]]:
    """(winner line, how the tests were made, one verdict per pair)."""
    sig = result.get("significance") or {}
    how = (
        f"Paired randomisation tests on per-query AP@10; p-values Holm-adjusted across all "
        f"{len(sig.get('pairs', []))} pairs. The top group is the best encoder and every encoder not "
        "significantly worse than it; rank intervals come from 1,000 bootstrap resamples of the queries."
    )
    return (sig.get("winner") or {}).get("sentence", ""), how, [p["verdict"] for p in sig.get("pairs", [])]
