"""Shared fixtures: an isolated Jupyter runtime directory and a real JupyterLab server."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests._jupyter import CHROMIUM, CHROMIUM_ARGS, start_jupyter, stop_jupyter

# Every desktop, registry file and server of the test run lives here, not in
# the user's real runtime directory. Short, because unix socket paths are.
# (Only pytest imports this module; helpers for tests live in tests/_jupyter.py.)
RUNTIME_DIR = tempfile.mkdtemp(prefix="dw-rt-")
os.environ["JUPYTER_RUNTIME_DIR"] = RUNTIME_DIR
ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(RUNTIME_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def jupyter(tmp_path_factory: pytest.TempPathFactory):
    """A real JupyterLab on 127.0.0.1 under a JupyterHub-like base URL."""
    server = start_jupyter(tmp_path_factory.mktemp("jupyter"))
    yield server
    stop_jupyter(server)


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright (sync API); never downloads a browser.

    Playwright gives every launch a fresh temporary profile of its own.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
