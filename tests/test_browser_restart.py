"""A view outlives a restart of the Jupyter server: it reconnects by itself."""

from __future__ import annotations

import re
import secrets

import pytest
from playwright.sync_api import expect

from desktop_widget import Desktop
from tests._cells import write_notebook
from tests._jupyter import start_jupyter, stop_jupyter

pytestmark = pytest.mark.browser


def test_view_reconnects_after_server_restart(browser, tmp_path, artifacts):
    # The desktop belongs to this test process, so it lives through the server's restart;
    # the notebook's kernel attaches to it (and dies with the server).
    with Desktop(session="wm", geometry=(800, 500)) as d:
        d.launch(["xterm", "-bg", "#3366ff", "-geometry", "60x10+0+0"])
        d.wait_for_window(wm_class="xterm")
        token = secrets.token_hex(16)
        server = start_jupyter(tmp_path, base_url="/", token=token)
        port = int(re.search(r":(\d+)/", server.url).group(1))
        write_notebook(
            server.root_dir / "attach.ipynb", f"from desktop_widget import Desktop\nDesktop.attach({d.id!r})"
        )
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        try:
            page.goto(f"{server.url}lab/tree/attach.ipynb?token={token}", timeout=60_000)
            expect(page.locator('.jp-StatusBar-TextItem[title^="Change kernel"]')).to_have_text(
                re.compile(r"ipykernel.*\| Idle"), timeout=60_000
            )
            page.locator(".jp-InputArea-prompt").first.click()
            page.keyboard.press("Shift+Enter")
            status = page.locator(".dw-status")
            expect(status).to_have_attribute("data-kind", "connected", timeout=30_000)
            canvas = page.locator(".dw-screen canvas")
            assert canvas.evaluate("c => [c.width, c.height]") == [800, 500]  # attached views keep the size

            stop_jupyter(server)
            expect(status).to_have_attribute("data-kind", "reconnecting", timeout=30_000)
            page.screenshot(path=str(artifacts / "restart-1-reconnecting.png"))
            server = start_jupyter(tmp_path, base_url="/", port=port, token=token)
            expect(status).to_have_attribute("data-kind", "connected", timeout=30_000)
            # And it shows the desktop again: the xterm's blue is on the canvas.
            page.wait_for_function(
                """c => { const p = c.getContext('2d').getImageData(200, 60, 1, 1).data;
                          return Math.abs(p[0] - 0x33) < 16 && Math.abs(p[1] - 0x66) < 16 && p[2] > 235; }""",
                arg=canvas.element_handle(),
                timeout=15_000,
            )
            page.screenshot(path=str(artifacts / "restart-2-reconnected.png"))
        finally:
            page.close()
            stop_jupyter(server)
