"""Fixtures for the browser tests: one JupyterLab server on lessons/ and one headless Chromium per session.

Without a browser the tests skip and say why (tools/install_browser.sh, run by `make test`,
installs Debian's chromium when it can). A browser that is there but fails to start is a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .jupyterlab import CHROMIUM, chromium, lab_server

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def browser():
    """A Playwright browser context on Debian's Chromium (never a browser Playwright downloads)."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(
            f"no browser: {CHROMIUM} is missing and tools/install_browser.sh could not install it "
            "(it needs root and apt-get; otherwise run `sudo apt-get install chromium`)"
        )
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright's Python package is not installed")
    playwright = sync_api.sync_playwright().start()
    try:
        with chromium(playwright) as context:
            yield context
    finally:
        playwright.stop()


@pytest.fixture(scope="session")
def lab(browser):
    """``jupyter lab`` on lessons/, lessons at the ci profile; shut down at the end of the session."""
    with lab_server(ROOT / "lessons", {"MHC_COURSE_PROFILE": "ci"}) as server:
        yield server


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """test-artifacts/ at the repository root (gitignored): the screenshots."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
