"""The one permission check of every server handler: a desktop is as powerful as a terminal."""

from __future__ import annotations

from jupyter_core.utils import ensure_async
from jupyter_server.base.handlers import JupyterHandler
from tornado import web

#: The resource whose "execute" permission guards desktops (jupyter_server's authorizer).
RESOURCE = "terminals"


async def authorize(handler: JupyterHandler) -> None:
    """Raise 403 unless the handler's logged-in user may execute terminals (no user: left to the handler)."""
    user = handler.current_user
    if user and handler.authorizer is not None:
        allowed = await ensure_async(handler.authorizer.is_authorized(handler, user, "execute", RESOURCE))
        if not allowed:
            raise web.HTTPError(403, "not authorized to use desktops (needs the right to execute terminals)")
