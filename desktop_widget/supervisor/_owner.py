"""The supervisor's end of its owner's channel: JSON commands in, JSON events out.

Standard library only: the supervisor (``_supervisor``) loads it by path.

The owner protocol (the other side is ``desktop_widget._session.Session``)
--------------------------------------------------------------------------
Everything secret travels over the owner's private pipes or in the process
environment (``/proc/<pid>/environ`` is readable by its owner only), never on
a command line, which every local user can read in ``/proc/<pid>/cmdline``.

* Environment: the supervisor's own environment is the desktop's base
  environment (the owner passes it with ``Popen(env=...)``).
* Owner -> supervisor, standard input, one JSON object per line:

  - first line, the configuration: ``xvnc`` (argv), ``session`` (argv or []),
    ``cwd``, ``log``, ``rfb_socket``, ``timeout``, ``remove`` (paths),
    ``persistent``, ``watch_pid``, ``idle_timeout``, ``activity`` (a file
    whose mtime is the last use);
  - then commands: ``{"cmd": "stop"}``; ``{"cmd": "restart-session", "ref": n}``;
    ``{"cmd": "launch", "ref": n, "argv": [...], "env": {...}, "cwd": ..., "log": ...}``.
    A command with a ``ref`` gets exactly one ``reply`` event with that ref;
  - end-of-file: the owner is gone (a persistent desktop carries on).
* Supervisor -> owner, standard output, one JSON object per line with an ``event``:

  - ``ready`` (``display``, ``xvnc_pid``, ``banner``), once;
  - ``reply`` (``ref``, ``ok``, and ``message`` if not ok, ``pid`` if ok);
  - ``session-started`` (``pid``), ``session-exited`` (``code``),
    ``app-exited`` (``pid``, ``code``), ``xvnc-exited`` (``code``, ``log``), ``idle``;
  - ``error`` (``message``, ``log``): the desktop did not start, or the
    supervisor failed; teardown follows;
  - ``stopped`` (``reason``: stop, owner-gone, server-gone, idle, xvnc-exited,
    signal, error), last, after the teardown.
* Signals, from processes that attached to the desktop (they hold no pipe):
  SIGTERM or SIGHUP stop it, SIGUSR1 restarts the session.

Spares change owner once
------------------------
A spare (``spare`` in the configuration; started ahead of time by the server
extension, see ``desktop_widget._spare``) also listens on ``owner_socket``, a
0600 unix socket in the desktop's 0700 directory (only this user can reach it,
and the peer's uid is checked too), and marks itself free with the file
``spare_marker``. A kernel connects and writes ``{"cmd": "claim", "pool": ...}``
(``pool``: its server's token, ``pool`` in the configuration; any other gets
``taken``: a kernel of another server). The
supervisor accepts one connection at a time, so the first claim wins and any
other gets ``{"event": "taken"}``: two kernels never share a spare, and a
claimant that dies halfway leaves no lock or renamed file behind. The winner
gets ``claimed`` (``display``, ``xvnc_pid``, ``supervisor_pid``); the server
gets ``claimed`` on its pipe (it starts a replacement); the listener and the
marker go, and the connection becomes the ``Owner``: commands in, events out,
end-of-file tears the desktop down exactly as for a kernel-started desktop.
The server's pipe no longer counts. A spare started at low priority
(``nice``) gets normal priority back when claimed.
"""

from __future__ import annotations

import json
import os
import select
import time
from typing import BinaryIO


class Owner:
    """The owner's end of the protocol: JSON lines in on ``fd``, JSON events out on ``out``.

    The one place that reads commands and writes events, so that the owner's
    channel can be replaced (e.g. a new owner on another connection) in one place.
    """

    def __init__(self, fd: int, out: BinaryIO) -> None:
        self.fd = fd
        self.out = out
        self.closed = False
        self._buffer = b""

    def emit(self, event: str, **fields: object) -> None:
        fields["event"] = event
        try:
            self.out.write(json.dumps(fields).encode() + b"\n")
            self.out.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass  # the owner is gone; teardown proceeds regardless

    def read(self) -> list[dict]:
        """The complete commands readable now (call when ``fd`` is readable); sets ``closed`` at end-of-file."""
        try:
            chunk = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            chunk = None
        except OSError:
            chunk = b""
        if chunk == b"":
            self.closed = True
        elif chunk:
            self._buffer += chunk
        return self.buffered()

    def buffered(self) -> list[dict]:
        """The complete commands already read (e.g. sent right after the configuration)."""
        *lines, self._buffer = self._buffer.split(b"\n")
        commands = []
        for line in lines:
            try:
                command = json.loads(line)
            except ValueError:
                command = None
            if isinstance(command, dict):
                commands.append(command)
            elif line.strip():
                self.emit("reply", ref=None, ok=False, message=f"not a JSON command: {line[:80]!r}")
        return commands

    def read_config(self, timeout: float) -> dict:
        """The first line: the configuration."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                raise TimeoutError("the owner sent no configuration")
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                raise EOFError("the owner closed the pipe before sending the configuration")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        config = json.loads(line)
        if not isinstance(config, dict):
            raise ValueError("the configuration is not a JSON object")
        return config
