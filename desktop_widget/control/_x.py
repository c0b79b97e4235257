"""Connections to a desktop's X server from the kernel, each with a deadline.

python-xlib (and libX11, in programs such as ffmpeg) read the cookie file from ``XAUTHORITY``
at connect time only, and one kernel may talk to several desktops with
different cookies; so ``XAUTHORITY`` is set just for the moment of
connecting, under a lock.

python-xlib waits for the server without a timeout: a stopped or wedged X
server would hang the kernel for good. So every wait on a connection made
here is watched: a thread that has waited on one connection for longer
than its deadline gets that connection shut down under it, and the call
fails (:func:`expired` tells it apart from a server that went away). A
connection that failed, timed out or was interrupted in the middle of a
call may hold half a request; :func:`drop` throws it away without waiting,
and the caller opens a new one.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

import Xlib.threaded  # noqa: F401 - real locks: the clipboard thread shares its connection
from Xlib import display as xdisplay

#: Seconds one wait on the X server (a round trip, a flush) may take. Local
#: round trips take well under a millisecond; a whole-screen image, a few ms.
DEADLINE = 5.0
_TICK = 0.1  # how often the watchdog looks

_environ_lock = threading.Lock()


@contextlib.contextmanager
def swap_environ(values: dict[str, str]) -> Iterator[None]:
    """Set ``values`` in ``os.environ`` for the block, then restore what was there."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def environ(values: dict[str, str]) -> Iterator[None]:
    """``swap_environ`` for a moment, one thread at a time."""
    with _environ_lock, swap_environ(values):
        yield


class _Guard:
    """Which threads wait on one connection, since when; shuts the socket if one waits too long."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.waiting: dict[int, float] = {}  # thread id -> when it started to wait
        self.expired = False

    def check(self, now: float) -> None:
        if any(now - since > self.deadline for since in list(self.waiting.values())):
            self.expired = True
            self.shut()

    def shut(self) -> None:
        # shutdown() wakes a thread blocked in select() on the socket; close() would not.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)


_guards: weakref.WeakSet[_Guard] = weakref.WeakSet()
_watch_lock = threading.Lock()
_watcher: threading.Thread | None = None


def _watch() -> None:
    global _watcher
    while True:
        with _watch_lock:
            guards = list(_guards)
            if not guards:
                _watcher = None
                return
        now = time.monotonic()
        for guard in guards:
            guard.check(now)
        del guards
        time.sleep(_TICK)


def _guard(conn: xdisplay.Display, deadline: float) -> None:
    """Watch every wait of ``conn`` (python-xlib's ``send_and_recv``) against ``deadline``."""
    global _watcher
    proto = conn.display
    guard = _Guard(proto.socket, deadline)
    inner = proto.send_and_recv

    def send_and_recv(*args: Any, **kwargs: Any) -> Any:
        me = threading.get_ident()
        outer = me not in guard.waiting
        if outer:
            guard.waiting[me] = time.monotonic()
        try:
            return inner(*args, **kwargs)
        finally:
            if outer:
                guard.waiting.pop(me, None)

    proto.send_and_recv = send_and_recv  # python-xlib calls it through the instance
    proto._dw_guard = guard
    with _watch_lock:
        _guards.add(guard)
        if _watcher is None:
            _watcher = threading.Thread(target=_watch, name="desktop-x-watchdog", daemon=True)
            _watcher.start()


def connect(display: str, xauthority: str, deadline: float = DEADLINE) -> xdisplay.Display:
    """A new python-xlib connection to ``display`` authenticated by ``xauthority``.

    Connecting takes at most ``deadline`` seconds (a stopped X server accepts
    the socket but never answers); TimeoutError otherwise. Later waits on the
    connection are held to ``deadline`` too (see :func:`set_deadline`).
    """
    outcome: dict[str, Any] = {}
    lock = threading.Lock()

    def run() -> None:
        try:
            with environ({"XAUTHORITY": xauthority}):
                conn = xdisplay.Display(display)
        except BaseException as exc:  # handed to the caller
            outcome["error"] = exc
            return
        with lock:
            if "abandoned" in outcome:  # the caller gave up: the server answered too late
                drop(conn)
            else:
                outcome["conn"] = conn

    # The handshake waits in python-xlib without a timeout, so it runs in a
    # thread of its own; one left waiting on a stopped server ends when the
    # server continues or exits.
    thread = threading.Thread(target=run, name="desktop-x-connect", daemon=True)
    thread.start()
    try:
        thread.join(deadline)
    finally:
        with lock:
            conn = outcome.get("conn")
            if conn is None:
                outcome["abandoned"] = True
    if conn is None:
        if "error" in outcome:
            raise outcome["error"]
        raise TimeoutError(f"the X server {display} did not answer within {deadline:g} s")
    _guard(conn, deadline)
    return conn


def expired(conn: xdisplay.Display) -> bool:
    """Whether the watchdog shut ``conn`` because a wait outlasted its deadline."""
    guard = getattr(conn.display, "_dw_guard", None)
    return bool(guard and guard.expired)


def alive(conn: xdisplay.Display) -> bool:
    """Whether ``conn`` is still open (not shut, not closed by either end)."""
    return conn.display.socket_error is None and not expired(conn)


def set_deadline(conn: xdisplay.Display, deadline: float) -> None:
    """Hold later waits on ``conn`` to ``deadline`` seconds (``math.inf`` for one that waits on purpose)."""
    guard = getattr(conn.display, "_dw_guard", None)
    if guard is not None:
        guard.deadline = deadline


def drop(conn: xdisplay.Display | None) -> None:
    """Throw ``conn`` away without sending or waiting for anything (it may hold half a request).

    The socket is shut down first, which wakes any thread still waiting on
    it; such a thread closes the connection itself as it sees the end.
    """
    if conn is None:
        return
    proto = conn.display
    with contextlib.suppress(OSError):
        proto.socket.shutdown(socket.SHUT_RDWR)
    guard = getattr(proto, "_dw_guard", None)
    if proto.socket_error is None and not (guard and guard.waiting):
        with contextlib.suppress(Exception):
            proto.close_internal("client")


def forgotten(conn: xdisplay.Display, old_base: int, deadline: float) -> bool:
    """Wait until the server has closed the client whose resource id base was ``old_base``.

    Requests a dropped connection had sent are still carried out until the
    server sees its end: a repair made before then could be undone by them.
    """
    if conn.display.info.resource_id_base == old_base:  # the server gave its slot to us: it is gone
        return True
    if not conn.has_extension("X-Resource"):
        return False
    end = time.monotonic() + deadline
    while True:
        if all(client.resource_base != old_base for client in conn.res_query_clients().clients):
            return True
        if time.monotonic() > end:
            return False
        time.sleep(0.005)
