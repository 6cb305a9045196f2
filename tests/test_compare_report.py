"""The compare report read top-down: the recommendation on the first screen, its claims linked
to the tables they rest on, in report.md and in headless Chromium."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from browser import chromium  # noqa: E402
from test_compare import _images, synthetic_result  # noqa: E402

from imgsearch.compare.cost import cost_table  # noqa: E402
from imgsearch.compare.fusion import cost_rows as fusion_cost_rows  # noqa: E402
from imgsearch.compare.fusion import fuse_runs  # noqa: E402
from imgsearch.compare.quantization import recommend as recommend_index  # noqa: E402
from imgsearch.compare.summary import label_disagreement, significance  # noqa: E402
from imgsearch.report import write_report  # noqa: E402
from imgsearch.report.recommend import claims  # noqa: E402


def _result(tmp_path: Path) -> dict:
    """Three entries: 'good' best and slow, 'mid@onnx' as good and cheaper, 'poor' cheapest; many labels."""
    result = synthetic_result(_images(tmp_path / "imgs"))
    good, poor = result["encoders"][:2]
    good.update(model_ms_per_image=42.0, indexed=6, index_seconds=2.0, runtime="torch", random_weights=False)
    poor.update(model_ms_per_image=4.0, indexed=6, index_seconds=1.0, runtime="onnx-int8", random_weights=False)
    mid = {**good, "encoder": "mid@onnx", "model_ms_per_image": 12.0, "runtime": "onnx"}
    runs = [good, poor, mid, result["encoders"][2]]
    labels = label_disagreement(runs)
    labels["recall@1"].update({f"extra{i:03d}": {"good": 1.0, "poor": i / 100, "mid@onnx": 1.0} for i in range(60)})
    images = result["images"]
    fusion = fuse_runs(runs, images["labels"], images["paths"], result["queries"]["list"], cost_table(runs), 200)
    per = {
        n: {
            "vectors": 6,
            "of": 6,
            "settings": {
                s: {"recall@10": r, "ram_bytes_per_vector": b, "times_less_ram": t}
                for s, r, b, t in (
                    ("hnsw", 1.0, 32, 1.0),
                    ("int8", 0.96, 8, 4.0),
                    ("int8+rescore", 0.995, 8, 4.0),
                    ("binary", 0.4, 1, 32.0),
                    ("binary+rescore", 0.8, 1, 32.0),
                )
            },
        }
        for n in ("good", "poor")
    }
    result["quantization"] = {"per_encoder": per, "recommended": recommend_index(per)}
    result.update(
        encoders=runs,
        significance=significance(runs, 200),
        labels=labels,
        fusion=fusion,
        cost={"vertex_price_per_1000": 0.1, "rows": cost_table(runs, extra=fusion_cost_rows(fusion))},
    )
    return result


def test_recommendation_comes_first_in_markdown_and_links_its_tables(tmp_path):
    result = _result(tmp_path)
    write_report(result, tmp_path / "r")
    md = (tmp_path / "r" / "report.md").read_text()
    order = [
        md.index(h)
        for h in ("## Recommendation", "## Quality and cost", "## Quality against cost", "## Is the difference real?", "## recall@1 per label")
    ]
    assert order == sorted(order)
    said = claims(result)
    assert said[0][0].startswith("For the best quality: good") and "top group" in said[0][0]
    # The cheapest entry on the front that is in the top group (3 queries cannot separate 'poor').
    assert said[1][0].startswith("For 10.5× less encoding time: poor on onnx-int8, in the top group")
    assert any(anchor == "fusion" and text.startswith("Fusing does not pay here") for text, anchor in said)
    assert "## Fusing encoders" in md and "| rrf(good+poor) |" in md
    assert (
        "Index setting: int8 (`app.py index --quantization int8`), recall@10 0.995 of exact search at worst over the "
        "encoders, 4× less RAM for the vectors.",
        "quantization",
    ) in said
    assert "| good | 6 | 1.0000 | 0.9600 | 0.9950 | 0.4000 | 0.8000 | 32 / 8 / 1 |" in md
    for text, anchor in said:
        assert f"{text} ([numbers](#{anchor}))" in md and f"<a id='{anchor}'></a>" in md
    # Per label: the worst first, 20 shown, the rest folded.
    labels = md.split("## recall@1 per label")[1]
    shown = labels.split("<details>")[0]
    rows = [line.split(" | ")[0][2:] for line in shown.splitlines()[4:] if line.startswith("| ")]
    assert len(rows) == 20 and rows[:2] == ["a", "extra000"]  # 'a': recall@1 1.0 against 0.0; extra000: 0.0
    assert "| extra059 |" not in shown and "| extra059 |" in labels
    assert "42 more labels" in labels  # 60 extra + 2 labels - 20 shown


def test_unlabelled_recommendation_says_quality_cannot_be_measured(tmp_path):
    result = synthetic_result(_images(tmp_path / "imgs"), labelled=False)
    result["significance"] = {}
    text, anchor = claims(result)[0]
    assert text.startswith(("No labels, so quality cannot be measured", "Nothing was measured"))


def test_recommendation_block_on_the_first_screen_in_chromium(tmp_path):
    write_report(_result(tmp_path), tmp_path / "r")
    with chromium("the report's browser test") as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto((tmp_path / "r" / "report.html").as_uri())
        block = page.locator("#recommendation")
        box = block.bounding_box()
        assert box is not None and box["y"] + box["height"] <= 800  # whole, on the first screen
        items = block.locator("li")
        assert items.count() >= 2 and "For the best quality: good" in items.nth(0).inner_text()
        # Every claim links to a table on the page; following a link scrolls to it.
        for i in range(items.count()):
            anchor = items.nth(i).get_attribute("data-anchor")
            assert page.locator(f"#{anchor}").count() == 1
        items.nth(0).locator("a").click()
        page.wait_for_function("location.hash === '#significance'")
        assert page.locator("#significance").bounding_box()["y"] < 100
        # The full table is one click away, folded at first.
        assert not page.locator("#headline").is_visible()
        page.locator("#full-table summary").click()
        assert page.locator("#headline").is_visible()
        # The chart sits before the per-label table; the rest of the labels are folded.
        assert page.locator("#plot-tradeoff").bounding_box()["y"] < page.locator("#labels").bounding_box()["y"]
        assert page.locator("#labels tr").count() == 21 and not page.locator("#labels-rest").is_visible()
        page.screenshot(path=str(tmp_path / "report.png"))
        browser.close()
