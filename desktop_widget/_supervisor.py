"""The process that owns one desktop's process tree.

It runs as a script of its own (standard library only, so it starts in a few
milliseconds) between the kernel and the desktop:

* it is a child subreaper, so daemons that double-fork away from the session
  (dbus-daemon, xfconfd, at-spi, ...) are re-parented to it and can be found and
  stopped; nothing of the tree escapes;
* it watches its standard input: the owner holds the other end of that pipe, so
  when the owner exits, even by SIGKILL, the pipe reaches end-of-file and the
  desktop is torn down at once;
* it reports to the owner as JSON lines on standard output.

A *spare* (``config["spare"]``, started by the server extension ahead of time,
see ``desktop_widget._spare``) changes owner once. Besides its pipe from the
server it listens on ``owner.sock``, a 0600 unix socket in the desktop's 0700
directory (only this user can reach it; the peer's uid is checked as well). A
kernel connects and writes ``claim``; the supervisor handles one connection at a
time, so the first claim wins and any other gets ``taken`` (two kernels never
share a spare, and no lock file can be left behind by a claimant that died).
It then closes the listener, removes the ``spare`` marker, answers ``claimed``
with the display, tells the server ``claimed`` on its pipe and from then on
treats the kernel's connection exactly as a kernel-started desktop treats its
pipe: commands in, JSON events out, end-of-file (the kernel died, restarted or
stopped it) tears everything down. The server's pipe is ignored after that.

The owner passes the whole configuration as one JSON argument; see
``desktop_widget._session`` for the other side of the protocol.
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

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_libc = ctypes.CDLL(None, use_errno=True)


#: Where events go: the owner's pipe, or a spare's claimant's connection once claimed.
_out = sys.stdout


def _emit(event: str, **fields: object) -> None:
    fields["event"] = event
    try:
        _out.write(json.dumps(fields) + "\n")
        _out.flush()
    except (BrokenPipeError, ConnectionError, ValueError, OSError):
        pass  # the owner is gone; teardown proceeds regardless


def _child_setup() -> None:
    # Runs in the child between fork and exec: die with the supervisor even if
    # the supervisor itself is killed with SIGKILL.
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


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
    def __init__(self, config: dict) -> None:
        self.config = config
        self.log_path = config["log"]
        self.xvnc: subprocess.Popen | None = None
        self.session: subprocess.Popen | None = None
        self.display: int | None = None
        #: Our own X connection while the root has our colour (see ``paint_root``).
        self.root_painter: socket.socket | None = None
        self.stopping = False
        self.restart_wanted = False
        #: Where the owner's commands come from: the pipe, or a spare's claimant's connection.
        self.owner_in = sys.stdin.buffer
        self.owner_fd = sys.stdin.fileno()
        self.claim_listener: socket.socket | None = None
        self.owner_conn: socket.socket | None = None
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
        self.stopping = True

    def _on_restart(self, *_: object) -> None:
        self.restart_wanted = True

    def restart_session(self) -> None:
        if self.session is None or self.session.poll() is not None:
            self.start_session()

    def _spawn(self, argv: list[str], env: dict[str, str], **kw: object) -> subprocess.Popen:
        log = open(self.log_path, "ab", buffering=0)  # noqa: SIM115 - handed to the child
        try:
            return subprocess.Popen(
                argv,
                env=env,
                cwd=self.config["cwd"],
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
            self.xvnc = self._spawn(argv, self.config["env"], pass_fds=(write_fd,))
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
        env = dict(self.config["env"])
        env["DISPLAY"] = f":{self.display}"
        self.session = self._spawn(argv, env)
        _emit("session-started", pid=self.session.pid)

    def run(self) -> int:
        deadline = time.monotonic() + self.config["timeout"]
        try:
            self.start_xvnc(deadline)
            banner = self.wait_rfb(deadline)
            if self.config.get("root_colour") is not None:
                self.paint_root()
            self.start_session()
        except Exception as exc:
            tail = _log_tail(self.log_path)  # before teardown removes the log
            self.teardown()
            _emit("error", message=str(exc), log=tail)
            return 1
        _emit("ready", display=self.display, xvnc_pid=self.xvnc.pid, banner=banner)
        return self.watch()

    def paint_root(self) -> None:
        """The desktop's background colour from the first frame on (best effort: black is no failure)."""
        try:
            self.root_painter = paint_root(self.display, self.config["xauthority"], self.config["root_colour"])
        except (OSError, ConnectionError, struct.error) as exc:
            with open(self.log_path, "a") as log:
                log.write(f"desktop_widget: could not paint the root window: {exc}\n")

    def _control(self) -> str:
        """Handle one command from the owner: "stop", "eof" once the owner is gone, else "ok"."""
        try:
            line = self.owner_in.readline()
        except OSError:
            return "eof"
        if not line:
            return "eof"
        command = line.decode(errors="replace").strip()
        if command == "stop":
            return "stop"
        if command == "restart-session":
            self.restart_session()
        return "ok"

    def listen_for_claims(self) -> None:
        """A spare: the socket a kernel claims it on, then the marker that says it is free."""
        path = self.config["owner_socket"]
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # 0600 from the start, not after a chmod
        try:
            listener.bind(path)
        finally:
            os.umask(old)
        listener.listen(8)
        self.claim_listener = listener
        with open(self.config["spare_marker"], "x"):
            pass

    def accept_claim(self) -> bool:
        """One connection to ``owner.sock``: True if it claimed this spare (it is now the owner)."""
        conn, _ = self.claim_listener.accept()
        try:
            conn.settimeout(2.0)
            uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[2]
            request = conn.makefile("rb").readline()
            if uid != os.getuid() or request.strip() != b"claim" or self.owner_conn is not None:
                conn.sendall(b'{"event": "taken"}\n')
                conn.close()
                return False
        except (OSError, struct.error):
            conn.close()
            return False
        conn.settimeout(None)
        global _out
        self.owner_conn = conn
        _emit("claimed")  # to the server, on the pipe: it starts a replacement
        _out = conn.makefile("w")
        self.owner_in = conn.makefile("rb")
        self.owner_fd = conn.fileno()
        self.claim_listener.close()
        self.claim_listener = None
        for path in (self.config["spare_marker"], self.config["owner_socket"]):
            with contextlib.suppress(OSError):
                os.unlink(path)
        self.unnice()
        _emit("claimed", display=self.display, xvnc_pid=self.xvnc.pid, supervisor_pid=os.getpid())
        return True

    def unnice(self) -> None:
        """A spare that started at low priority runs as any desktop once claimed (``_spare.can_unnice``)."""
        if not self.config.get("nice"):
            return
        for pid in [os.getpid(), *_descendants(os.getpid())]:
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, pid, 0)

    def watch(self) -> int:
        stdin = self.owner_fd
        watched = [stdin, self.wake_r]
        if self.config.get("spare"):
            self.listen_for_claims()
            watched.append(self.claim_listener.fileno())
        server = None
        if self.config.get("watch_pid"):
            try:
                server = os.pidfd_open(self.config["watch_pid"])
                watched.append(server)
            except ProcessLookupError:
                self.stopping = True
        idle_timeout = self.config.get("idle_timeout") or 0
        started = time.time()
        activity = self.config.get("activity")
        if activity:
            with contextlib.suppress(OSError):
                open(activity, "ab").close()
        tick = min(5.0, max(0.2, idle_timeout / 4)) if idle_timeout else None
        while not self.stopping:
            ready = []
            with contextlib.suppress(InterruptedError):
                ready, _, _ = select.select(watched, [], [], tick)
            if self.wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self.wake_r, 512)
            for pid, code in _reap().items():
                if self.xvnc and pid == self.xvnc.pid:
                    self.xvnc.returncode = code
                    _emit("xvnc-exited", code=code, log=_log_tail(self.log_path))
                    self.stopping = True
                elif self.session and pid == self.session.pid:
                    self.session.returncode = code
                    _emit("session-exited", code=code)
            if self.restart_wanted:
                self.restart_wanted = False
                self.restart_session()
            if server is not None and server in ready:
                break  # the Jupyter server a persistent desktop belongs to is gone
            if self.claim_listener is not None and self.claim_listener.fileno() in ready and self.accept_claim():
                watched = [self.owner_fd, self.wake_r]  # the server's pipe no longer counts
                stdin = self.owner_fd
                continue
            if stdin in ready:
                said = self._control()
                if said == "stop" or (said == "eof" and not self.config.get("persistent")):
                    break
                if said == "eof":
                    watched.remove(stdin)  # the owner is gone; a persistent desktop is not
            if idle_timeout and time.time() - max(started, _mtime(activity)) > idle_timeout:
                _emit("idle")
                break
        self.teardown()
        _emit("stopped")
        return 0

    def teardown(self) -> None:
        me = os.getpid()
        members = set(_descendants(me))
        if self.root_painter is not None:
            self.root_painter.close()
        # The session first so that it does not see the X server vanish and
        # complain; everything else, daemons included, right after.
        if self.session and self.session.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.session.pid, signal.SIGTERM)
        _signal_all(_descendants(me), signal.SIGTERM)
        grace = time.monotonic() + 2.0
        while time.monotonic() < grace:
            _reap()
            if not _descendants(me):
                break
            time.sleep(0.01)
        # Whatever is left (or was born meanwhile) is killed outright.
        for _ in range(50):
            left = _descendants(me)
            if not left:
                break
            _signal_all(left, signal.SIGKILL)
            time.sleep(0.01)
            _reap()
        self.cleanup_files(members)

    def cleanup_files(self, members: set[int]) -> None:
        _remove_ice_files(members)
        # Xvnc removes its lock and socket on SIGTERM but not when it was killed.
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
                with contextlib.suppress(OSError):
                    os.unlink(f"/tmp/.X11-unix/X{self.display}")
        for path in self.config.get("remove", []):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)


def main() -> int:
    config = json.loads(sys.argv[1])
    if config.get("nice"):
        os.nice(config["nice"])  # a spare starting in the background; inherited by all it starts
    if _libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        _emit("error", message=f"cannot become a child subreaper: {os.strerror(err or errno.EPERM)}", log="")
        return 1
    return Supervisor(config).run()


if __name__ == "__main__":
    sys.exit(main())
