"""End to end in a real browser: JupyterLab, a notebook, a desktop in a cell.

One notebook and one kernel serve the whole module; the tests run in order
and each builds on the state the previous one left (the desktop, the window
of known colour, the xterm).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests._cells import DEMO, PINK, pixels_cell, write_notebook
from tests._notebook_page import NotebookPage, lab_setting, notebook_open

pytestmark = pytest.mark.browser

NOTEBOOK = "dw-browser.ipynb"
TYPED = "hello desktop"


PIXELS = pixels_cell("dw-test: pixels")

XTERM = """\
# dw-test: xterm
import subprocess, time
out = {out!r}
term = subprocess.Popen(
    ["xterm", "-geometry", "80x10+0+0", "-e", "sh", "-c", f"exec cat > {{out}}"],
    env={{**os.environ, **d.env}},
)

def find_xterm(window):
    for child in window.query_tree().children:
        cls = child.get_wm_class()
        if cls and "xterm" in cls[0].lower() and child.get_attributes().map_state == Xlib.X.IsViewable:
            return child
        found = find_xterm(child)
        if found:
            return found
    return None

deadline = time.monotonic() + 20
while (win := find_xterm(screen.root)) is None:
    assert time.monotonic() < deadline, "xterm did not map"
    time.sleep(0.05)
geometry = win.get_geometry()
origin = screen.root.translate_coords(win, 0, 0)
print("XTERM", origin.x, origin.y, geometry.width, geometry.height)
"""

VIEW_SIZE = """\
# dw-test: view-size
from desktop_widget.kernel import _lifecycle
print("VIEW", d.view._view_size, "NEXT", _lifecycle.last_view_size)
"""

RESIZE = """\
# dw-test: resize
d.resize(1024, 768)
print("RESIZED", d.size)
"""

CLIP_SET = """\
# dw-test: clip-set
import sys
clip_app = d.launch([sys.executable, "-c", "import tkinter as tk; r = tk.Tk(); r.clipboard_clear(); "
                     "r.clipboard_append('copied in an X app'); r.update(); r.after(60000, r.destroy); r.mainloop()"])
print("LAUNCHED")
"""

CLIP_READ = """\
# dw-test: clip-read
print("VIEW-CLIPBOARD", repr(d.view.clipboard))
"""

LOGOUT = """\
# dw-test: logout
import signal

def session_wm(display):
    \"\"\"The openbox of this desktop (processes may vanish while we look).\"\"\"
    for entry in os.listdir("/proc"):
        try:
            if open(f"/proc/{entry}/comm").read().strip() != "openbox":
                continue
            if f"DISPLAY={display}\\0".encode() in open(f"/proc/{entry}/environ", "rb").read():
                yield int(entry)
        except (OSError, ValueError):
            continue

wm = list(session_wm(d.display))
for pid in wm:
    os.kill(pid, signal.SIGTERM)
print("KILLED", len(wm))
"""

RESTART = """\
# dw-test: restart
import time
d.restart()
deadline = time.monotonic() + 10
while d.status != "running" and time.monotonic() < deadline:
    time.sleep(0.05)
print("STATUS", d.status)
"""

STOP = """\
# dw-test: stop
d.stop()
print("STOPPED", d.status)
"""


def write_test_notebook(path: Path, typed_path: Path) -> None:
    filler = "\n\n".join(f"Filler paragraph {i}: the notebook must be taller than the window." for i in range(60))
    write_notebook(
        path,
        DEMO,
        PIXELS,
        XTERM.format(out=str(typed_path)),
        VIEW_SIZE,
        RESIZE,
        CLIP_SET,
        CLIP_READ,
        LOGOUT,
        RESTART,
        STOP,
        markdown="# The end of the notebook\n\n" + filler,
    )


@dataclass
class Lab(NotebookPage):
    """The module's notebook: the desktop's cell, the xterm in it and what was typed."""

    typed_path: Path
    timings: dict[str, float] = field(default_factory=dict)
    xterm: tuple[int, int, int, int] | None = None

    @property
    def desktop_cell(self):
        return self.cell("from desktop_widget import Desktop")

    @property
    def screen(self):
        """The desktop's canvas."""
        return self.canvas("from desktop_widget import Desktop")

    @property
    def status(self):
        return self.desktop_cell.locator(".dw-status")

    def cell_count(self) -> int:
        return self.page.locator(".jp-Notebook .jp-Cell").count()

    def view_focused(self) -> bool:
        return self.desktop_cell.locator(".dw-root").evaluate("root => root.contains(document.activeElement)")

    def focus_view(self) -> None:
        """Click into the xterm inside the canvas: the view takes the keyboard, the xterm the X focus."""
        x, y, w, h = self.xterm
        self.screen.click(position={"x": x + w // 2, "y": y + h // 2})
        self.page.wait_for_function(
            "root => root.contains(document.activeElement) && root.classList.contains('dw-focused')",
            arg=self.desktop_cell.locator(".dw-root").element_handle(),
            timeout=10_000,
        )

    def unfocus_view(self) -> None:
        """Click on another cell's prompt: the notebook is in command mode and the view loses focus."""
        self.cell("dw-test: stop").locator(".jp-InputArea-prompt").click()
        self.page.wait_for_function(
            "root => !root.contains(document.activeElement)",
            arg=self.desktop_cell.locator(".dw-root").element_handle(),
            timeout=10_000,
        )

    def screenshot(self, name: str, element=None) -> Path:
        """A picture of the whole notebook page with the desktop's cell at the top."""
        self.desktop_cell.locator(".dw-root").evaluate("root => root.scrollIntoView({block: 'start'})")
        self.page.mouse.move(1, 1)  # no hover effects in the picture
        path = self.artifacts / f"browser-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def wait_typed(self, expected: str, timeout: float = 15, hint=lambda: "") -> None:
        """Wait for the xterm's ``cat`` to have written exactly ``expected``."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.typed_path.read_text() if self.typed_path.exists() else None
            if text == expected:
                return
            if time.monotonic() > deadline:
                pytest.fail(f"the xterm wrote {text!r} to {self.typed_path}, not {expected!r}. {hint()}")
            time.sleep(0.05)


@pytest.fixture(scope="module")
def lab(jupyter, browser, artifacts):
    """JupyterLab with the test notebook open; its kernel is shut down at the end."""
    typed_path = jupyter.root_dir / "typed.txt"
    typed_path.unlink(missing_ok=True)
    write_test_notebook(jupyter.root_dir / NOTEBOOK, typed_path)
    # No "get notified about official Jupyter news?" toast over the screenshots.
    lab_setting(jupyter, "@jupyterlab/apputils-extension:notification", {"fetchNews": "false"})
    with notebook_open(browser, jupyter, NOTEBOOK, artifacts, "browser-console.log") as nb:
        lab = Lab(nb.page, artifacts, typed_path)
        try:
            yield lab
        finally:
            # What the page showed last, for a failure's post-mortem.
            (artifacts / "browser-timings.json").write_text(json.dumps(lab.timings, indent=1))
            lab.page.screenshot(path=str(artifacts / "browser-last.png"))
            outputs = lab.page.locator(".jp-Notebook .jp-OutputArea").all_inner_texts()
            (artifacts / "browser-outputs.txt").write_text("\n---\n".join(outputs))


def test_demo_cell_connects(lab):
    start = time.monotonic()
    lab.run("from desktop_widget import Desktop")
    lab.screen.wait_for(state="attached", timeout=45_000)
    lab.timings["run_to_canvas_s"] = round(time.monotonic() - start, 3)
    lab.desktop_cell.locator('.dw-status[data-kind="connected"]').wait_for(state="attached", timeout=45_000)
    lab.timings["run_to_connected_s"] = round(time.monotonic() - start, 3)
    # The primary view sizes the remote screen to itself (noVNC resizeSession).
    lab.wait_fits(lab.screen)
    lab.timings["run_to_resized_s"] = round(time.monotonic() - start, 3)
    box = lab.screen.bounding_box()
    assert box["width"] > 600, box
    assert box["height"] > 400, box
    lab.screenshot("1-connected")


def test_pixels_of_an_x_window_reach_the_canvas(lab):
    lab.run("dw-test: pixels")
    lab.shows_window(lab.screen, lab.output_of("dw-test: pixels", "WINDOW"), PINK)
    lab.screenshot("2-pink-window")


def test_typing_reaches_an_x_app(lab):
    lab.run("dw-test: xterm")
    text = lab.output_of("dw-test: xterm", "XTERM")
    lab.xterm = tuple(int(n) for n in re.search(r"XTERM (\d+) (\d+) (\d+) (\d+)", text).groups())
    x, y, w, h = lab.xterm
    # xterm's background is white: wait until the canvas shows the window.
    lab.wait_pixel(lab.screen, x + w - 20, y + h // 2, (255, 255, 255))
    lab.focus_view()
    cells = lab.cell_count()
    lab.page.keyboard.type(TYPED)
    lab.page.keyboard.press("Enter")
    lab.wait_typed(TYPED + "\n")
    assert lab.view_focused(), "the notebook took the focus back from the view"
    assert lab.cell_count() == cells, "keys typed into the view also acted on the notebook"
    lab.screenshot("3-typed")


def test_keys_in_the_view_are_not_notebook_shortcuts(lab):
    lab.focus_view()
    before = lab.cell_count()
    lab.page.keyboard.press("a")
    lab.page.keyboard.press("b")
    lab.page.keyboard.press("Enter")
    # Once the xterm has the line, JupyterLab has long handled (or ignored) the keys.
    lab.wait_typed(f"{TYPED}\nab\n", hint=lambda: f"cells: {before} before the keys, {lab.cell_count()} after")
    assert lab.cell_count() == before, "a key typed in the view ran a notebook shortcut"

    # Control: the same key in command mode, view not focused, inserts a cell.
    lab.unfocus_view()
    lab.page.keyboard.press("a")
    lab.page.wait_for_function(
        "n => document.querySelectorAll('.jp-Notebook .jp-Cell').length === n", arg=before + 1, timeout=10_000
    )


#: Finds the element that scrolls the notebook (the nearest scrollable ancestor
#: of the view), remembers it as window.__dwScroller and returns its scrollTop.
SCROLLER = """
root => {
    let el = root.parentElement;
    while (el && !(el.scrollHeight > el.clientHeight + 10 && /(auto|scroll)/.test(getComputedStyle(el).overflowY))) {
        el = el.parentElement;
    }
    window.__dwScroller = el;
    return el ? el.scrollTop : null;
}
"""


def test_wheel_over_an_unfocused_view_scrolls_the_notebook(lab):
    root = lab.desktop_cell.locator(".dw-root")
    page = lab.page
    # Remember every wheel event (a capturing listener on window sees it first)
    # to tell afterwards whether anything cancelled it.
    page.evaluate("() => window.addEventListener('wheel', e => { window.__dwWheel = e; }, {capture: true})")
    x, y, w, h = lab.xterm

    def wheel_over_the_xterm() -> int:
        # The view at the top of the notebook's window, with room to scroll down.
        root.evaluate("root => root.scrollIntoView({block: 'start'})")
        before = root.evaluate(SCROLLER)
        assert before is not None, "no scrolling container around the view"
        # Over the xterm: on the bare root window openbox would switch workspaces.
        box = lab.screen.bounding_box()
        page.mouse.move(box["x"] + x + w // 2, box["y"] + y + h // 2)
        page.evaluate("() => { window.__dwWheel = null; }")
        page.mouse.wheel(0, 240)
        page.wait_for_function("() => window.__dwWheel !== null", timeout=10_000)
        return before

    # Control: a focused view takes the wheel for the desktop (noVNC cancels
    # it) and the notebook stays put.
    lab.focus_view()
    before = wheel_over_the_xterm()
    page.wait_for_function("() => window.__dwWheel.defaultPrevented", timeout=10_000)
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    assert page.evaluate("() => window.__dwScroller.scrollTop") == before, "the notebook scrolled under a focused view"

    # Not focused: the wheel is left alone and scrolls the notebook.
    lab.unfocus_view()
    before = wheel_over_the_xterm()
    page.wait_for_function("before => window.__dwScroller.scrollTop > before", arg=before, timeout=10_000)
    assert not page.evaluate("() => window.__dwWheel.defaultPrevented"), "the wheel was cancelled"
    page.screenshot(path=str(lab.artifacts / "browser-5-scrolled.png"))


def test_the_kernel_learns_the_view_size(lab):
    """So that the next Desktop() starts at the view's size instead of being resized (and redrawn)."""
    size = lab.screen.evaluate("c => [c.width, c.height]")
    lab.run("dw-test: view-size")
    text = lab.output_of("dw-test: view-size", "VIEW")
    assert f"VIEW {size} NEXT [{tuple(size)}]" in text, (size, text)


def test_resize_from_python_reaches_the_canvas(lab):
    lab.run("dw-test: resize")
    assert "RESIZED (1024, 768)" in lab.output_of("dw-test: resize", "RESIZED")
    lab.page.wait_for_function(
        "c => c.width === 1024 && c.height === 768", arg=lab.screen.element_handle(), timeout=10_000
    )
    # The view now scales the desktop to fit instead of resizing it back.
    box = lab.screen.bounding_box()
    assert box["width"] <= lab.desktop_cell.locator(".dw-screen").bounding_box()["width"] + 1
    lab.screenshot("6-resized")


def test_clipboard_of_an_x_app_reaches_the_kernel(lab):
    lab.run("dw-test: clip-set")
    lab.output_of("dw-test: clip-set", "LAUNCHED")
    # The kernel learns it from the view (noVNC's clipboard event): ask until it has.
    deadline = time.monotonic() + 20
    while True:
        lab.run("dw-test: clip-read")
        text = lab.output_of("dw-test: clip-read", "VIEW-CLIPBOARD")
        if "'copied in an X app'" in text:
            break
        assert time.monotonic() < deadline, text
        lab.page.wait_for_timeout(300)


def test_logout_is_shown_and_restart_recovers(lab):
    lab.run("dw-test: logout")
    assert "KILLED 1" in lab.output_of("dw-test: logout", "KILLED")
    status = lab.desktop_cell.locator('.dw-status[data-kind="session-exited"]')
    status.wait_for(state="attached", timeout=15_000)
    assert "restart" in status.text_content()
    lab.screenshot("7-session-exited")
    lab.run("dw-test: restart")
    assert "STATUS running" in lab.output_of("dw-test: restart", "STATUS")
    lab.desktop_cell.locator('.dw-status[data-kind="connected"]').wait_for(state="attached", timeout=15_000)


def test_stop_shows_the_stopped_status(lab):
    lab.desktop_cell.locator(".dw-root").evaluate("root => root.scrollIntoView({block: 'start'})")
    lab.run("dw-test: stop")
    lab.output_of("dw-test: stop", "STOPPED")
    lab.desktop_cell.locator('.dw-status[data-kind="stopped"]').wait_for(state="attached", timeout=15_000)
    assert "stopped" in lab.status.text_content()
    # Running the cell scrolled the notebook away, and JupyterLab does not render
    # cells out of sight (so no CSS transition runs there): scroll back first.
    lab.desktop_cell.locator(".dw-root").evaluate("root => root.scrollIntoView({block: 'start'})")
    # The overlay fades in (CSS transition); wait until it is fully visible.
    lab.page.wait_for_function("s => getComputedStyle(s).opacity === '1'", arg=lab.status.element_handle())
    lab.screenshot("6-stopped")
