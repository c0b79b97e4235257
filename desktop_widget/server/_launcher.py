"""The launcher's desktop: a full-page view at ``{base_url}desktop/`` behind a JupyterLab launcher tile.

The page runs the same view module as the widget. Its desktop is started
by the server on the first visit, registered like any other (name
``launcher``, so kernels can ``Desktop.attach("launcher")``), survives the
tab being closed, and stops from the page's toolbar or with the server.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import ClassVar

from jupyter_core.paths import jupyter_runtime_dir
from jupyter_core.utils import ensure_async
from jupyter_server.base.handlers import APIHandler, FileFindHandler, JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web

from .. import _options, _registry
from .._attached import AttachedSession
from .._errors import DesktopError, DesktopStopped
from .._page import STATIC, page_html
from .._session import Session
from . import _auth

NAME = "launcher"
_ICON = Path(__file__).parents[1] / "icons" / "desktop.svg"


class LauncherDesktop:
    """The one launcher desktop of this server (or the one of that name already running)."""

    def __init__(self, cwd: str, idle_timeout: float) -> None:
        self.cwd = cwd
        self.idle_timeout = idle_timeout
        self.session: Session | AttachedSession | None = None
        self.lock = asyncio.Lock()

    def current(self) -> _registry.DesktopInfo | None:
        return _registry.verified(NAME)

    async def ensure(self) -> _registry.DesktopInfo:
        async with self.lock:
            return await asyncio.get_running_loop().run_in_executor(None, self._ensure)

    def _ensure(self) -> _registry.DesktopInfo:
        # The name's lock: a kernel's Desktop(name="launcher") at the same moment gets this same desktop.
        with _registry.name_lock(NAME):
            info = self.current()
            if info is not None:
                return info
            options = _options.check_options(cwd=self.cwd, name=NAME, idle_timeout=self.idle_timeout)
            session = Session(options)
            session.start()
            self.session = session
            return self.current()

    async def stop(self) -> None:
        async with self.lock:
            info = self.current()
            if info is None:
                return
            if self.session is not None and self.session.id == info.id:
                session = self.session
            else:
                try:
                    session = AttachedSession(info)  # checks the entry again: never a signal to a stranger
                except DesktopStopped:
                    return
            await asyncio.get_running_loop().run_in_executor(None, session.stop)

    def why_stopped(self) -> str:
        """ "idle" when this server's launcher desktop stopped itself for lack of use."""
        return self.session.detail if isinstance(self.session, Session) else ""

    def shutdown(self) -> None:
        if self.session is not None:
            self.session.stop()


class _Authorized(JupyterHandler):
    """A desktop is as powerful as a terminal: the same permission guards it."""

    auth_resource = _auth.RESOURCE

    async def prepare(self) -> None:
        await ensure_async(super().prepare())
        await _auth.authorize(self)

    @property
    def launcher(self) -> LauncherDesktop:
        return self.settings["desktop_widget_launcher"]


def _state(info: _registry.DesktopInfo | None, detail: str = "") -> dict:
    if info is None:
        return {"id": "", "status": "stopped", "ws_path": "", "detail": detail}
    return {"id": info.id, "status": "running", "ws_path": _registry.ws_path(info.id), "display": info.display}


class DesktopPageHandler(_Authorized):
    """The page; it shows the launcher desktop and starts it by a POST of its own.

    A GET starts nothing: any web site can make the user's browser GET this
    URL (a link, an image), but only our page has the XSRF token a POST needs.
    """

    @web.authenticated
    async def get(self) -> None:
        try:
            info, error = self.launcher.current(), ""
            state = _state(info)
        except DesktopError as exc:  # e.g. a registry that is not safe to use: the page says why
            info, error = None, str(exc)
            state = {"id": "", "status": "failed", "ws_path": ""}
        base_url = self.base_url
        hub = os.environ.get("JUPYTERHUB_BASE_URL")
        config = {
            "baseUrl": base_url,
            "desktop": state,
            "error": error,
            "autostart": info is None and not error,
            "labUrl": url_path_join(base_url, "lab"),
            "hubUrl": url_path_join(hub, "hub/home") if hub and os.environ.get("JUPYTERHUB_API_TOKEN") else "",
            "xsrf": self.xsrf_token.decode() if isinstance(self.xsrf_token, bytes) else self.xsrf_token,
        }
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(page_html(config, url_path_join(base_url, "desktop/static/")))


class DesktopAPIHandler(_Authorized, APIHandler):
    @web.authenticated
    async def get(self) -> None:
        self.finish(json.dumps(_state(self.launcher.current(), self.launcher.why_stopped())))

    @web.authenticated
    async def post(self, action: str) -> None:
        if action == "start":
            try:
                info = await self.launcher.ensure()
            except (DesktopError, OSError) as exc:
                raise web.HTTPError(500, str(exc)) from exc
            self.finish(json.dumps(_state(info)))
        elif action == "stop":
            await self.launcher.stop()
            self.finish(json.dumps(_state(None)))
        else:
            raise web.HTTPError(404, f"unknown action {action!r}")


class StaticHandler(FileFindHandler):
    """The page's JS and CSS: the package's own build output, public like JupyterLab's ``/static/``.

    Not behind the login: the page loads page.js as a module script, which a
    browser fetches in CORS mode, and a JupyterHub single-user server
    (JupyterHub >= 4.1) ignores its login cookie on such a request unless it
    carries an XSRF token, which a ``<script>`` cannot send. A login-only
    handler answers it with a redirect to the hub's OAuth, over and over.
    """

    # FileFindHandler caches found files by relative path in a class attribute:
    # one of our own, so that no other route's "page.js" is ever served here.
    _static_paths: ClassVar[dict[str, str]] = {}


def handlers(base_url: str) -> list[tuple]:
    return [
        (url_path_join(base_url, r"desktop/?"), DesktopPageHandler),
        (url_path_join(base_url, r"desktop/api/state"), DesktopAPIHandler),
        (url_path_join(base_url, r"desktop/api/(start|stop)"), DesktopAPIHandler),
        (url_path_join(base_url, r"desktop/static/(.*)"), StaticHandler, {"path": str(STATIC)}),
    ]


def server_proxy_entry() -> dict:
    """The JupyterLab launcher tile (a jupyter-server-proxy entry point).

    jupyter-server-proxy only draws the tile here; the tile opens our own
    page. The proxy route it also makes leads to a unix socket path that
    never exists (never a TCP port another user could answer on).
    """
    return {
        "command": [],
        # (Not through _registry.root(): a registry it refuses must not keep the server from starting.)
        "unix_socket": str(Path(jupyter_runtime_dir()) / _registry.NAME / "no-such-socket"),
        "raw_socket_proxy": True,
        "launcher_entry": {
            "enabled": True,
            "title": "Desktop",
            "path_info": "desktop/",
            "icon_path": str(_ICON),
            "category": "Notebook",
        },
        "new_browser_tab": True,
    }
