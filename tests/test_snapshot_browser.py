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

pytestmark = pytest.mark.browser

NOTEBOOK = "dw-last-frame.ipynb"
PIXELS = pixels_cell("dw-test: pixels")
STOP = "# dw-test: stop\nd.stop()\nprint('STOPPED', d.status)"
WINDOW = re.compile(r"WINDOW (\d+) (\d+) (\d+) (\d+) SCREEN (\d+) (\d+)")


@pytest.fixture
def lab(jupyter, browser, artifacts):
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
    write_notebook(jupyter.root_dir / NOTEBOOK, DEMO, PIXELS, STOP)
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{jupyter.url}lab/tree/{NOTEBOOK}?token={jupyter.token}", timeout=60_000)
    lab = Lab(page, artifacts, jupyter.root_dir / "unused.txt")
    lab.wait_kernel_idle = lambda: expect(page.locator('.jp-StatusBar-TextItem[title^="Change kernel"]')).to_have_text(
        re.compile(r"ipykernel.*\| Idle"), timeout=60_000
    )
    lab.wait_kernel_idle()
    try:
        yield lab
    finally:
        try:
            page.screenshot(path=str(artifacts / "last-frame-last.png"))
        finally:
            context.close()
            _shutdown_kernels(jupyter, NOTEBOOK)


def kernel_id(jupyter) -> str:
    return next(s["kernel"]["id"] for s in _api(jupyter, "api/sessions") if s.get("path") == NOTEBOOK)


def test_stopped_desktop_shows_its_last_frame_also_after_kernel_restart_and_reload(lab, jupyter):
    lab.run("from desktop_widget import Desktop")
    lab.desktop_cell.locator('.dw-status[data-kind="connected"]').wait_for(state="attached", timeout=45_000)
    lab.run("dw-test: pixels")
    window = tuple(int(n) for n in WINDOW.search(lab.output_of("dw-test: pixels", "WINDOW")).groups())
    x, y, w, h, _, _ = window
    lab.wait_pixel(x + w // 2, y + h // 2, PINK)
    root = lab.desktop_cell.locator(".dw-root")
    # Live: the frame layer is there but hidden.
    assert root.get_attribute("data-frame") in ("hidden", "none")

    lab.run("dw-test: stop")
    lab.output_of("dw-test: stop", "STOPPED")
    expect(root).to_have_attribute("data-frame", "shown", timeout=15_000)
    caption = lab.desktop_cell.locator(".dw-frame-caption")
    expect(caption).to_have_text(re.compile(r"^Desktop stopped · last frame at \d\d:\d\d"))
    assert_frame_shows_window(lab.desktop_cell.locator(".dw-frame img"), window)
    lab.screenshot("last-frame-1-stopped")

    # Save (the widget state goes into the notebook), restart the kernel, reload the page.
    lab.cell("dw-test: stop").locator(".jp-InputArea-prompt").click()
    lab.page.keyboard.press("Control+s")
    path = jupyter.root_dir / NOTEBOOK
    deadline = time.monotonic() + 20
    while "_last_frame" not in path.read_text():
        assert time.monotonic() < deadline, "the saved notebook has no widget state with the frame"
        time.sleep(0.2)
    _api(jupyter, f"api/kernels/{kernel_id(jupyter)}/restart", "POST")
    lab.page.reload()
    lab.wait_kernel_idle()
    expect(root).to_have_attribute("data-frame", "shown", timeout=30_000)
    expect(caption).to_have_text(re.compile(r"^Desktop stopped · last frame at \d\d:\d\d"))
    assert_frame_shows_window(lab.desktop_cell.locator(".dw-frame img"), window)
    lab.screenshot("last-frame-2-reloaded")
