"""What the benchmarks drive: our widget in JupyterLab, upstream's /desktop/ page, and the bare RFB client."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
from _common import cmdline, comm, environ, ppid_table, tree

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OURS_BIN = ROOT / ".venv" / "bin"
UPSTREAM_VENV = HERE / ".venv-upstream"
PAGE_JS = (HERE / "_page.js").read_text()

# The test suite's helpers are the one home of the browser's flags (no downloads, no network of its own),
# of starting a Jupyter server and of its REST API: imported from the repository root, which _common puts
# first on sys.path (not through the editable install's path).
from tests._jupyter import CHROMIUM, CHROMIUM_ARGS, JupyterServer, start_jupyter, stop_jupyter  # noqa: E402
from tests._notebook_page import api, lab_setting, wait_kernel_idle  # noqa: E402

VIEWPORT = {"width": 1400, "height": 1100}
#: The height of our views: the desktop is the view's size (about 1290x700 here),
#: big enough for the 1024x640 throughput window.
VIEW_HEIGHT = "700px"


_HOMES = Path(tempfile.mkdtemp(prefix="dw-bench-home-"))
atexit.register(shutil.rmtree, _HOMES, ignore_errors=True)


def start_server(workdir: Path, env: dict[str, str], bin_dir: Path = OURS_BIN, args: tuple[str, ...] = ()):
    """A Jupyter server (JupyterLab) on 127.0.0.1 with a fresh token: the test suite's ``start_jupyter``.

    Each product gets a HOME of its own for the run, shared by its servers and trials: XFCE keeps its
    panel, window manager and shortcut settings there, and the first session in a HOME writes its
    defaults into it (Debian's panel for upstream, ours for us). A shared HOME would give one product
    the other's settings, and a machine's own HOME whatever ran there before.
    """
    home = _HOMES / bin_dir.parent.name
    home.mkdir(exist_ok=True)
    env = {**env, "HOME": str(home), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return start_jupyter(workdir, base_url="/", extra_args=args, env=env, bin_dir=bin_dir)


def stop_server(server: JupyterServer) -> None:
    """Stop the server, then whatever of its process group is left (kernels, upstream's vncserver)."""
    stop_jupyter(server)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.proc.pid, signal.SIGKILL)


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
        "from desktop_widget import Desktop\n"
        f"HEIGHT = {VIEW_HEIGHT!r}; SESSION = 'wm'; TRANSPORT = 'server'; FRAME_RATE = None"
    ),
    # The desktop a metric runs on: the globals above set by ``new_desktop`` (_metrics.py) first.
    "desktop": (
        "_kw = {} if FRAME_RATE is None else {'frame_rate': FRAME_RATE}\n"
        "d = Desktop(session=SESSION, height=HEIGHT, transport=TRANSPORT, **_kw); d"
    ),
}
NOTEBOOK_KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


class Notebook:
    """A notebook of ``cells`` (name -> source) open in its own page and JupyterLab workspace, and a
    second client on its kernel that reads values (``d.id``, time stamps) without touching the page."""

    def __init__(self, browser: Browser, server: dict, runtime: Path, name: str, cells: dict[str, str]) -> None:
        self.browser, self.server, self.runtime, self.name = browser, server, runtime, name
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(f"# bench: {k}\n{v}") for k, v in cells.items()])
        nb.metadata["kernelspec"] = NOTEBOOK_KERNELSPEC
        nbformat.write(nb, str(server.root_dir / name))
        self.page = None
        self.kc = None
        self.kernel_id: str | None = None
        self.open_page()
        self.connect_kernel()

    def open_page(self) -> None:
        self.close_page()
        self.page = page = self.browser.new_page()
        workspace = Path(self.name).stem  # its own: the other notebooks' pages are not restored here
        page.goto(f"{self.server.url}lab/workspaces/{workspace}/tree/{self.name}?token={self.server.token}")
        page.locator(".jp-Notebook .jp-CodeCell").first.wait_for(timeout=90_000)
        wait_kernel_idle(page)
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
        """Select the cell in command mode (click on its prompt) and press Shift+Enter, as a person does."""
        self.cell(name).locator(".jp-InputArea-prompt").click()
        self.page.keyboard.press("Shift+Enter")

    def connect_kernel(self) -> None:
        """A client on the notebook's kernel (again after a restart: same id, new connection)."""
        from jupyter_client import BlockingKernelClient

        deadline = time.monotonic() + 60
        while self.kernel_id is None:
            sessions = [s for s in api(self.server, "api/sessions") if s.get("path", "").endswith(self.name)]
            if sessions:
                self.kernel_id = sessions[0]["kernel"]["id"]
            elif time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} has no kernel")
            else:
                time.sleep(0.2)
        if self.kc is not None:
            with contextlib.suppress(Exception):
                self.kc.stop_channels()
        self.kc = BlockingKernelClient(connection_file=str(self.runtime / f"kernel-{self.kernel_id}.json"))
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

        # This client reads IOPub only here, and IOPub carries every view's comm traffic too (tens of MB
        # in a comm animation): once its queue is at ZeroMQ's high-water mark, the kernel's replies to
        # this request are dropped and execute_interactive waits for them in vain. Read the backlog first.
        iopub = self.kc.iopub_channel.socket
        while iopub.poll(50):
            iopub.recv_multipart()
        reply = self.kc.execute_interactive(code, timeout=timeout, output_hook=hook, store_history=False)
        if errors or reply["content"]["status"] != "ok":
            raise RuntimeError(f"kernel error running {code!r}:\n" + re.sub(r"\x1b\[[0-9;]*m", "", "".join(errors)))
        return "".join(out)

    def eval_json(self, expression: str) -> object:
        return json.loads(self.exec(f"import json as _json; print(_json.dumps({expression}))").strip().splitlines()[-1])

    def desktop_info(self, var: str = "d") -> dict:
        """Through the public API only: the registry entry (``list_desktops``) has the socket and the supervisor."""
        entry = f'next(i for i in __import__("desktop_widget").list_desktops() if i.id == {var}.id)'
        return self.eval_json(
            f'{{"id": {var}.id, "env": {var}.env, "socket": {entry}.socket, "supervisor": {entry}.supervisor_pid}}'
        )

    def kernel_pid(self) -> int | None:
        for pid in tree(self.server.proc.pid):
            if "ipykernel_launcher" in " ".join(cmdline(pid)) and self.kernel_id in " ".join(cmdline(pid)):
                return pid
        return None

    def close(self) -> None:
        if self.kc is not None:
            with contextlib.suppress(Exception):
                self.kc.stop_channels()
        self.close_page()
        if self.kernel_id:
            with contextlib.suppress(Exception):
                api(self.server, f"api/kernels/{self.kernel_id}", "DELETE")


class Ours(Notebook):
    """Our JupyterLab (a server of its own) with the benchmark notebook (``CELLS``) open; ``d`` is its desktop."""

    def __init__(self, browser: Browser, workdir: Path, server_args: tuple[str, ...] = ()) -> None:
        runtime = Path(tempfile.mkdtemp(prefix="dwb-"))
        server = start_server(workdir, {"JUPYTER_RUNTIME_DIR": str(runtime)}, args=server_args)
        lab_setting(server, "@jupyterlab/apputils-extension:notification", {"fetchNews": "false"})
        # No autosave: a notebook reopened later must not bring back old views.
        lab_setting(server, "@jupyterlab/docmanager-extension:plugin", {"autosave": False})
        self.info: dict = {}
        self.server, self.runtime, self.page, self.kc, self.kernel_id = server, runtime, None, None, None
        try:
            super().__init__(browser, server, runtime, "bench.ipynb", CELLS)
            self.run_cell("setup")
            self.exec("pass")
        except BaseException:
            self.close()
            raise

    def desktop_info(self, var: str = "d") -> dict:
        self.info = super().desktop_info(var)
        return self.info

    @property
    def env(self) -> dict:
        return self.info["env"]

    @property
    def socket(self) -> str:
        return self.info["socket"]

    def desktop_pids(self) -> list[int]:
        return sorted(tree(self.info["supervisor"]))

    @property
    def server_pid(self) -> int:
        return self.server.proc.pid

    def stop_desktops(self) -> None:
        self.exec("if globals().get('d') is not None: d.stop()")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop_desktops()
        super().close()
        stop_server(self.server)
        shutil.rmtree(self.runtime, ignore_errors=True)


# -- upstream -------------------------------------------------------------------------------
class Upstream:
    """jupyter-remote-desktop-proxy 3.0.x in its own venv and server; its page at ``/desktop/``.

    jupyter-server-proxy starts ``vncserver`` when the page's WebSocket first
    arrives and never restarts it, so every cold start gets a new server.
    """

    def __init__(self, browser: Browser, workdir: Path) -> None:
        self.browser = browser
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.runtime = Path(tempfile.mkdtemp(prefix="dwu-"))
        self.xauthority = str(workdir / "Xauthority")
        Path(self.xauthority).touch()
        env = {"JUPYTER_RUNTIME_DIR": str(self.runtime), "XAUTHORITY": self.xauthority}
        self.server = start_server(workdir, env, bin_dir=UPSTREAM_VENV / "bin")
        self.page = None
        self.env: dict[str, str] = {}
        self.socket = ""

    def close_page(self) -> None:
        if self.page is not None:
            close_page(self.page)
            self.page = None

    def find_xvnc(self, timeout: float = 30) -> None:
        """Upstream's display and RFB socket, from its Xvnc's command line."""
        deadline = time.monotonic() + timeout
        while not self.socket:
            for pid in tree(self.server.proc.pid):
                args = cmdline(pid) if comm(pid) in ("Xvnc", "Xtigervnc") else []
                if "-rfbunixpath" in args and os.path.exists(args[args.index("-rfbunixpath") + 1]):
                    display = next(a for a in args if a.startswith(":"))
                    self.env = {"DISPLAY": display, "XAUTHORITY": self.xauthority}
                    self.socket = args[args.index("-rfbunixpath") + 1]
            if time.monotonic() > deadline:
                raise RuntimeError("upstream's Xvnc did not appear")
            time.sleep(0.05)

    def desktop_pids(self) -> list[int]:
        """vncserver, Xvnc and every process of the session, daemons that left the tree included.

        They all inherited the server's XAUTHORITY, which names a file of this run only.
        """
        server = self.server.proc.pid
        return sorted(p for p in ppid_table() if p != server and environ(p).get("XAUTHORITY") == self.xauthority)

    @property
    def server_pid(self) -> int:
        return self.server.proc.pid

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
