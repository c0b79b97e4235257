"""How a ``Desktop`` comes to have a session: a spare the server keeps ready, the named desktop
already running, or a new one (its view made while Xvnc starts); and the view size a new one starts at.

The checks of every argument run here before anything starts. ``Desktop``
(``_desktop``) only adopts what this returns.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import Any

from .. import _options, _registry, _spare
from .._attached import AttachedSession
from .._errors import DesktopError
from .._options import DEFAULT_FRAME_RATE, ViewOptions
from .._session import Session, recorded_options
from . import _lazy
from ._resources import Resources, shutdown

_apps = _lazy.module(".._apps", __package__)
_pointer = _lazy.module("..control._pointer", __package__)
_record = _lazy.module("._record", __package__)
_rfb = _lazy.module("..control._rfb", __package__)
_screen = _lazy.module("..control._screen", __package__)
_snapshot = _lazy.module("._snapshot", __package__)
_widget = _lazy.module("._widget", __package__)
_windows = _lazy.module("..control._windows", __package__)
_x = _lazy.module("..control._x", __package__)

#: The size of the last primary view in this process: a new desktop starts at
#: it, so that the view does not have to resize it (and XFCE draw twice).
last_view_size: list[tuple[int, int]] = []

Found = tuple[Session | AttachedSession, Any, bool]  # the session, its view, and whether this process owns it


def open_desktop(view: ViewOptions, **request: Any) -> Found:
    """The session and view for ``Desktop(...)``'s arguments (``request``: those of ``check_options``, by name).

    Bad ones fail before anything starts.
    """
    geometry = request["geometry"]
    scale = view.scale
    if scale is None:
        # A size asked for is kept (views scale it); otherwise the view sizes the desktop.
        scale = geometry is not None
    if geometry is None:
        geometry = last_view_size[-1] if last_view_size else _options.Options.geometry
    options = _options.check_options(**{**request, "geometry": geometry})
    # Checked before anything starts so that bad view arguments fail early.
    view_args = _options.check_view(view.view_only, scale, view.height, view.quality, view.compression, view.transport)
    # Which options the caller set (a running desktop of that name must have them; a spare has none).
    asked = {
        "session_command": request["session"] != "auto",
        "opengl": not request["opengl"],
        "geometry": request["geometry"] is not None,
        "frame_rate": request["frame_rate"] != DEFAULT_FRAME_RATE,
        "cwd": request["cwd"] is not None,
        "env_sha256": bool(request["env"]),
        "persistent": request["persistent"],
        "idle_timeout": request["idle_timeout"] is not None,
    }
    if not options.name:
        # The defaults: a spare the server keeps ready, if there is one (see _spare).
        claimed = None if any(asked.values()) else _spare.claim(options)
        if claimed is not None:
            return claimed, _widget.DesktopView(**view_args), True
        return start(options, view_args)
    shown = _widget.DesktopView(**view_args)
    # Get-or-create, as one step for every process of this user (two kernels
    # asking at once get one desktop).
    with _registry.name_lock(options.name):
        existing = _registry.verified(options.name)
        if existing is None or existing.name != options.name:
            return start(options, view_args)
        # The desktop of that name is already running somewhere.
        wanted = recorded_options(
            options, _options.session_command(options.session) if asked["session_command"] else []
        )
        check_same_options(existing, wanted, [k for k, v in asked.items() if v])
        attached = AttachedSession(existing)
    shown.scale = True
    return attached, shown, False


def start(options: _options.Options, view_args: dict[str, Any]) -> Found:
    """A new desktop, owned by this process."""
    session = Session(options)
    views: list[Any] = []

    def while_xvnc_starts() -> None:
        # The first Desktop() of a kernel imports its view and X stack here, in parallel with Xvnc.
        _lazy.load(_widget, _x, _snapshot, _screen, _pointer, _windows, _apps, _record, _rfb)
        views.append(_widget.DesktopView(**view_args))

    session.start(while_starting=while_xvnc_starts)
    return session, views[0], True


def adopt(desktop: object, session: Session | AttachedSession, view: Any, resources: Resources, owned: bool) -> Any:
    """Tie ``view`` to ``session`` and return ``desktop``'s finalizer (which holds the session, not the desktop)."""
    with view.hold_trait_notifications():
        view._desktop_id = session.id
        view._ws_path = _registry.ws_path(session.id)
        view._set_status(session.state)
    session.on_state(view._set_status)
    view.observe(remember_view_size, "_view_size")
    resources.frames = _snapshot.LastFrame(view, session.display, session.xauthority)
    if owned and not session.options.persistent:
        return weakref.finalize(desktop, shutdown, session, resources)
    # Attached or persistent: going away here must not stop the desktop.
    return weakref.finalize(desktop, resources.release)


def attach(id_or_name: str) -> AttachedSession:
    """The running desktop ``id_or_name`` (``Desktop.attach``), checked; an error lists those there are."""
    info = _registry.verified(id_or_name)
    if info is None:
        running = ", ".join(f"{i.id} ({i.name or i.display})" for i in _registry.list_entries()) or "none"
        raise DesktopError(f"no running desktop {id_or_name!r}; running now: {running}")
    return AttachedSession(info)


def check_same_options(info: _registry.DesktopInfo, wanted: dict, asked: list[str]) -> None:
    """Refuse options that the running desktop of that name was not started with.

    Raised, not warned: code that asks for ``session="xfce"`` and silently
    gets another kind of desktop fails later and far from the cause. Options
    left at their defaults accept whatever the running desktop has.
    """
    have = info.options
    differ = [k for k in asked if k in have and have[k] != wanted[k]]
    if not differ:
        return
    # Shown as the caller wrote them: the session by name, the environment not at all.
    shown = {"session_command": "session", "env_sha256": "env"}
    details = ", ".join(
        "env"
        if k == "env_sha256"
        else f"{shown.get(k, k)}={have[shown.get(k, k)]!r} (asked: {wanted[shown.get(k, k)]!r})"
        for k in differ
    )
    raise DesktopError(
        f"desktop {info.name!r} is already running with other options: {details}; "
        f"leave those out to use it as it is (or Desktop.attach({info.name!r})), "
        "or stop it first to start it again with yours"
    )


def remember_view_size(change: dict) -> None:
    size = change["new"]
    if isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(v, int) for v in size):
        with contextlib.suppress(ValueError, TypeError):
            last_view_size[:] = [_options.check_geometry(tuple(size))]
