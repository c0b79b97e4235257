"""Programs launched on a desktop."""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import shlex
import shutil
import signal
import subprocess
import threading
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_counter = itertools.count(1)


class App(subprocess.Popen):
    """A launched program: a ``subprocess.Popen`` whose output goes to ``log_path``."""

    log_path: str

    def log(self) -> str:
        """What the program has written to stdout and stderr so far."""
        try:
            return Path(self.log_path).read_text(errors="replace")
        except FileNotFoundError:
            return ""


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


def _die_with_parent() -> None:
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def launch(cmd: object, env: dict[str, str], cwd: str, log_dir: str) -> App:
    argv = argv_of(cmd)
    if shutil.which(argv[0], path=env.get("PATH")) is None:
        raise FileNotFoundError(f"program {argv[0]!r} was not found (PATH={env.get('PATH', '')!r})")
    log_path = os.path.join(log_dir, f"app-{next(_counter)}-{os.path.basename(argv[0])}.log")
    # Parent-death signals follow the thread that forked, so only the main
    # thread (which lives as long as the kernel) may ask for one.
    die_with_parent = threading.current_thread() is threading.main_thread()
    with open(log_path, "ab") as log:
        app = App(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if die_with_parent else None,
        )
    app.log_path = log_path
    return app


def stop_all(apps: list[App], timeout: float = 2.0) -> None:
    """Stop launched programs and whatever they started, politely first."""
    running = [a for a in apps if a.poll() is None]
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
