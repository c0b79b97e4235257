"""Programs launched on a desktop.

Where a program runs decides whether it can outlive its desktop, so:

* On a desktop this process owns, the desktop's **supervisor** starts the
  program (``Session.launch`` sends it the argument list, environment and
  working directory over the private owner pipe). The program is then part
  of the supervisor's process tree, like the X server and the session: it
  ends with the desktop however the desktop ends (``stop()``, the idle
  timeout, SIGKILL of the owner, a failed supervisor), whichever thread
  launched it, and whatever it forks or daemonizes is reaped too (the
  supervisor is a child subreaper). The alternative, starting it here and
  telling the supervisor its pid, leaves a window in which a killed owner
  leaks it and cannot catch what the program daemonizes.
* On a desktop another process owns (``Desktop.attach``), this process has
  no pipe to the supervisor, so the program is this process's child: it
  stops when this ``Desktop`` releases its resources, when this process
  exits (a parent-death signal, asked for from a thread that lives as long
  as the process, since the signal follows the thread that forked), and
  when the desktop's supervisor exits (:class:`Tether` watches it).

Either way ``launch()`` returns an :class:`App`: what ``subprocess.Popen``
offers for a program with no pipes (``pid``, ``args``, ``returncode``,
``poll``, ``wait``, ``send_signal``, ``terminate``, ``kill``) plus its log.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import select
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_counter = itertools.count(1)
_spawner: ThreadPoolExecutor | None = None
_spawner_lock = threading.Lock()


class App:
    """A program launched on a desktop; its output goes to ``log_path``.

    Popen-like: ``pid``, ``args``, ``returncode``, ``poll()``, ``wait(timeout)``,
    ``send_signal()``, ``terminate()``, ``kill()``.
    """

    def __init__(self, args: list[str], pid: int, log_path: str, popen: subprocess.Popen | None = None) -> None:
        self.args = args
        self.pid = pid
        self.log_path = log_path
        self.returncode: int | None = None
        self._popen = popen
        self._done = threading.Event()
        #: Set when the supervisor went away without reporting this program's exit.
        self._orphaned = False
        # Signals go through a pidfd: the pid cannot be reused under us.
        self._pidfd: int | None = None
        with contextlib.suppress(OSError):
            self._pidfd = os.pidfd_open(pid)

    def __repr__(self) -> str:
        return f"<App pid={self.pid} args={self.args!r} returncode={self.returncode}>"

    def __del__(self) -> None:
        self._close_pidfd()

    def _close_pidfd(self) -> None:
        fd, self._pidfd = self._pidfd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _exited(self, code: int) -> None:
        """The supervisor reports that the program ended."""
        if self.returncode is None:
            self.returncode = code
        self._done.set()

    def _orphan(self) -> None:
        """The supervisor ended without reporting: the program is being stopped by its parent-death signal."""
        self._orphaned = True
        self._done.set()

    def log(self) -> str:
        """What the program has written to stdout and stderr so far."""
        try:
            return Path(self.log_path).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def poll(self) -> int | None:
        """The exit status if the program has ended, else None."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self.wait(0)
        return None

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the program to end and return its exit status (``-N``: killed by signal N)."""
        if self._popen is not None:
            self.returncode = self._popen.wait(timeout)
            return self.returncode
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._done.wait(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout)
        if self.returncode is None and self._orphaned:
            # Nobody will report its status; wait for the process itself to go.
            if self._pidfd is not None:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not select.select([self._pidfd], [], [], left)[0]:
                    raise subprocess.TimeoutExpired(self.args, timeout)
            self.returncode = -signal.SIGTERM  # what the parent-death signal sent it
        self._close_pidfd()
        return self.returncode

    def send_signal(self, sig: int) -> None:
        """Signal the program (not its children), unless it has already ended."""
        if self.poll() is not None:
            return
        if self._popen is not None:
            self._popen.send_signal(sig)
        elif self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def argv_of(cmd: object) -> list[str]:
    """A list as given, or a string split as a shell would (but never run by one)."""
    if isinstance(cmd, (str, os.PathLike)):
        argv = shlex.split(os.fspath(cmd))
    elif isinstance(cmd, (list, tuple)) and all(isinstance(a, (str, os.PathLike)) for a in cmd):
        argv = [os.fspath(a) for a in cmd]
    else:
        raise TypeError(f"cmd must be a list of arguments or a string; got {cmd!r}")
    if not argv:
        raise ValueError("cmd is empty")
    return argv


def prepare(cmd: object, env: dict[str, str], log_dir: str) -> tuple[list[str], str]:
    """The argument list and log file of a program to launch, or a clear error if it does not exist."""
    argv = argv_of(cmd)
    if shutil.which(argv[0], path=env.get("PATH")) is None:
        raise FileNotFoundError(f"program {argv[0]!r} was not found (PATH={env.get('PATH', '')!r})")
    return argv, os.path.join(log_dir, f"app-{next(_counter)}-{os.path.basename(argv[0])}.log")


def _die_with_parent() -> None:
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _in_a_lasting_thread(fork: Callable[[], subprocess.Popen]) -> subprocess.Popen:
    """Run ``fork`` in a thread that lives as long as the process: the main thread, or one spawner thread.

    A parent-death signal is sent when the thread that forked ends, so a
    program started from a short-lived thread would be killed with it, or
    (without the signal) outlive the process.
    """
    global _spawner
    if threading.current_thread() is threading.main_thread():
        return fork()
    with _spawner_lock:
        if _spawner is None:
            _spawner = ThreadPoolExecutor(1, thread_name_prefix="desktop-widget-spawner")
    return _spawner.submit(fork).result()


def spawn_here(argv: list[str], env: dict[str, str], cwd: str, log_path: str) -> App:
    """Start a program as this process's child; it gets SIGTERM when this process ends."""

    def fork() -> subprocess.Popen:
        with open(log_path, "ab") as log:
            return subprocess.Popen(
                argv,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    popen = _in_a_lasting_thread(fork)
    return App(argv, popen.pid, log_path, popen)


class Tether:
    """Programs this process started on a desktop it does not own: they end when its supervisor ends.

    ``pidfd`` pins the supervisor (taken over; closed when it ends). A daemon
    thread waits for it; a program added after that is stopped at once.
    """

    def __init__(self, pidfd: int, name: str) -> None:
        self._pidfd = pidfd
        self._lock = threading.Lock()
        self._apps: list[App] = []
        self._ended = False
        threading.Thread(target=self._watch, name=f"desktop-widget-tether-{name}", daemon=True).start()

    def add(self, app: App) -> bool:
        """Tie ``app`` to the desktop; False (and the program stopped) if the desktop has already ended."""
        with self._lock:
            if not self._ended:
                self._apps = [a for a in self._apps if a.poll() is None] + [app]
                return True
        stop_all([app])
        return False

    def _watch(self) -> None:
        with contextlib.suppress(OSError):
            select.select([self._pidfd], [], [])
        with self._lock:
            self._ended = True
            apps, self._apps = self._apps, []
        os.close(self._pidfd)
        stop_all(apps)


def launch(cmd: object, env: dict[str, str], cwd: str, log_dir: str) -> App:
    """Start a program as this process's child (a helper the kernel itself runs, e.g. a recording's encoder)."""
    argv, log_path = prepare(cmd, env, log_dir)
    return spawn_here(argv, env, cwd, log_path)


def stop_all(apps: list[App], timeout: float = 2.0) -> None:
    """Stop programs started by :func:`spawn_here` and whatever they started, politely first."""
    running = [a for a in apps if a._popen is not None and a.poll() is None]
    for app in running:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(app.pid, signal.SIGTERM)
    for app in running:
        try:
            app.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(app.pid, signal.SIGKILL)
            app.wait()
