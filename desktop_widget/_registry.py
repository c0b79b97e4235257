"""One small file per running desktop, in the user's Jupyter runtime directory.

Like a kernel's connection file, it tells the server extension, the launcher
and other kernels where a desktop is. The server only ever connects to sockets
found here, after checking them (``socket_for``), never to a path a client sent.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import stat
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from jupyter_core.paths import jupyter_runtime_dir

log = logging.getLogger(__name__)

#: Desktop ids are 12 lower-case hex digits: nothing a path trick can hide in.
ID_PATTERN = re.compile(r"[0-9a-f]{12}")
#: Longest path a unix socket address can hold on Linux (108 bytes with the NUL).
_SUN_PATH_MAX = 107


@dataclass(frozen=True)
class DesktopInfo:
    """What the registry knows of one running desktop."""

    id: str
    display: str
    socket: str
    pid: int
    supervisor_pid: int
    geometry: tuple[int, int]
    started: float
    session: str
    has_wm: bool = False
    name: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def root(runtime_dir: str | os.PathLike | None = None) -> Path:
    """The registry directory, created private (0700) if needed."""
    path = Path(runtime_dir or jupyter_runtime_dir()) / "desktop-widget"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def private_dir(desktop_id: str, runtime_dir: str | os.PathLike | None = None) -> Path:
    """Create the 0700 directory that holds one desktop's socket, cookie and log."""
    path = root(runtime_dir) / desktop_id
    path.mkdir(mode=0o700)
    socket_path = path / "rfb.sock"
    if len(os.fsencode(socket_path)) > _SUN_PATH_MAX:
        path.rmdir()
        raise OSError(
            f"the socket path {str(socket_path)!r} is longer than the {_SUN_PATH_MAX} bytes a unix socket allows; "
            "set JUPYTER_RUNTIME_DIR to a shorter directory"
        )
    return path


def entry_path(desktop_id: str, runtime_dir: str | os.PathLike | None = None) -> Path:
    return root(runtime_dir) / f"{desktop_id}.json"


def write(info: DesktopInfo, runtime_dir: str | os.PathLike | None = None) -> Path:
    """Publish ``info`` atomically (a reader never sees half a file), mode 0600."""
    path = entry_path(info.id, runtime_dir)
    tmp = path.with_name(f".{info.id}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(info.to_json())
    os.replace(tmp, path)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read(path: Path) -> DesktopInfo | None:
    try:
        data = json.loads(path.read_text())
        data["geometry"] = tuple(data["geometry"])
        known = {f.name for f in fields(DesktopInfo)}
        return DesktopInfo(**{k: v for k, v in data.items() if k in known})
    except (OSError, ValueError, TypeError, KeyError):
        return None


def read(desktop_id: str, runtime_dir: str | os.PathLike | None = None) -> DesktopInfo | None:
    """The live desktop with this id, or None (malformed ids included)."""
    if not isinstance(desktop_id, str) or not ID_PATTERN.fullmatch(desktop_id):
        return None
    info = _read(entry_path(desktop_id, runtime_dir))
    if info is None or info.id != desktop_id:
        return None
    if not _alive(info.supervisor_pid):
        _remove_stale(desktop_id, runtime_dir)
        return None
    return info


def list_entries(runtime_dir: str | os.PathLike | None = None) -> list[DesktopInfo]:
    """Every live desktop, oldest first; files of dead desktops are removed."""
    found = []
    for path in root(runtime_dir).glob("*.json"):
        desktop_id = path.stem
        info = read(desktop_id, runtime_dir)
        if info is not None:
            found.append(info)
        elif ID_PATTERN.fullmatch(desktop_id) and not path.with_suffix("").is_dir():
            # Unreadable and without a desktop directory: debris.
            with contextlib.suppress(OSError):
                path.unlink()
    return sorted(found, key=lambda i: i.started)


def find(id_or_name: str, runtime_dir: str | os.PathLike | None = None) -> DesktopInfo | None:
    """A live desktop by id, or else by name."""
    info = read(id_or_name, runtime_dir)
    if info is not None:
        return info
    return next((i for i in list_entries(runtime_dir) if i.name and i.name == id_or_name), None)


def _remove_stale(desktop_id: str, runtime_dir: str | os.PathLike | None) -> None:
    log.info("removing stale desktop registry entry %s", desktop_id)
    base = root(runtime_dir)
    with contextlib.suppress(OSError):
        (base / f"{desktop_id}.json").unlink()
    directory = base / desktop_id
    if directory.is_dir() and not directory.is_symlink():
        for child in directory.iterdir():
            with contextlib.suppress(OSError):
                child.unlink()
        with contextlib.suppress(OSError):
            directory.rmdir()


def remove(desktop_id: str, runtime_dir: str | os.PathLike | None = None) -> None:
    with contextlib.suppress(OSError):
        entry_path(desktop_id, runtime_dir).unlink()


def socket_for(desktop_id: str, runtime_dir: str | os.PathLike | None = None) -> str | None:
    """The RFB socket of a live desktop, only if it is safe to connect to.

    The path from the registry file must be this desktop's own socket inside
    the registry directory, a real socket (not a link) owned by this user in a
    directory no one else can enter.
    """
    info = read(desktop_id, runtime_dir)
    if info is None:
        return None
    expected = root(runtime_dir) / desktop_id / "rfb.sock"
    if os.path.normpath(info.socket) != str(expected):
        log.warning("registry entry %s points outside its directory; ignored", desktop_id)
        return None
    uid = os.getuid()
    try:
        sock = os.lstat(expected)
        directory = os.lstat(expected.parent)
    except OSError:
        return None
    if not stat.S_ISSOCK(sock.st_mode) or sock.st_uid != uid:
        log.warning("registry entry %s does not point to a socket of ours; ignored", desktop_id)
        return None
    if not stat.S_ISDIR(directory.st_mode) or directory.st_uid != uid or directory.st_mode & 0o077:
        log.warning("desktop directory of %s is not private; ignored", desktop_id)
        return None
    return str(expected)
