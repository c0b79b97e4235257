"""The last frame in a real JupyterLab: shown when the desktop stops, and again after a kernel restart and reload."""

from __future__ import annotations

import io
import json
import re
import time

import pytest
from PIL import Image
from playwright.sync_api import expect

from tests._cells import DEMO, PINK, near, pixels_cell, write_notebook
from tests.test_browser import Lab, _api, _shutdown_kernels

pytestmark = pytest.mark.browser

NOTEBOOK = "dw-last-frame.ipynb"
PIXELS = pixels_cell("dw-test: pixels")
STOP = "# dw-test: stop\nd.stop()\nprint('STOPPED', d.status)"
WINDOW = re.compile(r"WINDOW (\d+) (\d+) (\d+) (\d+) SCREEN (\d+) (\d+)")


def frame_pixels(lab: Lab) -> Image.Image:
    """What the view's last-frame image looks like on the page (a screenshot of the element)."""
    image = lab.desktop_cell.locator(".dw-frame img")
    image.evaluate("img => img.decode()")
    return Image.open(io.BytesIO(image.screenshot())).convert("RGB")


def image_rect(lab: Lab) -> dict:
    """Where the frame is drawn inside its <img> (object-fit: contain letterboxes it), in CSS pixels."""
    return lab.desktop_cell.locator(".dw-frame img").evaluate(
        """img => {
            const s = Math.min(img.clientWidth / img.naturalWidth, img.clientHeight / img.naturalHeight);
            const w = img.naturalWidth * s, h = img.naturalHeight * s;
            return {x: (img.clientWidth - w) / 2, y: (img.clientHeight - h) / 2, scale: s,
                    natural: [img.naturalWidth, img.naturalHeight]};
        }"""
    )


def assert_frame_shows_window(lab: Lab, window: tuple[int, ...]) -> None:
    x, y, w, h, screen_w, _screen_h = window
    shot = frame_pixels(lab)
    rect = image_rect(lab)
    # Screen pixels -> frame pixels -> CSS pixels of the element -> screenshot pixels.
    ratio = shot.width / lab.desktop_cell.locator(".dw-frame img").evaluate("img => img.clientWidth")
    per_screen_px = rect["natural"][0] / screen_w * rect["scale"] * ratio

    def at(px: float, py: float) -> tuple[int, int, int]:
        return shot.getpixel(
            (round(rect["x"] * ratio + px * per_screen_px), round(rect["y"] * ratio + py * per_screen_px))
        )

    assert near(at(x + w / 2, y + h / 2), PINK), at(x + w / 2, y + h / 2)
    for px, py in ((x - 15, y + h / 2), (x + w + 15, y + h / 2)):
        assert not near(at(px, py), PINK), f"({px}, {py}) is pink outside the window"


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
    assert_frame_shows_window(lab, window)
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
    assert_frame_shows_window(lab, window)
    lab.screenshot("last-frame-2-reloaded")
