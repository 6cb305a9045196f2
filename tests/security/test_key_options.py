"""Finding 8 (last part): `--qdrant-api-key` put the key in argv, where `ps` shows it to every user."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KEY = "qdrant-key-for-tests"
# The key a command would open the store with: its resolved options' (the command line's), else
# the environment's chain that ServerStore reads.
PROBE = (
    "import sys; from imgsearch.cli import build_parser; from imgsearch.cli.settings import resolve;"
    "args = ['stats', '--qdrant-url', 'http://127.0.0.1:9'] + (['--qdrant-api-key', sys.argv[1]] if sys.argv[1] else [])"
    " + (['--qdrant-api-key-file', sys.argv[2]] if sys.argv[2] else []);"
    "store = resolve(build_parser().parse_args(args)).options.store;"
    "from executors.indexer.store.server import api_key_from_env; print(store.qdrant_api_key or api_key_from_env(False))"
)


def _run(value: str, key_file: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", PROBE, value, key_file],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("QDRANT_")}, "PYTHONPATH": str(ROOT), **env},
        timeout=120,
    )


def test_the_key_comes_from_a_file_or_the_environment(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")  # as `kubectl get secret ... | base64 -d > key` or an editor leaves it
    for value, path, env in (("", str(key_file), {}), ("", "", {"QDRANT_API_KEY_FILE": str(key_file)}), ("", "", {"QDRANT_API_KEY": KEY})):
        run = _run(value, path, env)
        assert run.returncode == 0 and run.stdout.strip() == KEY and "warning" not in run.stderr, run.stderr[-2000:]


def test_the_key_in_argv_still_works_with_a_warning():
    run = _run(KEY, "", {})
    assert run.returncode == 0 and run.stdout.strip() == KEY
    assert "process list" in run.stderr and "--qdrant-api-key-file" in run.stderr


def test_app_py_says_so_for_an_empty_or_missing_file(tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("\n")
    for path, reason in ((empty, "is empty"), (tmp_path / "missing", "cannot read")):
        run = subprocess.run(
            [sys.executable, str(ROOT / "app.py"), "stats", "--qdrant-url", "http://127.0.0.1:9", "--qdrant-api-key-file", str(path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 2 and reason in run.stderr, run.stderr[-2000:]
