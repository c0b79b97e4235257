"""``Desktop.serve()``: the desktop's full-page view on ``http://127.0.0.1:<port>/<token>/``, outside Jupyter.

For scripts and test runs that use desktops without a notebook. websockify's
threaded proxy runs inside this process (no subprocess to leave behind, no
secret on a command line): it bridges the page's WebSocket to the desktop's
unix RFB socket, and this module's handler serves the page and its two built
files in front of it.

Every request must name the random token as the first part of its path
(``/<token>/...``), so the page's relative URLs (script, stylesheets,
WebSocket) carry it with no cookie and no script of ours. A wrong or missing
token, a ``Host`` other than this address (DNS rebinding) or a foreign
``Origin`` gets 403 before any WebSocket handshake, so not one RFB byte.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import secrets
import socket
import threading
import time
from urllib.parse import urlsplit

from websockify.websocketproxy import LibProxyServer, ProxyRequestHandler

from .._page import STATIC, page_html
from .._session import touch

log = logging.getLogger(__name__)

#: The built files the page loads, and their types; nothing else is served.
_FILES = {
    "page.js": "text/javascript; charset=utf-8",
    "page.css": "text/css; charset=utf-8",
    "widget.css": "text/css; charset=utf-8",
}
#: The WebSocket's path under the token (a plain GET there answers whether the desktop is up).
_SOCKET = "websockify"


class _Handler(ProxyRequestHandler):
    server: ViewServer

    def _route(self) -> str | None:
        """The path after ``/<token>/``, or None once a refusal has been sent."""
        server = self.server
        if self.headers.get("Host", "") not in server.hosts:
            self.send_error(403, "wrong Host")
            return None
        origin = self.headers.get("Origin")
        if origin is not None and origin not in server.origins:
            self.send_error(403, "wrong Origin")
            return None
        head, _, rest = urlsplit(self.path).path.lstrip("/").partition("/")
        if not hmac.compare_digest(head.encode(), server.token.encode()):
            self.send_error(403, "this page needs the URL that Desktop.serve() returned, with its token")
            return None
        return rest

    def do_GET(self) -> None:
        rest = self._route()
        if rest is None:
            return
        if rest == "":
            self._send(page_html(self.server.config, "", title=self.server.title).encode(), "text/html; charset=utf-8")
        elif rest in _FILES:
            self._send((STATIC / rest).read_bytes(), _FILES[rest])
        elif rest == _SOCKET:
            # The view asks here why a WebSocket did not open.
            if os.path.exists(self.server.unix_target):
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self.send_error(404, "the desktop is not running")
        else:
            self.send_error(404)

    def do_HEAD(self) -> None:
        self.send_error(405)

    def handle_upgrade(self) -> None:
        rest = self._route()
        if rest is None:
            return
        if rest != _SOCKET:
            self.send_error(404)
            return
        touch(self.server.activity)
        super().handle_upgrade()

    def _send(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        # Request lines hold the token: debug only, and redacted.
        log.debug("%s %s", self.client_address[0], (format % args).replace(self.server.token, "<token>"))


class ViewServer(LibProxyServer):
    """One desktop's page and WebSocket bridge on a free port of 127.0.0.1, run by one thread.

    The thread also notices the desktop going away (its socket is removed)
    and then closes everything itself; while a page is connected it counts
    as use of the desktop (its ``idle_timeout``), as a Jupyter view does.
    """

    # A connected browser must not keep the interpreter from exiting, nor stop() waiting.
    daemon_threads = True
    block_on_close = False
    timeout = 0.25  # how often the thread looks at the desktop and at stop()

    def __init__(self, desktop_id: str, display: str, socket_path: str, *, scale: bool, view_only: bool) -> None:
        super().__init__(RequestHandlerClass=_Handler, listen_host="127.0.0.1", listen_port=0, unix_target=socket_path)
        self.only_upgrade = False  # this handler serves the page itself (no web root, no os.chdir)
        self.file_only = True
        self.unix_listen = None  # read by websockify's proxy, set only by its stand-alone server
        self.token = secrets.token_urlsafe(24)
        self.port = self.server_address[1]
        self.hosts = {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}
        self.origins = {f"http://{host}" for host in self.hosts}
        self.url = f"http://127.0.0.1:{self.port}/{self.token}/"
        self.activity = os.path.join(os.path.dirname(socket_path), "activity")
        self.title = f"Desktop {display}"
        self.config = {
            "baseUrl": f"/{self.token}/",
            "standalone": True,
            "scale": scale,
            "viewOnly": view_only,
            "desktop": {"id": desktop_id, "status": "running", "ws_path": _SOCKET, "display": display},
        }
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"desktop-serve-{desktop_id}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        touched = 0.0
        try:
            while not self._stopping.is_set() and os.path.exists(self.unix_target):
                self.handle_request()
                if self._connections and time.monotonic() - touched > 1.0:
                    touched = time.monotonic()
                    touch(self.activity)
        finally:
            self._close()

    # socketserver hooks: keep the open connections, to end them on stop.
    def process_request(self, request: socket.socket, client_address: object) -> None:
        with self._lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:
        with self._lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: object, client_address: object) -> None:
        log.debug("a connection of the served page failed", exc_info=True)

    def _close(self) -> None:
        self.server_close()  # the listener goes first: no new connection
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            # Wakes the proxying thread (its select() sees EOF), which then closes both ends.
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Close the listener and every connection; the port is free when this returns. Idempotent."""
        self._stopping.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        self._close()
