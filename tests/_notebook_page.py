"""A notebook open in a real browser: the one cell runner of the browser tests.

Cells are found by a marker comment in their source; views by the output
of those cells. JupyterLab and Notebook 7 share the ``.jp-*`` classes.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from tests._cells import TOLERANCE, near

#: What a pixels cell (``tests._cells.pixels_cell``) prints: its window and the screen's size.
WINDOW = re.compile(r"(\d+) (\d+) (\d+) (\d+) SCREEN (\d+) (\d+)")


def canvas_pixel(canvas, x: int, y: int) -> tuple[int, int, int]:
    """The colour of framebuffer pixel (x, y) of a view's canvas (a Playwright locator)."""
    rgba = canvas.evaluate("(c, [x, y]) => Array.from(c.getContext('2d').getImageData(x, y, 1, 1).data)", [x, y])
    return tuple(rgba[:3])


def wait_canvas_pixel(canvas, x: int, y: int, rgb: tuple[int, int, int], timeout: float = 15) -> None:
    """Wait until the canvas shows ``rgb`` (within TOLERANCE) at framebuffer pixel (x, y)."""
    try:
        canvas.page.wait_for_function(
            """([c, x, y, rgb, tol]) => {
                const d = c.getContext('2d').getImageData(x, y, 1, 1).data;
                return rgb.every((v, i) => Math.abs(d[i] - v) <= tol);
            }""",
            arg=[canvas.element_handle(), x, y, list(rgb), TOLERANCE],
            timeout=timeout * 1000,
        )
    except PlaywrightTimeout as exc:
        pytest.fail(f"canvas pixel ({x}, {y}) never became {rgb}; it is {canvas_pixel(canvas, x, y)}: {exc}")


def wait_canvas_fits(canvas, timeout: float = 15) -> None:
    """Wait until the remote screen is the size of the view (the view sized the desktop)."""
    canvas.page.wait_for_function(
        """c => {
            const s = c.closest('.dw-screen');
            return s.clientWidth > 0 && Math.abs(c.width - s.clientWidth) <= 2
                && Math.abs(c.height - s.clientHeight) <= 2;
        }""",
        arg=canvas.element_handle(),
        timeout=timeout * 1000,
    )


def assert_canvas_shows(canvas, rect: tuple[int, int, int, int], rgb: tuple[int, int, int], margin: int = 10) -> None:
    """The canvas shows the X window at ``rect`` (x, y, w, h) in ``rgb``, and only there (``margin`` px around)."""
    x, y, w, h = rect
    wait_canvas_pixel(canvas, x + w // 2, y + h // 2, rgb)
    for px, py in ((x + 2, y + 2), (x + w - 3, y + h - 3)):
        inside = canvas_pixel(canvas, px, py)
        assert near(inside, rgb), f"pixel ({px}, {py}) inside the window is {inside}, not {rgb}"
    around = ((x - margin, y + h // 2), (x + w + margin - 1, y + h // 2), (x + w // 2, y - margin))
    for px, py in (*around, (x + w // 2, y + h + margin - 1)):
        outside = canvas_pixel(canvas, px, py)
        assert not near(outside, rgb), f"pixel ({px}, {py}) outside the window is {outside} too"


def shows_window(canvas, output: str, rgb: tuple[int, int, int]) -> tuple[int, ...]:
    """The canvas shows the X window a pixels cell printed in ``output``, in ``rgb``, and only there.

    Returns the window and screen size (x, y, w, h, W, H) that the cell printed.
    """
    window = tuple(int(n) for n in WINDOW.search(output).groups())
    size = canvas.evaluate("c => [c.width, c.height]")
    assert size == list(window[4:]), f"the canvas is {size}, the remote screen {list(window[4:])}"
    assert_canvas_shows(canvas, window[:4], rgb)
    return window


def api(server, path: str, method: str = "GET", body: object = None) -> object:
    """Call the Jupyter server's REST API with the token."""
    request = urllib.request.Request(
        server.api(path),
        method=method,
        headers={"Authorization": f"token {server.token}", "Content-Type": "application/json"},
        data=None if body is None else json.dumps(body).encode(),
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        data = response.read()
    return json.loads(data) if data else None


def lab_setting(server, plugin: str, values: dict) -> None:
    api(server, f"lab/api/settings/{plugin}", "PUT", {"raw": json.dumps(values)})


def shutdown_kernels(server, path: str) -> None:
    """Shut the notebook's kernel down, which also stops any desktop it still owns."""
    for session in api(server, "api/sessions"):
        if session.get("path") == path:
            api(server, f"api/sessions/{session['id']}", "DELETE")


@dataclass
class NotebookPage:
    page: object
    artifacts: Path

    def cell(self, marker: str):
        return self.page.locator(".jp-CodeCell").filter(has=self.page.locator(".cm-content", has_text=marker))

    def view(self, marker: str, index: int = 0):
        """The ``index``-th view (``.dw-root``) in the output of the cell with ``marker``."""
        return self.cell(marker).locator(".jp-OutputArea-output .dw-root").nth(index)

    def canvas(self, marker: str, index: int = 0):
        return self.view(marker, index).locator(".dw-screen canvas")

    def run(self, marker: str) -> None:
        """Select the cell in command mode (click on its prompt) and run it with Shift+Enter."""
        prompt = self.cell(marker).locator(".jp-InputArea-prompt")
        prompt.click()
        self.page.keyboard.press("Shift+Enter")
        # "[*]:" while it runs, "[n]:" once done; "[ ]:" means it never started.
        expect(prompt).to_have_text(re.compile(r"\[(\*|\d+)\]"), timeout=10_000)

    def output(self, marker: str) -> str:
        return self.cell(marker).locator(".jp-OutputArea").inner_text()

    def output_of(self, marker: str, wanted: str, timeout: float = 30) -> str:
        """Wait for the cell's output to contain ``wanted`` (fail at once on a traceback)."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.output(marker)
            if wanted in text:
                return text
            if "Traceback" in text or "Error" in text.split("\n")[-1]:
                pytest.fail(f"cell {marker!r} failed:\n{text}")
            if time.monotonic() > deadline:
                pytest.fail(f"cell {marker!r} printed no {wanted!r} in {timeout} s; output:\n{text}")
            self.page.wait_for_timeout(100)

    def wait_connected(self, view, timeout: float = 45) -> str:
        """Wait for a view to be connected; returns its transport."""
        view.locator('.dw-status[data-kind="connected"]').wait_for(state="attached", timeout=timeout * 1000)
        return view.get_attribute("data-transport")

    def pixel(self, canvas, x: int, y: int) -> tuple[int, int, int]:
        return canvas_pixel(canvas, x, y)

    def wait_pixel(self, canvas, x: int, y: int, rgb: tuple[int, int, int], timeout: float = 15) -> None:
        wait_canvas_pixel(canvas, x, y, rgb, timeout)

    def wait_fits(self, canvas, timeout: float = 15) -> None:
        wait_canvas_fits(canvas, timeout)

    def shows_window(self, canvas, output: str, rgb: tuple[int, int, int]) -> tuple[int, ...]:
        return shows_window(canvas, output, rgb)

    def screenshot(self, name: str, element=None) -> Path:
        if element is not None:
            element.evaluate("e => e.scrollIntoView({block: 'start'})")
        self.page.mouse.move(1, 1)
        path = self.artifacts / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path


def wait_file(path: Path, expected: str, timeout: float = 15) -> None:
    """Wait for ``path`` to hold exactly ``expected``."""
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text() if path.exists() else None
        if text == expected:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{path} holds {text!r}, not {expected!r}")
        time.sleep(0.05)


def wait_kernel_idle(page) -> None:
    """Wait until the notebook's kernel is connected and idle: a cell run before that is silently dropped.

    The status bar says "No Kernel | Initializing", "... | Connecting", then
    "Python 3 (ipykernel) | Idle" (the toolbar's indicator says idle too early).
    """
    expect(page.locator('.jp-StatusBar-TextItem[title^="Change kernel"]')).to_have_text(
        re.compile(r"ipykernel.*\| Idle"), timeout=60_000
    )


def open_notebook(browser, server, path: str, artifacts: Path, console: list[str], app: str = "lab", query: str = ""):
    """A new browser page with the notebook open and its kernel idle.

    ``app`` is "lab" (``lab/workspaces/<stem>/tree/path?query&token=...``) or
    "notebook" (Notebook 7, ``notebooks/path?...``).
    """
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    # The kernel's WebSocket has answered kernel_info: cells run from now on
    # (Notebook 7's toolbar says "idle" before that, and a cell run then is dropped).
    kernel_ready: list[bool] = []

    def on_frame(frame: str | bytes) -> None:
        if b"kernel_info_reply" in (frame if isinstance(frame, bytes) else frame.encode()):
            kernel_ready.append(True)

    page.on("websocket", lambda ws: ws.on("framereceived", on_frame) if "/api/kernels/" in ws.url else None)
    # A workspace of its own: JupyterLab reopens the default workspace's
    # documents, and other tests' notebooks must not be open in this page.
    where = f"lab/workspaces/{Path(path).stem}/tree" if app == "lab" else "notebooks"
    page.goto(f"{server.url}{where}/{path}?{query}{'&' if query else ''}token={server.token}", timeout=60_000)
    page.locator(".jp-Notebook .jp-CodeCell").first.wait_for(timeout=60_000)
    if app == "lab":
        wait_kernel_idle(page)
    else:  # Notebook 7 has no status bar: its toolbar's kernel indicator, and the kernel's answer
        expect(page.locator(".jp-Notebook-ExecutionIndicator")).to_have_attribute("data-status", "idle", timeout=60_000)
        deadline = time.monotonic() + 60
        while not kernel_ready:
            if time.monotonic() > deadline:
                pytest.fail("the notebook's kernel never answered kernel_info")
            page.wait_for_timeout(100)
    return context, NotebookPage(page, artifacts)


@contextlib.contextmanager
def notebook_open(browser, server, path: str, artifacts: Path, log: str = "", **options):
    """``open_notebook`` for a block: the page's console is kept in ``artifacts/<log>``,
    and at the end the page closes and the notebook's kernels shut down."""
    console: list[str] = []
    context, nb = open_notebook(browser, server, path, artifacts, console, **options)
    try:
        yield nb
    finally:
        try:
            if log:
                (artifacts / log).write_text("\n".join(console))
        finally:
            context.close()
            shutdown_kernels(server, path)
