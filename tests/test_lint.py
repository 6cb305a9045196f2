"""The code's own checks, in the quick tier: ruff's lint rules and format, and mypy (strict on
the options, the command line, the flow client and the executor contracts; pyproject.toml)."""

import subprocess
import sys
from pathlib import Path

from conftest import ROOT

BIN = Path(sys.executable).parent
PATHS = ["imgsearch", "executors", "tests", "app.py", "examples"]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / args[0]), *args[1:]], cwd=ROOT, capture_output=True, text=True, timeout=900)


def test_ruff_lint_is_clean():
    run = _run("ruff", "check", "--no-cache", *PATHS)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]


def test_ruff_format_is_clean():
    run = _run("ruff", "format", "--check", "--no-cache", *PATHS)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]


def test_mypy_is_clean():
    run = _run("mypy", "--no-incremental")
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "Success: no issues found" in run.stdout
