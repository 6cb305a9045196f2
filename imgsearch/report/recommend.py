"""The recommendation: what to run, in words, from the numbers the report shows below it.

Each claim is a sentence and the id of the table it rests on (the report links it there):
the best quality (the top group, Holm-adjusted), a cheaper entry on the Pareto front close to
it, whether fusing encoders pays, the index setting, and what a cloud API means. Where the data
cannot separate the encoders, it says so rather than pick one.
"""

import logging
from typing import Optional

logger = logging.getLogger(__name__)

CLOSE = 0.02  # mAP@10: "within" this of the best counts as close enough to name a cheaper entry


def _ms(row: Optional[dict]) -> Optional[float]:
    return (row or {}).get("ms_per_image")


def _where(row: dict) -> str:
    rt = row.get("runtime")
    return f" on {rt}" if rt and rt != "remote API" else ""


def _best(group: list[str], sig: dict, cost: dict) -> tuple[str, str]:
    best = group[0]
    q = (cost.get(best) or {}).get("quality")
    rank = (sig.get("ranks") or {}).get(best) or {}
    first = f"; first in {100 * rank['first']:.0f}% of bootstrap resamples" if rank.get("first") is not None else ""
    qtext = f"mAP@10 {q:.3f}" if q is not None else "best mAP@10"
    if len(group) == 1:
        return (f"For the best quality: {best} ({qtext}, significantly better than every other encoder, Holm-adjusted{first}).", "significance")
    return (
        f"For the best quality: {best} ({qtext}), but the data cannot separate it from {', '.join(group[1:])}: "
        f"they form the top group (none significantly worse than {best}, Holm-adjusted), so choose among them "
        "on cost.",
        "significance",
    )


def _cheaper(group: list[str], cost: dict, random: set[str]) -> Optional[tuple[str, str]]:
    """A cheaper entry on the Pareto front close to the best (never a tiny random stand-in for a real one)."""
    best = group[0]
    bq, bms = (cost.get(best) or {}).get("quality"), _ms(cost.get(best))
    if bq is None or bms is None:
        return None
    timed = {n: ms for n, r in cost.items() if (ms := _ms(r)) is not None}
    cands = [
        (n, r)
        for n, r in cost.items()
        if r.get("pareto")
        and n in timed
        and timed[n] < bms
        and r.get("quality") is not None
        and not r.get("fused")
        and (n not in random or best in random)
    ]
    if not cands:
        stand_ins = sorted(n for n, r in cost.items() if n in random and r.get("pareto") and (_ms(r) or bms) < bms)
        note = f" ({', '.join(stand_ins)}: cheaper, but tiny random stand-ins)" if stand_ins else ""
        return (f"No cheaper entry is on the Pareto front{note}: {best} ({bms:.1f} ms per image) is also the best trade-off.", "summary")
    close = [(n, r) for n, r in cands if n in group or bq - r["quality"] <= CLOSE]
    n, r = min(close or cands, key=lambda nr: timed[nr[0]])
    times = bms / timed[n]
    loss = bq - r["quality"]
    if close:
        how = f"in the top group ({loss:.3f} mAP@10 below {best}, not significantly worse)" if n in group else f"within {loss:.3f} mAP@10 of {best}"
        return (f"For {times:.1f}× less encoding time: {n}{_where(r)}, {how}; {_ms(r):.1f} ms per image against {bms:.1f}.", "summary")
    return (
        f"The cheapest entry on the Pareto front is {n}{_where(r)}: {times:.1f}× less encoding time, {loss:.3f} mAP@10 less than {best}.",
        "summary",
    )


def _fusion(result: dict) -> Optional[tuple[str, str]]:
    fusion = result.get("fusion") or {}
    best = fusion.get("best")
    if not best:
        return None
    return (best["sentence"], "fusion")


def _index(result: dict) -> Optional[tuple[str, str]]:
    rec = (result.get("quantization") or {}).get("recommended")
    return (rec["sentence"], "quantization") if rec else None


def claims(result: dict) -> list[tuple[str, str]]:
    """[(sentence, id of the table it rests on)], most important first."""
    sig = result.get("significance") or {}
    cost = (result.get("cost") or {}).get("rows") or {}
    group = sig.get("top_group") or []
    out: list[tuple[str, str]] = []
    if not result["data"].get("labelled") or not group:
        timed = {n: ms for n, r in cost.items() if (ms := _ms(r)) is not None}
        if timed:
            n = min(timed, key=lambda name: timed[name])
            r = cost[n]
            out.append(
                (
                    f"No labels, so quality cannot be measured here; the cheapest to run is {n}{_where(r)} "
                    f"({timed[n]:.1f} ms per image). Put images in sub-folders by label to compare quality.",
                    "summary",
                )
            )
        else:
            out.append(("Nothing was measured: see the encoders that did not run.", "summary"))
        return out
    out.append(_best(group, sig, cost))
    random = {r["encoder"] for r in result["encoders"] if r.get("status") == "ok" and r.get("random_weights")}
    out += [c for c in (_cheaper(group, cost, random), _fusion(result), _index(result)) if c]
    remote = [n for n, r in cost.items() if r.get("leaves_machine")]
    if remote:
        price = (result.get("cost") or {}).get("vertex_price_per_1000")
        out.append(
            (
                f"{', '.join(remote)} runs as a cloud API: every image leaves this machine, at USD {price:.2f} per 1,000 images (--vertex-price).",
                "summary",
            )
        )
    if random:
        out.append(
            (
                f"{', '.join(sorted(random))} ran with tiny random weights: their numbers say nothing about the real "
                "encoders, so this recommendation is a demonstration only.",
                "summary",
            )
        )
    return out
