"""The anywidget that shows a desktop: traits for lasting view state only."""

from __future__ import annotations

import logging
from typing import Any

import anywidget
import traitlets

from .. import _registry
from .._errors import DesktopError
from .._options import CSS_LENGTH, VIEW_TRANSPORTS, ViewOptions
from .._page import STATIC
from ._comm import CommTunnel

log = logging.getLogger(__name__)

_BUNDLE = STATIC / "widget.js"

# A checkout whose JS was never built would otherwise render an empty cell.
_MISSING_BUNDLE = """
export default { render({ el }) {
  el.textContent = "desktop_widget's JavaScript bundle is missing: run `npm --prefix js ci && node js/build.mjs` "
    + "in the source checkout, or install the package with pip (which builds it).";
} };
"""


class DesktopView(anywidget.AnyWidget):
    """A live view of one desktop; several views of one desktop may be shown."""

    _esm = _BUNDLE if _BUNDLE.is_file() else _MISSING_BUNDLE
    _css = STATIC / "widget.css" if (STATIC / "widget.css").is_file() else ""

    _desktop_id = traitlets.Unicode().tag(sync=True)
    #: The route below the server's base URL; the page supplies the base URL.
    _ws_path = traitlets.Unicode().tag(sync=True)
    status = traitlets.Unicode("starting", read_only=True).tag(sync=True)
    status_detail = traitlets.Unicode("", read_only=True).tag(sync=True)
    # (Defaults and meanings: _options.ViewOptions.)
    view_only = traitlets.Bool(ViewOptions.view_only).tag(sync=True)
    scale = traitlets.Bool(ViewOptions.scale).tag(sync=True)
    height = traitlets.Unicode(ViewOptions.height).tag(sync=True)
    quality = traitlets.Int(ViewOptions.quality, min=0, max=9).tag(sync=True)
    compression = traitlets.Int(ViewOptions.compression, min=0, max=9).tag(sync=True)
    #: The desktop's clipboard text as the views last saw it (noVNC's clipboard events).
    clipboard = traitlets.Unicode("").tag(sync=True)
    #: The primary view's size in CSS pixels, reported by the view.
    _view_size = traitlets.List(traitlets.Int(), default_value=[]).tag(sync=True)
    #: How views reach the desktop: "server" (the Jupyter server's route), "comm"
    #: (RFB through this widget's comm and the kernel), or "auto": the route when
    #: the page is a Jupyter server page whose route answers for this desktop,
    #: else the comm.
    transport = traitlets.Enum(VIEW_TRANSPORTS, default_value=ViewOptions.transport).tag(sync=True)
    #: The desktop's last frame (encoded image; binary in saved widget state), its MIME type and
    #: when it was taken (seconds since the epoch): shown where the live desktop cannot be (_snapshot).
    _last_frame = traitlets.Bytes(b"").tag(sync=True)
    _last_frame_mime = traitlets.Unicode("image/jpeg").tag(sync=True)
    _last_frame_time = traitlets.Float(0.0).tag(sync=True)

    def __init__(self, **kwargs: object) -> None:
        unknown = set(kwargs) - set(self.class_trait_names())
        if unknown:
            raise TypeError(f"unknown DesktopView argument(s): {', '.join(sorted(unknown))}")
        super().__init__(**kwargs)
        self._tunnel = CommTunnel(self._send_message, self._socket_path)
        self.on_msg(self._on_message)

    def _send_message(self, content: dict, buffers: list) -> None:
        self.send(content, buffers=buffers or None)

    def _socket_path(self) -> str | None:
        if self.status not in ("running", "session-exited"):
            return None
        try:
            return _registry.socket_for(self._desktop_id)
        except DesktopError as exc:  # a registry not safe to use: connect to nothing
            log.warning("desktop %s: %s", self._desktop_id, exc)
            return None

    def _on_message(self, _widget: Any, content: Any, buffers: list) -> None:
        self._tunnel.handle(content, buffers)

    @traitlets.observe("status")
    def _on_status(self, change: dict) -> None:
        if change["new"] in ("stopped", "failed"):
            # The desktop is gone: its connections end here, not when a read fails.
            self._tunnel.close_all(f"the desktop {change['new']}")

    def close(self) -> None:
        tunnel = getattr(self, "_tunnel", None)
        if tunnel is not None:
            tunnel.shutdown()
        super().close()

    @traitlets.validate("height")
    def _check_height(self, proposal: dict) -> str:
        value = proposal["value"]
        if not CSS_LENGTH.fullmatch(value):
            raise traitlets.TraitError(f"height must be a CSS length such as '600px' or '70vh'; got {value!r}")
        return value

    def _set_status(self, state: str, detail: str = "") -> None:
        with self.hold_trait_notifications():
            self.set_trait("status_detail", detail)
            self.set_trait("status", state)
