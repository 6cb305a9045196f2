"""Every subcommand from its parsed arguments: parser → options → command, and the failures a
new user met because commands built each other's arguments by hand.

The in-process tests check that each subcommand resolves from its defaults into its options
class (a field added to a command reaches whoever builds it); the app() tests run `app.py` as
users do.
"""

import dataclasses
import json
import os
import re
from pathlib import Path

import pytest
from conftest import ROOT
from test_cli import app

from imgsearch import options as o
from imgsearch.cli import build_parser
from imgsearch.cli.settings import BUILDERS, resolve

# The arguments a subcommand needs at the least (search needs a query); everything else is default.
REQUIRED = {"search": ["--text", "cat"]}


def _commands() -> list[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sorted(sub.choices)  # type: ignore[union-attr]


def test_every_subcommand_resolves_from_its_defaults():
    assert sorted(BUILDERS) == _commands()  # no subcommand without its options, none left over
    for command in _commands():
        run = resolve(build_parser().parse_args([command, *REQUIRED.get(command, [])]))
        assert run.command == command
        assert dataclasses.is_dataclass(run.options), command
        # Frozen: a command cannot change what it was asked to do, nor what it hands another.
        field = dataclasses.fields(run.options)[0] if dataclasses.fields(run.options) else None
        if field is not None and dataclasses.fields(run.options) and type(run.options).__dataclass_params__.frozen:
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(run.options, field.name, None)


def test_defaults_come_from_the_options_classes_only():
    index = resolve(build_parser().parse_args(["index"])).options
    assert index == o.IndexOptions()
    assert resolve(build_parser().parse_args(["search", "--text", "x"])).options == o.SearchOptions(text="x")
    assert resolve(build_parser().parse_args(["stats"])).options == o.StatsOptions()
    assert resolve(build_parser().parse_args(["demo"])).options == o.DemoOptions()
    given = resolve(build_parser().parse_args(["index", "--max-prune", "0.2", "--prune", "--json"])).options
    assert (given.max_prune, given.prune, given.json, given.progress) == (0.2, True, True, False)


def test_one_grammar_for_encoders_models_and_the_store(capsys):
    parse = lambda *a: resolve(build_parser().parse_args(list(a))).options  # noqa: E731
    assert parse("index", "--encoder", "clip", "dinov2").encoders == ("clip", "dinov2")
    assert parse("index", "--encoder", "clip,dinov2").encoders == ("clip", "dinov2")
    assert parse("index", "--encoder", "clip", "--model", "some/ckpt").models == {"clip": "some/ckpt"}
    assert parse("serve", "--encoder", "clip", "bit", "--model", "bit=x").models == {"bit": "x"}
    assert parse("up", "--model", "efficientnet-lite0=y").models == {"efficientnet-lite0": "y"}
    assert parse("bench", "--encoder", "clip", "--model", "z").models == {"clip": "z"}
    compare = parse("compare", "--encoder", "efficientnet-lite0@torch", "clip", "--model", "clip=c")
    assert compare.encoders == ["efficientnet-lite0@torch", "clip"] and compare.models == {"clip": "c"}
    for command in ("index", "search", "stats", "demo", "compare", "serve", "up"):
        extra = REQUIRED.get(command, [])
        opts = parse(command, *extra, "--qdrant-url", "http://q:6333", "--qdrant-api-key", "k")
        store = opts.store if isinstance(opts.store, o.StoreOptions) else opts
        assert (store.qdrant_url, store.qdrant_api_key) == ("http://q:6333", "k"), command
    # The old spelling still works, with one line saying so.
    assert parse("compare", "--encoders", "clip,bit").encoders == ["clip", "bit"]
    assert parse("serve", "--encoders", "clip").encoders == ("clip",)
    assert capsys.readouterr().err.count("--encoders is deprecated") == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["up", "--encoder", "efficientnet-lite0", "--model", "clip=X"], "not among the encoders"),  # was dropped silently
        (["index", "--encoder", "clip", "bit", "--model", "X"], "say whose checkpoint it is"),
        (["serve", "--encoder", "clip", "clip"], "named twice"),
        (["index", "--encoder", "nope"], "unknown encoder 'nope'"),
    ],
)
def test_option_mistakes_are_one_clear_error_before_anything_starts(args, message):
    run = app(*args, timeout=60)
    assert run.returncode == 2, run.stderr[-2000:]
    assert message in run.stderr and "Traceback" not in run.stderr


def test_stats_takes_no_resize_and_an_unreachable_gateway_is_a_user_error():
    run = app("stats", "--resize", "96", timeout=60)  # was accepted, and did nothing
    assert run.returncode == 2 and "unrecognized arguments: --resize" in run.stderr
    run = app("stats", "--host", "grpc://127.0.0.1:9", "--json", timeout=60)  # was exit 1 with Jina's error block
    assert run.returncode == 2, run.stderr[-2000:]
    assert "no flow is answering" in json.loads(run.stdout)["error"]


def test_demo_never_writes_into_a_folder_it_did_not_create(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("not an image")
    run = app("demo", "--data", str(folder), "--store", str(tmp_path / "store"), timeout=60)
    assert run.returncode == 2 and "does not write into a folder it did not create" in run.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


@pytest.mark.flow
def test_demo_on_a_users_folder_through_a_running_gateway(tmp_path, photo_dir):
    """The demo on the user's own photos (JPEGs not named like the sample's, and PNGs) against a
    running Lite0 gateway: it picks its query from what it indexed, writes nothing into the
    folders, and skips the text part with the gateway's reason instead of indexing another encoder
    against this gateway."""
    from PIL import Image

    from imgsearch.flow import local_flow

    pngs = tmp_path / "pngs" / "cats"
    pngs.mkdir(parents=True)
    for src in sorted(photo_dir.rglob("*.jpg"))[:3]:
        Image.open(src).save(pngs / f"{src.stem}.png")
    before = {p: sorted(x.name for x in p.rglob("*")) for p in (photo_dir, pngs.parent)}
    with local_flow("efficientnet-lite0", store=str(tmp_path / "store")) as host:
        for data in (photo_dir, pngs.parent):
            run = app("demo", "--host", host, "--data", str(data), "--out", str(tmp_path / "grids"), timeout=300)
            assert run.returncode == 0, run.stderr[-3000:]
            first = next(line for line in run.stdout.splitlines() if line.strip().startswith("1."))
            query = run.stdout.split("Image search with ", 1)[1].split(":\n", 1)[0]
            assert Path(query).is_relative_to(data) and query in first  # the query finds itself first
            assert f"Text search skipped: the gateway at {host} serves efficientnet-lite0" in run.stdout
    assert {p: sorted(x.name for x in p.rglob("*")) for p in before} == before


@pytest.mark.flow
def test_a_flow_leaves_the_parents_environment_as_it_was(tmp_path):
    """Settings go down as a FlowConfig; environment variables only at the executor process
    boundary. The port range is the one process-wide setting, made once (imgsearch/ports.py)."""
    from imgsearch.flow import FlowConfig, Gateway, free_port, local_flow

    free_port()
    before = dict(os.environ)
    config = FlowConfig("efficientnet-lite0", store=str(tmp_path / "store"), qdrant_api_key="not-in-our-env", runtime="onnx", lanes="2", resize=64)
    with local_flow("efficientnet-lite0", config=config) as host:
        info = Gateway(host).encoder_info()
        assert (info.runtime, info.lanes) == ("onnx", 2)  # reached the encoder's process
        assert os.environ.get("QDRANT_API_KEY") == before.get("QDRANT_API_KEY")
    volatile = {"JINA_GRPC_RECV_BYTES", "JINA_GRPC_SEND_BYTES", "PYTEST_CURRENT_TEST"}
    after = {k: v for k, v in os.environ.items() if k not in volatile}
    assert after == {k: v for k, v in before.items() if k not in volatile}


def test_cli_does_not_read_argv_below_the_parser():
    """Commands and features never see argv or a Namespace: only cli/ reads them (and the
    benchmarks' helper scripts, each its own process with its own ``__main__``)."""
    offenders = []
    for path in (ROOT / "imgsearch").rglob("*.py"):
        if "cli" in path.relative_to(ROOT / "imgsearch").parts:
            continue
        text = path.read_text()
        if ("argparse" in text or "sys.argv" in text) and 'if __name__ == "__main__":' not in text:
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


# What each command does from its defaults alone, in a folder with nothing in it: runs, or stops
# with the user's error (exit 2) naming what is missing. serve, up, demo and bench start flows and
# run until stopped or for minutes: tests/test_readme.py runs their documented commands.
FROM_DEFAULTS = {
    "index": "data folder not found: data/memes (build the sample set with `python app.py sample`)",
    "search": "cannot embed text",  # the default encoder, efficientnet-lite0, and REQUIRED's text query
    "stats": "no store at workspace",
    "compare": "data folder not found: data/memes",
    "encoders": None,
    "export-fashion-mnist": None,
    "k8s": None,
}


@pytest.mark.parametrize("command", sorted(FROM_DEFAULTS))
def test_each_subcommand_runs_from_its_defaults(command, tmp_path, monkeypatch):
    import io

    from executors.errors import UserError
    from imgsearch.cli import handlers

    monkeypatch.chdir(tmp_path)
    if command == "export-fashion-mnist" and not o.FashionMnistOptions().source.is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed (the README's test command installs it)")
    argv = [command, *REQUIRED.get(command, [])] + (["--out", str(tmp_path / "gen")] if command == "k8s" else [])
    options = resolve(build_parser().parse_args(argv)).options
    out = io.StringIO()
    expected = FROM_DEFAULTS[command]
    if expected is None:
        assert handlers()[command](options, out) == 0
        assert out.getvalue().strip()
    else:
        with pytest.raises(UserError, match=re.escape(expected)):
            handlers()[command](options, out)
