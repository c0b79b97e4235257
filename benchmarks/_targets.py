"""What the benchmarks drive: our widget in JupyterLab, upstream's /desktop/ page, and the bare RFB client."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import nbformat
from _common import cmdline, comm, environ_has, ppid_table, tree

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OURS_BIN = ROOT / ".venv" / "bin"
UPSTREAM_VENV = HERE / ".venv-upstream"
PAGE_JS = (HERE / "_page.js").read_text()

# The one definition of the browser and its flags (no downloads, no network of its own).
from tests._jupyter import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

VIEWPORT = {"width": 1400, "height": 1100}
#: The height of our views: the desktop is the view's size (about 1290x700 here),
#: big enough for the 1024x640 throughput window.
VIEW_HEIGHT = "700px"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            raise RuntimeError(f"jupyter server did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


def start_server(
    venv_bin: Path, workdir: Path, env_extra: dict[str, str] | None = None, extra_args: tuple[str, ...] = ()
) -> dict:
    """A Jupyter server (JupyterLab) on 127.0.0.1 with a fresh token; returns its facts."""
    notebooks = workdir / "notebooks"
    notebooks.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    port = free_port()
    log = workdir / "jupyter.log"
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(workdir / "config"), **(env_extra or {})}
    env["PATH"] = f"{venv_bin}:{env['PATH']}"
    cmd = [
        str(venv_bin / "jupyter"),
        "lab",
        "--no-browser",
        "--allow-root",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={notebooks}",
        "--LabApp.news_url=",
        "--LabServerApp.extra_labextensions_path=[]",
        *extra_args,
    ]
    out = open(log, "ab")  # noqa: SIM115 - the server keeps it
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=notebooks)
    out.close()
    url = f"http://127.0.0.1:{port}/"
    _wait_http(f"{url}api/status?token={token}", proc, log)
    return {"url": url, "token": token, "proc": proc, "log": log, "root": notebooks, "env": env}


def stop_server(server: dict, timeout: float = 15) -> None:
    proc = server["proc"]
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
    # Whatever of its process group is left (kernels, vncservers) goes too.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def api(server: dict, path: str, method: str = "GET", body: object = None) -> object:
    request = urllib.request.Request(
        f"{server['url']}{path}",
        method=method,
        headers={"Authorization": f"token {server['token']}", "Content-Type": "application/json"},
        data=None if body is None else json.dumps(body).encode(),
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        data = response.read()
    return json.loads(data) if data else None


# -- the bare reference ---------------------------------------------------------------
class RefClient:
    """The raw RFB client (``_rfbref.py``) in a process of its own."""

    def __init__(self, socket_path: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-u", str(HERE / "_rfbref.py"), socket_path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.events: queue.Queue = queue.Queue()
        self.hits: dict[int, float] = {}
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        ready = self.events.get(timeout=15)
        if ready.get("event") != "ready":
            raise RuntimeError(f"the reference RFB client failed: {ready}")
        self.size = (ready["w"], ready["h"])

    def _read(self) -> None:
        for line in self.proc.stdout:
            event = json.loads(line)
            if event.get("event") == "hit":
                self.hits[event["id"]] = event["t"]
            else:
                self.events.put(event)

    def _send(self, **cmd: object) -> None:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def watch(self, watch_id: int, points: list, rgb: tuple, tol: int = 24) -> None:
        self._send(cmd="watch", id=watch_id, points=[list(p) for p in points], rgb=list(rgb), tol=tol)

    def hit(self, watch_id: int) -> float | None:
        return self.hits.get(watch_id)

    def stats(self) -> dict:
        self._send(cmd="stats")
        return self.events.get(timeout=5)

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._send(cmd="quit")
            self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- the browser -----------------------------------------------------------------------
class Browser:
    def __init__(self) -> None:
        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        self.browser = self._pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

    def new_page(self, extra_script: str | None = None):
        context = self.browser.new_context(viewport=VIEWPORT)
        context.add_init_script(PAGE_JS)
        if extra_script:
            context.add_init_script(extra_script)
        page = context.new_page()
        page.set_default_timeout(60_000)
        return page

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.browser.close()
        with contextlib.suppress(Exception):
            self._pw.stop()


def close_page(page) -> None:
    with contextlib.suppress(Exception):
        page.context.close()


def wait_js(page, expression: str, arg: object = None, timeout: float = 30, poll: float = 0.02) -> object:
    """Poll ``expression`` (a JS function of one argument) until truthy; returns its value or None."""
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(expression, arg)
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        page.wait_for_timeout(poll * 1000)


# -- ours ---------------------------------------------------------------------------------
CELLS = {
    "setup": (
        "import json, os, time\n"
        "from IPython.display import display\n"
        "from desktop_widget import Desktop\n"
        f"HEIGHT = {VIEW_HEIGHT!r}; FRAME_RATE = 60; VIEWS = 1; N_DESKTOPS = 1"
    ),
    "cold-wm": '_t0 = time.time(); d = Desktop(session="wm", height=HEIGHT); _t1 = time.time(); d',
    "cold-xfce": '_t0 = time.time(); d = Desktop(session="xfce", height=HEIGHT); _t1 = time.time(); d',
    "comm-wm": 'd = Desktop(session="wm", height=HEIGHT, transport="comm"); d',
    "cold-fr": '_t0 = time.time(); d = Desktop(session="wm", height=HEIGHT, frame_rate=FRAME_RATE); _t1 = time.time(); d',
    "views": "for _ in range(VIEWS): display(d)",
    "desktops": 'ds = [Desktop(session="wm", height=HEIGHT) for _ in range(N_DESKTOPS)]\nfor _x in ds: display(_x)',
}
NOTEBOOK = "bench.ipynb"
NOTEBOOK_KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def _write_notebook(path: Path) -> None:
    cells = [nbformat.v4.new_code_cell(f"# bench: {name}\n{source}") for name, source in CELLS.items()]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = NOTEBOOK_KERNELSPEC
    nbformat.write(nb, str(path))


class Ours:
    """JupyterLab with the benchmark notebook open in Chromium and a second client on its kernel."""

    name = "ours"

    def __init__(self, browser: Browser, workdir: Path, server_args: tuple[str, ...] = ()) -> None:
        self.workdir = workdir
        self.runtime = Path(tempfile.mkdtemp(prefix="dwb-"))
        self.server = start_server(OURS_BIN, workdir, {"JUPYTER_RUNTIME_DIR": str(self.runtime)}, server_args)
        _write_notebook(self.server["root"] / NOTEBOOK)
        api(
            self.server,
            "lab/api/settings/@jupyterlab/apputils-extension:notification",
            "PUT",
            {"raw": json.dumps({"fetchNews": "false"})},
        )
        # No autosave: a notebook reopened later must not bring back old views.
        api(
            self.server,
            "lab/api/settings/@jupyterlab/docmanager-extension:plugin",
            "PUT",
            {"raw": json.dumps({"autosave": False})},
        )
        self.browser = browser
        self.page = None
        self.kc = None
        self.info: dict = {}
        self.open_notebook()
        self._connect_kernel()
        self.exec("pass")
        self.run_cell("setup")
        self.wait_idle()

    # -- page -----------------------------------------------------------------------
    def open_notebook(self) -> None:
        from playwright.sync_api import expect

        if self.page is not None:
            close_page(self.page)
        self.page = self.browser.new_page()
        page = self.page
        page.goto(f"{self.server['url']}lab/tree/{NOTEBOOK}?token={self.server['token']}", timeout=90_000)
        page.locator(".jp-Notebook .jp-CodeCell").first.wait_for(timeout=90_000)
        expect(page.locator('.jp-StatusBar-TextItem[title^="Change kernel"]')).to_have_text(
            re.compile(r"ipykernel.*\| Idle"), timeout=90_000
        )
        # The file browser closed: the view (and so the desktop) gets the page's width.
        if page.locator("#jp-left-stack").is_visible():
            page.keyboard.press("Control+b")
            page.locator("#jp-left-stack").wait_for(state="hidden", timeout=10_000)

    def close_page(self) -> None:
        if self.page is not None:
            close_page(self.page)
            self.page = None

    def cell(self, name: str):
        return self.page.locator(".jp-CodeCell").filter(
            has=self.page.locator(".cm-content", has_text=f"# bench: {name}")
        )

    def run_cell(self, name: str) -> None:
        """Select the cell in command mode (click on its prompt) and press Shift+Enter."""
        prompt = self.cell(name).locator(".jp-InputArea-prompt")
        prompt.click()
        self.page.keyboard.press("Shift+Enter")

    def wait_idle(self, timeout: float = 60) -> None:
        self.exec("pass", timeout=timeout)

    def canvases(self, name: str) -> int:
        return self.cell(name).locator(".dw-screen canvas").count()

    # -- kernel -----------------------------------------------------------------------
    def _connect_kernel(self) -> None:
        from jupyter_client import BlockingKernelClient

        deadline = time.monotonic() + 60
        while True:
            sessions = [s for s in api(self.server, "api/sessions") if s.get("path", "").endswith(NOTEBOOK)]
            if sessions:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the notebook has no kernel")
            time.sleep(0.2)
        kernel_id = sessions[0]["kernel"]["id"]
        self.kernel_id = kernel_id
        self.kc = BlockingKernelClient(connection_file=str(self.runtime / f"kernel-{kernel_id}.json"))
        self.kc.load_connection_file()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def exec(self, code: str, timeout: float = 60) -> str:
        """Run code in the notebook's kernel from the side; returns its stdout (raises on an error)."""
        out: list[str] = []
        errors: list[str] = []

        def hook(msg: dict) -> None:
            kind = msg["header"]["msg_type"]
            if kind == "stream":
                out.append(msg["content"]["text"])
            elif kind == "error":
                errors.append("\n".join(msg["content"]["traceback"]))

        reply = self.kc.execute_interactive(code, timeout=timeout, output_hook=hook, store_history=False)
        if errors or reply["content"]["status"] != "ok":
            raise RuntimeError(f"kernel error running {code!r}:\n" + re.sub(r"\x1b\[[0-9;]*m", "", "".join(errors)))
        return "".join(out)

    def eval_json(self, expression: str) -> object:
        return json.loads(self.exec(f"print(json.dumps({expression}))").strip().splitlines()[-1])

    def kernel_pid(self) -> int | None:
        for pid in tree(self.server["proc"].pid):
            if "ipykernel_launcher" in " ".join(cmdline(pid)) and self.kernel_id in " ".join(cmdline(pid)):
                return pid
        return None

    # -- the desktop d --------------------------------------------------------------------
    def desktop_info(self, var: str = "d") -> dict:
        # Through the public API only: the registry entry (list_desktops) has the socket and the supervisor.
        entry = f'next(i for i in __import__("desktop_widget").list_desktops() if i.id == {var}.id)'
        info = self.eval_json(
            f'{{"id": {var}.id, "display": {var}.display, "env": {var}.env, "socket": {entry}.socket,'
            f' "supervisor": {entry}.supervisor_pid}}'
        )
        self.info = info
        return info

    @property
    def env(self) -> dict:
        return self.info["env"]

    @property
    def socket(self) -> str:
        return self.info["socket"]

    def desktop_pids(self, info: dict | None = None) -> list[int]:
        return sorted(tree((info or self.info)["supervisor"]))

    @property
    def server_pid(self) -> int:
        return self.server["proc"].pid

    def stop_desktops(self) -> None:
        self.exec(
            "for _v in list(globals().get('ds', [])) + [globals().get('d')]:\n    if _v is not None: _v.stop()\nds = []"
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop_desktops()
        if self.kc is not None:
            with contextlib.suppress(Exception):
                self.kc.stop_channels()
        self.close_page()
        with contextlib.suppress(Exception):
            api(self.server, f"api/kernels/{self.kernel_id}", "DELETE")
        stop_server(self.server)
        shutil.rmtree(self.runtime, ignore_errors=True)


# -- upstream -------------------------------------------------------------------------------
class Upstream:
    """jupyter-remote-desktop-proxy 3.0.x in its own venv and server; its page at ``/desktop/``.

    jupyter-server-proxy starts ``vncserver`` when the page's WebSocket first
    arrives and never restarts it, so every cold start gets a new server.
    """

    name = "upstream"

    def __init__(self, browser: Browser, workdir: Path) -> None:
        self.browser = browser
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.runtime = Path(tempfile.mkdtemp(prefix="dwu-"))
        self.xauthority = str(workdir / "Xauthority")
        Path(self.xauthority).touch()
        self.server = start_server(
            UPSTREAM_VENV / "bin",
            workdir,
            {"JUPYTER_RUNTIME_DIR": str(self.runtime), "XAUTHORITY": self.xauthority},
        )
        self.page = None
        self.info: dict = {}

    def open(self) -> float:
        """Open ``/desktop/``; returns the page's time origin (ms, wall clock)."""
        if self.page is not None:
            close_page(self.page)
        self.page = self.browser.new_page()
        self.page.goto(f"{self.server['url']}desktop/?token={self.server['token']}")
        return self.page.evaluate("() => performance.timeOrigin")

    def close_page(self) -> None:
        if self.page is not None:
            close_page(self.page)
            self.page = None

    def find_xvnc(self, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for pid in tree(self.server["proc"].pid):
                if comm(pid) in ("Xvnc", "Xtigervnc"):
                    args = cmdline(pid)
                    display = next(a for a in args if a.startswith(":"))
                    sock = args[args.index("-rfbunixpath") + 1]
                    if os.path.exists(sock):
                        self.info = {
                            "display": display,
                            "socket": sock,
                            "xvnc": pid,
                            "env": {"DISPLAY": display, "XAUTHORITY": self.xauthority},
                        }
                        return self.info
            if time.monotonic() > deadline:
                raise RuntimeError("upstream's Xvnc did not appear")
            time.sleep(0.05)

    @property
    def env(self) -> dict:
        return self.info["env"]

    @property
    def socket(self) -> str:
        return self.info["socket"]

    def desktop_pids(self) -> list[int]:
        """vncserver, Xvnc and every process of the session, daemons that left the tree included.

        They all inherited the server's XAUTHORITY, which names a file of this run only.
        """
        marker = f"XAUTHORITY={self.xauthority}"
        server = self.server["proc"].pid
        return sorted(p for p in ppid_table() if p != server and environ_has(p, marker))

    @property
    def server_pid(self) -> int:
        return self.server["proc"].pid

    def kill_desktop(self) -> None:
        """Everything of the desktop, daemons that escaped included (upstream leaves dbus-daemon behind)."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = self.desktop_pids()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 3
            while self.desktop_pids() and time.monotonic() < deadline:
                time.sleep(0.05)

    def close(self) -> None:
        self.close_page()
        stop_server(self.server)
        self.kill_desktop()
        shutil.rmtree(self.runtime, ignore_errors=True)
