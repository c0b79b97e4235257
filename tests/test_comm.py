"""RFB over the widget's comm, end to end: JupyterLab whose server lacks our extension.

That server is what a user gets when desktop_widget is installed only in the
kernel's environment: the route answers 302 then 404, so ``transport="auto"``
must fall back to the comm, silently. One notebook and kernel serve the module;
the tests run in order and build on each other (the desktop, the xterm).
"""

from __future__ import annotations

import re
import time

import pytest

from tests._cells import PINK, near, pixels_cell, write_notebook
from tests._jupyter import start_jupyter, stop_jupyter
from tests._notebook_page import lab_setting, notebook_open, wait_file

pytestmark = pytest.mark.browser

NOTEBOOK = "dw-comm.ipynb"
GREEN = (51, 204, 102)

DESKTOP = """\
# dw-comm: desktop
from desktop_widget import Desktop
d = Desktop(session="wm")
d"""

XTERM = """\
# dw-comm: xterm
term = d.launch(["xterm", "-geometry", "80x10+0+0", "-e", "sh", "-c", "exec cat > {out}"])
win = d.wait_for_window(wm_class="xterm", timeout=20)
print("XTERM", *win.geometry)
"""

#: Draws a green square, then keeps the kernel busy: frames must still reach
#: the view, and keys typed meanwhile must arrive once and in order.
BUSY = """\
# dw-comm: busy
import time
green = screen.root.create_window(
    W // 2 - 60, H // 2 + 60, 120, 60, 0, screen.root_depth, Xlib.X.InputOutput, Xlib.X.CopyFromParent,
    background_pixel=0x33CC66, override_redirect=True,
)
green.map()
xd.sync()
print("BUSY", W // 2, H // 2 + 90, flush=True)
time.sleep(8)
print("DONE")
"""

TO_SERVER = """\
# dw-comm: to-server
d.transport = "server"
"""

TO_AUTO = """\
# dw-comm: to-auto
d.transport = "auto"
"""

#: One cell of 50 cycles: it awaits (top-level await), and ipykernel handles
#: comm messages while an async cell awaits, so the views can connect.
LEAK = """\
# dw-comm: leak
import asyncio, gc, os, threading, time
from IPython.display import clear_output, display

def census():
    fds = os.listdir("/proc/self/fd")
    links = []
    for fd in fds:
        try:
            links.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    return len(threading.enumerate()), len(links), sum(link.startswith("socket:") for link in links)

async def cycle():
    e = Desktop(session="none", geometry=(320, 240), transport="comm")
    display(e)
    deadline = time.monotonic() + 30
    # The view's RFB connection is through the kernel and data flows.
    while not any(p.peak_in_flight for p in e.view._tunnel.pumps()):
        assert time.monotonic() < deadline, "the view never connected over the comm"
        await asyncio.sleep(0.02)
    e.stop()
    clear_output()

await cycle()  # warm-up: imports, the first X connection's libraries
gc.collect()
before = census()
for _ in range(50):
    await cycle()
deadline = time.monotonic() + 20
while True:
    gc.collect()
    after = census()
    if all(a <= b for a, b in zip(after, before)) or time.monotonic() > deadline:
        break
    await asyncio.sleep(0.1)
print("LEAK", before, after, [t.name for t in threading.enumerate()])
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = start_jupyter(tmp_path_factory.mktemp("comm-jupyter"), base_url="/", server_extension=False)
    yield server
    stop_jupyter(server)


@pytest.fixture(scope="module")
def nb(server, browser, artifacts):
    typed = server.root_dir / "typed.txt"
    write_notebook(
        server.root_dir / NOTEBOOK,
        DESKTOP,
        pixels_cell("dw-comm: pixels"),
        XTERM.format(out=typed),
        BUSY,
        TO_SERVER,
        TO_AUTO,
        LEAK,
    )
    lab_setting(server, "@jupyterlab/apputils-extension:notification", {"fetchNews": "false"})
    with notebook_open(browser, server, NOTEBOOK, artifacts, "comm-console.log") as nb:
        nb.typed = typed
        nb.xterm = None
        yield nb


def test_the_desktop_shows_without_the_server_extension(nb):
    nb.run("dw-comm: desktop")
    view = nb.view("dw-comm: desktop")
    assert nb.wait_connected(view) == "comm"
    assert "kernel" in view.get_attribute("title")
    assert "kernel" in view.locator(".dw-status").text_content()
    # The primary view sizes the remote screen to itself, through the comm too.
    nb.wait_fits(nb.canvas("dw-comm: desktop"))
    box = nb.canvas("dw-comm: desktop").bounding_box()
    assert box["width"] > 600, box
    assert box["height"] > 400, box


def test_x_pixels_reach_the_canvas(nb):
    nb.run("dw-comm: pixels")
    text = nb.output_of("dw-comm: pixels", "WINDOW")
    x, y, w, h = (int(n) for n in re.search(r"WINDOW (\d+) (\d+) (\d+) (\d+)", text).groups())
    canvas = nb.canvas("dw-comm: desktop")
    nb.wait_pixel(canvas, x + w // 2, y + h // 2, PINK)
    assert not near(nb.pixel(canvas, x - 10, y + h // 2), PINK), "the pink spills outside its window"
    nb.screenshot("comm-1-extension-off", nb.view("dw-comm: desktop"))


def test_typing_in_the_view_reaches_an_x_app(nb):
    nb.run("dw-comm: xterm")
    text = nb.output_of("dw-comm: xterm", "XTERM")
    nb.xterm = tuple(int(n) for n in re.search(r"XTERM (\d+) (\d+) (\d+) (\d+)", text).groups())
    x, y, w, h = nb.xterm
    canvas = nb.canvas("dw-comm: desktop")
    nb.wait_pixel(canvas, x + w - 20, y + h // 2, (255, 255, 255))
    canvas.click(position={"x": x + w // 2, "y": y + h // 2})
    nb.page.keyboard.type("over the comm")
    nb.page.keyboard.press("Enter")
    wait_file(nb.typed, "over the comm\n")


def test_frames_and_input_during_a_busy_cell(nb):
    """Frames travel from a pump thread (IOPub) while the cell runs, and so do keys, once and in order.

    Our stack (JupyterLab >= 4.4 with ipykernel 7) sends comm messages to a
    subshell by default, so the keys arrive while the cell still runs; see
    test_input_waits_for_a_busy_cell_without_subshells for the other case.
    """
    canvas = nb.canvas("dw-comm: desktop")
    nb.run("dw-comm: busy")
    text = nb.output_of("dw-comm: busy", "BUSY")
    gx, gy = (int(n) for n in re.search(r"BUSY (\d+) (\d+)", text).groups())
    nb.wait_pixel(canvas, gx, gy, GREEN)
    assert "DONE" not in nb.output("dw-comm: busy"), "the frame came only after the cell ended"
    x, y, w, h = nb.xterm
    canvas.click(position={"x": x + w // 2, "y": y + h // 2})
    nb.page.keyboard.type("typed while busy 0123456789")
    nb.page.keyboard.press("Enter")
    wait_file(nb.typed, "over the comm\ntyped while busy 0123456789\n")
    assert "DONE" not in nb.output("dw-comm: busy"), "the keys arrived only after the cell"
    nb.screenshot("comm-2-busy-cell", nb.view("dw-comm: desktop"))


def test_resizing_the_browser_resizes_the_desktop(nb):
    canvas = nb.canvas("dw-comm: desktop")
    before = canvas.evaluate("c => c.width")
    nb.page.set_viewport_size({"width": 1000, "height": 1000})
    nb.page.wait_for_function("([c, w]) => c.width < w - 100", arg=[canvas.element_handle(), before], timeout=15_000)
    nb.wait_fits(canvas)
    nb.page.set_viewport_size({"width": 1280, "height": 1000})
    nb.wait_fits(canvas)


def test_a_missing_route_is_named_and_not_retried(nb):
    """transport="server" where the server lacks our extension: say so and what to do, once."""
    view = nb.view("dw-comm: desktop")
    nb.run("dw-comm: to-server")
    status = view.locator('.dw-status[data-kind="error"]')
    status.wait_for(state="attached", timeout=30_000)
    text = status.text_content()
    assert "no desktop_widget route" in text, text
    assert "install desktop_widget in the Jupyter server's environment" in text, text
    assert "not logged in" not in text, text
    # Not retried: the answer ends the attempt (a retry would say "reconnecting in …").
    assert "reconnecting" not in text, text
    nb.screenshot("comm-4-no-route", view)
    # Back to auto (set from Python): the comm again, silently.
    nb.run("dw-comm: to-auto")
    assert nb.wait_connected(view) == "comm"


def test_fifty_display_stop_cycles_leave_nothing_behind(nb):
    nb.run("dw-comm: leak")
    text = nb.output_of("dw-comm: leak", "LEAK", timeout=300)
    before, after = (
        tuple(int(n) for n in group.split(", "))
        for group in re.search(r"LEAK \(([\d, ]+)\) \(([\d, ]+)\)", text).groups()
    )
    threads, fds, sockets = (a - b for a, b in zip(after, before, strict=True))
    assert threads <= 0, f"{threads} thread(s) left behind: {text}"
    assert fds <= 0, f"{fds} fd(s) left behind: {text}"
    assert sockets <= 0, f"{sockets} socket(s) left behind: {text}"


def test_input_waits_for_a_busy_cell_without_subshells(server, browser, artifacts, tmp_path):
    """With comms on the shell channel (a front end without subshells), input waits for the cell.

    Keys typed during the cell arrive after it, once and in order; frames
    keep coming while it runs (the pump is a thread, IOPub is not blocked).
    """
    path = "dw-comm-shell.ipynb"
    typed = tmp_path / "typed.txt"
    write_notebook(
        server.root_dir / path,
        DESKTOP.replace("dw-comm: desktop", "dw-shell: desktop"),
        pixels_cell("dw-shell: pixels"),
        XTERM.replace("dw-comm", "dw-shell").format(out=typed),
        BUSY.replace("dw-comm", "dw-shell"),
    )
    lab_setting(server, "@jupyterlab/apputils-extension:kernels-settings", {"commsOverSubshells": "disabled"})
    try:
        with notebook_open(browser, server, path, artifacts, "comm-shell-console.log") as nb:
            nb.run("dw-shell: desktop")
            assert nb.wait_connected(nb.view("dw-shell: desktop")) == "comm"
            nb.run("dw-shell: pixels")
            nb.output_of("dw-shell: pixels", "WINDOW")
            nb.run("dw-shell: xterm")
            text = nb.output_of("dw-shell: xterm", "XTERM")
            x, y, w, h = (int(n) for n in re.search(r"XTERM (\d+) (\d+) (\d+) (\d+)", text).groups())
            canvas = nb.canvas("dw-shell: desktop")
            nb.wait_pixel(canvas, x + w - 20, y + h // 2, (255, 255, 255))
            canvas.click(position={"x": x + w // 2, "y": y + h // 2})
            nb.page.keyboard.type("idle")
            nb.page.keyboard.press("Enter")
            wait_file(typed, "idle\n")

            nb.run("dw-shell: busy")
            text = nb.output_of("dw-shell: busy", "BUSY")
            gx, gy = (int(n) for n in re.search(r"BUSY (\d+) (\d+)", text).groups())
            nb.wait_pixel(canvas, gx, gy, GREEN)
            assert "DONE" not in nb.output("dw-shell: busy"), "the frame came only after the cell ended"
            canvas.click(position={"x": x + w // 2, "y": y + h // 2})
            nb.page.keyboard.type("queued 0123456789")
            nb.page.keyboard.press("Enter")
            # Give the keys every chance to arrive early, then check they waited.
            early = None
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline and "DONE" not in nb.output("dw-shell: busy"):
                early = typed.read_text()
                time.sleep(0.1)
            still_busy = "DONE" not in nb.output("dw-shell: busy")
            nb.output_of("dw-shell: busy", "DONE", timeout=30)
            wait_file(typed, "idle\nqueued 0123456789\n")
            if still_busy:
                assert early == "idle\n", f"keys arrived during the busy cell without subshells: {early!r}"
            nb.screenshot("comm-3-no-subshells", nb.view("dw-shell: desktop"))
    finally:
        lab_setting(server, "@jupyterlab/apputils-extension:kernels-settings", {})
