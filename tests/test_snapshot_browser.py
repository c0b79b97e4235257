"""The last frame in a real JupyterLab: shown when the desktop stops, and again after a kernel restart and reload."""

from __future__ import annotations

import json
import re
import time

import pytest
from playwright.sync_api import expect

from tests._cells import DEMO, PINK, pixels_cell, write_notebook
from tests._frames import assert_frame_shows_window
from tests.test_browser import Lab, _api, _shutdown_kernels
from tests.test_snapshot import assert_pink_window, saved_frame

pytestmark = pytest.mark.browser

PIXELS = pixels_cell("dw-test: pixels")
STOP = "# dw-test: stop\nd.stop()\nprint('STOPPED', d.status)"
WINDOW = re.compile(r"WINDOW (\d+) (\d+) (\d+) (\d+) SCREEN (\d+) (\d+)")
CAPTION_STOPPED = re.compile(r"^Desktop stopped · last frame at \d\d:\d\d")
#: A desktop that was running when its kernel went: the view cannot connect, and says why after the frame.
CAPTION_GONE = re.compile(r"^Not live · last frame at \d\d:\d\d")


@pytest.fixture
def lab(request, jupyter, browser, artifacts):
    """JupyterLab with a notebook of the test's ``cells`` open (the desktop's cell first), widget state saved."""
    notebook, cells = request.param
    # JupyterLab keeps widget state in the notebook only with this setting on
    # (Settings > "Save Widget State Automatically").
    _api(
        jupyter,
        "lab/api/settings/@jupyter-widgets/jupyterlab-manager:plugin",
        "PUT",
        {"raw": json.dumps({"saveState": True})},
    )
    _api(
        jupyter,
        "lab/api/settings/@jupyterlab/apputils-extension:notification",
        "PUT",
        {"raw": json.dumps({"fetchNews": "false"})},
    )
    write_notebook(jupyter.root_dir / notebook, *cells)
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    # A workspace of its own, so that no other test's notebook is open in it too.
    workspace = notebook.removesuffix(".ipynb")
    page.goto(f"{jupyter.url}lab/workspaces/{workspace}/tree/{notebook}?reset&token={jupyter.token}", timeout=60_000)
    lab = Lab(page, artifacts, jupyter.root_dir / "unused.txt")
    lab.notebook = notebook
    lab.wait_kernel_idle = lambda: expect(page.locator('.jp-StatusBar-TextItem[title^="Change kernel"]')).to_have_text(
        re.compile(r"ipykernel.*\| Idle"), timeout=60_000
    )
    lab.wait_kernel_idle()
    try:
        yield lab
    finally:
        try:
            page.screenshot(path=str(artifacts / f"last-frame-last-{notebook}.png"))
        finally:
            context.close()
            _shutdown_kernels(jupyter, notebook)


def show_pink_window(lab: Lab) -> tuple[int, ...]:
    """Run the desktop's cell and the PINK window's; wait until the live canvas shows it."""
    lab.run("from desktop_widget import Desktop")
    lab.desktop_cell.locator('.dw-status[data-kind="connected"]').wait_for(state="attached", timeout=45_000)
    lab.run("dw-test: pixels")
    window = tuple(int(n) for n in WINDOW.search(lab.output_of("dw-test: pixels", "WINDOW")).groups())
    x, y, w, h, _, _ = window
    lab.wait_pixel(x + w // 2, y + h // 2, PINK)
    # Live: the frame layer is there but hidden.
    assert lab.desktop_cell.locator(".dw-root").get_attribute("data-frame") in ("hidden", "none")
    return window


def save_restart_reload(lab: Lab, jupyter, window: tuple[int, ...]) -> None:
    """Save (the widget state goes into the notebook), restart the kernel, reload the page."""
    lab.cell("dw-test: pixels").locator(".jp-InputArea-prompt").click()
    lab.page.keyboard.press("Control+s")
    path = jupyter.root_dir / lab.notebook
    deadline = time.monotonic() + 20
    while "_last_frame" not in path.read_text():
        assert time.monotonic() < deadline, "the saved notebook has no widget state with the frame"
        time.sleep(0.2)
    # JupyterLab saved it as a binary buffer (base64), the same form nbconvert writes.
    frame, _state = saved_frame(path)
    assert_pink_window(frame, window)
    kernel = next(s["kernel"]["id"] for s in _api(jupyter, "api/sessions") if s.get("path") == lab.notebook)
    _api(jupyter, f"api/kernels/{kernel}/restart", "POST")
    lab.page.reload()
    lab.wait_kernel_idle()


def assert_last_frame_shown(lab: Lab, window: tuple[int, ...], caption: re.Pattern, name: str) -> None:
    expect(lab.desktop_cell.locator(".dw-root")).to_have_attribute("data-frame", "shown", timeout=30_000)
    expect(lab.desktop_cell.locator(".dw-frame-caption")).to_have_text(caption)
    assert_frame_shows_window(lab.desktop_cell.locator(".dw-frame img"), window)
    lab.screenshot(name)


@pytest.mark.parametrize("lab", [("dw-last-frame-stopped.ipynb", (DEMO, PIXELS, STOP))], indirect=True)
def test_stopped_desktop_shows_its_last_frame_also_after_kernel_restart_and_reload(lab, jupyter):
    window = show_pink_window(lab)
    lab.run("dw-test: stop")
    lab.output_of("dw-test: stop", "STOPPED")
    assert_last_frame_shown(lab, window, CAPTION_STOPPED, "last-frame-1-stopped")
    save_restart_reload(lab, jupyter, window)
    assert_last_frame_shown(lab, window, CAPTION_STOPPED, "last-frame-2-reloaded")


@pytest.mark.parametrize("lab", [("dw-last-frame-running.ipynb", (DEMO, PIXELS))], indirect=True)
def test_desktop_left_running_shows_its_last_frame_after_kernel_restart_and_reload(lab, jupyter):
    """No d.stop(): the desktop ends with its kernel; the frame is the one taken at the end of the last cell."""
    window = show_pink_window(lab)
    save_restart_reload(lab, jupyter, window)
    assert_last_frame_shown(lab, window, CAPTION_GONE, "last-frame-3-kernel-gone")
