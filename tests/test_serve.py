"""``Desktop.serve()``: the full-page view on 127.0.0.1 with a token, bridged by websockify, in Chromium."""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest
from Xlib import X

from desktop_widget import Desktop, DesktopStopped
from desktop_widget.control import _x
from tests._cells import PINK
from tests._notebook_page import assert_canvas_shows
from tests._procs import inet_listeners


@pytest.fixture(scope="module")
def d():
    desktop = Desktop(session="wm", geometry=(1024, 768))
    yield desktop
    desktop.stop()


def status(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


class Upgraded:
    """A WebSocket asked for by hand: the response's head, then the server's frames."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = sock.makefile("rb")
        self.head = b""
        while not self.head.endswith(b"\r\n\r\n"):
            line = self.reader.readline()
            if not line:
                break
            self.head += line

    def frame(self) -> bytes:
        """The payload of one unmasked server frame (enough for RFB's first message)."""
        head = self.reader.read(2)
        length = head[1] & 0x7F
        if length == 126:
            length = int.from_bytes(self.reader.read(2), "big")
        return self.reader.read(length)

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def upgrade(url: str, path: str, headers: dict[str, str] | None = None) -> Upgraded:
    """Ask for a WebSocket at ``path``."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    fields = {
        "Host": parts.netloc,
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
        **(headers or {}),
    }
    request = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
    sock.sendall(request.encode())
    return Upgraded(sock)


def listening_on(port: int) -> list[str]:
    """This process's TCP listeners on ``port`` (from /proc/net)."""
    return [row for row in inet_listeners({os.getpid()}) if row.split()[1].endswith(f":{port:04X}")]


def serve_threads(timeout: float = 5.0) -> list[str]:
    """The server's threads and its connections' threads still running after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        names = [
            t.name
            for t in threading.enumerate()
            if t.name.startswith("desktop-serve-") or "process_request_thread" in t.name
        ]
        if not names or time.monotonic() > deadline:
            return names
        time.sleep(0.02)


def test_url_is_local_random_and_stable(d):
    url = d.serve()
    parts = urlsplit(url)
    assert parts.scheme == "http"
    assert parts.hostname == "127.0.0.1"
    token = parts.path.strip("/")
    assert len(token) >= 32
    assert d.serve() == url, "a second call must return the same page"
    # Only 127.0.0.1: the listener's local address in /proc/net/tcp is 0100007F.
    rows = listening_on(parts.port)
    assert rows
    assert all(row.split()[1].startswith("0100007F:") for row in rows), rows
    # The token is on no command line of this process (it runs in-process, not as a subprocess).
    with open(f"/proc/{os.getpid()}/cmdline", "rb") as f:
        assert token.encode() not in f.read()


def test_requests_without_the_token_are_refused(d):
    url = d.serve()
    parts = urlsplit(url)
    origin = f"http://{parts.netloc}"
    token = parts.path.strip("/")
    assert status(url) == 200
    assert status(url + "page.js") == 200
    for wrong in ("/", "/index.html", "/page.js", "/websockify", f"/{token[:-1]}/", f"/{token}x/", "/../"):
        assert status(f"{origin}{wrong}") == 403, wrong
    # DNS rebinding: the right token under another host name.
    assert status(url, {"Host": f"evil.example:{parts.port}"}) == 403

    # The WebSocket: refused before any handshake without the token or from another site's page.
    for path, headers in (
        ("/websockify", {}),
        (f"/{token[:-1]}A/websockify", {}),
        (f"{parts.path}websockify", {"Origin": "http://evil.example"}),
    ):
        ws = upgrade(url, path, headers)
        ws.close()
        assert ws.head.startswith(b"HTTP/1.1 403 "), (path, ws.head[:80])
        assert b"RFB" not in ws.head

    # With it: the desktop's RFB greeting arrives through websockify.
    ws = upgrade(url, f"{parts.path}websockify", {"Origin": origin})
    try:
        assert ws.head.startswith(b"HTTP/1.1 101 "), ws.head[:80]
        assert ws.frame().startswith(b"RFB 003.008")
    finally:
        ws.close()


@pytest.mark.browser
def test_page_shows_the_desktop_live(d, browser, artifacts):
    url = d.serve()
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    try:
        assert page.goto(url).status == 200
        canvas = page.locator(".dw-screen canvas")
        page.wait_for_function(
            "() => document.querySelector('.dw-status')?.dataset.kind === 'connected'", timeout=30_000
        )
        # The desktop keeps its size (scale=True): the canvas is the remote screen, fitted into the page.
        assert canvas.evaluate("c => [c.width, c.height]") == [1024, 768]
        # A window mapped after the page connected reaches the canvas: the view is live.
        conn = _x.connect(d.display, d.env["XAUTHORITY"])
        try:
            screen = conn.screen()
            x, y, w, h = 400, 300, 160, 100
            window = screen.root.create_window(
                x, y, w, h, 0, screen.root_depth, X.InputOutput, X.CopyFromParent,
                background_pixel=0xFF3366, override_redirect=True, event_mask=X.ButtonPressMask,
            )  # fmt: skip
            window.map()
            conn.sync()
            assert_canvas_shows(canvas, (x, y, w, h), PINK, margin=3)
            assert page.locator(".dw-state").text_content() == f"running on {d.display}"
            page.screenshot(path=str(artifacts / "serve-1-page.png"))

            # And it is the whole view, input included: a click on the page reaches the X window.
            box = canvas.bounding_box()
            scale = box["width"] / 1024
            page.mouse.click(box["x"] + (x + 30) * scale, box["y"] + (y + 20) * scale)
            deadline = time.monotonic() + 10
            while not conn.pending_events():
                assert time.monotonic() < deadline, "the click on the page never reached the X window"
                time.sleep(0.02)
            event = conn.next_event()
            assert event.type == X.ButtonPress
            assert abs(event.root_x - (x + 30)) <= 2
            assert abs(event.root_y - (y + 20)) <= 2
        finally:
            conn.close()
    finally:
        page.close()


@pytest.mark.browser
def test_page_without_the_token_is_refused_in_the_browser(d, browser):
    url = d.serve()
    parts = urlsplit(url)
    page = browser.new_page()
    try:
        assert page.goto(f"http://{parts.netloc}/").status == 403
        # Even script on a page of the same origin cannot open the WebSocket without the token.
        code = page.evaluate(
            """url => new Promise(resolve => {
                const ws = new WebSocket(url);
                ws.onopen = () => resolve('open');
                ws.onclose = event => resolve(event.code);
            })""",
            f"ws://{parts.netloc}/websockify",
        )
        assert code == 1006
    finally:
        page.close()


def test_stop_closes_listener_and_connections(d):
    url = d.serve()
    port = urlsplit(url).port
    ws = upgrade(url, f"{urlsplit(url).path}websockify")
    try:
        assert ws.head.startswith(b"HTTP/1.1 101 ")
        assert ws.frame().startswith(b"RFB")
        assert d.serve(stop=True) is None
        assert listening_on(port) == []
        # The open WebSocket was ended too: EOF (or a reset) within the socket's timeout.
        with contextlib.suppress(ConnectionResetError):
            while ws.reader.read1(65536):
                pass
    finally:
        ws.close()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=5)
    assert serve_threads() == []
    assert d.serve(stop=True) is None  # idempotent
    assert d.serve() != url, "a new page gets a new token"
    d.serve(stop=True)


def test_stops_with_the_desktop():
    owner = Desktop(session="none", geometry=(640, 480))
    url = owner.serve()
    port = urlsplit(url).port
    owner.stop()
    assert listening_on(port) == []
    assert serve_threads() == []
    with pytest.raises(DesktopStopped):
        owner.serve()


def test_served_attached_desktop_stops_when_its_owner_stops_it():
    owner = Desktop(session="none", geometry=(640, 480))
    try:
        attached = Desktop.attach(owner.id)
        port = urlsplit(attached.serve()).port
        assert listening_on(port)
    finally:
        owner.stop()
    # No event reaches an attached desktop: the server notices its socket go.
    deadline = time.monotonic() + 10
    while listening_on(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert listening_on(port) == []
    assert attached.serve(stop=True) is None
