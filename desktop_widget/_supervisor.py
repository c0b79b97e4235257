"""The process that owns one desktop's process tree.

It runs as a script of its own (standard library only, so it starts in a few
milliseconds) between its owner (the kernel, or the Jupyter server for the
launcher's desktop) and the desktop:

* it is a child subreaper, so daemons that double-fork away from the session
  (dbus-daemon, xfconfd, at-spi, ...) are re-parented to it and can be found and
  stopped; nothing of the tree escapes. Programs launched on the desktop are
  started by it too, for the same reason (``desktop_widget._apps``);
* it watches its standard input: the owner holds the other end of that pipe, so
  when the owner exits, even by SIGKILL, the pipe reaches end-of-file and the
  desktop is torn down at once;
* it tears the whole tree down however it ends, an error of its own included,
  and says why.

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
``spare_marker``. A kernel connects and writes ``{"cmd": "claim"}``. The
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

import contextlib
import ctypes
import errno
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import traceback
from typing import BinaryIO

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_libc = ctypes.CDLL(None, use_errno=True)


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


#: A waiting spare's children run at this nice value (0 once it is claimed). The
#: supervisor itself stays at normal priority, so that it answers a claim at once.
_child_nice = 0


def _child_setup() -> None:
    # Runs in the child between fork and exec: die with the supervisor even if
    # the supervisor itself is killed with SIGKILL.
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if _child_nice:
        os.nice(_child_nice)


def _proc_table() -> dict[int, int]:
    """Map pid -> parent pid for every process we can see."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: split after the last ')'.
        fields = stat[stat.rfind(b")") + 2 :].split()
        table[int(entry)] = int(fields[1])
    return table


def _descendants(root: int) -> list[int]:
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, ppid in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _reap() -> dict[int, int]:
    """Collect every exited child; returns pid -> exit status."""
    exited = {}
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return exited
        if pid == 0:
            return exited
        exited[pid] = os.waitstatus_to_exitcode(status)


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _mtime(path: str | None) -> float:
    try:
        return os.stat(path).st_mtime if path else 0.0
    except OSError:
        return 0.0


def _log_tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _remove_ice_files(pids: set[int]) -> None:
    """What XFCE's session manager leaves in /tmp when it does not exit by itself.

    libICE listens on ``/tmp/.ICE-unix/<pid>`` and xfce4-session writes an
    iceauth script ``/tmp/.xfsm-ICE-*`` naming that socket; both are ours
    only if the pid was one of this desktop's processes.
    """
    uid = os.getuid()
    for pid in pids:
        path = f"/tmp/.ICE-unix/{pid}"
        with contextlib.suppress(OSError):
            if os.lstat(path).st_uid == uid:
                os.unlink(path)
    try:
        names = [n for n in os.listdir("/tmp") if n.startswith(".xfsm-ICE-")]
    except OSError:
        return
    for name in names:
        path = os.path.join("/tmp", name)
        try:
            if os.lstat(path).st_uid != uid:
                continue
            with open(path, "rb") as f:
                text = f.read(65536)
        except OSError:
            continue
        if any(f"/tmp/.ICE-unix/{pid} ".encode() in text for pid in pids):
            with contextlib.suppress(OSError):
                os.unlink(path)


def _xauth_cookie(path: str) -> bytes | None:
    """The MIT-MAGIC-COOKIE-1 in an Xauthority file (the first one: ours has one cookie)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    pos = 0
    while pos + 2 <= len(data):
        pos += 2  # family
        fields = []
        for _ in range(4):  # address, display number, auth name, auth data
            (n,) = struct.unpack_from(">H", data, pos)
            fields.append(data[pos + 2 : pos + 2 + n])
            pos += 2 + n
        if fields[2] == b"MIT-MAGIC-COOKIE-1":
            return fields[3]
    return None


def _recv_exactly(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the X server closed the connection")
        data += chunk
    return data


def paint_root(display: int, xauthority: str, rgb: int, timeout: float = 2.0) -> socket.socket:
    """Give the X root window a background colour, and return the connection (keep it open).

    The X server's root is black until the session draws its wallpaper, a second
    later for XFCE; the first frames a view shows are then the desktop's colour
    instead. A few bytes of the core protocol (connection setup, ChangeWindowAttributes,
    ClearArea, then a GetInputFocus round trip so that it is done before "ready"),
    so that the supervisor stays standard-library only. The connection is held
    until the end: the X server resets (and blackens the root) when its last
    client leaves.
    """
    cookie = _xauth_cookie(xauthority) or b""
    name = b"MIT-MAGIC-COOKIE-1" if cookie else b""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(f"/tmp/.X11-unix/X{display}")
        setup = struct.pack("<BxHHHHxx", 0x6C, 11, 0, len(name), len(cookie))
        s.sendall(setup + name + b"\0" * (-len(name) % 4) + cookie + b"\0" * (-len(cookie) % 4))
        head = _recv_exactly(s, 8)
        body = _recv_exactly(s, struct.unpack_from("<H", head, 6)[0] * 4)
        if head[0] != 1:
            raise ConnectionError(f"the X server refused the connection: {body[: head[1]]!r}")
        vendor_len, _, _, n_formats = struct.unpack_from("<HHBB", body, 16)
        screen = 32 + vendor_len + (-vendor_len % 4) + 8 * n_formats
        (root,) = struct.unpack_from("<I", body, screen)
        change = struct.pack("<BxHIII", 2, 4, root, 0x2, rgb)  # ChangeWindowAttributes, CWBackPixel
        clear = struct.pack("<BBHIhhHH", 61, 0, 4, root, 0, 0, 0, 0)  # ClearArea, whole window
        sync = struct.pack("<BxH", 43, 1)  # GetInputFocus: its reply means the above are done
        s.sendall(change + clear + sync)
        while True:
            packet = _recv_exactly(s, 32)
            if packet[0] == 0:
                raise ConnectionError(f"X error {packet[1]} painting the root window")
            if packet[0] == 1:
                break
        s.settimeout(None)
        return s
    except BaseException:
        s.close()
        raise


class Supervisor:
    """One desktop's life: start Xvnc and the session, watch (owner, children, idle time, the
    server), and always end with :meth:`teardown`, whatever ended it (see :meth:`run`)."""

    def __init__(self, config: dict, owner: Owner) -> None:
        self.config = config
        self.owner = owner
        self.log_path = config["log"]
        #: The desktop's base environment: ours, as the owner gave it.
        self.env = dict(os.environ)
        self.xvnc: subprocess.Popen | None = None
        self.session: subprocess.Popen | None = None
        #: Programs launched on the desktop, by pid (their exits are reported).
        self.apps: dict[int, subprocess.Popen] = {}
        self.display: int | None = None
        self.x_socket: tuple[str, int, int] | None = None
        #: Our own X connection while the root has our colour (see ``paint_root``).
        self.root_painter: socket.socket | None = None
        self.claim_listener: socket.socket | None = None
        self.claimed = False
        self.stopping = False
        self.reason = ""
        self.restart_wanted = False
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        # Handlers (not SIG_DFL) so that SIGCHLD/SIGTERM/SIGHUP wake select().
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, self._on_terminate)
        signal.signal(signal.SIGHUP, self._on_terminate)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # From processes that attached to the desktop (they hold no pipe to us).
        signal.signal(signal.SIGUSR1, self._on_restart)

    def _on_terminate(self, *_: object) -> None:
        self._stop("signal")

    def _on_restart(self, *_: object) -> None:
        self.restart_wanted = True

    def _stop(self, reason: str) -> None:
        if not self.stopping:
            self.stopping = True
            self.reason = reason

    # -- starting ------------------------------------------------------------
    def _spawn(self, argv: list[str], env: dict[str, str], log_path: str, cwd: str, **kw: object) -> subprocess.Popen:
        log = open(log_path, "ab", buffering=0)  # noqa: SIM115 - handed to the child
        try:
            return subprocess.Popen(
                argv,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_child_setup,
                **kw,
            )
        finally:
            log.close()

    def start_xvnc(self, deadline: float) -> None:
        read_fd, write_fd = os.pipe()
        argv = [*self.config["xvnc"], "-displayfd", str(write_fd)]
        try:
            self.xvnc = self._spawn(argv, self.env, self.log_path, self.config["cwd"], pass_fds=(write_fd,))
        finally:
            os.close(write_fd)
        answer = b""
        try:
            while not answer.endswith(b"\n"):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("Xvnc did not report a display number in time")
                ready, _, _ = select.select([read_fd], [], [], remaining)
                if ready:
                    chunk = os.read(read_fd, 64)
                    if not chunk:
                        code = self.xvnc.wait(timeout=2)
                        raise RuntimeError(f"Xvnc exited with status {code} before it was ready")
                    answer += chunk
        finally:
            os.close(read_fd)
        self.display = int(answer.strip())
        # Xvnc's X socket, to remove after a crash only if it is still the one it made.
        path = f"/tmp/.X11-unix/X{self.display}"
        with contextlib.suppress(OSError):
            st = os.lstat(path)
            if st.st_uid == os.getuid():
                self.x_socket = (path, st.st_dev, st.st_ino)

    def wait_rfb(self, deadline: float) -> str:
        path = self.config["rfb_socket"]
        while True:
            if self.xvnc.poll() is not None:
                raise RuntimeError(f"Xvnc exited with status {self.xvnc.returncode}")
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(max(0.05, deadline - time.monotonic()))
                    s.connect(path)
                    banner = b""
                    while len(banner) < 12:
                        chunk = s.recv(12 - len(banner))
                        if not chunk:
                            break
                        banner += chunk
                if banner.startswith(b"RFB 003."):
                    return banner.decode().strip()
                raise RuntimeError(f"the RFB socket answered {banner!r}, not an RFB banner")
            except (FileNotFoundError, ConnectionRefusedError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("the RFB socket did not answer in time")
            time.sleep(0.005)

    def start_session(self) -> None:
        argv = self.config["session"]
        if not argv:
            return
        env = dict(self.env)
        env["DISPLAY"] = f":{self.display}"
        self.session = self._spawn(argv, env, self.log_path, self.config["cwd"])
        self.owner.emit("session-started", pid=self.session.pid)

    def paint_root(self) -> None:
        """The desktop's background colour from the first frame on (best effort: black is no failure)."""
        try:
            self.root_painter = paint_root(self.display, self.env.get("XAUTHORITY", ""), self.config["root_colour"])
        except (OSError, ConnectionError, struct.error) as exc:
            with open(self.log_path, "a") as log:
                log.write(f"desktop_widget: could not paint the root window: {exc}\n")

    # -- a spare's claim -----------------------------------------------------------
    def listen_for_claims(self) -> None:
        """A spare: the socket a kernel claims it on, then the marker that says it is free."""
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # 0600 from the start, not after a chmod
        try:
            listener.bind(self.config["owner_socket"])
        finally:
            os.umask(old)
        listener.listen(8)
        self.claim_listener = listener
        with open(self.config["spare_marker"], "x") as marker:
            json.dump({"display": self.display}, marker)  # for whoever wants to look at it first

    def accept_claim(self) -> bool:
        """One connection to the owner socket: True if it claimed this spare (its connection is the owner now)."""
        conn, _ = self.claim_listener.accept()
        try:
            conn.settimeout(2.0)
            uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[2]
            line = conn.makefile("rb").readline()
            try:
                request = json.loads(line)
            except ValueError:
                request = None
            if uid != os.getuid() or not isinstance(request, dict) or request.get("cmd") != "claim":
                conn.sendall(b'{"event": "taken"}\n')
                conn.close()
                return False
        except (OSError, struct.error):
            conn.close()
            return False
        conn.settimeout(None)
        self.owner.emit("claimed")  # to the server, on its pipe: it starts a replacement
        self.owner = Owner(conn.fileno(), conn.makefile("wb"))
        self._owner_conn = conn  # kept open with the Owner's file
        self.claimed = True
        self.claim_listener.close()
        self.claim_listener = None
        for path in (self.config["spare_marker"], self.config["owner_socket"]):
            with contextlib.suppress(OSError):
                os.unlink(path)
        global _child_nice
        _child_nice = 0
        if self.config.get("nice"):  # normal priority again, for the whole tree (_spare.can_unnice)
            for pid in _descendants(os.getpid()):
                with contextlib.suppress(OSError):
                    os.setpriority(os.PRIO_PROCESS, pid, 0)
        self.owner.emit("claimed", display=self.display, xvnc_pid=self.xvnc.pid, supervisor_pid=os.getpid())
        return True

    # -- the owner's commands -----------------------------------------------------
    def restart_session(self) -> dict:
        """Start the session again if it is not running; the X server and programs stay either way."""
        if self.session is not None and self.session.returncode is None:
            return {"ok": True, "pid": self.session.pid}
        cwd = self.config["cwd"]
        if not os.path.isdir(cwd):
            return {"ok": False, "message": f"the desktop's working directory {cwd!r} no longer exists"}
        try:
            self.start_session()
        except OSError as exc:
            return {"ok": False, "message": f"the session could not start: {exc}"}
        return {"ok": True, "pid": self.session.pid if self.session else 0}

    def launch(self, command: dict) -> dict:
        """Start a program in our tree: it ends with the desktop however the desktop ends."""
        argv = command.get("argv") or ["?"]
        try:
            proc = self._spawn(argv, command["env"], command["log"], command["cwd"])
        except (OSError, KeyError, TypeError, ValueError, subprocess.SubprocessError) as exc:
            return {"ok": False, "message": f"{argv[0]!r} could not start: {exc}"}
        self.apps[proc.pid] = proc
        return {"ok": True, "pid": proc.pid}

    def handle(self, command: dict) -> None:
        cmd, ref = command.get("cmd"), command.get("ref")
        if cmd == "stop":
            self._stop("stop")
            return
        if cmd == "restart-session":
            answer = self.restart_session()
        elif cmd == "launch":
            answer = self.launch(command)
        else:
            answer = {"ok": False, "message": f"unknown command {cmd!r}"}
        self.owner.emit("reply", ref=ref, **answer)

    # -- running ---------------------------------------------------------------
    def run(self) -> int:
        """Start, watch, and tear down whatever happens, reporting why it ended."""
        try:
            deadline = time.monotonic() + self.config["timeout"]
            try:
                self.start_xvnc(deadline)
                banner = self.wait_rfb(deadline)
                if self.config.get("root_colour") is not None:
                    self.paint_root()
                self.start_session()
            except Exception as exc:
                self.owner.emit("error", message=str(exc), log=_log_tail(self.log_path))
                self._stop("error")
                return 1
            self.owner.emit("ready", display=self.display, xvnc_pid=self.xvnc.pid, banner=banner)
            self.watch()
            return 0
        except BaseException as exc:  # an error of our own: the desktop must not be left half alive
            self.owner.emit(
                "error",
                message=f"the desktop's supervisor failed: {type(exc).__name__}: {exc}",
                log=traceback.format_exc(limit=8),
            )
            self._stop("error")
            return 1
        finally:
            self.teardown()
            self.owner.emit("stopped", reason=self.reason)

    def collect(self) -> None:
        """Reap exited children and tell the owner about the ones it cares about."""
        for pid, code in _reap().items():
            if self.xvnc and pid == self.xvnc.pid:
                self.xvnc.returncode = code
                self.owner.emit("xvnc-exited", code=code, log=_log_tail(self.log_path))
                self._stop("xvnc-exited")
            elif self.session and pid == self.session.pid:
                self.session.returncode = code
                self.owner.emit("session-exited", code=code)
            elif pid in self.apps:
                self.apps.pop(pid).returncode = code
                self.owner.emit("app-exited", pid=pid, code=code)

    def watch(self) -> None:
        owner = self.owner
        watched = [owner.fd, self.wake_r]
        server = None
        if self.config.get("watch_pid"):
            try:
                server = os.pidfd_open(self.config["watch_pid"])
                watched.append(server)
            except ProcessLookupError:
                self._stop("server-gone")
        idle_timeout = self.config.get("idle_timeout") or 0
        started = time.time()
        activity = self.config.get("activity")
        if activity:
            with contextlib.suppress(OSError):
                open(activity, "ab").close()
        tick = min(5.0, max(0.2, idle_timeout / 4)) if idle_timeout else None
        commands = owner.buffered()  # sent together with the configuration
        if self.config.get("spare"):
            self.listen_for_claims()
            watched.append(self.claim_listener.fileno())
        while not self.stopping:
            for command in commands:
                self.handle(command)
            if self.stopping:
                break
            commands = []
            ready = []
            with contextlib.suppress(InterruptedError):
                ready, _, _ = select.select(watched, [], [], tick)
            if self.wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self.wake_r, 512)
            self.collect()
            if self.restart_wanted:
                self.restart_wanted = False
                self.restart_session()
            if server is not None and server in ready:
                self._stop("server-gone")  # the Jupyter server a persistent desktop belongs to is gone
            if self.claim_listener is not None and self.claim_listener.fileno() in ready and self.accept_claim():
                owner = self.owner  # the claimant's connection; the server's pipe no longer counts
                watched = [owner.fd, self.wake_r]
                continue
            if owner.fd in ready:
                commands = owner.read()
                if owner.closed:
                    watched.remove(owner.fd)
                    if not self.config.get("persistent"):
                        self._stop("owner-gone")
            if idle_timeout and time.time() - max(started, _mtime(activity)) > idle_timeout:
                self.owner.emit("idle")
                self._stop("idle")

    # -- ending ------------------------------------------------------------------
    def teardown(self) -> None:
        """Stop every process of the tree (whatever is left is killed) and remove every file."""
        me = os.getpid()
        members: set[int] = set()
        if self.root_painter is not None:
            self.root_painter.close()
        try:
            members = set(_descendants(me))
            # The session first so that it does not see the X server vanish and
            # complain; everything else, daemons and programs included, right after.
            if self.session and self.session.returncode is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.session.pid, signal.SIGTERM)
            _signal_all(_descendants(me), signal.SIGTERM)
            grace = time.monotonic() + 2.0
            while time.monotonic() < grace:
                self._reap_quietly()
                if not _descendants(me):
                    break
                time.sleep(0.01)
        finally:
            # Whatever is left (or was born meanwhile) is killed outright.
            for _ in range(50):
                left = _descendants(me)
                if not left:
                    break
                members.update(left)
                _signal_all(left, signal.SIGKILL)
                time.sleep(0.01)
                self._reap_quietly()
            self.cleanup_files(members)

    def _reap_quietly(self) -> None:
        """Reap during teardown: only programs' exits are news to the owner."""
        for pid, code in _reap().items():
            if pid in self.apps:
                self.apps.pop(pid).returncode = code
                self.owner.emit("app-exited", pid=pid, code=code)

    def cleanup_files(self, members: set[int]) -> None:
        with contextlib.suppress(OSError):
            _remove_ice_files(members)
        # Xvnc removes its socket (and lock, if it made one) on SIGTERM, not when killed.
        if self.display is not None and self.xvnc is not None:
            lock = f"/tmp/.X{self.display}-lock"
            try:
                with open(lock) as f:
                    owner = int(f.read().strip() or 0)
            except (OSError, ValueError):
                owner = None
            if owner == self.xvnc.pid:
                with contextlib.suppress(OSError):
                    os.unlink(lock)
            if self.x_socket is not None:
                _remove_dead_socket(*self.x_socket)
        for path in self.config.get("remove", []):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(path)


def _remove_dead_socket(path: str, dev: int, ino: int) -> None:
    """Remove the unix socket at ``path`` if it is still the file we saw and nobody listens on it."""
    try:
        st = os.lstat(path)
    except OSError:
        return
    if (st.st_dev, st.st_ino) != (dev, ino):
        return  # another X server took the display since
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(path)
        except ConnectionRefusedError:
            pass
        except OSError:
            return
        else:
            return  # someone listens: not ours to remove
    with contextlib.suppress(OSError):
        os.unlink(path)


def main() -> int:
    owner = Owner(sys.stdin.fileno(), sys.stdout.buffer)
    try:
        config = owner.read_config(timeout=60)
    except (OSError, ValueError, EOFError) as exc:
        owner.emit("error", message=f"no configuration: {exc}", log="")
        return 1
    if _libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        owner.emit("error", message=f"cannot become a child subreaper: {os.strerror(err or errno.EPERM)}", log="")
        return 1
    global _child_nice
    _child_nice = int(config.get("nice") or 0)  # a spare starting in the background
    return Supervisor(config, owner).run()


if __name__ == "__main__":
    sys.exit(main())
