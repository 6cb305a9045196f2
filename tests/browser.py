"""Debian's Chromium under Playwright, for the page and report tests (one copy of the set-up)."""

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest

CHROMIUM = os.environ.get("IMGSEARCH_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps trying to reach Google and stalls.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.contextmanager
def chromium(what: str) -> Iterator[Any]:
    """A launched browser. A missing Chromium fails the run: a skipped browser test would hide a
    broken page. IMGSEARCH_NO_BROWSER=1 opts out by hand, on a machine that cannot have Chromium."""
    if not Path(CHROMIUM).is_file():
        if os.environ.get("IMGSEARCH_NO_BROWSER") == "1":
            pytest.skip(f"IMGSEARCH_NO_BROWSER=1: {what} were not run")
        pytest.fail(
            f"no Chromium at {CHROMIUM}: install Debian's `chromium` package (the README's test command "
            "does), or set IMGSEARCH_NO_BROWSER=1 to skip the browser tests knowingly"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
