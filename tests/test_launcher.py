"""The launcher tile and its full-page desktop, in a real JupyterLab and Chromium."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from playwright.sync_api import expect

from desktop_widget import Desktop, _registry
from tests._jupyter import start_jupyter, stop_jupyter
from tests._procs import tree, wait_gone

pytestmark = pytest.mark.browser


def _get(server, path: str) -> dict:
    request = urllib.request.Request(server.api(path), headers={"Authorization": f"token {server.token}"})
    return json.loads(urllib.request.urlopen(request, timeout=15).read())


@pytest.fixture
def server(tmp_path):
    s = start_jupyter(tmp_path)  # under a JupyterHub-like /jh/user/alice/ prefix
    yield s
    stop_jupyter(s)


def test_launcher_page_shows_the_desktop_and_kernels_can_script_it(server, browser, artifacts, tmp_path):
    entries = _get(server, "server-proxy/servers-info")["server_processes"]
    tile = next(e for e in entries if e["launcher_entry"]["title"] == "Desktop")
    assert tile["launcher_entry"]["path_info"] == "desktop/"

    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    try:
        # The tile in JupyterLab's launcher...
        page.goto(f"{server.url}lab?token={server.token}", timeout=60_000)
        card = page.locator(".jp-LauncherCard", has_text="Desktop")
        expect(card).to_be_visible(timeout=60_000)
        # ...opens the page in a new tab; follow it there.
        with context.expect_page(timeout=30_000) as opened:
            card.click()
        desktop_page = opened.value
        expect(desktop_page.locator(".dw-status")).to_have_attribute("data-kind", "connected", timeout=60_000)
        assert desktop_page.url.endswith("/jh/user/alice/desktop/")
        info = _registry.find("launcher")
        assert info is not None

        # A kernel (here: this process) attaches by name and scripts it; the page shows it.
        attached = Desktop.attach("launcher")
        out = tmp_path / "typed.txt"
        app = attached.launch(["xterm", "-bg", "#ffffff", "-geometry", "50x5+20+20", "-e", "sh", "-c", f"cat > {out}"])
        window = attached.wait_for_window(pid=app.pid)
        window.activate()
        attached.type("typed from a kernel\n")
        deadline = time.monotonic() + 10
        while not (out.exists() and out.read_text() == "typed from a kernel\n"):
            assert time.monotonic() < deadline, out.read_text() if out.exists() else "nothing typed"
            time.sleep(0.05)
        x, y, w, h = window.geometry
        canvas = desktop_page.locator(".dw-screen canvas")
        desktop_page.wait_for_function(
            """([c, x, y]) => { const p = c.getContext('2d').getImageData(x, y, 1, 1).data;
                               return p[0] > 240 && p[1] > 240 && p[2] > 240; }""",
            arg=[canvas.element_handle(), x + w - 10, y + h - 10],
            timeout=15_000,
        )
        desktop_page.screenshot(path=str(artifacts / "launcher-page.png"))

        # The page survives closing: a new visit finds the same desktop.
        desktop_page.close()
        again = context.new_page()
        again.goto(f"{server.url}desktop/?token={server.token}")
        expect(again.locator(".dw-status")).to_have_attribute("data-kind", "connected", timeout=30_000)
        assert _registry.find("launcher").id == info.id

        # Clipboard box -> desktop.
        again.locator(".dw-clipboard").fill("pasted in the page")
        again.locator(".dw-clipboard").dispatch_event("change")
        deadline = time.monotonic() + 10
        while attached.clipboard != "pasted in the page":
            assert time.monotonic() < deadline, attached.clipboard
            time.sleep(0.1)

        # Stop from the toolbar: everything goes. The stop's answer is held back until the view
        # has found out by itself (its WebSocket closed, the reconnect's probe got the route's
        # 404): a desktop it was served is stopped, not "elsewhere" -- and the page's own
        # update afterwards keeps it so.
        held = []
        again.route("**/desktop/api/stop", lambda route: held.append((route, route.fetch())))
        gone = []
        again.on(
            "response",
            lambda r: (
                gone.append(r)
                if r.request.resource_type == "fetch" and f"desktop-widget/{info.id}/" in r.url and r.status == 404
                else None
            ),
        )
        pids = tree(info.supervisor_pid)
        again.locator(".dw-power").click()
        deadline = time.monotonic() + 30
        while not (held and gone):
            assert time.monotonic() < deadline, f"stop answered: {bool(held)}, probe answered 404: {bool(gone)}"
            again.wait_for_timeout(50)
        expect(again.locator(".dw-status")).to_have_attribute("data-kind", "stopped")
        expect(again.locator(".dw-status")).to_have_text("This desktop is stopped.")
        route, response = held[0]
        route.fulfill(response=response)
        expect(again.locator(".dw-state")).to_have_text("stopped", timeout=15_000)
        assert wait_gone(pids, 5) == set()
        assert _registry.find("launcher") is None
        expect(again.locator(".dw-status")).to_have_attribute("data-kind", "stopped")
        again.screenshot(path=str(artifacts / "launcher-page-stopped.png"))
        # And it starts again.
        again.locator(".dw-power").click()
        expect(again.locator(".dw-status")).to_have_attribute("data-kind", "connected", timeout=30_000)
    finally:
        context.close()


def test_server_shutdown_stops_the_launcher_desktop(server, browser):
    page = browser.new_page()
    try:
        page.goto(f"{server.url}desktop/?token={server.token}", timeout=60_000)
        expect(page.locator(".dw-status")).to_have_attribute("data-kind", "connected", timeout=60_000)
    finally:
        page.close()
    info = _registry.find("launcher")
    pids = tree(info.supervisor_pid)
    assert len(pids) >= 3
    stop_jupyter(server)
    assert wait_gone(pids, 5) == set()
    assert _registry.find("launcher") is None


def test_page_needs_login(server):
    request = urllib.request.Request(server.api("desktop/api/state"))
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=10)
    assert err.value.code == 403
    assert _registry.find("launcher") is None  # an anonymous visit starts nothing


def test_launcher_idle_timeout_frees_everything(tmp_path, browser):
    config = tmp_path / "config"
    config.mkdir()
    (config / "jupyter_server_config.json").write_text(json.dumps({"DesktopWidget": {"launcher_idle_timeout": 4}}))
    server = start_jupyter(tmp_path)  # JUPYTER_CONFIG_DIR is tmp_path/config
    page = browser.new_page()
    try:
        page.goto(f"{server.url}desktop/?token={server.token}", timeout=60_000)
        expect(page.locator(".dw-status")).to_have_attribute("data-kind", "connected", timeout=60_000)
        info = _registry.find("launcher")
        pids = tree(info.supervisor_pid)
        # Longer than the idle timeout; the server marks use once a second while a view is connected,
        # so only a stall of 3 s could make this flake (a 2 s timeout raced that touch).
        time.sleep(5)
        assert _registry.find("launcher") is not None, "a connected view keeps the desktop in use"
        page.goto("about:blank")  # nobody looks any more
        assert wait_gone(pids, 15) == set()
        assert _registry.find("launcher") is None
        page.goto(f"{server.url}desktop/?token={server.token}")  # a new visit starts a new one
        expect(page.locator(".dw-status")).to_have_attribute("data-kind", "connected", timeout=60_000)
        assert _registry.find("launcher").id != info.id
    finally:
        page.close()
        stop_jupyter(server)
