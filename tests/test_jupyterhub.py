"""End to end under a real JupyterHub: log in, start a server, a desktop in a notebook cell, the launcher page.

The hub is the stock one from PyPI with configurable-http-proxy from npm
(tests/hub/, installed by ``./run``), a shared-password login and the simple
local process spawner (single-user servers run as the hub's own user). Its
configuration is tests/hub/jupyterhub_config.py; its database, secrets, pid
files, the user's home and notebooks all live in the test's tmp_path, and
every port is a free one on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests._cells import DEMO, PINK, pixels_cell, write_notebook
from tests._notebook_page import NotebookPage, shows_window, wait_canvas_fits, wait_kernel_idle
from tests._procs import alive, tree, wait_gone

pytestmark = pytest.mark.browser

HERE = Path(__file__).parent
CONFIG = HERE / "hub" / "jupyterhub_config.py"
CHP = HERE / "hub" / "node_modules" / ".bin" / "configurable-http-proxy"
BIN = Path(sys.executable).parent
USER = "alice"
NOTEBOOK = "dw-hub.ipynb"
GREEN = (51, 204, 102)

DESKTOP = "from desktop_widget import Desktop"
PIXELS = pixels_cell("dw-hub: pixels")
#: The launcher's desktop, scripted from the same kernel: a window of another colour on it.
LAUNCHER = """\
# dw-hub: launcher
launcher = Desktop.attach("launcher")
os.environ.update(launcher.env)
ld = Xlib.display.Display(launcher.display)
lscreen = ld.screen()
W, H = lscreen.width_in_pixels, lscreen.height_in_pixels
x, y, w, h = W // 2 - 60, H // 2 - 40, 120, 80
green = lscreen.root.create_window(
    x, y, w, h, 0, lscreen.root_depth, Xlib.X.InputOutput, Xlib.X.CopyFromParent,
    background_pixel=0x33CC66, override_redirect=True,
)
green.map()
ld.sync()
print("LAUNCHER", launcher.display, x, y, w, h, "SCREEN", W, H)
"""


def _free_ports(n: int) -> list[int]:
    """``n`` different free ports on 127.0.0.1 (held open together, so no two are the same)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [part.decode(errors="replace") for part in f.read().split(b"\0") if part]
    except OSError:
        return []


def _xvncs(runtime_dir: str) -> set[int]:
    """Every live Xvnc whose socket is in ``runtime_dir`` (this test's desktops, whoever started them)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and alive(int(entry)):
            cmd = _cmdline(int(entry))
            if cmd and os.path.basename(cmd[0]) == "Xvnc" and any(runtime_dir in arg for arg in cmd):
                found.add(int(entry))
    return found


@dataclass
class Hub:
    url: str  # http://127.0.0.1:PORT/ (the proxy, the only public address)
    password: str
    proc: subprocess.Popen
    log: Path
    notebooks: Path
    runtime_dir: str
    #: Every process seen under the hub (proxy, single-user server, kernel, desktops):
    #: the safety net kills any of these that outlive the test, by pid.
    seen: set[int] = field(default_factory=set)

    def processes(self) -> set[int]:
        pids = tree(self.proc.pid)
        self.seen |= pids
        return pids

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> int:
        """SIGTERM, as a service manager would: the hub stops the proxy (and any server still running)."""
        self.processes()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


@pytest.fixture
def hub(tmp_path, artifacts):
    if not os.access(CHP, os.X_OK):
        pytest.fail(f"configurable-http-proxy is not installed: run `npm ci --prefix {HERE / 'hub'}` (./run does)")
    state = tmp_path / "hub"
    notebooks = tmp_path / "notebooks"
    state.mkdir()
    notebooks.mkdir()
    # The user's JupyterLab settings (in the home the spawner gives them): no news pop-up over the screenshots.
    settings = state / "home" / USER / ".jupyter" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    runtime_dir = tempfile.mkdtemp(prefix="dw-hub-")  # short: unix socket paths are
    port, api_port, proxy_api_port = _free_ports(3)
    password = secrets.token_urlsafe(12)
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DW_HUB_DIR": str(state),
        "DW_HUB_PORT": str(port),
        "DW_HUB_API_PORT": str(api_port),
        "DW_HUB_PROXY_API_PORT": str(proxy_api_port),
        "DW_HUB_CHP": str(CHP),
        "DW_HUB_PASSWORD": password,
        "DW_HUB_USER": USER,
        "DW_HUB_SINGLEUSER": str(BIN / "jupyterhub-singleuser"),
        "DW_HUB_NOTEBOOKS": str(notebooks),
        "DW_HUB_RUNTIME_DIR": runtime_dir,
    }
    log = tmp_path / "jupyterhub.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "jupyterhub"), "-f", str(CONFIG)],
            cwd=state,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    hub = Hub(f"http://127.0.0.1:{port}/", password, proc, log, notebooks, runtime_dir)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{hub.url}hub/api", timeout=2) as r:
                    if r.status == 200 and "version" in json.loads(r.read()):
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"JupyterHub did not start:\n{hub.log_tail()}")
            time.sleep(0.2)
        yield hub
    finally:
        hub.stop()
        # The safety net: nothing the hub started outlives the test, whatever failed.
        for pid in wait_gone(hub.seen, 10):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.copy(log, artifacts / "hub-jupyterhub.log")
        shutil.rmtree(runtime_dir, ignore_errors=True)


def test_desktop_in_a_notebook_and_the_launcher_page_under_jupyterhub(hub, browser, artifacts):
    write_notebook(hub.notebooks / NOTEBOOK, DEMO, PIXELS, LAUNCHER)
    user_url = f"{hub.url}user/{USER}/"
    timings: dict[str, float] = {}
    start = time.monotonic()

    def mark(name: str) -> None:
        timings[name] = round(time.monotonic() - start, 2)

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    launcher = None
    console: list[str] = []
    sockets: list[str] = []
    context.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    context.on("weberror", lambda e: console.append(f"pageerror: {e.error}"))
    page.on("websocket", lambda ws: sockets.append(ws.url))
    try:
        # -- log in through the hub's form (a wrong password first: the password is checked) --
        page.goto(f"{hub.url}hub/login?next=%2Fhub%2Fhome", timeout=60_000)
        page.locator("#username_input").fill(USER)
        page.locator("#password_input").fill("not-the-password")
        page.locator("#login_submit").click()
        expect(page.locator("p.login_error")).to_contain_text("Invalid", timeout=15_000)
        page.locator("#username_input").fill(USER)
        page.locator("#password_input").fill(hub.password)
        page.locator("#login_submit").click()
        page.wait_for_url(f"{hub.url}hub/home", timeout=30_000)
        mark("logged_in_s")

        # -- start the server from the hub's home page: JupyterLab under /user/alice/ --
        page.locator("#start").click()
        page.wait_for_url(f"{user_url}lab**", timeout=150_000)
        mark("server_started_s")
        # The desktop's launcher tile is there.
        expect(page.locator(".jp-LauncherCard", has_text="Desktop")).to_be_visible(timeout=60_000)
        mark("lab_launcher_s")

        # -- a desktop in a notebook cell --
        page.goto(f"{user_url}lab/tree/{NOTEBOOK}", timeout=60_000)
        # A cell run before the kernel is connected is silently dropped.
        wait_kernel_idle(page)
        mark("kernel_idle_s")
        nb = NotebookPage(page, artifacts)
        demo = nb.cell(DESKTOP)
        canvas = nb.canvas(DESKTOP)
        nb.run(DESKTOP)
        nb.wait_connected(nb.view(DESKTOP), timeout=60)
        mark("desktop_connected_s")
        assert page.url.startswith(f"{user_url}lab/"), page.url
        # The view's WebSocket went through the hub's proxy to this user's server.
        routes = [url for url in sockets if "/desktop-widget/" in url]
        assert routes, sockets
        for url in routes:
            assert re.fullmatch(rf"ws://127\.0\.0\.1:\d+/user/{USER}/desktop-widget/[0-9a-f]{{12}}/", url), url
        nb.wait_fits(canvas, timeout=20)
        # Real pixels: an override-redirect X window of an unusual colour, mapped from the kernel.
        nb.run("dw-hub: pixels")
        nb.shows_window(canvas, nb.output_of("dw-hub: pixels", "WINDOW"), PINK)
        mark("notebook_pixels_s")
        demo.locator(".dw-root").evaluate("root => root.scrollIntoView({block: 'start'})")
        page.mouse.move(1, 1)
        page.screenshot(path=str(artifacts / "hub-1-notebook.png"))

        # -- the launcher tile's page: its own desktop, and a link back to the hub --
        launcher = context.new_page()
        launcher.goto(f"{user_url}desktop/", timeout=60_000)
        expect(launcher.locator(".dw-status")).to_have_attribute("data-kind", "connected", timeout=60_000)
        mark("launcher_connected_s")
        assert launcher.url == f"{user_url}desktop/"
        hub_link = launcher.locator(".dw-links a", has_text="Hub Control Panel")
        expect(hub_link).to_have_attribute("href", "/hub/home")
        launcher_canvas = launcher.locator(".dw-screen canvas")
        wait_canvas_fits(launcher_canvas, timeout=20)
        # The notebook's kernel attaches to the launcher's desktop and draws on it; the page shows it.
        page.bring_to_front()
        nb.run("dw-hub: launcher")
        output = nb.output_of("dw-hub: launcher", "LAUNCHER")
        launcher.bring_to_front()
        shows_window(launcher_canvas, output, GREEN)
        mark("launcher_pixels_s")
        launcher.mouse.move(1, 1)
        launcher.screenshot(path=str(artifacts / "hub-2-launcher.png"))
        assert len(_xvncs(hub.runtime_dir)) == 2, "the notebook's and the launcher's desktops"

        # The link leads to the hub's home page, where the server is stopped.
        hub_link.click()
        launcher.wait_for_url(f"{hub.url}hub/home", timeout=30_000)
        stop = launcher.locator("#stop")
        expect(stop).to_be_visible(timeout=15_000)
        launcher.screenshot(path=str(artifacts / "hub-3-home.png"))

        # -- stop the server: its kernel, both desktops and every X process go --
        singleuser = {pid for pid in hub.processes() if any("jupyterhub-singleuser" in a for a in _cmdline(pid)[:2])}
        assert len(singleuser) == 1, singleuser
        server_tree = tree(next(iter(singleuser)))
        assert _xvncs(hub.runtime_dir) <= server_tree, "a desktop outside the user's server"
        stop.click()
        expect(stop).to_be_hidden(timeout=60_000)
        expect(launcher.locator("#start")).to_contain_text("Start My Server", timeout=30_000)
        left = wait_gone(server_tree, 30)
        assert not left, f"still running after the server stopped: {[_cmdline(p) for p in left]}"
        assert _xvncs(hub.runtime_dir) == set()
        assert list((Path(hub.runtime_dir) / "desktop-widget").glob("*.json")) == [], "registry entries left"
        mark("server_stopped_s")

        # -- stop the hub: the proxy goes with it, and no Xvnc of this test remains --
        everything = hub.processes()
        assert hub.stop() == 0, hub.log_tail()
        assert wait_gone(everything, 15) == set()
        assert _xvncs(hub.runtime_dir) == set()
        mark("hub_stopped_s")
    finally:
        (artifacts / "hub-console.log").write_text("\n".join(console))
        (artifacts / "hub-timings.json").write_text(json.dumps(timings, indent=1))
        for name, p in (("hub-last.png", page), ("hub-last-launcher.png", launcher)):
            if p is not None and not p.is_closed():
                p.screenshot(path=str(artifacts / name))
        context.close()
