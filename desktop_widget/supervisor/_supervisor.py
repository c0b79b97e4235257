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

The owner protocol (JSON lines over the owner's pipes, and how a spare changes
owner) is described in ``_owner``; the process-tree helpers are in ``_proctree``
and the root painting in ``_xroot``: standard-library modules next to this file,
loaded by path (run with ``python -I``, the package itself is not importable).
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
from importlib.util import module_from_spec, spec_from_file_location
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._owner import Owner


def _sibling(name: str) -> ModuleType:
    """A standard-library module next to this file (run by path with ``-I``, the package is not on sys.path)."""
    spec = spec_from_file_location(name, os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py"))
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_owner, _proctree, _xroot = _sibling("_owner"), _sibling("_proctree"), _sibling("_xroot")

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_libc = ctypes.CDLL(None, use_errno=True)


#: A waiting spare's children run at this nice value (0 once it is claimed). The
#: supervisor itself stays at normal priority, so that it answers a claim at once.
_child_nice = 0


def _child_setup() -> None:
    # Runs in the child between fork and exec: die with the supervisor even if
    # the supervisor itself is killed with SIGKILL.
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if _child_nice:
        os.nice(_child_nice)


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
            self.root_painter = _xroot.paint_root(
                self.display, self.env.get("XAUTHORITY", ""), self.config["root_colour"]
            )
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
            if (
                uid != os.getuid()
                or not isinstance(request, dict)
                or request.get("cmd") != "claim"
                or request.get("pool") != self.config.get("pool")  # a kernel of another server (_spare)
            ):
                conn.sendall(b'{"event": "taken"}\n')
                conn.close()
                return False
        except (OSError, struct.error):
            conn.close()
            return False
        conn.settimeout(None)
        self.owner.emit("claimed")  # to the server, on its pipe: it starts a replacement
        self.owner = _owner.Owner(conn.fileno(), conn.makefile("wb"))
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
            for pid in _proctree.descendants(os.getpid()):
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
                self.owner.emit("error", message=str(exc), log=_proctree.log_tail(self.log_path))
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
        for pid, code in _proctree.reap().items():
            if self.xvnc and pid == self.xvnc.pid:
                self.xvnc.returncode = code
                self.owner.emit("xvnc-exited", code=code, log=_proctree.log_tail(self.log_path))
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
            if idle_timeout and time.time() - max(started, _proctree.mtime(activity)) > idle_timeout:
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
            members = set(_proctree.descendants(me))
            # The session first so that it does not see the X server vanish and
            # complain; everything else, daemons and programs included, right after.
            if self.session and self.session.returncode is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.session.pid, signal.SIGTERM)
            _proctree.signal_all(_proctree.descendants(me), signal.SIGTERM)
            grace = time.monotonic() + 2.0
            while time.monotonic() < grace:
                self._reap_quietly()
                if not _proctree.descendants(me):
                    break
                time.sleep(0.01)
        finally:
            # Whatever is left (or was born meanwhile) is killed outright.
            for _ in range(50):
                left = _proctree.descendants(me)
                if not left:
                    break
                members.update(left)
                _proctree.signal_all(left, signal.SIGKILL)
                time.sleep(0.01)
                self._reap_quietly()
            self.cleanup_files(members)

    def _reap_quietly(self) -> None:
        """Reap during teardown: only programs' exits are news to the owner."""
        for pid, code in _proctree.reap().items():
            if pid in self.apps:
                self.apps.pop(pid).returncode = code
                self.owner.emit("app-exited", pid=pid, code=code)

    def cleanup_files(self, members: set[int]) -> None:
        with contextlib.suppress(OSError):
            _proctree.remove_ice_files(members)
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
                _proctree.remove_dead_socket(*self.x_socket)
        for path in self.config.get("remove", []):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(path)


def main() -> int:
    owner = _owner.Owner(sys.stdin.fileno(), sys.stdout.buffer)
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
