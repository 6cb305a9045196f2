"""Compare's tasks beyond retrieval through the real flows, on a generated set with planted
problems: cross-label near-duplicates and mislabels must be found (>= 90% of each), a tiny random
text model's zero-shot accuracy must sit near chance, and report.html's map, audit grid and
near-duplicate grid must work in headless Chromium."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from browser import chromium
from conftest import ROOT
from planted import make_planted

from imgsearch.compare.proportion import from_bits
from imgsearch.compare.zero_shot import (
    CLIP_TEMPLATES,
    PromptError,
    classify,
    label_vectors,
    load_templates,
)

ARTIFACTS = ROOT / "tests" / "artifacts" / "compare"
LITE, CLIP = "efficientnet-lite0", "clip"


# --------------------------------------------------------------------------- zero-shot, no flow


def test_zero_shot_equals_brute_force_numpy():
    rng = np.random.default_rng(0)
    n, d, labels, templates = 300, 24, 7, 5
    images = rng.normal(size=(n, d)).astype(np.float32)
    images /= np.linalg.norm(images, axis=1, keepdims=True)
    prompt_vecs = rng.normal(size=(labels * templates, d)).astype(np.float32) * rng.uniform(0.5, 2, size=(labels * templates, 1)).astype(np.float32)
    codes = rng.integers(-1, labels, size=n)  # -1: unlabelled, left out
    names = [f"label{i}" for i in range(labels)]
    text = {
        "names": names,
        "weights": label_vectors(prompt_vecs, labels),
        "templates": templates,
        "templates_given": templates,
        "prompts": labels * templates,
    }
    got = classify(images, codes, names, text, 1000)
    # brute force: a label's vector is the mean of its normalised prompt vectors, normalised
    top1, top5, per = [], [], {}
    for i in range(n):
        if codes[i] < 0:
            continue
        sims = []
        for lab in range(labels):
            ps = [prompt_vecs[lab * templates + t] / np.linalg.norm(prompt_vecs[lab * templates + t]) for t in range(templates)]
            w = np.mean(ps, axis=0)
            sims.append(float(images[i] @ (w / np.linalg.norm(w))))
        order = sorted(range(labels), key=lambda j: -sims[j])
        top1.append(order[0] == codes[i])
        top5.append(codes[i] in order[:5])
        per.setdefault(codes[i], []).append(order[0] == codes[i])
    assert got["images"] == len(top1)
    assert got["accuracy@1"] == pytest.approx(np.mean(top1), abs=1e-6)
    assert got["accuracy@5"] == pytest.approx(np.mean(top5), abs=1e-6)
    assert got["balanced_accuracy"] == pytest.approx(np.mean([np.mean(v) for v in per.values()]), abs=1e-6)
    assert list(from_bits(got["hits"])) == [int(x) for x in top1]
    lo, hi = got["ci"]["accuracy@1"]
    assert lo <= got["accuracy@1"] <= hi


def test_prompt_templates(tmp_path):
    assert load_templates(None) == CLIP_TEMPLATES and len(CLIP_TEMPLATES) == 80
    f = tmp_path / "p.txt"
    f.write_text("# mine\na photo of a {}.\n\na sketch of a {}.\n")
    assert load_templates(f) == ["a photo of a {}.", "a sketch of a {}."]
    f.write_text("a photo of a cat.\n")
    with pytest.raises(PromptError, match="one '{}'"):
        load_templates(f)
    with pytest.raises(PromptError, match="cannot read"):
        load_templates(tmp_path / "missing.txt")


# --------------------------------------------------------------------------- through the flows


def _tiny_clip(path: Path) -> Path:
    # Built in a child process: torch in this process before the flow forks its executors can deadlock them.
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"from imgsearch.tiny_models import build_tiny_model, mark_random; mark_random(build_tiny_model('clip', {str(path)!r}), 'test')",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return path


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    from imgsearch.compare import CompareOptions, run_compare

    root = tmp_path_factory.mktemp("planted")
    truth = make_planted(root / "data")
    clip = _tiny_clip(root / "tiny-clip")
    prompts = root / "prompts.txt"
    prompts.write_text("a photo of a {}.\na picture of the {}.\n")
    out = root / "report"
    root.joinpath("clip-path").write_text(str(clip))
    result = run_compare(
        CompareOptions(data=root / "data", encoders=[LITE, CLIP], models={CLIP: str(clip)}, out=out, prompts=prompts, grid_rows=4, progress=False)
    )
    return truth, result, out


@pytest.mark.flow
@pytest.mark.slow
def test_planted_cross_label_copies_are_found(planted_run):
    truth, result, _ = planted_run
    report = json.loads((result and (planted_run[2] / "report.json")).read_text())
    nd = report["tasks"]["near_duplicates"]
    found = {frozenset((p["a"], p["b"])) for p in nd["pairs"] if not p["same_label"] and LITE in p["encoders"]}
    planted = [frozenset((c["a"], c["b"])) for c in truth["copies"]]
    assert sum(p in found for p in planted) >= 0.9 * len(planted), (planted, found)
    lite = next(r for r in report["encoders"] if r["encoder"] == LITE)
    assert lite["near_duplicates"]["cross_label"] >= 0.9 * len(planted)
    assert lite["near_duplicates"]["method"] == "every pair" and nd["mode"] == "exclude"
    ret = lite["near_duplicates"]["retrieval"]
    assert ret["excluded"]["mAP@10"] == lite["quality"]["mAP@10"]  # the headline is without copies
    assert set(ret["kept"]) == set(ret["excluded"]) == {"recall@1", "recall@5", "recall@10", "mAP@10"}


@pytest.mark.flow
@pytest.mark.slow
def test_planted_mislabels_are_flagged_with_their_true_label(planted_run):
    truth, result, out = planted_run
    report = json.loads((out / "report.json").read_text())
    flagged = {f["path"]: f for f in report["tasks"]["label_audit"]["flagged"] if f["kind"] == "mislabel"}
    planted = truth["mislabels"]
    hit = [m for m in planted if m["path"] in flagged]
    assert len(hit) >= 0.9 * len(planted), (len(hit), len(planted))
    assert sum(flagged[m["path"]]["suggested"] == m["true"] for m in hit) >= 0.9 * len(hit)
    assert all(flagged[m["path"]]["label"] == m["label"] for m in hit)
    # the ones both encoders flag come first
    counts = [len(f["encoders"]) for f in report["tasks"]["label_audit"]["flagged"]]
    assert counts == sorted(counts, reverse=True)


@pytest.mark.flow
@pytest.mark.slow
def test_knn_probe_and_zero_shot_numbers_with_top_groups(planted_run):
    _, result, out = planted_run
    runs = {r["encoder"]: r for r in result["encoders"]}
    lite, clip = runs[LITE], runs[CLIP]
    assert lite["status"] == clip["status"] == "ok"
    assert lite["knn"]["10nn_weighted"]["accuracy"] > 0.6 and lite["probe"]["accuracy"] > 0.7  # real weights
    assert lite["probe"]["images"] == result["data"]["images"] and lite["probe"]["folds"] == 5
    assert "zero_shot" not in lite  # image-only
    zs = clip["zero_shot"]
    assert zs["labelled"] and zs["templates"] == 2 and zs["prompts"] == 16 and zs["labels"] == 8
    # a tiny random text model knows nothing: near chance (1/8)
    assert abs(zs["balanced_accuracy"] - 0.125) < 0.15 and zs["accuracy@5"] < 0.9
    tables = {t["task"]: t for t in result["tasks"]["tables"]}
    assert {"retrieval", "knn_1", "knn_10", "probe", "zero_shot"} <= set(tables)
    for task in ("retrieval", "knn_1", "knn_10", "probe"):
        group = tables[task]["top_group"]
        assert group["best"] in group["group"] and set(group["group"]) <= {LITE, CLIP}
        for row in tables[task]["rows"].values():
            assert row["ci"][0] <= row["value"] <= row["ci"][1]
    assert tables["probe"]["top_group"]["group"] == [LITE]  # real weights beat random ones
    md = (out / "report.md").read_text()
    assert "### zero-shot classification" in md and "## Label audit" in md and "Near-duplicates" in md
    assert "### linear probe (logistic regression, stratified 5-fold, seed 0; on a per-label sample" in md
    assert os.path.getsize(out / "report.json") < 5e6 and os.path.getsize(out / "report.html") < 10e6


@pytest.fixture(scope="module")
def report_page(planted_run):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium("the report's browser tests") as browser:
        pg = browser.new_page(viewport={"width": 1300, "height": 900})
        errors: list[str] = []
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        pg.goto((planted_run[2] / "report.html").as_uri())
        yield pg, errors


def _snap(pg, selector: str, name: str) -> None:
    pg.locator(selector).first.scroll_into_view_if_needed()
    pg.screenshot(path=str(ARTIFACTS / f"{name}.png"))


@pytest.mark.flow
@pytest.mark.slow
@pytest.mark.web
def test_map_shows_two_encoders_and_thumbnails_on_hover(planted_run, report_page):
    pg, errors = report_page
    _, result, _ = planted_run
    assert pg.eval_on_selector("#map-left", "p => p.dataset.encoder") == LITE
    assert pg.eval_on_selector("#map-right", "p => p.dataset.encoder") == CLIP
    n = result["data"]["images"]
    assert pg.locator("#map-left circle").count() == n == pg.locator("#map-right circle").count()
    colours = pg.eval_on_selector_all("#map-left circle", "cs => new Set(cs.map(c => c.getAttribute('fill'))).size")
    assert colours == 8
    dot = pg.locator("#map-left circle").last
    dot.hover()
    tip = pg.locator("#map-tip")
    assert tip.is_visible()
    assert pg.eval_on_selector("#map-tip img", "i => i.src").startswith("data:image/jpeg;base64,")
    i = int(dot.get_attribute("data-i"))
    assert Path(result["images"]["paths"][i]).name in tip.inner_text()
    _snap(pg, "#maps", "map-hover")
    pg.select_option("#map-right select", LITE)  # the same encoder on both sides
    assert pg.eval_on_selector("#map-right", "p => p.dataset.encoder") == LITE
    left = pg.eval_on_selector_all("#map-left circle", "cs => cs.map(c => c.getAttribute('cx'))")
    assert pg.eval_on_selector_all("#map-right circle", "cs => cs.map(c => c.getAttribute('cx'))") == left
    assert not errors


@pytest.mark.flow
@pytest.mark.slow
@pytest.mark.web
def test_audit_and_near_duplicate_grids_show_the_planted_problems(planted_run, report_page):
    pg, errors = report_page
    truth = planted_run[0]
    shown = pg.eval_on_selector_all("#audit .flag", "fs => fs.map(f => [f.dataset.path, f.dataset.kind, f.dataset.suggested])")
    by_path = {p: (k, s) for p, k, s in shown}
    found = [m for m in truth["mislabels"] if by_path.get(m["path"], ("",))[0] == "mislabel"]
    assert len(found) >= 0.9 * len(truth["mislabels"])
    loaded = pg.eval_on_selector_all("#audit img", "is => is.filter(i => i.complete && i.naturalWidth > 0).length")
    assert loaded == len(shown)
    _snap(pg, "#audit", "audit-grid")
    pairs = pg.eval_on_selector_all("#near-duplicates .pair", "ps => ps.map(p => [p.dataset.a, p.dataset.b, p.dataset.kind])")
    cross = {frozenset((a, b)) for a, b, k in pairs if k == "cross-label"}
    assert sum(frozenset((c["a"], c["b"])) in cross for c in truth["copies"]) >= 0.9 * len(truth["copies"])
    kinds = [k for _, _, k in pairs]
    assert kinds == sorted(kinds)  # cross-label ones first
    _snap(pg, "#near-duplicates", "near-duplicate-grid")
    assert not errors


@pytest.mark.flow
@pytest.mark.slow
def test_zero_shot_equals_brute_force_from_the_stored_and_the_prompts_vectors(planted_run):
    """The prompts encoded again through a flow of the same model, the images' vectors read from the
    store, then each image's label by plain numpy loops: the same hits as the report's."""
    from executors.docs import ImageDoc
    from executors.indexer.store import EdgeStore
    from imgsearch.flow import Gateway, local_flow

    _, result, out = planted_run
    clip = next(r for r in result["encoders"] if r["encoder"] == CLIP)
    names = sorted({lab for lab in result["images"]["labels"] if lab is not None})
    templates = ["a photo of a {}.", "a picture of the {}."]
    collection = clip["index"]["collection"]
    with local_flow(CLIP, (out.parent / "clip-path").read_text(), store=str(out / "store")) as host:
        gw = Gateway(host)
        weights = []
        for name in names:
            docs = gw.post(
                "/search", [ImageDoc(text=t.format(name)) for t in templates], {"collection": collection, "top_k": 1, "return_query_vector": True}
            )
            vecs = [np.asarray(d.embedding, np.float64) for d in docs]
            mean = np.mean([v / np.linalg.norm(v) for v in vecs], axis=0)
            weights.append(mean / np.linalg.norm(mean))
    with EdgeStore(str(out / "store"), read_only=True) as st:
        points = list(st.scroll(collection, with_vectors=True))
    hits = []
    for p in points:
        label = p.payload.get("label") or Path(p.payload["uri"]).parent.name
        scores = [float(np.asarray(p.vector, np.float64) @ w) for w in weights]
        hits.append(names[int(np.argmax(scores))] == label)
    zs = clip["zero_shot"]
    assert zs["images"] == len(hits)
    assert round(zs["accuracy@1"] * len(hits)) == sum(hits) and zs["accuracy@1"] == pytest.approx(np.mean(hits), abs=1e-6)
