"""``Desktop``: one private Linux desktop, owned by this Python process."""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .. import _options, _registry
from .._attached import AttachedSession
from .._options import DEFAULT_FRAME_RATE, ViewOptions
from .._session import Session
from ..control import _keynames
from . import _lazy, _lifecycle
from ._resources import Resources

if TYPE_CHECKING:
    from ..control._windows import Window
    from ._widget import DesktopView

# The heavy ones (anywidget, python-xlib, Pillow) load while the first Xvnc starts: see _lazy.
_apps = _lazy.module(".._apps", __package__)
_bundle = _lazy.module("._bundle", __package__)
_pointer = _lazy.module("..control._pointer", __package__)
_record = _lazy.module("._record", __package__)
_rfb = _lazy.module("..control._rfb", __package__)
_screen = _lazy.module("..control._screen", __package__)
_snapshot = _lazy.module("._snapshot", __package__)
_vision = _lazy.module("._vision", __package__)
_widget = _lazy.module("._widget", __package__)
_windows = _lazy.module("..control._windows", __package__)
_x = _lazy.module("..control._x", __package__)

log = logging.getLogger(__name__)


class _ViewTrait:
    """Expose a trait of the view on the desktop (``d.view_only = True``)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, desktop: Desktop | None, owner: type) -> Any:
        return self if desktop is None else getattr(desktop.view, self.name)

    def __set__(self, desktop: Desktop, value: Any) -> None:
        setattr(desktop.view, self.name, value)


class Desktop:
    """A private Linux desktop (Xvnc + a session such as XFCE) shown live in the notebook.

    The desktop belongs to this Python process: it stops with :meth:`stop`, at
    the end of a ``with`` block, when the object is garbage collected, when
    the interpreter exits, and within moments if the process is killed.

    Display it (last expression of a cell, or ``display(d)``) for a live view;
    every view connects through the Jupyter server's route or, where there is
    none, through the widget's comm and this kernel (``transport``), never a
    network port.
    Everything else (keys, pointer, windows, screenshots) acts on the X server
    directly from Python: it works with no view open and while a cell runs.
    """

    view_only = _ViewTrait()
    scale = _ViewTrait()
    height = _ViewTrait()
    quality = _ViewTrait()
    compression = _ViewTrait()
    transport = _ViewTrait()

    def __init__(
        self,
        geometry: tuple[int, int] | None = None,
        session: str = "auto",
        *,
        view_only: bool = ViewOptions.view_only,
        scale: bool | None = None,
        height: str = ViewOptions.height,
        quality: int = ViewOptions.quality,
        compression: int = ViewOptions.compression,
        transport: str = ViewOptions.transport,
        frame_rate: int = DEFAULT_FRAME_RATE,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 20.0,
        name: str | None = None,
        persistent: bool = False,
        idle_timeout: float | None = None,
        opengl: bool = True,
    ) -> None:
        found, view, owned = _lifecycle.open_desktop(
            ViewOptions(view_only, scale, height, quality, compression, transport),  # type: ignore[arg-type]  # scale None: by geometry
            geometry=geometry,
            session=session,
            frame_rate=frame_rate,
            cwd=cwd,
            env=env,
            timeout=timeout,
            name=name,
            persistent=persistent,
            idle_timeout=idle_timeout,
            opengl=opengl,
        )
        self._adopt(found, view, owned)

    @classmethod
    def attach(
        cls,
        id_or_name: str,
        *,
        view_only: bool = ViewOptions.view_only,
        scale: bool = True,
        height: str = ViewOptions.height,
        transport: str = ViewOptions.transport,
    ) -> Desktop:
        """Show and script a desktop that another kernel (or the launcher) started.

        The desktop stays its owner's: it does not stop when this object goes,
        only if :meth:`stop` is called. Views of an attached desktop scale by
        default, so that they do not resize the owner's screen.
        """
        attached = _lifecycle.attach(id_or_name)
        view = _widget.DesktopView(view_only=view_only, scale=scale, height=height, transport=transport)
        desktop = cls.__new__(cls)
        desktop._adopt(attached, view, owned=False)
        return desktop

    def _adopt(self, session: Session | AttachedSession, view: DesktopView, owned: bool) -> None:
        self._session, self._owned, self.view = session, owned, view
        self._resources = Resources(session)
        self._finalizer = _lifecycle.adopt(self, session, view, self._resources, owned)

    # -- identity ----------------------------------------------------------
    @property
    def id(self) -> str:
        """The registry id, also the last part of the server route."""
        return self._session.id

    @property
    def display(self) -> str:
        """The X display, e.g. ``":1"``."""
        return self._session.display

    @property
    def env(self) -> dict[str, str]:
        """``DISPLAY`` and ``XAUTHORITY``: what an X client needs to open windows here."""
        return dict(self._session.env)

    @property
    def name(self) -> str:
        """The name given with ``Desktop(name=...)``, or ""."""
        info = _registry.read(self.id)
        return info.name if info else ""

    @property
    def status(self) -> str:
        """``running``, ``session-exited``, ``stopped`` or ``failed``."""
        return self._session.state

    @property
    def log_path(self) -> str:
        """Where the X server's and the session's output goes."""
        return self._session.log_path

    # -- lifecycle ---------------------------------------------------------
    def stop(self) -> None:
        """Stop every process of the desktop, launched apps included, and remove its files. Safe to call twice.

        On an attached desktop this stops it for its owner too. Its last frame
        is taken first (if the screen changed since the last one) and stays
        with the view (see :meth:`snapshot`).
        """
        if self._session.state in ("running", "session-exited") and self._resources.frames is not None:
            self._resources.frames.refresh_if_changed(skip_blank=False)
        self._finalizer()
        if self._session.state in ("running", "session-exited"):
            self._session.stop()
            self.view._set_status("stopped")

    def restart(self) -> None:
        """Start the session again after it ended (e.g. after logging out of XFCE).

        If it cannot start (say, the desktop's ``cwd`` was deleted), this raises
        ``DesktopError`` saying why, and the desktop stays as it was: the X
        server and the programs on it keep running.
        """
        self._require_running()
        self._session.restart_session()

    def __enter__(self) -> Desktop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _require_running(self) -> None:
        self._resources.require_running()

    def _x(self) -> contextlib.AbstractContextManager[Any]:
        """The kernel's X connection to this desktop, one user at a time (see ``_resources``)."""
        return self._resources.x()

    # -- keyboard ------------------------------------------------------------
    def key(self, *combos: str) -> None:
        """Press key combinations in order: ``d.key("ctrl+alt+t")``, ``d.key("ctrl+c", "ctrl+v")``.

        Names are X keysym names or common aliases (ctrl, alt, shift, super,
        enter, esc, tab, f1, ...), case-insensitive.
        """
        with self._resources.keys() as keyboard:
            keyboard.key(*combos)

    def key_down(self, name: str) -> None:
        """Hold a key down until :meth:`key_up` (e.g. shift while clicking)."""
        with self._resources.keys() as keyboard:
            keyboard.key_down(name)

    def hold_key(self, name: str, seconds: float = 1.0) -> None:
        """Hold a key (or combo, ``"ctrl+shift"``) down for ``seconds``, then release it."""
        _keynames.parse(name)  # an unknown name fails before anything is pressed
        seconds = _options.check_seconds("seconds", seconds, most=3600)
        try:
            self.key_down(name)
            time.sleep(seconds)
        finally:
            self.key_up(name)

    def key_up(self, name: str) -> None:
        with self._resources.keys() as keyboard:
            keyboard.key_up(name)

    def type(self, text: str, delay: float = 0.0) -> None:
        """Type any Unicode text, whatever the desktop's keyboard layout; newlines and tabs as keys."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str; got {type(text).__name__}")
        delay = _options.check_seconds("delay", delay, most=60)
        with self._resources.keys() as keyboard:
            keyboard.type(text, delay=delay)

    # -- pointer -------------------------------------------------------------
    @property
    def pointer(self) -> tuple[int, int]:
        """Where the mouse pointer is now."""
        with self._x() as conn:
            return _pointer.position(conn)

    def move(self, x: int, y: int) -> None:
        with self._x() as conn:
            _pointer.move(conn, *_pointer.at(conn, x, y))
            conn.sync()

    def click(
        self,
        x: int | None = None,
        y: int | None = None,
        button: str | int = "left",
        count: int = 1,
        modifiers: str | Sequence[str] | None = None,
    ) -> None:
        """Click at ``(x, y)``, or where the pointer is; ``count=2`` double-clicks.

        ``modifiers`` are keys held during the clicks: ``modifiers=["ctrl"]``,
        ``"ctrl+shift"``. Buttons: left, middle, right, back, forward, or 1-9.
        """
        number, count = _pointer.button_number(button), _pointer.check_positive("count", count)
        held = _keynames.modifier_keys(modifiers)
        with self._x() as conn:
            _pointer.click_at(conn, x, y, number, count, self._holding(conn, held))

    def double_click(
        self, x: int | None = None, y: int | None = None, button: str | int = "left", modifiers: Any = None
    ) -> None:
        self.click(x, y, button, count=2, modifiers=modifiers)

    def triple_click(
        self, x: int | None = None, y: int | None = None, button: str | int = "left", modifiers: Any = None
    ) -> None:
        """Three clicks in a row: toolkits select the line or paragraph."""
        self.click(x, y, button, count=3, modifiers=modifiers)

    def right_click(self, x: int | None = None, y: int | None = None, modifiers: Any = None) -> None:
        self.click(x, y, "right", modifiers=modifiers)

    def middle_click(self, x: int | None = None, y: int | None = None, modifiers: Any = None) -> None:
        """A middle click: on X it pastes the PRIMARY selection (the last text selected)."""
        self.click(x, y, "middle", modifiers=modifiers)

    def mouse_down(self, x: int | None = None, y: int | None = None, button: str | int = "left") -> None:
        """Press ``button`` (at ``(x, y)`` if given) and keep it down until :meth:`mouse_up`."""
        number = _pointer.button_number(button)
        with self._x() as conn:
            _pointer.press_at(conn, x, y, number, down=True)
            self._resources.buttons.add(number)

    def mouse_up(self, x: int | None = None, y: int | None = None, button: str | int = "left") -> None:
        """Release ``button`` (after moving to ``(x, y)`` if given)."""
        number = _pointer.button_number(button)
        with self._x() as conn:
            _pointer.press_at(conn, x, y, number, down=False)
            self._resources.buttons.discard(number)

    def _holding(self, conn: Any, keysyms: list[int]) -> Any:
        """Keys held down for the block (released after it, also when it fails)."""
        return self._resources.keyboard_on(conn).holding(keysyms) if keysyms else contextlib.nullcontext()

    def drag(
        self,
        start: tuple[int, int],
        end: tuple[int, int],
        button: str | int = "left",
        steps: int = 10,
        duration: float = 0.2,
    ) -> None:
        """Press at ``start``, move in ``steps`` over ``duration`` seconds to ``end``, release.

        The pauses matter: toolkits merge motion events that arrive together,
        and drag-and-drop code often waits for several of them.
        """
        number, steps = _pointer.button_number(button), _pointer.check_positive("steps", steps)
        duration = _options.check_seconds("duration", duration, most=3600)
        with self._x() as conn:
            _pointer.drag(conn, start, end, number, steps, duration)

    def scroll(
        self,
        dy: int = 0,
        dx: int = 0,
        x: int | None = None,
        y: int | None = None,
        modifiers: str | Sequence[str] | None = None,
    ) -> None:
        """Scroll by wheel clicks: positive ``dy`` down, negative up; positive ``dx`` right, negative left.

        ``d.scroll(dx=-3)`` scrolls left; ``modifiers=["ctrl"]`` zooms in many apps.
        """
        _pointer.check_wheel(dy, dx)
        held = _keynames.modifier_keys(modifiers)
        with self._x() as conn:
            _pointer.scroll_at(conn, x, y, dy, dx, self._holding(conn, held))

    # -- applications ----------------------------------------------------------
    def launch(self, cmd: str | list[str], cwd: str | None = None, env: dict[str, str] | None = None) -> _apps.App:
        """Start a program on this desktop; it ends when the desktop ends, however it ends.

        ``cmd`` is a list, or a string split as a shell would split it (it is
        never run through a shell). The result is Popen-like (``pid``,
        ``poll()``, ``wait()``, ``terminate()``, ``returncode``); its output goes
        to ``app.log_path`` (``app.log()`` reads it). On a desktop this process
        owns, the desktop's supervisor starts it (see ``desktop_widget._apps``).
        """
        return self._resources.launch(cmd, cwd, env)

    # -- windows -------------------------------------------------------------
    def windows(self) -> list[Window]:
        """The top-level windows now on the desktop."""
        with self._x() as conn:
            return _windows.listed(conn, _windows.XHandle(self._x))

    def wait_for_window(
        self,
        title: str | re.Pattern | None = None,
        wm_class: str | re.Pattern | None = None,
        pid: int | None = None,
        timeout: float = 10.0,
    ) -> Window:
        """The first window that matches (substrings are case-insensitive; patterns are searched)."""
        return _windows.wait_for(self.windows, title, wm_class, pid, timeout)

    # -- screen --------------------------------------------------------------
    @property
    def size(self) -> tuple[int, int]:
        """The X screen's ``(width, height)`` now."""
        with self._x() as conn:
            return _screen.size(conn)

    def screenshot(self, region: tuple[int, int, int, int] | None = None) -> Any:
        """The screen (or ``region=(x, y, width, height)``) as a ``PIL.Image``; shows as a PNG in a notebook."""
        with self._x() as conn:
            return _screen.grab(conn, _screen.box(conn, region))

    def snapshot(self) -> Any:
        """The desktop's last frame as a ``PIL.Image``: taken now if the desktop runs, else the one kept.

        It is the image that saved notebooks and static pages show in place of
        the live view (JPEG, at most 1280 px wide). It is also refreshed after
        each cell that changed the screen and when the desktop stops.
        """
        return self._resources.snapshot(self.view)

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        """The ``(r, g, b)`` colour at ``(x, y)`` now."""
        with self._x() as conn:
            return _vision.pixel(conn, *_pointer.check_point(x, y, _screen.size(conn)))

    def _region(self, region: tuple[int, int, int, int] | None) -> tuple[int, int, int, int]:
        with self._x() as conn:
            return _screen.box(conn, region)

    def wait_until_stable(self, duration: float = 0.5, timeout: float = 10.0, region: tuple | None = None) -> None:
        """Return once the screen (or ``region``) has not changed for ``duration`` s; ``TimeoutError`` otherwise."""
        duration, timeout = _vision.check_seconds("duration", duration), _vision.check_seconds("timeout", timeout)
        _vision.wait_until_stable(self._resources.connect, self._region(region), duration, timeout)

    def locate(self, image: Any, region: tuple | None = None, confidence: float = 0.95) -> tuple | None:
        """Where ``image`` (a PIL image or a path) is on the screen: ``(x, y, w, h)``, or None."""
        image, confidence = _vision.load_image(image), _vision.check_confidence(confidence)
        box = self._region(region)
        with self._x() as conn:
            return _vision.find(conn, image, box, confidence)

    def wait_for_image(
        self, image: Any, timeout: float = 10.0, region: tuple | None = None, confidence: float = 0.95
    ) -> tuple[int, int, int, int]:
        """Wait until ``image`` shows (looking again whenever the screen changes); its box, or ``TimeoutError``."""
        image, confidence = _vision.load_image(image), _vision.check_confidence(confidence)
        timeout = _vision.check_seconds("timeout", timeout)
        return _vision.wait_for_image(self._resources.connect, image, self._region(region), confidence, timeout)

    def resize(self, width: int, height: int) -> None:
        """Change the X screen size; open views follow (and from now on scale, keeping this size)."""
        _options.check_geometry((width, height))
        self._require_running()
        _rfb.set_desktop_size(self._session.socket, width, height)
        self.view.scale = True

    def record(self, path: str, fps: int = 15, show_clicks: bool = False) -> _record.Recording:
        """Record the screen to ``path`` (``.mp4``: H.264 for browsers; ``.gif``: for slides) until ``stop()``.

        Use it as ``with d.record("demo.mp4"):`` or ``rec = d.record(...)`` ... ``rec.stop()``;
        ``show_clicks`` rings every click. It stops with the desktop; shown in a notebook, it plays.
        """
        return self._resources.record(path, fps, show_clicks)

    # -- AI agents -------------------------------------------------------------
    def computer_tool(self, version: str = "computer_20251124", *, screenshot_after: bool = False) -> Any:
        """This desktop as the ``computer`` tool of the computer-use protocol AI agents speak.

        ``t.definition`` goes in the model's tool list; ``t(tool_use_input)``
        runs one action and returns the ``tool_result`` content blocks.
        Screenshots are scaled to fit in 1280x800 (aspect kept) and the
        agent's coordinates mapped back. No network and no model here: only
        the adapter (see ``desktop_widget.kernel._computer``).
        """
        from ._computer import ComputerTool

        return ComputerTool(self, version, screenshot_after=screenshot_after)

    # -- a page outside Jupyter ---------------------------------------------
    def serve(self, *, stop: bool = False, scale: bool = True, view_only: bool = False) -> str | None:
        """Show this desktop in any browser on this machine: returns ``http://127.0.0.1:<port>/<token>/``.

        For scripts and test runs without a notebook. The page is the
        notebook view, full-page; only requests with the URL's random token
        are answered, on 127.0.0.1 only. Calling it again returns the same
        URL (with the options of the first call). It stops with the desktop,
        or with ``d.serve(stop=True)`` (which returns None).

        ``scale=True`` fits the screen in the window
        (``False`` resizes the desktop to the window); ``view_only`` is a
        convenience of the page, not a permission.
        """
        return self._resources.serve(stop=stop, scale=scale, view_only=view_only)

    # -- clipboard -----------------------------------------------------------
    @property
    def clipboard(self) -> str:
        """The text of the desktop's CLIPBOARD selection ("" when empty)."""
        with self._x():
            return self._resources.clipboard_owner().get()

    @clipboard.setter
    def clipboard(self, text: str) -> None:
        if not isinstance(text, str):
            raise TypeError(f"the clipboard holds text; got {type(text).__name__}")
        with self._x():
            self._resources.clipboard_owner().set(text)
        self.view.clipboard = text

    # -- environment ---------------------------------------------------------
    @contextlib.contextmanager
    def as_default(self) -> Iterator[Desktop]:
        """Within the block, X programs and toolkits opened by this process (Tk, Qt, matplotlib) use this desktop."""
        self._require_running()
        with _x.swap_environ(self.env):
            yield self

    # -- display -----------------------------------------------------------
    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return _bundle.mimebundle(self, self._resources.frames, **kwargs)

    def __repr__(self) -> str:
        if self.status in ("stopped", "failed"):
            return f"<Desktop {self.id} {self.status}>"
        width, height = self.size
        return f"<Desktop {self.id} display={self.display} {width}x{height} {self.status}>"
