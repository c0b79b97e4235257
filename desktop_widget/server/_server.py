"""The Jupyter server extension: ``{base_url}desktop-widget/<id>/`` bridged to a desktop's RFB socket.

A small handler of our own rather than jupyter-server-proxy's raw-socket
handler: it answers 404 for an unknown desktop *before* the WebSocket
handshake, checks the same authorization as a terminal (a desktop is a
shell), and applies back-pressure in both directions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.utils import url_path_join
from tornado import ioloop, web, websocket

from .. import _registry, _spare
from .._errors import DesktopError
from .._session import touch
from . import _auth, _launcher

log = logging.getLogger(__name__)

_CHUNK = 256 * 1024


class DesktopSocketHandler(WebSocketMixin, JupyterHandler, websocket.WebSocketHandler):
    """One browser view <-> one connection to Xvnc's unix socket."""

    auth_resource = _auth.RESOURCE

    def initialize(self, runtime_dir: str) -> None:
        self.runtime_dir = runtime_dir
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pump: asyncio.Task | None = None
        self._keepalive: ioloop.PeriodicCallback | None = None
        self._activity: str | None = None
        self._socket: str | None = None
        self._closed = False

    async def get(self, desktop_id: str, path: str = "") -> None:
        user = self.current_user
        if not user:
            raise web.HTTPError(403, "log in to Jupyter first")
        await _auth.authorize(self)
        try:
            self._socket = _registry.socket_for(desktop_id, self.runtime_dir)
        except DesktopError as exc:  # a registry that is not safe to use: say why, connect to nothing
            raise web.HTTPError(500, str(exc)) from exc
        if self._socket is None:
            # The reason phrase tells a view "our route, but not this desktop"
            # apart from a server without the extension (also a 404).
            raise web.HTTPError(404, f"no running desktop {desktop_id!r}", reason="No Such Desktop")
        if self.request.headers.get("Upgrade", "").lower() != "websocket":
            # A plain GET: the view probes the route when its WebSocket never
            # connects (browsers report those failures only as code 1006).
            self.set_status(204)
            self.finish()
            return
        self._activity = str(_registry.root(self.runtime_dir) / desktop_id / "activity")
        # tornado checks Origin and the WebSocket version next; the desktop's
        # socket is opened only once it has accepted the upgrade (``open``), so
        # a refused request holds nothing.
        await super().get(desktop_id, path)

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        # noVNC offers "binary" when asked to; accept it, or none.
        return "binary" if "binary" in subprotocols else None

    async def open(self, desktop_id: str, path: str = "") -> None:
        try:
            reader, writer = await asyncio.open_unix_connection(self._socket, limit=_CHUNK)
        except OSError as exc:
            log.warning("desktop %s does not answer: %s", desktop_id, exc)
            self.close(1011, "the desktop does not answer")
            return
        if self._closed:  # the browser left while we connected
            writer.close()
            return
        self._reader, self._writer = reader, writer
        super().open(desktop_id, path)  # keep-alive pings
        self.set_nodelay(True)
        # A connected view counts as use of the desktop (its idle timeout).
        touch(self._activity)
        self._keepalive = ioloop.PeriodicCallback(lambda: touch(self._activity), 1000)
        self._keepalive.start()
        self._pump = asyncio.ensure_future(self._pump_to_browser())

    async def _pump_to_browser(self) -> None:
        reader = self._reader
        try:
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    break
                # Waiting for the write keeps a slow browser from piling up
                # frames in the server's memory.
                await self.write_message(data, binary=True)
        except (websocket.WebSocketClosedError, OSError, asyncio.CancelledError):
            pass
        finally:
            self.close()

    async def on_message(self, message: str | bytes) -> None:
        if self._writer is None:
            return
        if isinstance(message, str):
            message = message.encode()
        self._writer.write(message)
        with contextlib.suppress(OSError):
            await self._writer.drain()

    def on_close(self) -> None:
        self._closed = True
        if self._keepalive is not None:
            self._keepalive.stop()
            self._keepalive = None
            touch(self._activity)
        if self._pump is not None:
            self._pump.cancel()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def on_connection_close(self) -> None:
        super().on_connection_close()
        self.on_close()


def _load_jupyter_server_extension(serverapp) -> None:
    base_url = serverapp.web_app.settings["base_url"]
    route = url_path_join(base_url, _registry.NAME + r"/([^/]*)/?(.*)")
    config = serverapp.config.get("DesktopWidget", {})
    serverapp.web_app.settings["desktop_widget_launcher"] = _launcher.LauncherDesktop(
        cwd=serverapp.root_dir, idle_timeout=float(config.get("launcher_idle_timeout", 0) or 0)
    )
    spares = _spare.spare_count(config)
    pool = _spare.SparePool(spares, cwd=serverapp.root_dir) if spares else None
    _spare.advertise(pool)  # before any kernel starts: they inherit it
    if pool is not None:
        serverapp.web_app.settings["desktop_widget_spares"] = pool
        pool.start()
        serverapp.log.info("desktop_widget: keeping %d spare desktop(s) ready", spares)
    serverapp.web_app.add_handlers(
        ".*$",
        [(route, DesktopSocketHandler, {"runtime_dir": serverapp.runtime_dir}), *_launcher.handlers(base_url)],
    )
    serverapp.log.info("desktop_widget: desktops are served at %s", route)


def _unload_jupyter_server_extension(serverapp) -> None:
    """Stop the launcher's desktop and the spares with the server (kernels' desktops stop with their kernels)."""
    launcher = serverapp.web_app.settings.get("desktop_widget_launcher")
    if launcher is not None:
        launcher.shutdown()
    spares = serverapp.web_app.settings.get("desktop_widget_spares")
    if spares is not None:
        spares.shutdown()
