"""Click markers for recordings (``show_clicks=True``): a ring where each click lands.

Every button press on the desktop (from ``d.click``, a view, any X client) is
seen through the RECORD extension, as the X server delivers it. The ring is a
small override-redirect window shaped to a ring, drawn by the X server from a
background pixmap (no expose handling), and with an empty *input* shape: the
pointer passes through it, so a double click or a drag after a click still
lands on the application below. It shows for ``SHOW_FOR`` seconds.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from Xlib import X
from Xlib.ext import record, shape
from Xlib.protocol import rq

from ..control import _x

log = logging.getLogger(__name__)

#: Ring size in pixels (outer diameter), its band's width, how long it shows.
DIAMETER = 40
BAND = 6
SHOW_FOR = 0.45
RING = 0xFFB300  # amber: visible on light and dark windows
EDGE = 0x202020
#: Wheel "buttons" are not clicks.
WHEEL = frozenset({4, 5, 6, 7})


class ClickMarker:
    """Watch button presses and show a ring at each; ``close()`` stops both."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._draw = connect()
        self._watch = connect()
        _x.set_deadline(self._watch, math.inf)  # RECORD's stream waits for clicks on purpose
        self._control = connect()
        self._cond = threading.Condition()
        self._pending: list[tuple[int, int]] = []
        self._closed = False
        self._context = None
        self._threads: list[threading.Thread] = []
        self.clicks = 0

    def start(self) -> None:
        ranges = [
            {
                "core_requests": (0, 0),
                "core_replies": (0, 0),
                "ext_requests": (0, 0, 0, 0),
                "ext_replies": (0, 0, 0, 0),
                "delivered_events": (0, 0),
                "device_events": (X.ButtonPress, X.ButtonPress),
                "errors": (0, 0),
                "client_started": False,
                "client_died": False,
            }
        ]
        self._context = self._control.record_create_context(0, [record.AllClients], ranges)
        self._control.sync()
        self._window = self._make_window()
        for target, name in ((self._record, "desktop-clicks-record"), (self._show, "desktop-clicks-show")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _make_window(self) -> Any:
        conn = self._draw
        screen = conn.screen()
        root = screen.root
        # The ring's picture: dark edge, amber band, dark edge.
        picture = root.create_pixmap(DIAMETER, DIAMETER, screen.root_depth)
        gc = picture.create_gc(foreground=EDGE)
        picture.fill_rectangle(gc, 0, 0, DIAMETER, DIAMETER)
        gc.change(foreground=RING)
        picture.fill_arc(gc, 1, 1, DIAMETER - 2, DIAMETER - 2, 0, 360 * 64)
        gc.change(foreground=EDGE)
        inner = DIAMETER - 2 * BAND
        picture.fill_arc(gc, BAND - 1, BAND - 1, inner + 2, inner + 2, 0, 360 * 64)
        # Its outline: a 1-bit mask that is the ring only.
        mask = root.create_pixmap(DIAMETER, DIAMETER, 1)
        bits = mask.create_gc(foreground=0)
        mask.fill_rectangle(bits, 0, 0, DIAMETER, DIAMETER)
        bits.change(foreground=1)
        mask.fill_arc(bits, 0, 0, DIAMETER, DIAMETER, 0, 360 * 64)
        bits.change(foreground=0)
        mask.fill_arc(bits, BAND, BAND, inner, inner, 0, 360 * 64)
        window = root.create_window(
            0,
            0,
            DIAMETER,
            DIAMETER,
            0,
            screen.root_depth,
            X.InputOutput,
            X.CopyFromParent,
            background_pixmap=picture,
            override_redirect=True,
        )
        window.shape_mask(shape.SO.Set, shape.SK.Bounding, 0, 0, mask)
        window.shape_rectangles(shape.SO.Set, shape.SK.Input, X.Unsorted, 0, 0, [])
        window.change_property(conn.get_atom("WM_NAME"), conn.get_atom("STRING"), 8, b"desktop-widget click")
        for resource in (picture, mask):
            resource.free()
        gc.free()
        bits.free()
        conn.sync()
        return window

    def _record(self) -> None:
        """Blocks in RECORD until ``close()`` disables the context."""
        try:
            self._watch.record_enable_context(self._context, self._on_data)
        except Exception:
            if not self._closed:
                log.debug("click recording ended", exc_info=True)

    def _on_data(self, reply: Any) -> None:
        if reply.category != record.FromServer or reply.client_swapped:
            return
        data = reply.data
        while len(data) >= 32:
            event, data = rq.EventField(None).parse_binary_value(data, self._watch.display, None, None)
            if event.type == X.ButtonPress and event.detail not in WHEEL:
                with self._cond:
                    self._pending.append((event.root_x, event.root_y))
                    self.clicks += 1
                    self._cond.notify()

    def _show(self) -> None:
        """Map the ring at each new click; unmap it ``SHOW_FOR`` s after the last one."""
        hide_at = None
        while True:
            with self._cond:
                timeout = None if hide_at is None else max(0.0, hide_at - time.monotonic())
                self._cond.wait_for(lambda: self._pending or self._closed, timeout)
                if self._closed:
                    return
                clicks, self._pending = self._pending, []
            try:
                if clicks:
                    x, y = clicks[-1]
                    self._window.configure(x=x - DIAMETER // 2, y=y - DIAMETER // 2, stack_mode=X.Above)
                    self._window.map()
                    hide_at = time.monotonic() + SHOW_FOR
                elif hide_at is not None and time.monotonic() >= hide_at:
                    self._window.unmap()
                    hide_at = None
                self._draw.flush()
            except Exception:
                log.debug("click marker stopped", exc_info=True)  # the desktop went away
                return

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        if self._context is not None:
            with contextlib.suppress(Exception):
                self._control.record_disable_context(self._context)
                self._control.record_free_context(self._context)
                self._control.sync()
        for thread in self._threads:
            thread.join(2)
        for conn in (self._draw, self._watch, self._control):
            with contextlib.suppress(Exception):
                conn.close()
