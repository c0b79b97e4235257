"""A notebook exported to HTML with its widget state shows the desktop's last frame, offline.

nbconvert's HTML loads RequireJS and the widget manager
(``@jupyter-widgets/html-manager``) from CDNs, and the manager loads
anywidget's module from one. Here no request leaves the machine: the browser's
requests to those CDNs are answered from ``tests/static_html/node_modules``
(npm) and anywidget's own AMD bundle, and every other request is refused.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import anywidget
import pytest
from playwright.sync_api import expect

from tests._cells import DEMO, pixels_cell, write_notebook
from tests._frames import assert_frame_shows_window
from tests.test_snapshot import WINDOW

pytestmark = pytest.mark.browser

NODE_MODULES = Path(__file__).parent / "static_html" / "node_modules"
HTML_MANAGER = NODE_MODULES / "@jupyter-widgets" / "html-manager" / "dist"
REQUIRE_JS = NODE_MODULES / "requirejs" / "require.js"
ANYWIDGET_AMD = Path(anywidget.__file__).parent / "nbextension" / "index.js"
#: The page's address: never fetched, the route below answers it.
PAGE = "http://localhost/notebook.html"


def local_file(url: str) -> Path | None:
    """The local copy of what nbconvert's HTML fetches from a CDN, or None."""
    if re.match(r"https://cdnjs\.cloudflare\.com/ajax/libs/require\.js/[^/]+/require(\.min)?\.js$", url):
        return REQUIRE_JS
    match = re.match(r"https://(unpkg\.com|cdn\.jsdelivr\.net/npm)/@jupyter-widgets/html-manager@[^/]+/dist/(.+)$", url)
    if match:
        path = HTML_MANAGER / match.group(2)
        return path if path.is_file() else None
    # The widget manager asks RequireJS for "anywidget", then its CDN.
    if re.match(r"https://cdn\.jsdelivr\.net/npm/anywidget@[^/]+/dist/index\.js$", url) or url.endswith(
        "/anywidget.js"
    ):
        return ANYWIDGET_AMD
    return None


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The notebook that leaves its desktop running until the kernel exits, run and exported as a teacher would:

    ``jupyter nbconvert --to html --execute --ExecutePreprocessor.store_widget_state=True``.
    """
    if not (HTML_MANAGER / "embed-amd.js").is_file():
        pytest.fail(
            "tests/static_html/node_modules is missing: run `npm ci --prefix tests/static_html` (./run test does)"
        )
    tmp = tmp_path_factory.mktemp("html")
    path = tmp / "running.ipynb"
    write_notebook(path, DEMO, pixels_cell("dw-test: pixels"))
    subprocess.run(
        [
            str(Path(sys.executable).parent / "jupyter"),
            "nbconvert",
            "--to=html",
            "--execute",
            "--ExecutePreprocessor.store_widget_state=True",
            "--ExecutePreprocessor.kernel_name=python3",
            str(path),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    html = (tmp / "running.html").read_text()
    window = tuple(int(n) for n in WINDOW.search(html).groups())
    return html, window


def test_exported_html_shows_the_last_frame(exported, browser, artifacts):
    html, window = exported
    assert "application/vnd.jupyter.widget-state+json" in html
    served: list[str] = []
    refused: list[str] = []

    def answer(route) -> None:
        url = route.request.url
        if url == PAGE:
            route.fulfill(body=html, content_type="text/html")
            return
        path = local_file(url)
        if path is None:
            refused.append(url)
            route.abort()
        else:
            served.append(url)
            route.fulfill(path=str(path), content_type="application/javascript" if path.suffix == ".js" else None)

    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    page.route("**/*", answer)
    try:
        page.goto(PAGE)
        root = page.locator(".dw-root")
        try:
            expect(root).to_have_attribute("data-frame", "shown", timeout=30_000)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nserved: {served}\nrefused: {refused}\nconsole: {console}") from exc
        caption = page.locator(".dw-frame-caption")
        expect(caption).to_have_text(re.compile(r"^Saved page, not live · last frame at \d\d:\d\d"))
        root.scroll_into_view_if_needed()
        assert_frame_shows_window(page.locator(".dw-frame img"), window)
        page.screenshot(path=str(artifacts / "last-frame-html.png"))
        assert any("embed-amd.js" in url for url in served), served
        # No kernel behind a saved page: the view tries no connection.
        expect(root).to_have_attribute("data-state", "saved")
    finally:
        (artifacts / "last-frame-html-console.log").write_text("\n".join([*console, "refused:", *refused]))
        context.close()
