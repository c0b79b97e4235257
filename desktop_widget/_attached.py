"""A desktop that another process owns (another kernel, the Jupyter server), as ``Desktop.attach`` sees it.

It has no pipe to the owner's supervisor: its state comes from the registry
and a pidfd of that supervisor, its requests go by signal, and what it
launches is tied to that supervisor (``_apps.Tether``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import threading
import time
import weakref
from collections.abc import Callable
from typing import ClassVar

from . import _apps, _options, _registry
from ._errors import DesktopStopped

log = logging.getLogger(__name__)


class AttachedSession:
    """A desktop that another process (another kernel, the server) owns.

    It offers what ``Session`` offers to ``Desktop``; it learns the desktop's
    state from the registry, and asks the owner's supervisor by signal to
    restart the session or to stop. The entry must pass the registry's checks
    (``_registry.verified``: the very supervisor that wrote it, our own socket,
    display and cookie) when attaching and before every signal.
    """

    def __init__(self, info: _registry.DesktopInfo) -> None:
        checked = _registry.verified(info.id)
        if checked is None or checked.supervisor_start != info.supervisor_start:
            raise DesktopStopped(f"desktop {info.id} is not running (or its registry entry is not to be trusted)")
        self._info = checked
        self.id = info.id
        self.display = info.display
        self.directory = _registry.root() / info.id
        self.xauthority = str(self.directory / "Xauthority")
        self.socket = info.socket
        self.log_path = str(self.directory / "desktop.log")
        self.env = {"DISPLAY": self.display, "XAUTHORITY": self.xauthority}
        self.options = _options.Options(geometry=info.geometry, session=info.session)
        self.has_wm = info.has_wm
        self._tether: _apps.Tether | None = None
        self._tether_lock = threading.Lock()

    def _current(self) -> _registry.DesktopInfo | None:
        """The entry, if it is still that of the desktop attached to (same supervisor) and passes the checks."""
        info = _registry.verified(self.id)
        return info if info is not None and info.supervisor_start == self._info.supervisor_start else None

    @property
    def state(self) -> str:
        return "running" if self._current() is not None else "stopped"

    def on_state(self, callback: Callable[[str, str], None]) -> None:
        """Call ``callback("stopped", "")`` once the owner's supervisor ends (the desktop is then gone).

        No event reaches a process that does not own the desktop, and a view cannot
        tell a stopped desktop from a lost connection: without this, a mirror's views
        retried a desktop that no longer exists, forever.
        """
        _EndWatch.of(self._info).add(callback)

    def restart_session(self) -> None:
        self._signal(signal.SIGUSR1)

    def launch(self, argv: list[str], env: dict[str, str], cwd: str, log_path: str) -> _apps.App:
        """No pipe to the owner's supervisor: the program is this process's child, tied to the supervisor (``_apps``)."""
        with self._tether_lock:
            if self._tether is None:
                try:
                    pidfd = os.pidfd_open(self._info.supervisor_pid)
                except OSError:
                    raise DesktopStopped(f"desktop {self.id} is stopped") from None
                # Pinned first, then checked: a reused pid cannot pass for the supervisor.
                if _registry.process_identity(self._info.supervisor_pid) != self._info.supervisor_start:
                    os.close(pidfd)
                    raise DesktopStopped(f"desktop {self.id} is stopped")
                self._tether = _apps.Tether(pidfd, self.id)
        app = _apps.spawn_here(argv, env, cwd, log_path)
        if not self._tether.add(app):
            raise DesktopStopped(f"desktop {self.id} stopped while {argv[0]!r} started")
        return app

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the desktop for everyone (its owner sees it stop)."""
        self._signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _registry.read(self.id) is not None and time.monotonic() < deadline:
            time.sleep(0.02)

    def _signal(self, sig: int) -> None:
        info = self._current()
        if info is None or not _registry.signal_supervisor(info, sig):
            raise DesktopStopped(f"desktop {self.id} is stopped")


class _EndWatch:
    """One daemon thread per desktop attached to in this process: it waits on a pidfd of the
    owner's supervisor and tells the listeners when it ends.

    Listeners are held weakly (a view that went is not kept alive by a desktop that runs on).
    """

    _lock = threading.Lock()
    _watches: ClassVar[dict[tuple[str, str], _EndWatch]] = {}

    @classmethod
    def of(cls, info: _registry.DesktopInfo) -> _EndWatch:
        key = (info.id, info.supervisor_start)
        with cls._lock:
            watch = cls._watches.get(key)
            if watch is None:
                watch = cls._watches[key] = cls(key, info.supervisor_pid)
            return watch

    def __init__(self, key: tuple[str, str], pid: int) -> None:
        self._key = key
        self._listeners: list[Callable[[], Callable[[str, str], None] | None]] = []
        self._ended = False
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            pidfd = None
        # Pinned first, then checked: a reused pid cannot pass for the supervisor.
        if pidfd is not None and _registry.process_identity(pid) != key[1]:
            os.close(pidfd)
            pidfd = None
        if pidfd is None:
            self._ended = True
            return
        threading.Thread(target=self._wait, args=(pidfd,), name=f"desktop-widget-end-{key[0]}", daemon=True).start()

    def add(self, callback: Callable[[str, str], None]) -> None:
        ref = weakref.WeakMethod(callback) if hasattr(callback, "__self__") else (lambda: callback)
        with self._lock:
            ended = self._ended
            if not ended:
                self._listeners = [r for r in self._listeners if r() is not None] + [ref]
        if ended:
            callback("stopped", "")

    def _wait(self, pidfd: int) -> None:
        try:
            with contextlib.suppress(OSError):
                select.select([pidfd], [], [])
        finally:
            os.close(pidfd)
        with self._lock:
            self._ended = True
            listeners, self._listeners = self._listeners, []
            self._watches.pop(self._key, None)
        for ref in listeners:
            callback = ref()
            if callback is None:
                continue
            try:
                callback("stopped", "")
            except Exception:  # a broken view must not stop the others from learning it
                log.exception("state listener failed")
