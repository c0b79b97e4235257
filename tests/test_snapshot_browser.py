"""The last frame in a real JupyterLab: shown when the desktop stops, and again after a kernel restart and reload."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from playwright.sync_api import expect

from tests._cells import DEMO, PINK, pixels_cell, write_notebook
from tests._frames import assert_frame_shows_window
from tests._notebook_page import NotebookPage, api, lab_setting, notebook_open, wait_kernel_idle
from tests._procs import wait_for
from tests.test_snapshot import assert_pink_window, saved_frame

pytestmark = pytest.mark.browser

PIXELS = pixels_cell("dw-test: pixels")
STOP = "# dw-test: stop\nd.stop()\nprint('STOPPED', d.status)"
CAPTION_STOPPED = re.compile(r"^Desktop stopped · last frame at \d\d:\d\d")
#: A desktop that was running when its kernel went: the view cannot connect, and says why after the frame
#: (not an endless "Connecting through the kernel…": no kernel answers a widget restored from the file).
CAPTION_GONE = re.compile(r"^Not live · last frame at \d\d:\d\d( [AP]M)? — The kernel behind this view has restarted")


DESKTOP = "from desktop_widget import Desktop"


@dataclass
class Lab:
    """A notebook page of the test (its cells: the desktop's first) and the server behind it."""

    nb: NotebookPage
    jupyter: object
    notebook: str

    @property
    def desktop_cell(self):
        return self.nb.cell(DESKTOP)


@pytest.fixture
def lab(request, jupyter, browser, artifacts):
    """JupyterLab with a notebook of the test's ``cells`` open (the desktop's cell first), widget state saved."""
    notebook, cells = request.param
    # JupyterLab keeps widget state in the notebook only with this setting on
    # (Settings > "Save Widget State Automatically").
    lab_setting(jupyter, "@jupyter-widgets/jupyterlab-manager:plugin", {"saveState": True})
    lab_setting(jupyter, "@jupyterlab/apputils-extension:notification", {"fetchNews": "false"})
    write_notebook(jupyter.root_dir / notebook, *cells)
    # Its own workspace (open_notebook), reset: no other test's notebook is open in it.
    with notebook_open(browser, jupyter, notebook, artifacts, query="reset") as nb:
        try:
            yield Lab(nb, jupyter, notebook)
        finally:
            nb.page.screenshot(path=str(artifacts / f"last-frame-last-{notebook}.png"))


def show_pink_window(lab: Lab) -> tuple[int, ...]:
    """Run the desktop's cell and the PINK window's; wait until the live canvas shows it."""
    lab.nb.run(DESKTOP)
    lab.nb.wait_connected(lab.nb.view(DESKTOP))
    lab.nb.wait_fits(lab.nb.canvas(DESKTOP))  # the view has sized the desktop: the cell sees the final size
    lab.nb.run("dw-test: pixels")
    window = lab.nb.shows_window(lab.nb.canvas(DESKTOP), lab.nb.output_of("dw-test: pixels", "WINDOW"), PINK)
    # Live: the frame layer is there but hidden.
    assert lab.desktop_cell.locator(".dw-root").get_attribute("data-frame") in ("hidden", "none")
    return window


def save_restart_reload(lab: Lab, window: tuple[int, ...]) -> None:
    """Save (the widget state goes into the notebook), restart the kernel, reload the page."""
    lab.nb.cell("dw-test: pixels").locator(".jp-InputArea-prompt").click()
    lab.nb.page.keyboard.press("Control+s")
    path = lab.jupyter.root_dir / lab.notebook
    wait_for(lambda: "_last_frame" in path.read_text(), 20, "the saved notebook's widget state with the frame")
    # JupyterLab saved it as a binary buffer (base64), the same form nbconvert writes.
    frame, _state = saved_frame(path)
    assert_pink_window(frame, window)
    kernel = next(s["kernel"]["id"] for s in api(lab.jupyter, "api/sessions") if s.get("path") == lab.notebook)
    api(lab.jupyter, f"api/kernels/{kernel}/restart", "POST")
    lab.nb.page.reload()
    wait_kernel_idle(lab.nb.page)


def assert_last_frame_shown(lab: Lab, window: tuple[int, ...], caption: re.Pattern, name: str) -> None:
    expect(lab.desktop_cell.locator(".dw-root")).to_have_attribute("data-frame", "shown", timeout=30_000)
    expect(lab.desktop_cell.locator(".dw-frame-caption")).to_have_text(caption)
    assert_frame_shows_window(lab.desktop_cell.locator(".dw-frame img"), window)
    lab.nb.screenshot(name, lab.desktop_cell)


@pytest.mark.parametrize("lab", [("dw-last-frame-stopped.ipynb", (DEMO, PIXELS, STOP))], indirect=True)
def test_stopped_desktop_shows_its_last_frame_also_after_kernel_restart_and_reload(lab):
    window = show_pink_window(lab)
    lab.nb.run("dw-test: stop")
    lab.nb.output_of("dw-test: stop", "STOPPED")
    assert_last_frame_shown(lab, window, CAPTION_STOPPED, "last-frame-1-stopped")
    # The tooltip no longer says "connected through the Jupyter server".
    assert "stopped" in lab.desktop_cell.locator(".dw-root").get_attribute("title")
    save_restart_reload(lab, window)
    assert_last_frame_shown(lab, window, CAPTION_STOPPED, "last-frame-2-reloaded")


@pytest.mark.parametrize("lab", [("dw-last-frame-running.ipynb", (DEMO, PIXELS))], indirect=True)
def test_desktop_left_running_shows_its_last_frame_after_kernel_restart_and_reload(lab):
    """No d.stop(): the desktop ends with its kernel; the frame is the one taken at the end of the last cell."""
    window = show_pink_window(lab)
    save_restart_reload(lab, window)
    assert_last_frame_shown(lab, window, CAPTION_GONE, "last-frame-3-kernel-gone")


@pytest.mark.parametrize("lab", [("dw-last-frame-restart.ipynb", (DEMO, PIXELS))], indirect=True)
def test_view_open_through_a_kernel_restart_says_so_and_stops_trying(lab):
    """Kernel > Restart with the view open: the last frame, captioned with the cause, no endless
    "Connecting through the kernel…" to a comm that no kernel answers any more."""
    window = show_pink_window(lab)
    page = lab.nb.page
    page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").click()
    page.get_by_text("Restart Kernel…", exact=True).click()
    page.locator(".jp-Dialog-button.jp-mod-accept").click()
    status = lab.desktop_cell.locator(".dw-status")
    expect(status).to_have_attribute("data-kind", "kernel-gone", timeout=30_000)
    assert_last_frame_shown(lab, window, CAPTION_GONE, "last-frame-4-kernel-restarted")
