"""Spare desktops: started ahead of time by the server, claimed by a kernel's ``Desktop()`` in a few ms.

With ``c.DesktopWidget.spare_desktops = N`` (or ``--DesktopWidget.spare_desktops=N``)
the server extension keeps N desktops with the default options running and
drawn (``SparePool``). ``Desktop()`` with default options takes one (``claim``)
instead of starting XFCE, so the first cell shows a finished desktop at once.

The design, and why:

* **A spare is not in the registry** until it is claimed: no route serves it,
  ``list_desktops()`` and ``Desktop.attach`` do not see it. It is a desktop
  directory (0700) with a ``spare`` marker file and an ``owner.sock``.
* **The claim is the supervisor's to grant** (see ``_supervisor``): a kernel
  connects to ``owner.sock`` and asks to ``claim`` it; the supervisor accepts one
  connection at a time, so the first claim wins and every other gets
  ``taken`` and tries the next spare. No lock file or rename that a claimant
  dying halfway could leave behind: if the kernel dies after its claim, its
  connection closes and the desktop stops, as any desktop of a dead kernel.
* **Ownership moves to the kernel**: from the claim on, the supervisor's life
  follows that connection exactly as a kernel-started desktop's follows its
  pipe (commands in, events out, end-of-file = the owner is gone: SIGKILL,
  restart, ``d.stop()``). The kernel then writes the registry entry with
  itself as owner. The server's pipe no longer counts; the server only reaps
  the process (it is its child).
* **Only default options are served from the pool**: another session, ``cwd``,
  ``env``, ``name``, ``geometry``, frame rate, ``opengl``, ``persistent`` or
  ``idle_timeout`` start a fresh desktop. A spare's session runs in the
  server's root directory. Its size is the default; a view that is not scaled
  resizes it to itself on connecting, as it does a fresh desktop.
* **A replacement** starts after each claim, in the background, ``delay``
  seconds later so that the claimed desktop's first moments (its view, its
  first resize) have the CPU. Its X server and session run at ``nice`` 10
  (the supervisor itself does not, so that it answers a claim at once) only if
  the supervisor may raise their priority again when it is claimed (root, or
  ``RLIMIT_NICE`` ≥ 20): for anyone else that could not be undone and the
  kernel that claims it would get a slow desktop for good; the delay alone
  keeps it out of the way then.
* **Idle cost**: a ready XFCE spare uses no CPU and ~150-190 MiB PSS
  (benchmarks/RESULTS.md, "First cell of a fresh kernel").
* **A kernel claims only its own server's spares.** The registry is per user,
  so without a check a kernel of another Jupyter server of the same user (or
  any Python process of the user) would take a spare this server started: a
  desktop running in the wrong server's root directory, with that server's
  environment, which that server then replaces. The pool has a random token;
  the server puts it in its own environment as ``DESKTOP_WIDGET_SPARES``, so
  the kernels (and terminals) it starts inherit it, and a server without spares
  removes an inherited one. A claim names the token and the supervisor grants
  only a claim that names its own; a process without the token never claims.
  (Not a security boundary: every process of the user may do anything to the
  user's desktops anyway.)
* **Spares stop with the server** (``shutdown``), and if the server dies
  without stopping them their supervisors see its pipe close and stop.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import secrets
import socket
import threading
import time

from . import _options, _registry
from ._session import Session, _SpareSettings

log = logging.getLogger(__name__)

#: The size a spare starts at; an unscaled view resizes it to itself.
GEOMETRY = _options.Options.geometry
#: Seconds between a claim and the start of its replacement.
REPLACE_DELAY = 3.0
NICE = 10
#: The environment variable that carries a server's pool token to the kernels it starts.
ENV = "DESKTOP_WIDGET_SPARES"


def can_unnice() -> bool:
    """Whether a process of ours may go from nice 10 back to 0 (else a spare starts at normal priority)."""
    return os.geteuid() == 0 or resource.getrlimit(resource.RLIMIT_NICE)[0] >= 20


def claim(options: _options.Options) -> Session | None:
    """A running spare, now this process's desktop; None if there is none (start a fresh one then).

    Only a spare of the server this process runs under (its token in ``ENV``).
    """
    pool = os.environ.get(ENV)
    if not pool:
        return None
    request = json.dumps({"cmd": "claim", "pool": pool}).encode() + b"\n"
    try:
        markers = list(_registry.root().glob("*/spare"))
    except OSError:
        return None
    markers.sort(key=lambda p: p.stat().st_mtime if p.exists() else 0)
    for marker in markers:
        desktop_id = marker.parent.name
        if not _registry.ID_PATTERN.fullmatch(desktop_id):
            continue
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.settimeout(10.0)  # a claim is answered at once, unless the machine is very busy
            conn.connect(str(_registry.owner_socket_path(desktop_id)))
            conn.sendall(request)
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = conn.recv(4096)
                if not chunk:
                    break
                reply += chunk
            event = json.loads(reply or b"{}")
        except (OSError, ValueError):
            conn.close()
            continue
        if event.get("event") != "claimed":
            conn.close()
            continue
        conn.settimeout(None)
        session = Session(options)
        try:
            session.adopt_claimed(desktop_id, conn, event)
        except BaseException:
            conn.close()  # the supervisor sees its owner gone and stops
            raise
        log.debug("claimed spare desktop %s", desktop_id)
        return session
    return None


class SparePool:
    """The server's spare desktops: keeps ``count`` unclaimed ones running."""

    def __init__(self, count: int, cwd: str, delay: float = REPLACE_DELAY) -> None:
        self.count = count
        self.cwd = cwd
        self.delay = delay
        self.nice = NICE if can_unnice() else 0
        self._lock = threading.Lock()
        self._spares: list[Session] = []
        self._claimed: list[Session] = []
        self._closed = False
        #: Names this pool in a claim: only processes given it (``advertise``) claim its spares.
        self.token = secrets.token_hex(16)

    def start(self) -> None:
        """Start the pool in the background (the server does not wait for XFCE)."""
        threading.Thread(target=self._fill, name="desktop-spares", daemon=True).start()

    def _fill(self) -> None:
        while True:
            with self._lock:
                self._spares = [s for s in self._spares if s.state in ("starting", "running")]
                if self._closed or len(self._spares) >= self.count:
                    return
                options = _options.check_options(geometry=GEOMETRY, cwd=self.cwd)
                session = Session(options, spare=_SpareSettings(self.nice, self._on_claimed, self.token))
                self._spares.append(session)
            try:
                session.start()
            except Exception:
                log.exception("desktop_widget: a spare desktop did not start")
                with self._lock:
                    self._spares.remove(session)
                return
            log.info("desktop_widget: spare desktop %s ready", session.id)

    def _on_claimed(self, session: Session) -> None:
        log.info("desktop_widget: spare desktop %s claimed; a replacement starts in %g s", session.id, self.delay)
        with self._lock:
            if session in self._spares:
                self._spares.remove(session)
            self._claimed.append(session)
        # Reap the supervisor when it ends (it is our child; its owner is a kernel now).
        threading.Thread(target=session._proc.wait, name=f"reap-{session.id}", daemon=True).start()
        timer = threading.Timer(self.delay, self._fill)
        timer.daemon = True
        timer.start()

    def spare_ids(self) -> list[str]:
        with self._lock:
            return [s.id for s in self._spares if s.state == "running"]

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop every unclaimed spare (claimed ones belong to their kernels)."""
        with self._lock:
            self._closed = True
            spares, self._spares = self._spares, []
        deadline = time.monotonic() + timeout
        while any(s.state == "starting" for s in spares) and time.monotonic() < deadline:
            time.sleep(0.05)
        for session in spares:
            if session.state != "claimed":
                with contextlib.suppress(Exception):
                    session.stop()


def advertise(pool: SparePool | None) -> None:
    """Let the kernels this server starts (they inherit its environment) claim ``pool``'s spares, and no other's.

    A server without spares removes a token it inherited (a server started from
    another server's terminal): its kernels must not claim that server's spares.
    """
    if pool is None:
        os.environ.pop(ENV, None)
    else:
        os.environ[ENV] = pool.token


def spare_count(config: object) -> int:
    """``DesktopWidget.spare_desktops`` from the server's config (a string on the command line)."""
    value = getattr(config, "get", lambda *_: 0)("spare_desktops", 0) or 0
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"DesktopWidget.spare_desktops must be a whole number >= 0; got {value!r}") from None
    if count < 0:
        raise ValueError(f"DesktopWidget.spare_desktops must be a whole number >= 0; got {value!r}")
    return count
