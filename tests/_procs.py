"""Reading processes and sockets from /proc, as the OS sees them."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float = 10.0, what: str = "the condition") -> T:
    """Poll ``condition`` until it returns something true, and return that; fail naming ``what`` at the deadline.

    Never a fixed sleep before counting: the count is taken once it is what it must be (or the test fails).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)


def ppid_table() -> dict[int, int]:
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            table[int(entry)] = int(stat[stat.rfind(b")") + 2 :].split()[1])
    return table


def tree(root: int, table: dict[int, int] | None = None) -> set[int]:
    """``root`` and all its descendants that exist now."""
    table = ppid_table() if table is None else table
    children: dict[int, list[int]] = {}
    for pid, ppid in table.items():
        children.setdefault(ppid, []).append(pid)
    found = {root} if root in table else set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state != b"Z"


def wait_gone(pids: set[int], timeout: float = 5.0) -> set[int]:
    """The pids still alive after ``timeout`` (empty if all went away)."""
    deadline = time.monotonic() + timeout
    while True:
        left = {p for p in pids if alive(p)}
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def comms(pids: set[int]) -> set[str]:
    """The command names of ``pids`` (those still there)."""
    return {comm(p) for p in pids} - {"?"}


#: What an XFCE session runs once it is up: the session and window managers, the settings
#: daemons, the desktop, the panel (and its plugins, ``panel-<n>-<name>``).
XFCE_PROCESSES = frozenset({"xfce4-session", "xfwm4", "xfconfd", "xfsettingsd", "xfdesktop", "xfce4-panel"})


def wait_running(root: int, names: set[str] | frozenset[str] = frozenset(), timeout: float = 30.0) -> set[int]:
    """``root``'s process tree once it runs all of ``names``; with ``XFCE_PROCESSES`` in them, a panel plugin too."""

    def ready() -> set[int] | None:
        pids = tree(root)
        running = comms(pids)
        plugins = not names >= XFCE_PROCESSES or any(n.startswith("panel-") for n in running)
        return pids if names <= running and plugins else None

    return wait_for(ready, timeout, f"{sorted(names)} under pid {root}")


def file_identity(path: Path) -> tuple[int, int] | None:
    """Which file is at ``path`` now (inode, mtime), or None."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def x_files(display: str) -> dict[Path, tuple[int, int] | None]:
    """The lock file and socket of X display ``display`` (":N"), each with which file is there now."""
    n = display.lstrip(":")
    return {p: file_identity(p) for p in (Path(f"/tmp/.X{n}-lock"), Path(f"/tmp/.X11-unix/X{n}"))}


def x_files_held(before: dict[Path, tuple[int, int] | None]) -> list[str]:
    """Those of ``before`` (from :func:`x_files`) that are still the very files that were there.

    Once our X server is gone another one (another test's, another program's) may take the
    display number and make files of the same names: those do not count.
    """
    return [str(p) for p, ident in before.items() if ident is not None and file_identity(p) == ident]


def comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    except OSError:
        pass
    return inodes


def inet_listeners(pids: set[int]) -> list[str]:
    """Every TCP socket in LISTEN state and every bound UDP socket held by ``pids``."""
    owned = {}
    for pid in pids:
        for inode in _socket_inodes(pid):
            owned[inode] = pid
    found = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        try:
            with open(f"/proc/net/{table}") as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            local, state, inode = cols[1], cols[3], int(cols[9])
            listening = state == "0A" if table.startswith("tcp") else True
            if listening and inode in owned:
                found.append(f"{table} {local} held by {owned[inode]} ({comm(owned[inode])})")
    return found
