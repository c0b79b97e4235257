"""Top-level windows of a desktop, through EWMH where a window manager runs and plain X where none does."""

from __future__ import annotations

import re
import time
import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from Xlib import X, Xatom, error
from Xlib.display import Display
from Xlib.ext import res
from Xlib.protocol import event

from .._errors import DesktopError, DesktopStopped
from .._options import check_seconds
from . import _screen

if TYPE_CHECKING:
    from PIL import Image

Pattern = str | re.Pattern


class XHandle:
    """What a Window needs of its desktop: the desktop's X connection, for one call at a time.

    It holds the desktop's ``_x`` context manager weakly: a Window kept in a
    variable must not keep its desktop (and its processes) alive, and the
    window layer must not know the ``Desktop`` class.
    """

    def __init__(self, with_x: Callable[[], AbstractContextManager[Display]]) -> None:
        self._with_x = weakref.WeakMethod(with_x)  # type: ignore[arg-type]

    def with_x(self) -> AbstractContextManager[Display]:
        with_x = self._with_x()
        if with_x is None:
            raise DesktopStopped("the desktop of this window is gone (its Desktop object was collected)")
        return with_x()


@dataclass(frozen=True)
class Window:
    """A top-level window as it was when listed; its methods act on the live window."""

    id: int
    title: str
    wm_class: str
    wm_instance: str
    pid: int | None
    geometry: tuple[int, int, int, int]  # x, y, width, height on the screen
    focused: bool
    _handle: XHandle = field(repr=False, compare=False)

    def _run(self, op: Callable[[Display, int], Any]) -> Any:
        with self._handle.with_x() as conn:
            return run(conn, op, self.id)

    def activate(self) -> None:
        """Raise the window and give it the keyboard focus."""
        self._run(_activate)

    def move(self, x: int, y: int) -> None:
        """Put the window's top-left corner at ``(x, y)`` (it may be partly off the screen)."""
        _check_ints(x=x, y=y)
        self._run(lambda conn, wid: conn.create_resource_object("window", wid).configure(x=x, y=y))

    def resize(self, width: int, height: int) -> None:
        _check_ints(width=width, height=height)
        if width <= 0 or height <= 0:
            raise ValueError(f"window size must be positive; got {width}x{height}")
        self._run(lambda conn, wid: conn.create_resource_object("window", wid).configure(width=width, height=height))

    def close(self) -> None:
        """Ask the window to close (WM_DELETE_WINDOW), as its close button would."""
        self._run(_close)

    def screenshot(self) -> Image.Image:
        """The window's current pixels (what is on screen where the window is)."""
        with self._handle.with_x() as conn:
            x, y, w, h = run(conn, _geometry, self.id)
            sw, sh = _screen.size(conn)
            x0, y0, x1, y1 = max(0, x), max(0, y), min(sw, x + w), min(sh, y + h)
            if x1 <= x0 or y1 <= y0:
                raise ValueError(f"window {self.id:#x} ({self.title!r}) is not on the screen")
            return _screen.grab(conn, (x0, y0, x1 - x0, y1 - y0))


def listed(conn: Display, handle: XHandle) -> list[Window]:
    """The top-level windows now on the desktop of ``conn``."""
    return [Window(_handle=handle, **info) for info in list_windows(conn)]


def wait_for(
    windows: Callable[[], list[Window]],
    title: Pattern | None,
    wm_class: Pattern | None,
    pid: int | None,
    timeout: object,
) -> Window:
    """The first window of ``windows()`` that matches, polled until ``timeout`` s."""
    check_filters(title, wm_class, pid)
    timeout = check_seconds("timeout", timeout)
    deadline = time.monotonic() + timeout
    while True:
        found = windows()
        for window in found:
            if matches(window, title, wm_class, pid):
                return window
        if time.monotonic() > deadline:
            wanted = ", ".join(f"{k}={v!r}" for k, v in (("title", title), ("wm_class", wm_class), ("pid", pid)) if v)
            have = "; ".join(f"{w.title!r} ({w.wm_class}, pid {w.pid})" for w in found) or "none"
            raise TimeoutError(f"no window with {wanted} within {timeout:g} s; the windows are: {have}")
        time.sleep(0.05)


def _check_ints(**values: object) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int (pixels); got {value!r}")


def check_filters(title: object, wm_class: object, pid: object) -> None:
    """What ``wait_for_window`` accepts: a str (substring) or ``re.Pattern`` per text, an int pid."""
    for name, value in (("title", title), ("wm_class", wm_class)):
        if value is not None and not isinstance(value, (str, re.Pattern)):
            raise TypeError(f"{name} must be a str (a substring, any case) or a compiled re.Pattern; got {value!r}")
    if pid is not None and (not isinstance(pid, int) or isinstance(pid, bool)):
        raise TypeError(f"pid must be an int; got {pid!r}")


_GONE = (error.BadWindow, error.BadDrawable)


def run(conn: Display, op: Callable[[Display, int], Any], wid: int) -> Any:
    """``op(conn, wid)`` and a round trip, with the X errors it causes raised as one clear error.

    Most window requests have no reply: their errors arrive later, and
    python-xlib would only print them. A window that is gone raises
    DesktopError, any other X error is raised as it is.
    """
    errors: list[error.XError] = []
    conn.set_error_handler(lambda err, request: errors.append(err))
    try:
        result = op(conn, wid)
        conn.sync()
    except error.XError as exc:
        errors.append(exc)
    finally:
        conn.set_error_handler(None)
    if any(isinstance(err, _GONE) for err in errors):
        raise DesktopError(f"window {wid:#x} is gone (closed, or its program ended); d.windows() lists those there are")
    if errors:
        raise errors[0]
    return result


def _prop(conn: Display, window: Any, name: str, kind: int) -> Any:
    try:
        reply = window.get_full_property(conn.get_atom(name), kind)
    except error.XError:
        return None
    return reply.value if reply is not None else None


def _has_wm(conn: Display) -> bool:
    return bool(_prop(conn, conn.screen().root, "_NET_SUPPORTING_WM_CHECK", Xatom.WINDOW))


def has_wm(conn: Display) -> bool:
    return _has_wm(conn)


def _top_level_ids(conn: Display) -> list[int]:
    """Managed windows (EWMH client list) and unmanaged application windows.

    Without a window manager every application window is a mapped child of
    the root; with one, such a child that has a WM_CLASS is a window the
    manager missed (e.g. mapped while it was starting), still on screen.
    """
    root = conn.screen().root
    clients = _prop(conn, root, "_NET_CLIENT_LIST", Xatom.WINDOW) if _has_wm(conn) else None
    found = list(clients or [])
    for child in root.query_tree().children:
        if child.id in found:
            continue
        try:
            attributes = child.get_attributes()
            if attributes.map_state != X.IsViewable or attributes.override_redirect:
                continue
            if clients is None or child.get_wm_class():
                found.append(child.id)
        except error.XError:
            continue
    return found


def _geometry(conn: Display, wid: int) -> tuple[int, int, int, int]:
    window = conn.create_resource_object("window", wid)
    geometry = window.get_geometry()
    origin = window.translate_coords(conn.screen().root, 0, 0)
    return -origin.x, -origin.y, geometry.width, geometry.height


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def describe(conn: Display, wid: int) -> dict | None:
    """The fields of a Window, or None if it vanished meanwhile."""
    window = conn.create_resource_object("window", wid)
    try:
        title = _prop(conn, window, "_NET_WM_NAME", conn.get_atom("UTF8_STRING"))
        if title is None:
            title = _prop(conn, window, "WM_NAME", X.AnyPropertyType)
        wm_class = window.get_wm_class() or ("", "")
        pid = _prop(conn, window, "_NET_WM_PID", Xatom.CARDINAL)
        pid = int(pid[0]) if pid else _client_pid(conn, wid)
        geometry = _geometry(conn, wid)
    except error.XError:
        return None
    return {
        "id": wid,
        "title": _text(title),
        "wm_instance": wm_class[0],
        "wm_class": wm_class[1],
        "pid": pid,
        "geometry": geometry,
    }


def _client_pid(conn: Display, wid: int) -> int | None:
    """The pid of the client that made the window, from the X server itself (X-Resource).

    Toolkits such as Tk do not set _NET_WM_PID; the server knows the pid of
    every local client anyway.
    """
    if not conn.has_extension("X-Resource"):
        return None
    try:
        reply = conn.res_query_client_ids([{"client": wid, "mask": res.LocalClientPIDMask}])
    except error.XError:
        return None
    for item in reply.ids:
        if item.spec.mask == res.LocalClientPIDMask and item.value:
            return int(item.value[0])
    return None


def list_windows(conn: Display) -> list[dict]:
    root = conn.screen().root
    active = _prop(conn, root, "_NET_ACTIVE_WINDOW", Xatom.WINDOW)
    focus = conn.get_input_focus().focus
    focus_id = focus.id if hasattr(focus, "id") else None
    found = []
    for wid in _top_level_ids(conn):
        info = describe(conn, wid)
        if info is not None:
            info["focused"] = bool(active and active[0] == wid) or focus_id == wid
            found.append(info)
    return found


def matches(window: Window, title: Pattern | None, wm_class: Pattern | None, pid: int | None) -> bool:
    def match(pattern: Pattern | None, *values: str) -> bool:
        if pattern is None:
            return True
        if isinstance(pattern, re.Pattern):
            return any(pattern.search(v) for v in values)
        return any(pattern.lower() in v.lower() for v in values)

    return (
        match(title, window.title)
        and match(wm_class, window.wm_class, window.wm_instance)
        and (pid is None or window.pid == pid)
    )


def _client_message(conn: Display, wid: int, name: str, data: list[int], to_root: bool) -> None:
    window = conn.create_resource_object("window", wid)
    message = event.ClientMessage(window=window, client_type=conn.get_atom(name), data=(32, (data + [0] * 5)[:5]))
    if to_root:
        mask = X.SubstructureRedirectMask | X.SubstructureNotifyMask
        conn.screen().root.send_event(message, event_mask=mask)
    else:
        window.send_event(message)


def _activate(conn: Display, wid: int) -> None:
    window = conn.create_resource_object("window", wid)
    window.get_attributes()  # BadWindow if it is gone: the window manager would ignore the request silently
    if _has_wm(conn):
        _client_message(conn, wid, "_NET_ACTIVE_WINDOW", [2, X.CurrentTime, 0], to_root=True)
    else:
        window.configure(stack_mode=X.Above)
        window.set_input_focus(X.RevertToParent, X.CurrentTime)


def _close(conn: Display, wid: int) -> None:
    window = conn.create_resource_object("window", wid)
    protocols = window.get_wm_protocols() or []
    delete = conn.get_atom("WM_DELETE_WINDOW")
    if delete not in protocols:
        raise RuntimeError(
            f"window {wid:#x} does not accept WM_DELETE_WINDOW; stop its process instead (Desktop.launch returns it)"
        )
    message = event.ClientMessage(
        window=window, client_type=conn.get_atom("WM_PROTOCOLS"), data=(32, [delete, X.CurrentTime, 0, 0, 0])
    )
    window.send_event(message)
