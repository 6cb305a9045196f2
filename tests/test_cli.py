"""app.py as users run it: real processes, exit codes, --json output, clear errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = pytest.mark.flow


def app(*args: str, cwd: Path = ROOT, timeout: int = 300) -> subprocess.CompletedProcess:
    # A fresh app.py process has run no torch compute: it uses its default start method, fork.
    env = {**os.environ, "IMGSEARCH_START_METHOD": "fork"}
    return subprocess.run(
        [sys.executable, str(ROOT / "app.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_index_search_stats_with_json(tmp_path, photo_dir):
    store = str(tmp_path / "store")
    run = app("index", "--data", str(photo_dir), "--store", store, "--json")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)  # stdout is the JSON document and nothing else
    n = len(list(photo_dir.rglob("*.jpg")))
    assert summary["indexed"] == n == summary["count"] and summary["skipped"] == []
    assert summary["disk_bytes"] > 0 and summary["collection"].endswith("--efficientnet-lite0")

    query = photo_dir / "chelsea" / "chelsea_crop.jpg"
    out = tmp_path / "grids"
    run = app("search", "--image", str(query), "--store", store, "--top-k", "3", "--out", str(out), "--json")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert [m["label"] for m in result["matches"][:2]] == ["chelsea", "chelsea"]
    assert result["matches"][0]["path"] == str(query)
    assert Path(result["grid_png"]).stat().st_size > 1000
    page = Path(result["grid_html"]).read_text()
    assert page.index("chelsea_crop.jpg") < page.index("chelsea_full.jpg")  # rank order on the page

    run = app("stats", "--store", store, "--json")
    assert run.returncode == 0, run.stderr
    (coll,) = json.loads(run.stdout)["collections"]
    assert coll["count"] == n and coll["model"] == "efficientnet-lite0" and coll["dim"] == 1280

    human = app("search", "--image", str(query), "--store", store, "--top-k", "2", "--out", str(out))
    assert human.returncode == 0 and "chelsea_crop.jpg" in human.stdout and "Grid:" in human.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["index", "--data", "/nonexistent/folder"], "data folder not found"),
        (["index", "--encoder", "resnet9000", "--data", "."], "unknown encoder 'resnet9000'"),
        (["search", "--text", "doge", "--encoder", "bit"], "cannot embed text"),
        (["search", "--image", "/nonexistent.jpg"], "query image not found"),
        (["index", "--encoder", "vit", "--model", "/no/such/model", "--data", "."], "model folder not found"),
        (["index", "--encoder", "dinov2", "--data", "."], "Hugging Face hub"),
        (["search", "--image", "app.py", "--host", "grpc://127.0.0.1:9"], "no flow is answering"),
    ],
)
def test_user_errors_are_one_clear_line(args, message, tmp_path):
    run = app(*args, "--json", cwd=ROOT, timeout=120) if "--json" not in args else app(*args)
    assert run.returncode == 2, (run.returncode, run.stderr[-2000:])
    assert message in run.stderr
    assert "Traceback" not in run.stderr
    assert json.loads(run.stdout)["error"]


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    run = app("index", "--data", str(tmp_path / "empty"), "--store", str(tmp_path / "s"))
    assert run.returncode == 2 and "no image files found" in run.stderr


def test_help_lists_the_commands():
    run = app("--help")
    assert run.returncode == 0
    for command in ("index", "search", "stats", "sample", "encoders"):
        assert command in run.stdout
    listing = app("encoders")
    for name in ("clip", "bit", "efficientnet", "efficientnet-lite0", "vit", "dinov2", "blip2"):
        assert f"\n{name} " in "\n" + listing.stdout


def test_index_and_search_through_a_running_gateway(tmp_path, photo_dir):
    """`--host`: the CLI as a plain gRPC client of a flow started elsewhere."""
    from executors.docs import ImageDoc
    from imgsearch.flow import Gateway, local_flow

    with local_flow("efficientnet-lite0", store=str(tmp_path / "store")) as host:
        run = app("index", "--host", host, "--encoder", "efficientnet-lite0", "--data", str(photo_dir), "--json")
        assert run.returncode == 0, run.stderr
        summary = json.loads(run.stdout)
        n = len(list(photo_dir.rglob("*.jpg")))
        assert summary["indexed"] == n
        query = photo_dir / "rocket" / "rocket_crop.jpg"
        run = app("search", "--host", host, "--image", str(query), "--top-k", "2", "--out", str(tmp_path), "--json")
        assert run.returncode == 0, run.stderr
        assert [m["label"] for m in json.loads(run.stdout)["matches"]] == ["rocket", "rocket"]
        wrong = app("search", "--host", host, "--encoder", "clip", "--text", "doge")
        assert wrong.returncode == 2 and "serves encoder 'efficientnet-lite0'" in wrong.stderr

        # /delete by hash, then /count, through the same gateway.
        gw = Gateway(host)
        coll = {"collection": summary["collection"]}
        import hashlib

        digest = hashlib.sha256(query.read_bytes()).hexdigest()
        gw.post("/delete", [ImageDoc(hash=digest)], coll)
        assert gw.call("/count", coll)["count"] == n - 1
        assert gw.call("/delete", {**coll, "drop": True})["dropped"] is True
        assert gw.call("/count", coll)["count"] == 0


def test_a_second_writer_gets_a_clear_in_use_error(tmp_path, photo_dir):
    from executors.indexer.store import EdgeStore

    store = tmp_path / "store"
    with EdgeStore(str(store)):  # another process's indexer holding the store
        run = app("index", "--data", str(photo_dir), "--store", str(store))
    assert run.returncode == 2 and "is in use by another process" in run.stderr


@pytest.mark.parametrize("verbose", [False, True])
def test_a_bug_exits_1_with_a_pointer_to_verbose_not_as_a_user_error(monkeypatch, capsys, verbose):
    """Only UserError means "your mistake" (exit 2); a ValueError from a bug is exit 1, traceback with -v."""
    from imgsearch import cli, commands

    def broken(args, out):
        raise ValueError("an internal invariant broke")

    monkeypatch.setattr(commands, "cmd_encoders", broken)
    code = cli.main(["-v", "encoders"] if verbose else ["encoders"])
    err = capsys.readouterr().err
    assert code == 1
    assert "error: an internal invariant broke" in err
    assert ("Traceback" in err) == verbose
    assert ("run again with -v" in err) != verbose


def test_a_user_error_from_a_lower_layer_exits_2(monkeypatch, capsys):
    from executors.encoders.specs import get_spec
    from imgsearch import cli, commands

    monkeypatch.setattr(commands, "cmd_encoders", lambda args, out: get_spec("no-such-encoder"))
    assert cli.main(["encoders"]) == 2
    err = capsys.readouterr().err
    assert "unknown encoder 'no-such-encoder'" in err and "Traceback" not in err


def test_configuration_mistakes_found_below_the_cli_are_user_errors(monkeypatch):
    """Half a TLS setting, or a runtime that does not exist: the user's to fix, so exit 2, not a bug's 1."""
    import torch

    from executors.encoders.runtimes import resolve_runtime
    from executors.errors import UserError
    from imgsearch.exposure import GatewayExposure

    monkeypatch.setenv("IMGSEARCH_TLS_CERT", "/tmp/cert.pem")
    monkeypatch.delenv("IMGSEARCH_TLS_KEY", raising=False)
    with pytest.raises(UserError, match="needs both"):
        GatewayExposure()
    with pytest.raises(UserError, match="unknown runtime 'tensorrt'"):
        resolve_runtime("tensorrt", torch.device("cpu"))


def test_the_cli_runtime_choices_are_the_encoders_own():
    """One list: the CLI takes its choices from executors/encoders/runtime_env.py, the module
    the encoders read too, which imports nothing heavy (the k8s export and the flow use it)."""
    from executors.encoders.runtime_env import CHOICES
    from imgsearch.cli import RUNTIME_CHOICES, build_parser

    assert RUNTIME_CHOICES is CHOICES and "torch-bf16" in CHOICES
    assert build_parser().parse_args(["search", "--text", "cat", "--runtime", "torch-bf16"]).runtime == "torch-bf16"
    code = "import sys, executors.encoders.runtime_env; print(sorted(m for m in ('torch', 'numpy', 'jina') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr[-2000:]


def test_parsing_arguments_loads_neither_torch_nor_jina():
    """`app.py --help` and a mistyped option answer at once (1.6 s of imports before), and
    main() sets the environment (thread policy, Jina's log level) before those libraries load."""
    code = (
        "import sys; from imgsearch.cli import build_parser; p = build_parser(); "
        "[p.parse_args(a) for a in (['search', '--text', 'cat', '--runtime', 'onnx'], ['serve'], ['up'], ['index'])]; "
        "print(sorted(m for m in ('torch', 'jina', 'docarray') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr[-2000:]
