"""Reading processes and sockets from /proc, as the OS sees them."""

from __future__ import annotations

import os
import time


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
