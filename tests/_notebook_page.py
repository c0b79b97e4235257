"""A notebook open in a real browser, for the transport and host tests.

Cells are found by a marker comment in their source; views by the output
of those cells. JupyterLab and Notebook 7 share the ``.jp-*`` classes.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from tests._cells import TOLERANCE


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
        rgba = canvas.evaluate("(c, [x, y]) => Array.from(c.getContext('2d').getImageData(x, y, 1, 1).data)", [x, y])
        return tuple(rgba[:3])

    def wait_pixel(self, canvas, x: int, y: int, rgb: tuple[int, int, int], timeout: float = 15) -> None:
        """Wait until the canvas shows ``rgb`` (within TOLERANCE) at framebuffer pixel (x, y)."""
        try:
            self.page.wait_for_function(
                """([c, x, y, rgb, tol]) => {
                    const d = c.getContext('2d').getImageData(x, y, 1, 1).data;
                    return rgb.every((v, i) => Math.abs(d[i] - v) <= tol);
                }""",
                arg=[canvas.element_handle(), x, y, list(rgb), TOLERANCE],
                timeout=timeout * 1000,
            )
        except PlaywrightTimeout as exc:
            pytest.fail(f"canvas pixel ({x}, {y}) never became {rgb}; it is {self.pixel(canvas, x, y)}: {exc}")

    def wait_fits(self, canvas, timeout: float = 15) -> None:
        """Wait until the remote screen is the size of the view (the view sized the desktop)."""
        self.page.wait_for_function(
            """c => {
                const s = c.closest('.dw-screen');
                return s.clientWidth > 0 && Math.abs(c.width - s.clientWidth) <= 2
                    && Math.abs(c.height - s.clientHeight) <= 2;
            }""",
            arg=canvas.element_handle(),
            timeout=timeout * 1000,
        )

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


def open_notebook(browser, server, path: str, artifacts: Path, console: list[str], app: str = "lab"):
    """A new browser page with the notebook open and its kernel idle (``app``: "lab" or "notebook", Notebook 7)."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    # A workspace of its own: JupyterLab reopens the default workspace's
    # documents, and other tests' notebooks must not be open in this page.
    # The kernel's WebSocket has answered kernel_info: cells run from now on
    # (Notebook 7's toolbar says "idle" before that, and a cell run then is dropped).
    kernel_ready: list[bool] = []

    def on_frame(frame: str | bytes) -> None:
        if b"kernel_info_reply" in (frame if isinstance(frame, bytes) else frame.encode()):
            kernel_ready.append(True)

    page.on("websocket", lambda ws: ws.on("framereceived", on_frame) if "/api/kernels/" in ws.url else None)
    where = f"lab/workspaces/{Path(path).stem}/tree" if app == "lab" else "notebooks"
    page.goto(f"{server.url}{where}/{path}?token={server.token}", timeout=60_000)
    page.locator(".jp-Notebook .jp-CodeCell").first.wait_for(timeout=60_000)
    if app == "lab":
        expect(page.locator('.jp-StatusBar-TextItem[title^="Change kernel"]')).to_have_text(
            re.compile(r"ipykernel.*\| Idle"), timeout=60_000
        )
    else:  # Notebook 7 has no status bar: its toolbar's kernel indicator, and the kernel's answer
        expect(page.locator(".jp-Notebook-ExecutionIndicator")).to_have_attribute("data-status", "idle", timeout=60_000)
        deadline = time.monotonic() + 60
        while not kernel_ready:
            if time.monotonic() > deadline:
                pytest.fail("the notebook's kernel never answered kernel_info")
            page.wait_for_timeout(100)
    return context, NotebookPage(page, artifacts)
