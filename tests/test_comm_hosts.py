"""The comm transport in more hosts and layouts: forced in JupyterLab, two views, a Box, standalone Voila."""

from __future__ import annotations

import re
import subprocess
import time

import pytest
from playwright.sync_api import expect

from tests._cells import PINK, pixels_cell, write_notebook
from tests._jupyter import BIN, free_port, start_jupyter, stop_jupyter
from tests._notebook_page import NotebookPage, lab_setting, notebook_open

pytestmark = pytest.mark.browser

NOTEBOOK = "dw-hosts.ipynb"

DESKTOP = """\
# dw-hosts: desktop
from desktop_widget import Desktop
d = Desktop(session="wm", transport="comm")
d"""

#: A second view of the same desktop, in a container at half the width (as in dashboards).
BOX = """\
# dw-hosts: box
import ipywidgets as widgets
widgets.Box([d.view], layout=widgets.Layout(width="50%"))"""

#: The default transport where our extension serves the route: the route.
AUTO = """\
# dw-hosts: auto
from desktop_widget import Desktop
a = Desktop(session="none", geometry=(320, 240))
a"""

PUMPS = """\
# dw-hosts: pumps
print("PUMPS", len(d.view._tunnel.pumps()))"""


@pytest.fixture(scope="module")
def nb(jupyter, browser, artifacts):
    """JupyterLab with our extension on; the desktop's views still use the comm (forced)."""
    write_notebook(jupyter.root_dir / NOTEBOOK, AUTO, DESKTOP, BOX, pixels_cell("dw-hosts: pixels"), PUMPS)
    lab_setting(jupyter, "@jupyterlab/apputils-extension:notification", {"fetchNews": "false"})
    with notebook_open(browser, jupyter, NOTEBOOK, artifacts, "hosts-console.log") as nb:
        yield nb


def test_auto_uses_the_route_where_it_answers(nb):
    nb.run("dw-hosts: auto")
    view = nb.view("dw-hosts: auto")
    assert nb.wait_connected(view) == "server"
    assert "through the Jupyter server" in view.get_attribute("title")


def test_comm_forced_with_the_extension_on(nb):
    nb.run("dw-hosts: desktop")
    assert nb.wait_connected(nb.view("dw-hosts: desktop")) == "comm"
    nb.wait_fits(nb.canvas("dw-hosts: desktop"))


def test_a_view_in_a_half_width_box_fills_it(nb):
    nb.run("dw-hosts: box")
    view = nb.view("dw-hosts: box")
    assert nb.wait_connected(view) == "comm"
    output = nb.cell("dw-hosts: box").locator(".jp-OutputArea-output").first.bounding_box()
    box = view.bounding_box()
    # Half of the output area, not a sliver (it was 4 px wide), at the view's height.
    assert box["width"] >= 0.45 * output["width"], (box, output)
    assert box["width"] <= 0.55 * output["width"], (box, output)
    assert box["height"] >= 590, box
    # The second view scales the desktop into itself instead of resizing it.
    canvas = nb.canvas("dw-hosts: box")
    nb.page.wait_for_function(
        "c => c.width > c.clientWidth + 100 && c.clientWidth > 0", arg=canvas.element_handle(), timeout=15_000
    )
    nb.screenshot("hosts-1-box-half-width", nb.view("dw-hosts: box"))


def test_two_views_over_the_comm_each_show_the_desktop(nb):
    nb.run("dw-hosts: pixels")
    text = nb.output_of("dw-hosts: pixels", "WINDOW")
    x, y, w, h = (int(n) for n in re.search(r"WINDOW (\d+) (\d+) (\d+) (\d+)", text).groups())
    nb.wait_pixel(nb.canvas("dw-hosts: desktop"), x + w // 2, y + h // 2, PINK)
    nb.wait_pixel(nb.canvas("dw-hosts: box"), x + w // 2, y + h // 2, PINK)
    nb.run("dw-hosts: pumps")
    assert "PUMPS 2" in nb.output_of("dw-hosts: pumps", "PUMPS"), "each view has its own RFB connection"
    nb.screenshot("hosts-2-two-views", nb.view("dw-hosts: desktop"))


def test_clearing_the_primary_view_hands_sizing_to_the_other(nb):
    canvas = nb.canvas("dw-hosts: box")
    first = nb.canvas("dw-hosts: desktop")
    assert first.evaluate("c => c.width") != canvas.evaluate("c => c.closest('.dw-screen').clientWidth")
    nb.cell("dw-hosts: desktop").locator(".jp-InputArea-prompt").click()
    nb.page.get_by_role("menuitem", name="Edit", exact=True).click()
    nb.page.get_by_role("menuitem", name="Clear Cell Output", exact=True).click()
    expect(nb.cell("dw-hosts: desktop").locator(".dw-root")).to_have_count(0, timeout=10_000)
    # The remaining view now sizes the desktop to itself, without any trait changing.
    nb.wait_fits(canvas)
    nb.screenshot("hosts-3-sizing-handed-over", nb.view("dw-hosts: box"))


@pytest.fixture(scope="module")
def notebook7(tmp_path_factory):
    """Notebook 7 (`jupyter notebook`) with our server extension on."""
    server = start_jupyter(tmp_path_factory.mktemp("notebook7"), base_url="/", app="notebook")
    yield server
    stop_jupyter(server)


def test_notebook_7_uses_the_route_and_the_comm(notebook7, browser, artifacts):
    path = "dw-nb7.ipynb"
    write_notebook(
        notebook7.root_dir / path,
        AUTO.replace("dw-hosts", "dw-nb7"),
        DESKTOP.replace("dw-hosts", "dw-nb7"),
        pixels_cell("dw-nb7: pixels"),
    )
    with notebook_open(browser, notebook7, path, artifacts, "notebook7-console.log", app="notebook") as nb:
        nb.run("dw-nb7: auto")
        assert nb.wait_connected(nb.view("dw-nb7: auto")) == "server"
        nb.run("dw-nb7: desktop")
        assert nb.wait_connected(nb.view("dw-nb7: desktop")) == "comm"
        nb.run("dw-nb7: pixels")
        text = nb.output_of("dw-nb7: pixels", "WINDOW")
        x, y, w, h = (int(n) for n in re.search(r"WINDOW (\d+) (\d+) (\d+) (\d+)", text).groups())
        nb.wait_pixel(nb.canvas("dw-nb7: desktop"), x + w // 4, y + h // 4, PINK)
        nb.screenshot("hosts-5-notebook7", nb.view("dw-nb7: desktop"))


@pytest.fixture(scope="module")
def voila(tmp_path_factory):
    """Standalone Voila (its own server: no server extension of ours) on 127.0.0.1."""
    root = tmp_path_factory.mktemp("voila")
    write_notebook(
        root / "desktop.ipynb",
        'from desktop_widget import Desktop\nd = Desktop(session="wm")\nd',
        pixels_cell("voila: pixels"),
    )
    port = free_port()
    log = root / "voila.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                str(BIN / "voila"),
                str(root / "desktop.ipynb"),
                "--no-browser",
                f"--port={port}",
                "--Voila.ip=127.0.0.1",
                "--show_tracebacks=True",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    # Voila says when it listens (asking its page would run the notebook).
    while "is running at" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"voila did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    yield url
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_standalone_voila_shows_a_live_desktop(voila, browser, artifacts):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    try:
        page.goto(voila, timeout=90_000)
        nb = NotebookPage(page, artifacts)
        view = page.locator(".dw-root").first
        view.wait_for(timeout=90_000)
        assert nb.wait_connected(view, timeout=60) == "comm"
        # The tooltip names the real cause: Voila's server has no route (not a missing right).
        assert "no desktop_widget route" in view.get_attribute("title")
        canvas = view.locator(".dw-screen canvas")
        text = page.locator("body").inner_text()
        x, y, w, h = (int(n) for n in re.search(r"WINDOW (\d+) (\d+) (\d+) (\d+)", text).groups())
        # (Off centre: the X pointer starts in the middle of the screen.)
        nb.wait_pixel(canvas, x + w // 4, y + h // 4, PINK)
        nb.screenshot("hosts-4-voila", view)
    finally:
        (artifacts / "voila-console.log").write_text("\n".join(console))
        context.close()
