"""One encoder on several runtimes (``--encoders lite0@torch,lite0@onnx-int8``): speed against quality.

Entries of the same encoder are set side by side against a reference entry (fp32 first: torch,
then onnx), so one table answers "what does int8 cost me in recall@1 and mAP@10, and what does it
buy in images/s"; the paired test on per-query AP@10 says whether the quality difference is real.
"""

from executors.encoders.runtime_env import RUNTIMES
from imgsearch.report.common import fmt, runtime_text
from imgsearch.report.selection import ok_runs

REFERENCE_ORDER = RUNTIMES  # most exact first: a group's reference is its most exact runtime


def _rank(rec: dict) -> int:
    rt = rec.get("runtime")
    return REFERENCE_ORDER.index(rt) if rt in REFERENCE_ORDER else len(REFERENCE_ORDER)


def runtime_groups(result: dict) -> list[list[dict]]:
    """Encoders compared on more than one runtime: each group's records, its reference first."""
    groups: dict[str, list[dict]] = {}
    for r in ok_runs(result):
        groups.setdefault(r.get("registry_name") or r["encoder"], []).append(r)
    # sorted() is stable: among equals, the report's order decides.
    return [sorted(g, key=_rank) for g in groups.values() if len(g) > 1]


def _pair(result: dict, entry: str, ref: str) -> dict | None:
    """The paired test of ``entry`` against ``ref``, turned to read entry − reference."""
    for p in (result.get("significance") or {}).get("pairs", []):
        if {p["a"], p["b"]} == {entry, ref}:
            if p["a"] == entry or p.get("diff") is None:
                return p
            ci = p.get("ci")
            # 0.0 - x, not -x: a zero stays +0.000 when printed
            return {**p, "a": entry, "b": ref, "diff": 0.0 - p["diff"], "ci": [0.0 - ci[1], 0.0 - ci[0]] if ci else None}
    return None


def _delta(value: float | None, ref: float | None) -> str:
    return "–" if value is None or ref is None else f"{value - ref:+.3f}"


def _tested(pair: dict | None) -> list[str]:
    """Δ mAP@10 [95% CI], p, and whether the difference is real, from the paired test."""
    if not pair or pair.get("diff") is None or pair.get("ci") is None:
        return ["–", "–", "too few labelled queries to test"]
    lo, hi = pair["ci"]
    real = ("yes: better" if pair["diff"] > 0 else "yes: worse") if pair["significant"] else "no"
    return [f"{pair['diff']:+.3f} [{lo:+.3f}…{hi:+.3f}]", "< 0.001" if pair["p"] < 0.001 else f"{pair['p']:.3f}", real]


def runtime_rows(result: dict) -> tuple[list[str], list[list[str]]]:
    """The table: per entry its runtime, images/s (× the reference's), recall@1 and mAP@10 with their
    change from the reference, and the paired test on per-query AP@10 against it."""
    cols = ["encoder", "runtime", "encode img/s", "× speed", "R@1", "Δ R@1", "mAP@10", "Δ mAP@10 [95% CI]", "p", "difference real?"]
    rows = []
    for group in runtime_groups(result):
        ref = group[0]
        rq = ref.get("quality") or {}
        for r in group:
            q = r.get("quality") or {}
            ips, ref_ips = r.get("images_per_second"), ref.get("images_per_second")
            head = [r["encoder"], runtime_text(r), fmt(ips, 1), f"{ips / ref_ips:.2f}×" if ips and ref_ips else "–", fmt(q.get("recall@1"))]
            if r is ref:
                rows.append([*head, "reference", fmt(q.get("mAP@10")), "reference", "–", "–"])
            else:
                rows.append(
                    [
                        *head,
                        _delta(q.get("recall@1"), rq.get("recall@1")),
                        fmt(q.get("mAP@10")),
                        *_tested(_pair(result, r["encoder"], ref["encoder"])),
                    ]
                )
    return cols, rows
