"""Shared fixtures: an isolated Jupyter runtime directory and a real JupyterLab server."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

# Every desktop, registry file and server of the test run lives here, not in
# the user's real runtime directory. Short, because unix socket paths are.
RUNTIME_DIR = tempfile.mkdtemp(prefix="dw-rt-")
os.environ["JUPYTER_RUNTIME_DIR"] = RUNTIME_DIR
ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"
BIN = Path(sys.executable).parent


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(RUNTIME_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class JupyterServer:
    url: str  # http://127.0.0.1:PORT/base/
    token: str
    root_dir: Path
    proc: subprocess.Popen
    log: Path

    def api(self, path: str) -> str:
        return f"{self.url}{path}"

    def ws_url(self, path: str) -> str:
        return self.url.replace("http://", "ws://", 1) + path


def start_jupyter(
    tmp: Path, base_url: str = "/jh/user/alice/", app: str = "lab", port: int | None = None, token: str | None = None
) -> JupyterServer:
    root = tmp / "notebooks"
    root.mkdir(parents=True, exist_ok=True)
    token = token or secrets.token_hex(16)
    port = port or free_port()
    log = tmp / "jupyter.log"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": RUNTIME_DIR, "JUPYTER_CONFIG_DIR": str(tmp / "config")}
    cmd = [
        str(BIN / "jupyter"),
        app,
        "--no-browser",
        "--allow-root",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.base_url={base_url}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=",
        "--LabServerApp.extra_labextensions_path=[]",
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}{base_url}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}api/status?token={token}", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"jupyter {app} did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return JupyterServer(url, token, root, proc, log)


def stop_jupyter(server: JupyterServer) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(15)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


@pytest.fixture(scope="session")
def jupyter(tmp_path_factory: pytest.TempPathFactory):
    """A real JupyterLab on 127.0.0.1 under a JupyterHub-like base URL."""
    server = start_jupyter(tmp_path_factory.mktemp("jupyter"))
    yield server
    stop_jupyter(server)


#: Chromium's flags for the browser tests: headless, no GPU, and nothing that
#: reaches the network on its own (no updates, sync, QUIC or first-run pages).
CHROMIUM = "/usr/bin/chromium"
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
