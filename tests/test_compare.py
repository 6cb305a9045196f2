"""`app.py compare`: the report's content (always), then a real run through the flows."""

import json
import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT
from PIL import Image

from executors.encoders.resolve import parse_model_overrides
from executors.encoders.runtime_env import RUNTIMES
from executors.errors import UserError
from imgsearch.compare import (
    CompareError,
    CompareOptions,
    parse_encoders,
    run_compare,
    split_entry,
)
from imgsearch.compare.cost import cost_table
from imgsearch.compare.queries import Item, pick_queries
from imgsearch.compare.summary import label_disagreement, significance
from imgsearch.flow import collection_name
from imgsearch.metrics import RankedQuery, evaluate, per_query_ap
from imgsearch.report import write_report
from imgsearch.report.common import runtime_text
from imgsearch.report.runtimes import runtime_rows


class GridParser(HTMLParser):
    """Which images sit in which grid cell, in which order; plus the headline rows and plots."""

    def __init__(self):
        super().__init__()
        self.rows: list[dict] = []
        self.headline: list[str] = []
        self.not_run: list[str] = []
        self.random: list[str] = []
        self.plots: list[str] = []
        self._cell = None
        self._table = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("id")
        elif tag == "tr" and "grid-row" in (a.get("class") or ""):
            self.rows.append({"query": a["data-query"], "cells": {}, "winner": None})
        elif tag == "tr" and self._table == "headline" and "data-encoder" in a:
            self.headline.append(a["data-encoder"])
        elif tag == "td" and a.get("class") == "cell":
            self._cell = self.rows[-1]["cells"].setdefault(a["data-encoder"], [])
        elif tag == "td" and a.get("class") == "winner":
            self.rows[-1]["winner"] = a["data-winner"]
        elif tag == "figure" and "match" in (a.get("class") or "") and self._cell is not None:
            self._cell.append((int(a["data-rank"]), a["data-path"], float(a["data-score"]), a["class"].split()[-1]))
        elif tag == "li" and "data-encoder" in a:
            self.not_run.append(a["data-encoder"])
        elif tag == "div" and "data-random" in a:
            self.random.append(a["data-random"])
        elif tag == "img" and a.get("class") == "plot":
            assert a["src"].startswith("data:image/png;base64,")
            self.plots.append(a["id"])

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None


def parse_html(path: Path) -> GridParser:
    p = GridParser()
    p.feed(path.read_text(encoding="utf-8"))
    return p


# --------------------------------------------------------------------------- report content, no flow


def _images(root: Path) -> dict[str, str]:
    """Six small JPEGs: a1 a2 a3 (red-ish, label a), b1 b2 (blue-ish, b), c1 (green, c)."""
    colours = {"a1": (220, 30, 30), "a2": (200, 40, 40), "a3": (180, 60, 50), "b1": (30, 30, 220), "b2": (50, 40, 200), "c1": (30, 200, 30)}
    paths = {}
    for name, colour in colours.items():
        folder = root / name[0]
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 30), colour).save(folder / f"{name}.jpg")
        paths[name] = str(folder / f"{name}.jpg")
    return paths


NAMES = ["a1", "a2", "a3", "b1", "b2", "c1"]
QUERIES = ["a1", "b1", "c1"]


def _encoder(name, ranking: dict[str, list[tuple[str, float]]], random_weights=False, n_rel=None):
    """A run record in report.json's compact form: top results as numbers into the image table."""
    label = lambda n: n[0]  # noqa: E731
    n_rel = n_rel or {"a1": 2, "b1": 1, "c1": 0}
    ranked = []
    per = {"ap": [], "hit@1": [], "top": [], "scores": [], "errors": {}}
    for q in QUERIES:
        results = ranking[q]
        rq = RankedQuery(label(q), [label(r) for r, _ in results], [s for _, s in results], n_rel[q])
        ranked.append(rq)
        per["ap"].append(per_query_ap(rq, 10))
        per["hit@1"].append(None if not n_rel[q] else float(rq.relevance[0]))
        per["top"].append([NAMES.index(r) for r, _ in results])
        per["scores"].append([s for _, s in results])
    quality = evaluate(ranked)
    quality["ci"] = {"recall@1": [0.1, 0.9], "mAP@10": [0.2, 0.95], "auc": [0.4, 0.99]}
    return {
        "encoder": name,
        "status": "ok",
        "model": f"model-{name}",
        "random_weights": random_weights,
        "checkpoint_note": "default checkpoint",
        "wall_seconds": 3.0,
        "flow_start_seconds": 1.0,
        "load_seconds": 0.5,
        "images_per_second": 10.0,
        "indexed": 6,
        "count": 6,
        "disk_mb": 0.1,
        "bytes_per_vector": 100.0,
        "dim": 8,
        "peak_rss_mb": 300.0,
        "info": {"encoder": name, "model": f"model-{name}", "device": "cpu", "batch_size": 32},
        "quality": quality,
        "per_query": per,
        "per_label_recall@1": {"a": per["hit@1"][0], "b": per["hit@1"][1]},
    }


def synthetic_result(paths: dict, labelled: bool = True) -> dict:
    good = {
        "a1": [("a2", 0.9), ("a3", 0.8), ("b1", 0.3)],
        "b1": [("b2", 0.7), ("a1", 0.2), ("c1", 0.1)],
        "c1": [("a1", 0.4), ("b1", 0.3), ("a2", 0.2)],
    }
    poor = {
        "a1": [("b1", 0.6), ("a2", 0.5), ("a3", 0.4)],
        "b1": [("b2", 0.9), ("c1", 0.5), ("a1", 0.4)],
        "c1": [("b2", 0.4), ("a3", 0.3), ("a1", 0.2)],
    }
    runs = [
        _encoder("good", good),
        _encoder("poor", poor, random_weights=True),
        {"encoder": "gone", "status": "failed", "reason": "RuntimeError: checkpoint unreachable here"},
    ]
    return {
        "title": "Encoder comparison on six",
        "created": "now",
        "seconds": 1.0,
        "data": {"folder": "/x", "images": 6, "labels": 3 if labelled else 0, "labelled": labelled, "unlabelled_images": 0},
        "queries": {"source": "test", "count": 3, "top_k": 3, "list": [[paths[q], q[0] if labelled else None] for q in QUERIES]},
        "images": {"paths": [paths[n] for n in NAMES], "labels": [n[0] if labelled else None for n in NAMES]},
        "settings": {"encoders": ["good", "poor", "gone"]},
        "environment": {"python": "3"},
        "encoders": runs,
        "significance": significance(runs, 200),
        "labels": label_disagreement(runs),
        "cost": {"vertex_price_per_1000": 0.1, "rows": cost_table(runs)},
        "timing": {"indexing_seconds": 6.0, "evaluation_seconds": 0.5, "report_seconds": 0.1},
        "client_peak_rss_mb": 321.0,
        "grid": {"rows": 3, "k": 2},
    }


def test_grid_thumbnails_show_heic_photos(tmp_path):
    """A phone's HEIC photo in a result grid is the photo, not the "unavailable" tile."""
    from corpus import make_photo

    from imgsearch.grid import thumbnail

    photo = make_photo(None, (300, 200), seed=1)
    photo.save(tmp_path / "phone.heic", "HEIF", quality=90)
    photo.save(tmp_path / "same.png")
    heic, png = (np.asarray(thumbnail(str(tmp_path / n)), dtype=np.int16) for n in ("phone.heic", "same.png"))
    assert np.abs(heic - png).mean() < 12
    # In a process of its own (as `app.py compare` is), the grid reads HEIC by itself.
    code = "import sys, numpy as np; from imgsearch.grid import thumbnail; np.save(sys.argv[2], np.asarray(thumbnail(sys.argv[1])))"
    run = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "phone.heic"), str(tmp_path / "tile.npy")], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert np.array_equal(np.load(tmp_path / "tile.npy"), heic)


def test_grid_thumbnails_show_a_camera_raw_photo_not_its_thumbnail(tmp_path):
    import skimage.data
    from corpus import make_dng
    from PIL import Image

    from imgsearch.grid import thumbnail

    photo = Image.fromarray(skimage.data.astronaut()).resize((480, 480))  # a photo's fine detail
    (tmp_path / "camera.dng").write_bytes(make_dng(photo, thumb=(48, 48)))
    photo.save(tmp_path / "same.png")
    raw, png = (np.asarray(thumbnail(str(tmp_path / n)), dtype=np.int16) for n in ("camera.dng", "same.png"))
    assert np.abs(raw - png).mean() < 4  # the 48×48 first image, scaled up, differs by 12.7


def test_report_files_grid_cells_and_winners(tmp_path):
    paths = _images(tmp_path / "imgs")
    result = synthetic_result(paths)
    files = write_report(result, tmp_path / "report")
    out = tmp_path / "report"
    for name in ("report.md", "report.html", "report.json", "scores.png", "headline.png", "grid.png"):
        assert (out / name).stat().st_size > 200, name
    assert files["html"] == "report.html"

    page = parse_html(out / "report.html")
    assert page.headline == ["good", "poor"] and page.not_run == ["gone"] and page.random == ["poor"]
    assert page.plots == ["plot-headline", "plot-scores"]
    assert [r["query"] for r in page.rows] == [paths["a1"], paths["b1"], paths["c1"]]
    a1, b1, c1 = page.rows
    # Each cell: the top grid_k=2 results in rank order, with scores and relevance frames.
    assert a1["cells"]["good"] == [(1, paths["a2"], 0.9, "rel"), (2, paths["a3"], 0.8, "rel")]
    assert a1["cells"]["poor"] == [(1, paths["b1"], 0.6, "irr"), (2, paths["a2"], 0.5, "rel")]
    assert b1["cells"]["good"] == [(1, paths["b2"], 0.7, "rel"), (2, paths["a1"], 0.2, "irr")]
    assert c1["cells"]["poor"] == [(1, paths["b2"], 0.4, "irr"), (2, paths["a3"], 0.3, "irr")]
    # Winner by AP@10: a1 good (1.0 vs (1/2+2/3)/2); b1 both AP 1 → tie; c1 has nothing relevant.
    assert (a1["winner"], b1["winner"], c1["winner"]) == ("good", "tie", "–")

    md = (out / "report.md").read_text()
    saved = json.loads((out / "report.json").read_text())
    for name in ("good", "poor", "gone"):
        assert name in md and name in [e["encoder"] for e in saved["encoders"]]
    assert "TINY RANDOM MODEL" in md and "checkpoint unreachable here" in md
    assert "1.000 [0.100–0.900]" in md  # recall@1 of "good" (a1 and b1 hit; c1 has nothing relevant), its interval
    assert "Is the difference real?" in md and "no significant difference between good and poor" in md  # 2 queries prove nothing
    assert "no clear winner" in md and "client peak RSS 321.0 MB" in md
    assert saved["wins"] == {"good": 1.5, "poor": 0.5}
    assert [r["query"] for r in saved["grid"]["shown"]] == [r["query"] for r in page.rows]
    assert "matches" not in (out / "report.json").read_text()  # per-query results stay compact


def test_unlabelled_report_says_no_labels(tmp_path):
    paths = _images(tmp_path / "imgs")
    result = synthetic_result(paths, labelled=False)
    for rec in result["encoders"][:2]:
        rec["quality"] = {"labelled": False, "queries": 3}
        rec["per_query"]["ap"] = [None] * 3
    write_report(result, tmp_path / "r")
    md = (tmp_path / "r" / "report.md").read_text()
    assert "no labels" in md
    page = parse_html(tmp_path / "r" / "report.html")
    assert len(page.rows) == 3 and all(f[3] == "match" for f in page.rows[0]["cells"]["good"])  # no frames
    assert page.plots == ["plot-headline"]  # no score distributions without labels


def test_options_and_query_choice():
    assert parse_encoders("clip, bit,efficientnet-lite0") == ["clip", "bit", "efficientnet-lite0"]
    with pytest.raises(ValueError, match="unknown encoder 'nope'"):
        parse_encoders("clip,nope")
    assert parse_model_overrides(["clip=/m/tiny-clip"], ["clip", "bit"]) == {"clip": "/m/tiny-clip"}
    assert parse_model_overrides(["/m/x"], ["clip"]) == {"clip": "/m/x"}  # a bare checkpoint: the one encoder's
    with pytest.raises(UserError, match="ENCODER=CHECKPOINT"):
        parse_model_overrides(["/m/x"], ["clip", "bit"])
    with pytest.raises(UserError, match="not among the encoders"):
        parse_model_overrides(["vit=/x"], ["clip"])
    items = [Item(f"/{lab}/{i}.jpg", f"{lab}{i:02d}", lab) for lab, n in (("a", 10), ("b", 3), ("c", 1)) for i in range(n)]
    picked = pick_queries(items, 0.2)
    assert [it.path for it in picked] == ["/a/0.jpg", "/a/1.jpg", "/b/0.jpg"]  # ceil(.2·10)=2, ceil(.2·3)=1, c alone skipped
    assert len(pick_queries([Item("/x.jpg", "h", None), Item("/y.jpg", "g", None)], 0.5)) == 1  # unlabelled still queried


def test_encoder_entries_with_runtimes():
    entries = parse_encoders("efficientnet-lite0@torch,efficientnet-lite0@ONNX, efficientnet-lite0@onnx-int8,clip,efficientnet-lite0")
    assert entries == [
        "efficientnet-lite0@torch",
        "efficientnet-lite0@onnx",
        "efficientnet-lite0@onnx-int8",
        "clip",
        "efficientnet-lite0",
    ]  # one encoder on several runtimes, and with none (--runtime / auto)
    assert [split_entry(e) for e in entries[2:4]] == [("efficientnet-lite0", "onnx-int8"), ("clip", None)]
    for text, message in (
        ("clip@fast", "unknown runtime 'fast' in 'clip@fast'"),
        ("clip@", "unknown runtime ''"),
        ("clip@auto", "unknown runtime 'auto'"),  # auto is what no suffix means
        ("nope@onnx", "unknown encoder 'nope'"),
        ("vertex@onnx", "no runtime to choose"),
        ("clip@onnx,bit,clip@onnx", "clip@onnx named twice"),
        ("clip,clip", "clip named twice"),
    ):
        with pytest.raises(UserError, match=re.escape(message)):  # exit code 2
            parse_encoders(text)
    # Before anything starts, also when the options are built in code rather than by the command line.
    with pytest.raises(CompareError, match="unknown runtime 'fp16'"):
        run_compare(CompareOptions(data=Path("."), encoders=["efficientnet-lite0@fp16"], out=Path("never-written")))
    assert not Path("never-written").exists()


def test_a_plain_entry_reused_from_another_runtime_says_so(monkeypatch):
    from imgsearch.compare.run import _other_runtime

    torch_run = CompareOptions(runtime="torch")  # --runtime torch
    hint = _other_runtime("efficientnet-lite0", {"runtime": "onnx"}, torch_run)
    assert "made on onnx" in hint and "efficientnet-lite0@torch" in hint
    assert _other_runtime("efficientnet-lite0", {"runtime": "torch"}, torch_run) == ""
    assert _other_runtime("efficientnet-lite0@onnx", {"runtime": "onnx"}, torch_run) == ""  # its own collection: nothing to say
    monkeypatch.setenv("ENCODER_RUNTIME", "torch")  # without --runtime: the environment's
    assert "made on onnx" in _other_runtime("efficientnet-lite0", {"runtime": "onnx"}, CompareOptions())
    assert _other_runtime("efficientnet-lite0", {"runtime": "onnx"}, CompareOptions(runtime="auto")) == ""


def test_collection_names_per_runtime():
    from executors.indexer.store.interface import validate_name

    plain = collection_name("compare-photos", "efficientnet-lite0")
    assert plain == "compare-photos--efficientnet-lite0"  # as before runtimes had names: existing stores are reused
    assert collection_name("compare-photos", "efficientnet-lite0", 96) == "compare-photos--efficientnet-lite0--96px"
    named = {rt: collection_name("compare-photos", "efficientnet-lite0", None, rt) for rt in RUNTIMES}
    assert named["onnx-int8"] == "compare-photos--efficientnet-lite0--onnx-int8"
    sized = {rt: collection_name("compare-photos", "efficientnet-lite0", 96, rt) for rt in RUNTIMES}
    every = [plain, collection_name("compare-photos", "efficientnet-lite0", 96), *named.values(), *sized.values()]
    assert len(set(every)) == len(every)  # int8 vectors never land beside fp32 ones
    assert named == {rt: collection_name("compare-photos", "efficientnet-lite0", None, rt) for rt in RUNTIMES}  # stable
    for name in every:
        assert validate_name(name) == name and len(name) <= 200  # Qdrant Edge's and the server's rule


def test_report_sets_runtimes_of_one_encoder_side_by_side(tmp_path):
    """Two runtimes of one encoder are two columns, each with the runtime it reported, and a table of
    speed against quality with the paired test between them."""
    paths = _images(tmp_path / "imgs")
    result = synthetic_result(paths)
    good, poor = result["encoders"][:2]
    ref = {
        **good,
        "encoder": "lite@torch",
        "registry_name": "lite",
        "requested_runtime": "torch",
        "runtime": "torch",
        "onnx_provider": None,
        "images_per_second": 10.0,
        "info": {**good["info"], "runtime": "torch"},
    }
    int8 = {
        **poor,
        "encoder": "lite@onnx-int8",
        "registry_name": "lite",
        "requested_runtime": "onnx-int8",
        "runtime": "onnx-int8",
        "onnx_provider": "CPUExecutionProvider",
        "images_per_second": 25.0,
        "random_weights": False,
    }
    other = {**good, "encoder": "other", "registry_name": "other", "runtime": "onnx"}
    runs = [int8, ref, other]  # the reference need not come first
    result.update(encoders=runs, significance=significance(runs, 200), labels=label_disagreement(runs))
    write_report(result, tmp_path / "r")
    page = parse_html(tmp_path / "r" / "report.html")
    assert page.headline == ["lite@onnx-int8", "lite@torch", "other"]
    assert set(page.rows[0]["cells"]) == {"lite@onnx-int8", "lite@torch", "other"}
    md = (tmp_path / "r" / "report.md").read_text()
    headline = [line for line in md.splitlines() if line.startswith("| lite@")]
    assert "| onnx-int8 (CPUExecutionProvider) |" in headline[0] and "| torch (cpu) |" in headline[1]
    section = md.split("## One encoder, several runtimes: speed against quality")[1].split("##")[0]
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| lite@")]
    assert [r[0] for r in rows] == ["| lite@torch", "| lite@onnx-int8"]  # torch is the reference; "other" has one runtime
    r1_ref, r1_int8 = ref["quality"]["recall@1"], int8["quality"]["recall@1"]
    assert rows[1][2:6] == ["25.0", "2.50×", f"{r1_int8:.3f}", f"{r1_int8 - r1_ref:+.3f}"]
    # The paired test, turned to read int8 − torch (the pair was tested the other way round).
    pair = next(p for p in result["significance"]["pairs"] if {p["a"], p["b"]} == {"lite@torch", "lite@onnx-int8"})
    assert pair["a"] == "lite@onnx-int8"
    assert pair["diff"] == pytest.approx(int8["quality"]["mAP@10"] - ref["quality"]["mAP@10"], abs=1e-6)
    flipped = next(p for p in significance([ref, int8], 200)["pairs"])
    assert flipped["a"] == "lite@torch" and flipped["diff"] == -pair["diff"]
    result.update(encoders=[ref, int8], significance=significance([ref, int8], 200))
    for rec_order in (result, {**result, "significance": {"pairs": [pair]}}):
        _, table = runtime_rows(rec_order)
        assert table[1][7:] == [f"{pair['diff']:+.3f} [{pair['ci'][0]:+.3f}…{pair['ci'][1]:+.3f}]", f"{pair['p']:.3f}", "no"]
    assert runtime_rows({**result, "significance": {"pairs": [{**pair, "significant": True}]}})[1][1][-1] == "yes: worse"
    # A runtime other than the one asked for is said, not hidden; a remote API has none.
    assert runtime_text({"runtime": "torch", "requested_runtime": "onnx", "info": {"device": "cpu"}}) == "torch (cpu) — asked for onnx"
    assert runtime_text({"info": {"device": "remote: Vertex AI us-central1"}}) == "remote"
    page_text = (tmp_path / "r" / "report.html").read_text()
    table = page_text.split("<table id='runtimes'>")[1].split("</table>")[0]
    assert table.index("<tr data-encoder='lite@torch'>") < table.index("<tr data-encoder='lite@onnx-int8'>")


def test_report_renders_in_headless_chromium(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium) — the HTML content is checked by the tests above")
    paths = _images(tmp_path / "imgs")
    write_report(synthetic_result(paths), tmp_path / "r")
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tempfile.mkdtemp()}",
            f"--screenshot={shot}",
            "--window-size=1200,1600",
            (tmp_path / "r" / "report.html").as_uri(),
        ],
        capture_output=True,
        timeout=90,
    )
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (1600, 1200)
    assert pixels.std() > 20  # not a blank page
    # The red frame of an irrelevant result and the green of a relevant one are on screen.
    assert ((pixels[..., 0] > 180) & (pixels[..., 1] < 60) & (pixels[..., 2] < 60)).sum() > 100
    assert ((pixels[..., 1] > 130) & (pixels[..., 0] < 60) & (pixels[..., 2] < 90)).sum() > 100


# --------------------------------------------------------------------------- a real run


def _photo_variants(photos: dict, root: Path) -> Path:
    """Four views of each photo, one folder (label) per photo: the whole, two crops, a mirror."""
    for name, arr in photos.items():
        folder = root / name
        folder.mkdir(parents=True)
        img = Image.fromarray(arr).convert("RGB")
        w, h = img.size
        views = {
            "full": img,
            "left": img.crop((0, 0, int(w * 0.8), h)),
            "low": img.crop((0, int(h * 0.2), w, h)),
            "mirror": img.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        }
        for view, im in views.items():
            im.save(folder / f"{name}-{view}.jpg", quality=88)
    return root


def _tiny_clip(path: Path) -> Path:
    # Built in a child process: torch work in this process before the flow forks its executors
    # can leave libgomp deadlocked in the forked EfficientNet-Lite0 executor.
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


@pytest.mark.flow
@pytest.mark.slow
def test_compare_through_the_flows(tmp_path, monkeypatch, photos):
    """EfficientNet-Lite0 (real weights), tiny CLIP (text), Vertex against the fake server; DINOv2
    unreachable. A first run whose CLIP fails keeps Lite0's results; the rerun reuses them and adds
    Lite0 on torch (efficientnet-lite0@torch) beside the plain entry, which runs on onnx (auto, CPU)."""
    import io

    from test_vertex import TOKEN, FakeVertex

    from executors.indexer.store import EdgeStore
    from imgsearch.compare import CompareOptions, run_compare

    monkeypatch.delenv("ENCODER_RUNTIME", raising=False)  # the plain entry: auto, i.e. onnx on this CPU
    data = _photo_variants(photos, tmp_path / "photos")
    clip = _tiny_clip(tmp_path / "tiny-clip")
    broken = shutil.copytree(clip, tmp_path / "broken-clip")
    (broken / "model.safetensors").write_bytes(b"not a model")  # the second encoder fails as it loads
    out = tmp_path / "report"
    # keep: the grid below is checked against brute force over every stored vector, copies included
    common = dict(data=data, out=out, query_fraction=0.5, top_k=5, grid_rows=4, grid_k=3, batch_size=8, progress=False, near_duplicates="keep")
    first = run_compare(CompareOptions(encoders=["efficientnet-lite0", "clip"], models={"clip": str(broken)}, **common))
    runs = {r["encoder"]: r for r in first["encoders"]}
    assert runs["efficientnet-lite0"]["status"] == "ok" and runs["clip"]["status"] == "failed"
    assert "Not run" in (out / "report.md").read_text() and parse_html(out / "report.html").not_run == ["clip"]

    log = io.StringIO()
    with FakeVertex() as fake:
        monkeypatch.setenv("VERTEX_BASE_URL", fake.url)
        monkeypatch.setenv("VERTEX_ACCESS_TOKEN", TOKEN)
        monkeypatch.setenv("VERTEX_PROJECT", "proj-t")  # run_compare sets it too; monkeypatch restores it
        opts = CompareOptions(
            encoders=["efficientnet-lite0", "efficientnet-lite0@torch", "clip", "dinov2", "vertex"],
            models={"clip": str(clip)},
            vertex_project="proj-t",
            **common,
        )
        result = run_compare(opts, log)
    assert "efficientnet-lite0: reused (20 vectors, evaluation cached)" in log.getvalue()
    runs = {r["encoder"]: r for r in result["encoders"]}
    assert runs["efficientnet-lite0"]["quality"] == {r["encoder"]: r for r in first["encoders"]}["efficientnet-lite0"]["quality"]
    assert result["timing"]["reused"] == ["efficientnet-lite0"]
    assert runs["dinov2"]["status"] == "skipped" and "Hugging Face hub" in runs["dinov2"]["reason"]
    for name in ("efficientnet-lite0", "efficientnet-lite0@torch", "clip", "vertex"):
        r = runs[name]
        assert r["status"] == "ok", r.get("reason")
        assert r["count"] == 20 == result["data"]["images"]
        assert r["wall_seconds"] >= r["index_seconds"] > 0 and r["eval_seconds"] > 0
        assert r["disk_bytes"] > 0 and r["bytes_per_vector"] == pytest.approx(r["disk_bytes"] / 20, abs=0.1)
        assert r["peak_rss_mb"] > 50 and r["scores_cover_collection"]
        q = r["quality"]
        assert q["labelled"] and q["queries"] == result["queries"]["count"] == 10  # ceil(.5·4) per photo
        assert q["relevant_scores"] == 10 * 3 and q["relevant_scores"] + q["irrelevant_scores"] == 10 * 19
        for key in ("recall@1", "mAP@10", "auc"):
            lo, hi = q["ci"][key]
            assert lo <= q[key] <= hi, (name, key)
    assert runs["clip"]["random_weights"] and not runs["efficientnet-lite0"]["random_weights"]
    assert runs["clip"]["text_quality"]["queries"] == 5 and "text_quality" not in runs["efficientnet-lite0"]
    assert runs["vertex"]["info"]["device"].startswith("remote") and runs["vertex"]["dim"] == 1408
    assert runs["efficientnet-lite0"]["quality"]["recall@5"] >= 0.5  # real weights find the photo's other views
    assert len(result["significance"]["pairs"]) == 6 and result["client_peak_rss_mb"] > 50
    # What this run adds is cached with the evaluation: the reused entry still has its bare-model time
    # and its index check; the decision (top group, ranks, fusion, cost) is made again from them.
    for name in ("efficientnet-lite0", "efficientnet-lite0@torch", "clip"):
        assert runs[name]["model_ms_per_image"] > 0 and runs[name]["index_recall"]["settings"]["hnsw"]["recall@10"] > 0.9
    assert (
        runs["efficientnet-lite0"]["model_ms_per_image"] == {r["encoder"]: r for r in first["encoders"]}["efficientnet-lite0"]["model_ms_per_image"]
    )
    assert "model_ms_per_image" not in runs["vertex"] and result["cost"]["rows"]["vertex"]["leaves_machine"]
    assert set(result["significance"]["ranks"]) == {"efficientnet-lite0", "efficientnet-lite0@torch", "clip", "vertex"}
    assert result["significance"]["top_group"][0] in runs and "rrf(efficientnet-lite0+clip)" in result["fusion"]["rows"]
    assert result["quantization"]["recommended"]["option"] in ("none", "int8", "binary")
    assert "## Recommendation" in (out / "report.md").read_text()

    # One encoder on two runtimes: two collections, each run on the runtime it asked for, same quality.
    lite, torch_lite = runs["efficientnet-lite0"], runs["efficientnet-lite0@torch"]
    assert (lite["info"]["runtime"], lite["onnx_provider"]) == ("onnx", "CPUExecutionProvider")
    assert (torch_lite["info"]["runtime"], torch_lite["runtime"], torch_lite["onnx_provider"]) == ("torch", "torch", None)
    assert lite["index"]["collection"] == "compare-photos--efficientnet-lite0"  # as before: old stores are reused
    assert torch_lite["index"]["collection"] == "compare-photos--efficientnet-lite0--torch"
    with EdgeStore(str(out / "store"), read_only=True) as st:
        by_runtime = [
            {p.payload["hash"]: np.asarray(p.vector) for p in st.scroll(r["index"]["collection"], with_vectors=True)} for r in (lite, torch_lite)
        ]
    assert by_runtime[0].keys() == by_runtime[1].keys()
    assert min(float(by_runtime[0][h] @ by_runtime[1][h]) for h in by_runtime[0]) > 0.9999  # the same vectors
    for key in ("recall@1", "recall@5", "mAP@10", "auc"):
        assert torch_lite["quality"][key] == pytest.approx(lite["quality"][key], abs=1e-3), key
    pair = next(p for p in result["significance"]["pairs"] if {p["a"], p["b"]} == {lite["encoder"], torch_lite["encoder"]})
    assert not pair["significant"] and pair["verdict"].startswith("no significant difference")

    page = parse_html(out / "report.html")
    assert page.headline == ["efficientnet-lite0", "efficientnet-lite0@torch", "clip", "vertex"]
    assert page.not_run == ["dinov2"] and page.random == ["clip"]
    md = (out / "report.md").read_text()
    for name in ("efficientnet-lite0", "clip", "dinov2", "vertex"):
        assert name in md
    summary = md.split("## Quality and cost")[1].split("\n## ")[0]  # the short table, and the full one folded under it
    headline = {line.split(" | ")[0]: line for line in summary.splitlines() if line.startswith("| efficientnet-lite0")}
    assert "| onnx (CPUExecutionProvider) |" in headline["| efficientnet-lite0 (reused)"]
    assert "| torch (cpu) |" in headline["| efficientnet-lite0@torch"]
    section = md.split("## One encoder, several runtimes")[1].split("\n## ")[0]
    assert [line.split(" | ")[:2] for line in section.splitlines() if line.startswith("| efficientnet")] == [
        ["| efficientnet-lite0@torch", "torch (cpu)"],
        ["| efficientnet-lite0", "onnx (CPUExecutionProvider)"],
    ]
    # The grid shows exactly what the store ranks first: brute-force cosine over the stored vectors.
    lite = runs["efficientnet-lite0"]
    with EdgeStore(str(out / "store"), read_only=True) as st:
        points = list(st.scroll(lite["index"]["collection"], with_vectors=True))
    vectors = np.stack([p.vector for p in points])
    uris = [p.payload["uri"] for p in points]
    assert len(page.rows) >= 4
    for row in page.rows:
        qi = uris.index(row["query"])
        scores = vectors @ vectors[qi]
        order = [i for i in np.argsort(-scores) if i != qi][:3]
        cell = row["cells"]["efficientnet-lite0"]
        assert [c[1] for c in cell] == [uris[i] for i in order]
        assert np.allclose([c[2] for c in cell], scores[order], atol=1e-3)
        assert [c[0] for c in cell] == [1, 2, 3]
        assert set(row["cells"]) == {"efficientnet-lite0", "efficientnet-lite0@torch", "clip", "vertex"}
        query_label = Path(row["query"]).parent.name
        assert [c[3] for c in cell] == ["rel" if Path(uris[i]).parent.name == query_label else "irr" for i in order]


@pytest.mark.flow
@pytest.mark.parametrize(
    "encoders, message", [("clip,nope", "unknown encoder 'nope'"), ("efficientnet-lite0@onnx,efficientnet-lite0@int4", "unknown runtime 'int4'")]
)
def test_compare_cli_errors_are_one_line(encoders, message, tmp_path):
    run = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "compare", "--encoders", encoders, "--data", ".", "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert run.returncode == 2 and message in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "out").exists()  # before anything starts


def test_fashion_mnist_export_from_idx_files(tmp_path):
    import gzip
    import struct

    from imgsearch.fashion_mnist import CLASSES, export

    src = tmp_path / "src"
    src.mkdir()
    imgs = np.arange(5 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(5, 28, 28)
    labels = np.array([9, 0, 9, 3, 9], np.uint8)
    with gzip.open(src / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">HBB", 0, 8, 3) + struct.pack(">III", 5, 28, 28) + imgs.tobytes())
    with gzip.open(src / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">HBB", 0, 8, 1) + struct.pack(">I", 5) + labels.tobytes())
    summary = export(tmp_path / "out", "test", per_class=2, source=src)
    assert summary["images"] == 4 and summary["per_class"]["ankle-boot"] == 2 and CLASSES[0] == "t-shirt-top"
    files = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    assert files == [
        "ankle-boot/fmnist-test-00000.png",
        "ankle-boot/fmnist-test-00002.png",
        "dress/fmnist-test-00003.png",
        "t-shirt-top/fmnist-test-00001.png",
    ]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "dress" / "fmnist-test-00003.png")), imgs[3])
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        export(tmp_path / "o2", source=tmp_path / "nowhere")
