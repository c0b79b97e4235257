"""Starting and stopping one desktop from the kernel.

The kernel starts ``_supervisor.py`` in a session of its own (so a kernel
interrupt, sent to the kernel's whole process group, does not reach the
desktop) and keeps the write end of its standard input: when this process
dies the supervisor sees end-of-file and stops everything. The protocol
spoken over those pipes is described in ``_owner``; this module is its only
other side (``Session``). A desktop another process owns is an ``_attached.AttachedSession``.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from . import _apps, _options, _registry, _xauth
from ._errors import DesktopError, DesktopStopped

log = logging.getLogger(__name__)

_SUPERVISOR = str(Path(__file__).parent / "supervisor" / "_supervisor.py")

#: States a session goes through; ``session-exited`` means the X server still
#: runs but the session (XFCE, the window manager) has ended, e.g. by logout.
STATES = ("starting", "running", "session-exited", "stopped", "failed")
#: What the supervisor's reasons for stopping mean to a user (``Session.detail``); others say nothing new.
_STOP_REASONS = {
    "signal": "by another process",
    "server-gone": "the Jupyter server it belonged to exited",
    "idle": "idle",
}


def _server_pid() -> int:
    """The process a persistent desktop lives as long as: the Jupyter server that runs this kernel."""
    try:
        return int(os.environ["JPY_PARENT_PID"])
    except (KeyError, ValueError):
        return os.getppid()


def touch(path: str | Path | None) -> None:
    """Mark a desktop as in use now (see the supervisor's idle timeout)."""
    if path is None:
        return
    with contextlib.suppress(OSError):
        os.utime(path)


class Session:
    """One Xvnc + session process tree, owned by this process."""

    def __init__(self, options: _options.Options, spare: _SpareSettings | None = None) -> None:
        self.options = options
        #: Started ahead of time for a kernel to claim (``desktop_widget._spare``); not registered until then.
        self.spare = spare
        #: The session's command line (``_options.session_command``), known once started.
        self.session_argv: list[str] = []
        self.id = secrets.token_hex(6)
        self.state = "starting"
        #: Why the state is what it is (e.g. "idle" for a desktop stopped by its idle timeout).
        self.detail = ""
        self.display: str | None = None
        self.directory: Path | None = None
        self.xauthority: str | None = None
        self.socket: str | None = None
        self.log_path: str | None = None
        self.env: dict[str, str] = {}
        self._proc: subprocess.Popen | None = None
        self._events: list[dict] = []
        #: Replies to commands, by ref; programs launched here, by pid; exits reported before launch() saw the pid.
        self._replies: dict[int, dict] = {}
        self._refs = itertools.count(1)
        self._apps: dict[int, _apps.App] = {}
        self._early_exits: dict[int, int] = {}
        self._changed = threading.Condition()
        self._listeners: list[Callable[[str, str], None]] = []
        self._lock = threading.Lock()

    # -- observers --------------------------------------------------------
    def on_state(self, callback: Callable[[str, str], None]) -> None:
        """Call ``callback(state, detail)`` on every change of state."""
        self._listeners.append(callback)

    def _set_state(self, state: str, detail: str = "") -> None:
        with self._changed:
            self.state = state
            self.detail = detail
            self._changed.notify_all()
        for callback in list(self._listeners):
            try:
                callback(state, detail)
            except Exception:  # a broken view must not break the desktop
                log.exception("state listener failed")

    # -- lifecycle ---------------------------------------------------------
    def start(self, while_starting: Callable[[], None] | None = None) -> None:
        """Start the desktop; return once its RFB socket answers.

        ``while_starting`` runs once the supervisor is launched, while Xvnc
        starts (the kernel's first imports); if it raises, the desktop stops.
        """
        xvnc = _options.find_xvnc()
        session_argv = _options.session_command(self.options.session)
        #: Whether a window manager will run (it takes a moment to appear).
        self.has_wm = bool(session_argv) and os.path.basename(session_argv[-1]) in _options.WINDOW_MANAGER_NAMES
        self.session_argv = session_argv
        self.directory = _registry.private_dir(self.id)
        try:
            self._start(xvnc, session_argv, while_starting)
        except BaseException:
            self._abandon()
            raise

    def _start(self, xvnc: str, session_argv: list[str], while_starting: Callable[[], None] | None) -> None:
        directory = self.directory
        self.xauthority = str(directory / "Xauthority")
        self.socket = str(_registry.socket_path(self.id))
        self.log_path = str(directory / "desktop.log")
        _xauth.write(self.xauthority)
        base_env = _options.desktop_environ(self.options, self.xauthority)
        # The configuration goes over the supervisor's stdin and the environment
        # with Popen(env=): a command line is world-readable (/proc/<pid>/cmdline).
        config = {
            "xvnc": _options.xvnc_command(xvnc, self.options, self.socket, self.xauthority, f"desktop-{self.id}"),
            "session": session_argv,
            "cwd": self.options.cwd,
            "log": self.log_path,
            "rfb_socket": self.socket,
            "timeout": self.options.timeout,
            "remove": [str(_registry.entry_path(self.id)), str(directory), self.socket],
            "persistent": self.options.persistent,
            "watch_pid": _server_pid() if self.options.persistent else None,
            "idle_timeout": self.options.idle_timeout,
            "activity": str(directory / "activity"),
            "root_colour": _options.root_colour(session_argv),
        }
        if self.spare is not None:
            owner = str(_registry.owner_socket_path(self.id))
            config.update(
                spare=True,
                owner_socket=owner,
                spare_marker=str(directory / "spare"),
                nice=self.spare.nice,
                pool=self.spare.pool,
            )
            config["remove"].append(owner)
        log.debug("starting desktop %s: %s", self.id, config["xvnc"])
        with open(self.log_path, "ab") as errors:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", _SUPERVISOR],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                cwd=self.options.cwd,
                env=base_env,
                start_new_session=True,
            )
        with contextlib.suppress(OSError):  # a supervisor that died at once is reported as "eof" below
            self._proc.stdin.write(json.dumps(config).encode() + b"\n")
            self._proc.stdin.flush()
        reader = threading.Thread(target=self._read_events, name=f"desktop-{self.id}", daemon=True)
        reader.start()
        if while_starting is not None:
            while_starting()
        deadline = time.monotonic() + self.options.timeout + 5
        with self._changed:
            while not any(e["event"] in ("ready", "error", "eof") for e in self._events):
                if not self._changed.wait(timeout=max(0.0, deadline - time.monotonic())):
                    raise DesktopError(f"the desktop did not start within {self.options.timeout:g} s")
        event = next(e for e in self._events if e["event"] in ("ready", "error", "eof"))
        if event["event"] != "ready":
            message = event.get("message", "the desktop supervisor exited unexpectedly")
            tail = event.get("log") or self._log_tail()
            raise DesktopError(
                f"Xvnc failed to start: {message}" + (f"\n--- {self.log_path} ---\n{tail}" if tail else "")
            )
        self.display = f":{event['display']}"
        self.env = {"DISPLAY": self.display, "XAUTHORITY": self.xauthority}
        if self.spare is None:
            self._register()
        self._set_state("running")

    def adopt_claimed(self, desktop_id: str, conn: socket.socket, event: dict) -> None:
        """Become the owner of a spare this process just claimed on ``conn`` (see ``_spare.claim``)."""
        self.id = desktop_id
        self.directory = _registry.root() / desktop_id
        self.xauthority = str(self.directory / "Xauthority")
        self.socket = str(_registry.socket_path(desktop_id))
        self.log_path = str(self.directory / "desktop.log")
        self.session_argv = _options.session_command(self.options.session)
        self.has_wm = bool(self.session_argv)  # the default session: XFCE, or else a window manager
        self.display = f":{event['display']}"
        self.env = {"DISPLAY": self.display, "XAUTHORITY": self.xauthority}
        self._proc = _OwnerConnection(conn, int(event["supervisor_pid"]))
        threading.Thread(target=self._read_events, name=f"desktop-{self.id}", daemon=True).start()
        self._register()
        self._set_state("running")

    def _register(self) -> None:
        _registry.write(
            _registry.DesktopInfo(
                id=self.id,
                display=self.display,
                socket=self.socket,
                pid=os.getpid(),
                supervisor_pid=self._proc.pid,
                geometry=self.options.geometry,
                started=time.time(),
                session=self.options.session,
                has_wm=self.has_wm,
                name=self.options.name,
                supervisor_start=_registry.process_identity(self._proc.pid),
                options=recorded_options(self.options, self.session_argv),
            )
        )

    def _read_events(self) -> None:
        proc = self._proc
        for raw in proc.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            log.debug("desktop %s: %s", self.id, {k: v for k, v in event.items() if k != "log"})
            kind = event.get("event")
            with self._changed:
                if kind == "reply":
                    self._replies[event.get("ref")] = event
                elif kind == "app-exited":
                    app = self._apps.pop(event["pid"], None)
                    if app is not None:
                        app._exited(event["code"])
                    else:
                        self._early_exits[event["pid"]] = event["code"]
                else:
                    self._events.append(event)
                self._changed.notify_all()
            if kind == "error" and self.state != "starting":
                # The supervisor failed after the start: it tears the desktop down and says why.
                self._set_state("failed", event.get("message", "the desktop's supervisor failed"))
            elif kind == "session-exited" and self.state == "running":
                self._set_state("session-exited", f"exit status {event.get('code')}")
            elif kind == "session-started" and self.state == "session-exited":
                self._set_state("running")
            elif kind == "idle":
                self._set_state("stopped", "idle")
            elif kind == "claimed" and self.spare is not None:
                self.state = "claimed"  # a kernel owns it now; this process only reaps the supervisor
                self.spare.on_claimed(self)
            elif kind == "xvnc-exited":
                self._set_state("failed", f"the X server exited with status {event.get('code')}")
            elif kind == "stopped" and self.state not in ("failed", "stopped"):
                self._set_state("stopped", _STOP_REASONS.get(event.get("reason", ""), ""))
        with self._changed:
            self._events.append({"event": "eof"})
            for app in self._apps.values():
                app._orphan()
            self._apps.clear()
            self._changed.notify_all()
        if self.state not in ("failed", "stopped"):
            self._set_state("stopped")

    def _log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(Path(self.log_path).read_text(errors="replace").splitlines()[-lines:])
        except (OSError, TypeError):
            return ""

    def restart_session(self) -> None:
        """Start the session again after it exited (e.g. the user logged out).

        If it cannot start, this raises and the desktop stays as it was: the X
        server and the programs on it keep running (killing them because a
        logout could not be undone would lose the user's work), and the
        status stays ``session-exited``.
        """
        reply = self._request({"cmd": "restart-session"})
        if not reply.get("ok"):
            raise DesktopError(
                f"the session of desktop {self.id} did not restart: {reply.get('message')} "
                f"(the desktop itself still runs; stop() it and start a new Desktop() to start over)"
            )

    def launch(self, argv: list[str], env: dict[str, str], cwd: str, log_path: str) -> _apps.App:
        """Have the supervisor start a program, so that it ends with the desktop (see ``_apps``)."""
        reply = self._request({"cmd": "launch", "argv": argv, "env": env, "cwd": cwd, "log": log_path})
        if not reply.get("ok"):
            raise DesktopError(f"could not launch {argv[0]!r} on desktop {self.id}: {reply.get('message')}")
        pid = reply["pid"]
        app = _apps.App(argv, pid, log_path)
        with self._changed:
            if pid in self._early_exits:
                app._exited(self._early_exits.pop(pid))
            elif any(e["event"] == "eof" for e in self._events):
                app._orphan()
            else:
                self._apps[pid] = app
        return app

    def _request(self, command: dict, timeout: float = 30.0) -> dict:
        """Send a command to the supervisor and wait for its reply."""
        proc = self._proc
        stopped = DesktopStopped(f"desktop {self.id} is stopped")
        if proc is None or proc.poll() is not None:
            raise stopped
        with self._lock:
            ref = command["ref"] = next(self._refs)
            try:
                proc.stdin.write(json.dumps(command).encode() + b"\n")
                proc.stdin.flush()
            except (OSError, ValueError):
                raise stopped from None
        deadline = time.monotonic() + timeout
        with self._changed:
            while ref not in self._replies:
                if any(e["event"] == "eof" for e in self._events):
                    why = f": {self.detail}" if self.detail else ""
                    raise DesktopStopped(f"desktop {self.id} is {self.state}{why}")
                if not self._changed.wait(timeout=max(0.0, deadline - time.monotonic())):
                    raise DesktopError(f"desktop {self.id}'s supervisor did not answer within {timeout:g} s")
            return self._replies.pop(ref)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the whole process tree and remove every file; idempotent."""
        proc = self._proc
        if proc is None:
            return
        if self.state == "claimed":
            return  # a spare a kernel claimed: the kernel's to stop (this process only reaps it)
        with self._lock, contextlib.suppress(OSError, ValueError):
            proc.stdin.write(b'{"cmd": "stop"}\n')
            proc.stdin.close()
        # A spare may have been claimed just before the stop reached it: its supervisor then
        # ignores this pipe, and the desktop is the claimant's (never killed or removed here).
        deadline = time.monotonic() + timeout
        with self._changed:
            while proc.poll() is None and self.state != "claimed" and time.monotonic() < deadline:
                self._changed.wait(0.05)
        if self.state == "claimed":
            return
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("desktop %s supervisor did not stop in %s s; killing it", self.id, timeout)
            proc.kill()
            proc.wait()
        self._abandon()
        if self.state not in ("failed", "stopped"):
            self._set_state("stopped")

    def _abandon(self, timeout: float = 10.0) -> None:
        """Remove what the supervisor may not have (it never ran, or was killed).

        A supervisor still running is told to stop (end-of-file) and given
        ``timeout`` to tear down before it is killed.
        """
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with self._lock, contextlib.suppress(OSError, ValueError):
                proc.stdin.close()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _registry.remove(self.id)
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)


def recorded_options(options: _options.Options, session_argv: list[str]) -> dict:
    """The options a desktop was started with, as its registry entry keeps them.

    The session also as the command it ran (``auto`` and ``xfce`` may be the
    same desktop); the environment only as a digest: enough to tell a
    different one, and no values in the file.
    """
    env = hashlib.sha256(json.dumps(sorted(options.env.items())).encode()).hexdigest()
    return {
        "session": options.session,
        "session_command": list(session_argv),
        "opengl": options.opengl,
        "geometry": list(options.geometry),
        "frame_rate": options.frame_rate,
        "cwd": options.cwd,
        "env_sha256": env,
        "persistent": options.persistent,
        "idle_timeout": options.idle_timeout,
    }


class _SpareSettings:
    """How the server starts a spare (``_spare.SparePool``): its priority and what to do once it is claimed."""

    def __init__(self, nice: int, on_claimed: Callable[[Session], None], pool: str) -> None:
        self.nice = nice
        self.on_claimed = on_claimed
        #: The pool's token: only a claim that names it is granted (kernels of this server have it).
        self.pool = pool


class _SocketWriter:
    """The write half of a socket as a pipe's end: closing it is end-of-file for the other side."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn

    def write(self, data: bytes) -> None:
        self.conn.sendall(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.shutdown(socket.SHUT_WR)


class _OwnerConnection:
    """A claimed spare's supervisor as ``Session`` drives a child's pipes: commands, events, exit.

    The supervisor is the server's child, not ours: its end is seen through a
    pidfd, and its events and our commands go over the claim's connection.
    """

    def __init__(self, conn: socket.socket, pid: int) -> None:
        self.conn = conn
        self.pid = pid
        self.stdin = _SocketWriter(conn)
        self.stdout = conn.makefile("rb")
        self._pidfd = os.pidfd_open(pid)
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and select.select([self._pidfd], [], [], 0)[0]:
            self.returncode = 0
            self.conn.close()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None and not select.select([self._pidfd], [], [], timeout)[0]:
            raise subprocess.TimeoutExpired("desktop supervisor", timeout)
        return self.poll() or 0

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
