"""The desktop's last frame: a compact image kept as widget state.

Saved widget state (JupyterLab's "save widget state", nbconvert/nbclient's
``store_widget_state``, VS Code) carries the view's traits, so a frame kept in
a trait survives the kernel: a reopened notebook or a static page (nbviewer,
nbconvert HTML, Jupyter Book) shows it where the live desktop cannot be.

It is refreshed when the desktop stops (grabbed before teardown), on
``d.snapshot()``, at display time, and at the end of each cell that changed
the screen: an IPython ``post_run_cell`` hook asks the X server's DAMAGE
extension whether anything was drawn since the last frame, which costs one
round trip on a connection of its own when nothing was. The refresh runs in
the cell's own execution (not in a timer thread) on purpose: nbclient records
only messages that belong to the cell it is running, so a frame sent later
would be missing from a notebook executed headless.

What a person does in a live view between cells is kept too: a background
thread looks for damage every ``WATCH_EVERY`` seconds while no cell runs and
refreshes a desktop at most every ``BETWEEN_CELLS`` seconds (a live front end
applies those updates; the next cell end sends a frame again, for nbclient).
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import time
import weakref
from typing import Any

from PIL import Image

from ..control import _screen, _x

log = logging.getLogger(__name__)

#: The frame's width at most, in pixels (larger screens are scaled down).
MAX_WIDTH = 1280
#: The encoded frame's size at most, in bytes: JPEG quality steps down until it fits.
MAX_BYTES = 200_000
#: JPEG qualities tried in order. JPEG because it encodes a 1280x800 screen in
#: ~4 ms (PNG: 35-100 ms, and 500 KB for XFCE's wallpaper).
QUALITIES = (85, 75, 60, 45, 30)

#: How often the background thread looks for changes made between cells (s).
WATCH_EVERY = 2.0
#: A desktop changed by hand between cells is refreshed at most this often (s).
BETWEEN_CELLS = 10.0

#: Every frame keeper of this process with a running desktop, for the cell hook.
_keepers: weakref.WeakSet[LastFrame] = weakref.WeakSet()
_hooked: list[Any] = []  # the IPython shell whose cell events we hooked
#: Set while a cell runs (between IPython's pre_run_cell and post_run_cell).
_in_cell = threading.Event()
_watching_lock = threading.Lock()
_watching: list[threading.Thread] = []  # the thread that watches between cells, while there are keepers
_wake = threading.Event()  # ends the thread's wait early (the last desktop stopped)


def encode(image: Image.Image) -> tuple[bytes, str]:
    """``image`` as JPEG bytes at most MAX_WIDTH wide and (where possible) MAX_BYTES long, and its MIME type."""
    if image.width > MAX_WIDTH:
        height = max(1, round(image.height * MAX_WIDTH / image.width))
        image = image.resize((MAX_WIDTH, height), Image.Resampling.BILINEAR, reducing_gap=2.0)
    if image.mode != "RGB":
        image = image.convert("RGB")
    data = b""
    for quality in QUALITIES:
        out = io.BytesIO()
        image.save(out, "JPEG", quality=quality)
        data = out.getvalue()
        if len(data) <= MAX_BYTES:
            break
    return data, "image/jpeg"


def decode(data: bytes) -> Image.Image:
    """A stored frame as a PIL image (loaded, so the bytes can go)."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def looks_blank(conn: Any) -> bool:
    """Whether the screen seems to show nothing yet (before the session draws): 5 rows and 5 columns of one colour.

    Ten one-pixel-thin reads (~1-2 ms) instead of a whole grab (~10-40 ms);
    only a window smaller than a sixth of the screen each way, between the
    lines, goes unseen.
    """
    width, height = _screen.size(conn)
    lines = [(0, height * j // 6, width, 1) for j in range(1, 6)] + [
        (width * i // 6, 0, 1, height) for i in range(1, 6)
    ]
    colours: set[tuple[int, int, int]] = set()
    for line in lines:
        low, high = zip(*_screen.grab(conn, line).getextrema(), strict=True)
        colours.update((low, high))
        if len(colours) > 1:
            return False
    return True


class _Damage:
    """Whether anything was drawn on a screen since the last ``reset``, from the X DAMAGE extension.

    Its own X connection: DAMAGE reports arrive as events, which must not mix
    with the kernel's scripting connection. ``DamageReportNonEmpty`` sends one
    event when the damaged region stops being empty, so a busy screen costs
    one event per frame taken, not one per drawing.
    """

    def __init__(self, display: str, xauthority: str) -> None:
        from Xlib.ext import damage

        self.conn = _x.connect(display, xauthority)
        self.conn.damage_query_version()  # required before any other DAMAGE request
        self._damage = self.conn.screen().root.damage_create(damage.DamageReportNonEmpty)
        self._event = self.conn.extension_event.DamageNotify
        self.conn.sync()
        self._dirty = True  # what was drawn before we watched is unknown

    def _drain(self) -> bool:
        """One round trip (so every drawing the server has done is reported), then the queued events."""
        self.conn.sync()
        reported = False
        while self.conn.pending_events():
            reported |= self.conn.next_event().type == self._event
        return reported

    def changed(self) -> bool:
        """Whether anything was drawn since the last ``reset``."""
        self._dirty |= self._drain()
        return self._dirty

    def reset(self) -> None:
        """Forget what was drawn so far (called just before a grab, which shows all of it).

        Reports queued before the subtraction's round trip describe drawing the
        grab will show, so they go too; drawing during the grab counts as new.
        """
        self.conn.damage_subtract(self._damage)
        self._drain()
        self._dirty = False

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()


class LastFrame:
    """Keeps one desktop's last frame in its view's traits.

    It holds no reference to the ``Desktop`` (whose garbage collection stops
    the desktop), only to the view and the X display's address.
    """

    def __init__(self, view: Any, display: str, xauthority: str) -> None:
        self._view = view
        self._address = (display, xauthority)
        self._lock = threading.Lock()
        self._damage: _Damage | None = None
        self._closed = False
        #: How many frames were taken (tests count them).
        self.refreshes = 0
        self._last = 0.0  # time.monotonic() of the last frame
        #: A frame was taken between cells: the next cell end sends one again (nbclient drops the first).
        self._owed_to_cell = False
        _keepers.add(self)
        if _hook_cells():
            _watch_between_cells()

    def _watcher(self) -> _Damage:
        if self._damage is None:
            self._damage = _Damage(*self._address)
        return self._damage

    def refresh(self, skip_blank: bool = False) -> Image.Image | None:
        """Grab the screen now and keep it; the image taken, or None if the desktop cannot be read.

        With ``skip_blank``, a screen of one colour is not kept until a frame
        has been: it is a desktop whose session has not drawn yet.
        """
        with self._lock:
            if self._closed:
                return None
            try:
                watcher = self._watcher()
                if skip_blank and not self._view._last_frame and looks_blank(watcher.conn):
                    return None
                watcher.reset()
                screen = _screen.grab(watcher.conn, (0, 0, *_screen.size(watcher.conn)))
            except Exception as exc:  # e.g. the X server went away: keep the frame we have
                self._failed(exc)
                return None
            self._store(screen)
            return screen

    def changed(self, watch: bool = True) -> bool:
        """Whether anything was drawn since the last frame (True when unknown).

        ``watch=False`` answers False instead of opening the X connection that
        watches (~3-25 ms): displaying a desktop that has just started must
        not wait for it, and there is nothing on its screen yet anyway.
        """
        with self._lock:
            if self._closed or (self._damage is None and not watch):
                return False
            try:
                return self._watcher().changed()
            except Exception as exc:
                self._failed(exc)
                return False

    def screen_size(self) -> tuple[int, int] | None:
        """The screen's size through the watching connection, or None if it is not open (or gone)."""
        with self._lock:
            if self._closed or self._damage is None:
                return None
            try:
                return _screen.size(self._damage.conn)
            except Exception:
                return None

    def refresh_if_changed(self, skip_blank: bool = True) -> bool:
        """Refresh if anything was drawn since the last frame (or one is owed to a cell); whether it did.

        ``skip_blank=False`` (the desktop stops): a screen that never showed
        anything is kept as it is, the truth about its last moment.
        """
        if (self._owed_to_cell or self.changed()) and self.refresh(skip_blank=skip_blank) is not None:
            self._owed_to_cell = False
            return True
        return False

    def refresh_between_cells(self) -> None:
        """Keep what was done by hand in a live view, at most every BETWEEN_CELLS seconds."""
        if time.monotonic() - self._last < BETWEEN_CELLS or not self.changed(watch=False):
            return
        if self.refresh(skip_blank=True) is not None:
            self._owed_to_cell = True

    def _store(self, screen: Image.Image) -> None:
        data, mime = encode(screen)
        with self._view.hold_sync():
            self._view._last_frame_mime = mime
            self._view._last_frame_time = time.time()
            self._view._last_frame = data
        self.refreshes += 1
        self._last = time.monotonic()

    def _failed(self, exc: Exception) -> None:
        """After an X failure (lock held): stop watching for good if the X server is gone."""
        from Xlib.error import ConnectionClosedError, DisplayError

        log.debug("no frame from %s: %r", self._address[0], exc)
        if isinstance(exc, (ConnectionClosedError, DisplayError, OSError)):
            self._close()  # (stopped by another process or its idle timeout: no cell pays for it again)

    def _close(self) -> None:
        self._closed = True
        if self._damage is not None:
            self._damage.close()
            self._damage = None
        _keepers.discard(self)
        if not _keepers:
            _wake.set()  # the watching thread ends now, not WATCH_EVERY later

    def close(self) -> None:
        """Stop watching (the desktop stops); the frame stays in the view."""
        with self._lock:
            self._close()


def stored(view: Any) -> Image.Image | None:
    """The frame a view holds, or None."""
    data = view._last_frame
    return decode(data) if data else None


def _before_cell(*_args: Any) -> None:
    """IPython's ``pre_run_cell``: the background thread leaves the screen to the cell's end."""
    _in_cell.set()


def _after_cell(*_args: Any) -> None:
    """IPython's ``post_run_cell``: a new frame for each desktop whose screen changed during the cell."""
    try:
        for keeper in list(_keepers):
            try:
                keeper.refresh_if_changed()
            except Exception:  # never break the user's cell
                log.exception("refreshing the last frame failed")
    finally:
        _in_cell.clear()


def _hook_cells() -> bool:
    """Register the cell hooks once with the running IPython; whether there is one."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    if not any(hooked is shell for hooked in _hooked):
        shell.events.register("pre_run_cell", _before_cell)
        shell.events.register("post_run_cell", _after_cell)
        _hooked.append(shell)
    return True


def _watch_between_cells() -> None:
    """Start the background thread unless it runs; it ends when no desktop is left to watch."""
    with _watching_lock:
        if _watching and _watching[0].is_alive():
            return
        thread = threading.Thread(target=_watch, name="desktop-widget-last-frame", daemon=True)
        _watching[:] = [thread]
        thread.start()


def _watch() -> None:
    while True:
        _wake.wait(WATCH_EVERY)
        with _watching_lock:
            _wake.clear()
            if not _keepers:
                _watching.clear()
                return
        if not _in_cell.is_set():
            _refresh_between_cells()


def _refresh_between_cells() -> None:
    for keeper in list(_keepers):
        try:
            keeper.refresh_between_cells()
        except Exception:
            log.exception("refreshing the last frame between cells failed")
