"""Starting a real Jupyter server for tests, and the browser's settings.

A plain module (no side effects on import), so tests may import it; the
session's runtime directory is set by conftest.py in the environment.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent


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
    tmp: Path,
    base_url: str = "/jh/user/alice/",
    app: str = "lab",
    port: int | None = None,
    token: str | None = None,
    server_extension: bool = True,
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    bin_dir: Path = BIN,
) -> JupyterServer:
    """A Jupyter server on 127.0.0.1; ``server_extension=False`` switches ours off.

    Without our extension the server is like one whose environment lacks
    desktop_widget (only the kernel's has it): views must use the comm.
    ``bin_dir``: the environment whose ``jupyter`` runs (the benchmarks start upstream's from its own venv).
    """
    root = tmp / "notebooks"
    root.mkdir(parents=True, exist_ok=True)
    token = token or secrets.token_hex(16)
    port = port or free_port()
    log = tmp / "jupyter.log"
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp / "config"), **(env or {})}
    cmd = [
        str(bin_dir / "jupyter"),
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
        *extra_args,
    ]
    if not server_extension:
        cmd.append("--ServerApp.jpserver_extensions=desktop_widget=False")
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
