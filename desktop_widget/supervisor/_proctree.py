"""The supervisor's view of its process tree and of the files it leaves: pids from /proc, reaping,
signals, and the clean-up of what XFCE and a killed Xvnc leave in /tmp.

Standard library only: the supervisor (``_supervisor``) loads it by path.
"""

from __future__ import annotations

import contextlib
import os
import socket


def proc_table() -> dict[int, int]:
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


def descendants(root: int) -> list[int]:
    table = proc_table()
    children: dict[int, list[int]] = {}
    for pid, ppid in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def reap() -> dict[int, int]:
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


def signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def mtime(path: str | None) -> float:
    try:
        return os.stat(path).st_mtime if path else 0.0
    except OSError:
        return 0.0


def log_tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def remove_ice_files(pids: set[int]) -> None:
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


def remove_dead_socket(path: str, dev: int, ino: int) -> None:
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
