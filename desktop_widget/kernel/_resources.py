"""What the kernel holds for one desktop: its X connection (and the repair after a broken call),
keyboard, clipboard owner, launched apps, recordings, served page and last frame.

Kept apart from ``Desktop`` (the API, ``_desktop``) so that the state and its
release have one place, and the finalizer that releases it holds no Desktop.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .. import _options
from .._errors import DesktopStopped
from .._session import touch
from . import _lazy

if TYPE_CHECKING:
    from .._attached import AttachedSession
    from .._session import Session

_apps = _lazy.module(".._apps", __package__)
_pointer = _lazy.module("..control._pointer", __package__)
_record = _lazy.module("._record", __package__)
_snapshot = _lazy.module("._snapshot", __package__)
_windows = _lazy.module("..control._windows", __package__)
_x = _lazy.module("..control._x", __package__)

log = logging.getLogger(__name__)

#: Seconds for the clean-up after an interrupted call, and for releasing keys at stop.
REPAIR_DEADLINE = 1.0


class Resources:
    """What the kernel side holds for a desktop; released before the processes stop.

    It holds the session, never the ``Desktop``: the desktop's finalizer
    keeps it, and must not keep the desktop alive.
    """

    def __init__(self, session: Session | AttachedSession) -> None:
        self.session = session
        self.lock = threading.RLock()
        self.conn = None
        self.keyboard = None
        self.clipboard = None
        self.frames: _snapshot.LastFrame | None = None
        self.apps: list[_apps.App] = []
        self.recordings: list[Any] = []
        self.served = None  # the ViewServer of serve(), if any
        self.wm_seen = False
        self.touched = 0.0
        self.stale: int | None = None  # resource id base of a connection dropped mid-call, until repaired
        self.buttons: set[int] = set()  # held by mouse_down: a repair leaves them down

    def require_running(self) -> None:
        if self.session.state in ("stopped", "failed"):
            raise DesktopStopped(f"desktop {self.session.id} is {self.session.state}; start a new Desktop()")

    @contextlib.contextmanager
    def x(self) -> Iterator[Any]:
        """The kernel's X connection to this desktop, one user at a time.

        A call that is interrupted (KeyboardInterrupt), outlasts the X
        deadline or breaks the connection leaves python-xlib mid-request:
        the connection is dropped, and buttons, keys and keymap are put right
        on a fresh one (now, or at the next call if the server does not
        answer). Errors that leave the connection sound (bad input, an X
        error reply) keep it.
        """
        self.require_running()
        now = time.monotonic()
        if now - self.touched > 1.0:  # scripting counts as use (idle_timeout)
            self.touched = now
            touch(self.session.directory / "activity")
        with self.lock:
            conn = self.connection(self.connect)
            try:
                yield conn
            except BaseException as exc:
                clipboard = self.clipboard.conn if self.clipboard is not None else None
                late = _x.expired(conn) or (clipboard is not None and _x.expired(clipboard))
                if clipboard is not None and not (isinstance(exc, Exception) and _x.alive(clipboard)):
                    self.forget_clipboard()
                if isinstance(exc, Exception) and _x.alive(conn):
                    raise
                self.forget(conn)
                if late:
                    raise self.late() from exc
                try:  # put keys and buttons right now, not only at the next call
                    self.connection(functools.partial(self.connect, REPAIR_DEADLINE))
                except Exception:
                    log.info(
                        "desktop %s: repair after a broken call deferred to the next call",
                        self.session.id,
                        exc_info=True,
                    )
                raise

    def connect(self, deadline: float | None = None) -> Any:
        """A new X connection to the desktop (the caller owns it)."""
        deadline = _x.DEADLINE if deadline is None else deadline
        try:
            return _x.connect(self.session.display, self.session.xauthority, deadline)
        except TimeoutError as exc:
            raise self.late(deadline) from exc

    def late(self, deadline: float | None = None) -> TimeoutError:
        deadline = _x.DEADLINE if deadline is None else deadline
        return TimeoutError(
            f"desktop {self.session.id} (display {self.session.display}) did not answer within {deadline:g} s: "
            "its X server is stopped or overloaded. The call was abandoned; the next one connects again."
        )

    @contextlib.contextmanager
    def keys(self) -> Iterator[Any]:
        """The desktop's ``Keyboard`` for one call on the X connection; its requests are done when the block ends."""
        with self.x() as conn:
            yield self.keyboard_on(conn)
            conn.sync()

    def keyboard_on(self, conn: Any) -> Any:
        """The desktop's ``Keyboard`` on ``conn`` (made at the first key call)."""
        if self.keyboard is None:
            from ..control._keyboard import Keyboard

            # A second connection for RECORD: a partial over the session, not over anything holding the Desktop.
            second = functools.partial(_x.connect, self.session.display, self.session.xauthority)
            self.keyboard = Keyboard(conn, connect=second)
        return self.keyboard

    def clipboard_owner(self) -> Any:
        """The desktop's ``Clipboard`` (its own X connection, which owns the selection)."""
        if self.clipboard is None:
            from ..control._clipboard import Clipboard

            self.clipboard = Clipboard(self.connect())
        return self.clipboard

    def launch(self, cmd: str | list[str], cwd: str | None, env: dict[str, str] | None) -> Any:
        """``Desktop.launch``: the program started by the session (its supervisor, or here, tied to it)."""
        self.require_running()
        if env is not None:
            _options.check_env(env, "launch(env=...)")
        self.wait_for_window_manager()
        session = self.session
        full_env = _options.desktop_environ(session.options, session.xauthority)
        full_env.update(session.env)
        if env:
            full_env.update(env)
        argv, log_path = _apps.prepare(cmd, full_env, str(session.directory))
        app = session.launch(argv, full_env, cwd or session.options.cwd, log_path)
        with self.lock:
            self.apps = [a for a in self.apps if a.poll() is None] + [app]
        return app

    def wait_for_window_manager(self, timeout: float = 5.0) -> None:
        """Let the session's window manager come up before a program maps its window.

        A window mapped while the manager starts may never be managed (no
        frame, no focus); ``Desktop()`` does not wait for the manager itself
        because most uses do not need it.
        """
        if not self.session.has_wm or self.wm_seen:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.x() as conn:
                if _windows.has_wm(conn):
                    self.wm_seen = True
                    return
            time.sleep(0.02)

    def snapshot(self, view: Any) -> Any:
        """``Desktop.snapshot``: the last frame, taken now if the desktop runs."""
        if self.session.state in ("running", "session-exited") and self.frames is not None:
            self.frames.refresh()
        image = _snapshot.stored(view)
        if image is None:
            raise DesktopStopped(f"desktop {self.session.id} is {self.session.state} and no frame of it was kept")
        return image

    def record(self, path: str, fps: int, show_clicks: bool) -> Any:
        """``Desktop.record``: a running ``Recording``, stopped with the desktop."""
        out, fps, show_clicks = _record.check_path(path), _record.check_fps(fps), _record.check_show_clicks(show_clicks)
        self.require_running()
        session = self.session
        connect = functools.partial(_x.connect, session.display, session.xauthority)
        marker = _record.ClickMarker(connect) if show_clicks else None
        env = _options.desktop_environ(session.options, session.xauthority)
        rec = _record.Recording(out, session.display, env, os.getcwd(), str(session.directory), fps, marker)
        with self.lock:
            self.recordings = [r for r in self.recordings if r.running] + [rec]
        return rec

    def serve(self, *, stop: bool, scale: bool, view_only: bool) -> str | None:
        """``Desktop.serve``: the URL of the desktop's page (one server per desktop), or None once stopped."""
        from ._serve import ViewServer

        with self.lock:
            served = self.served
            if stop or (served is not None and not served.running):
                self.served = None
                if served is not None:
                    served.stop()
                if stop:
                    return None
            self.require_running()
            if self.served is None:
                session = self.session
                self.served = ViewServer(session.id, session.display, session.socket, scale=scale, view_only=view_only)
            return self.served.url

    def connection(self, connect: Callable[[], Any]) -> Any:
        """The X connection, opened (and the state a dropped one left behind repaired) if needed."""
        if self.conn is None:
            conn = connect()
            if self.stale is not None:
                try:
                    self._repair(conn)
                except BaseException:
                    _x.drop(conn)
                    raise
            self.conn = conn
        return self.conn

    def _repair(self, conn: Any) -> None:
        """Release the buttons and keys an interrupted call left down, and restore the keymap."""
        _x.forgotten(conn, self.stale, REPAIR_DEADLINE)  # its last requests must not come after the repair
        _pointer.release_buttons(conn, keep=self.buttons)
        if self.keyboard is not None:
            self.keyboard.reset(conn)
        conn.sync()
        self.stale = None

    def forget(self, conn: Any) -> None:
        """Drop ``conn`` after a call on it was interrupted or failed; the next call opens another."""
        if conn is self.conn:
            self.conn = None
            self.stale = conn.display.info.resource_id_base
            if self.keyboard is not None:
                self.keyboard.detach()
        _x.drop(conn)

    def forget_clipboard(self) -> None:
        if self.clipboard is not None:
            self.clipboard.close()
            self.clipboard = None

    def release(self) -> None:
        # Waits at most a few seconds: for a call under way (its X waits have a
        # deadline), then for the X server on each connection.
        locked = self.lock.acquire(timeout=2 * _x.DEADLINE)
        try:
            _record.stop_all(self.recordings)  # while the X server is still there
            if self.served is not None:
                self.served.stop()
                self.served = None
            _apps.stop_all(self.apps)
            for conn in (self.conn, self.clipboard and self.clipboard.conn):
                if conn is not None:
                    _x.set_deadline(conn, REPAIR_DEADLINE)
            if self.keyboard is not None:
                with contextlib.suppress(Exception):
                    self.keyboard.close()
            if self.clipboard is not None:
                self.clipboard.close()
            if self.frames is not None:
                self.frames.close()
            _x.drop(self.conn)
            self.conn = self.keyboard = self.clipboard = None
        finally:
            if locked:
                self.lock.release()


def shutdown(session: Session, resources: Resources) -> None:
    """Release what the kernel holds, then stop the desktop (an owned desktop's finalizer)."""
    resources.release()
    session.stop()
