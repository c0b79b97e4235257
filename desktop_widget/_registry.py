"""One small file per running desktop, in the user's Jupyter runtime directory.

Like a kernel's connection file, it tells the server extension, the launcher
and other kernels where a desktop is. The server only ever connects to sockets
found here, after checking them (``socket_for``), never to a path a client sent.

Nothing here is taken on trust: the directory must be a private directory of
this user (``root``), an entry is alive only while the very process that wrote
it runs (its pid *and* start time, ``read``), and an attached desktop's socket,
display and cookie are checked before any signal or connection (``verified``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import signal
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from jupyter_core.paths import jupyter_runtime_dir

from ._errors import DesktopError

log = logging.getLogger(__name__)

#: The name of our directories (registry, sockets) and of the server route.
NAME = "desktop-widget"
#: Desktop ids are 12 lower-case hex digits: nothing a path trick can hide in.
ID_PATTERN = re.compile(r"[0-9a-f]{12}")
#: Longest path a unix socket address can hold on Linux (108 bytes with the NUL).
_SUN_PATH_MAX = 107


def ws_path(desktop_id: str) -> str:
    """A desktop's route below the Jupyter server's base URL: ``desktop-widget/<id>/`` (see ``_server``)."""
    return f"{NAME}/{desktop_id}/"


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
    #: Which process ``supervisor_pid`` is: boot id and start time (``process_identity``).
    supervisor_start: str = ""
    #: What the desktop was started with, to tell a second ``Desktop(name=...)`` that asks for another one.
    options: dict = field(default_factory=dict, hash=False)

    def to_json(self) -> str:
        return json.dumps(asdict(self))


class RegistryError(DesktopError):
    """The registry (or a desktop's private directory) is not safe to use; the message says how to fix it."""


def _check_private_dir(path: Path, what: str, fix: str) -> None:
    """Refuse a directory that another user could have planted or could write into."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        problem = "is a symbolic link"
    elif not stat.S_ISDIR(st.st_mode):
        problem = "is not a directory"
    elif st.st_uid != os.getuid():
        problem = f"belongs to uid {st.st_uid}, not to this user (uid {os.getuid()})"
    elif st.st_mode & 0o022:
        problem = f"is writable by others (mode {stat.S_IMODE(st.st_mode):o})"
    else:
        return
    raise RegistryError(f"{what} {str(path)!r} {problem}, so another user could plant desktops in it; {fix}")


def _check_parent(path: Path, what: str, fix: str) -> None:
    """The directory holding ours: if others can rename entries in it, they can swap ours for theirs.

    Owned by this user or root, and writable by others only if sticky (like /tmp).
    """
    st = os.stat(path)
    if st.st_uid not in (0, os.getuid()) or (st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX):
        raise RegistryError(
            f"{what} {str(path)!r} can be changed by another user "
            f"(owner uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):o}); {fix}"
        )


def root(runtime_dir: str | os.PathLike | None = None) -> Path:
    """The registry directory, created private (0700) if needed, and refused if it is not private."""
    parent = Path(runtime_dir or jupyter_runtime_dir())
    path = parent / NAME
    parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _check_parent(
        parent, "the Jupyter runtime directory", "set JUPYTER_RUNTIME_DIR to a directory only you can write to"
    )
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    _check_private_dir(
        path,
        "the desktop registry",
        f"remove it (`rm -r {path}`) so that it is made again, private, or set JUPYTER_RUNTIME_DIR "
        "to a directory only you can write to",
    )
    return path


def _short_root() -> Path:
    """A short private directory for sockets whose registry path is too long for a unix socket.

    ``$XDG_RUNTIME_DIR`` (private to the user by its specification), else a
    0700 directory of our own in the system temporary directory; one that
    exists there with another owner or mode is refused, never reused.
    """
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and os.path.isabs(base) and os.path.isdir(base):
        path = Path(base) / NAME
    else:
        path = Path(tempfile.gettempdir()) / f"{NAME}-{os.getuid()}"
    _check_parent(path.parent, "the directory for sockets", "set XDG_RUNTIME_DIR to a private directory of yours")
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    _check_private_dir(path, "the socket directory", f"remove it (`rm -r {path}`) so that it is made again, private")
    if stat.S_IMODE(os.lstat(path).st_mode) != 0o700:
        raise RegistryError(f"the socket directory {str(path)!r} must have mode 700: `chmod 700 {path}`")
    return path


def socket_path(desktop_id: str, runtime_dir: str | os.PathLike | None = None, kind: str = "rfb") -> Path:
    """Where a desktop's RFB socket (or a spare's ``owner`` socket) lives: the one place that decides it.

    In the desktop's own directory in the registry when that path fits in a
    unix socket address; otherwise (a deep runtime directory, e.g. a home on a
    network share) as ``<id>.sock`` in a short private directory (``_short_root``).
    """
    path = root(runtime_dir) / desktop_id / f"{kind}.sock"
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        return path
    short = _short_root() / (f"{desktop_id}.sock" if kind == "rfb" else f"{desktop_id}.{kind}.sock")
    if len(os.fsencode(short)) > _SUN_PATH_MAX:
        raise DesktopError(
            f"the socket path {str(path)!r} is longer than the {_SUN_PATH_MAX} bytes a unix socket allows, "
            f"and so is {str(short)!r}; set JUPYTER_RUNTIME_DIR (or XDG_RUNTIME_DIR) to a shorter directory"
        )
    return short


def owner_socket_path(desktop_id: str, runtime_dir: str | os.PathLike | None = None) -> Path:
    """Where a spare desktop waits for the kernel that claims it (``desktop_widget._spare``)."""
    return socket_path(desktop_id, runtime_dir, kind="owner")


def private_dir(desktop_id: str, runtime_dir: str | os.PathLike | None = None) -> Path:
    """Create the 0700 directory that holds one desktop's cookie, log (and socket, if it fits there)."""
    socket_path(desktop_id, runtime_dir)  # fails early, before anything exists, if no place fits
    path = root(runtime_dir) / desktop_id
    path.mkdir(mode=0o700)
    return path


def entry_path(desktop_id: str, runtime_dir: str | os.PathLike | None = None) -> Path:
    return root(runtime_dir) / f"{desktop_id}.json"


def write(info: DesktopInfo, runtime_dir: str | os.PathLike | None = None) -> Path:
    """Publish ``info`` atomically (a reader never sees half a file), mode 0600.

    On failure (a full disk) nothing is left behind and the error says where.
    """
    path = entry_path(info.id, runtime_dir)
    tmp = path.with_name(f".{info.id}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(info.to_json())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise DesktopError(
            f"could not write the desktop's registry entry {str(path)!r}: {exc.strerror or exc}; "
            f"free some space there (or set JUPYTER_RUNTIME_DIR to another directory)"
        ) from exc
    return path


@contextlib.contextmanager
def name_lock(name: str, runtime_dir: str | os.PathLike | None = None) -> Iterator[None]:
    """Hold the named desktop's lock: get-or-create by name is one step across processes.

    An ``flock`` on ``.<name>.lock`` in the registry, held around looking the
    name up, starting the desktop and writing its entry; the kernel frees it
    if the holder dies. The files stay (removing a lock file races with its users).
    """
    path = root(runtime_dir) / f".{name}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def process_identity(pid: int) -> str:
    """What tells this process apart from any later one with the same pid: boot id and start time.

    "" if there is no such process (or it is not this user's).
    """
    try:
        st = os.stat(f"/proc/{pid}")
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return ""
    if st.st_uid != os.getuid():
        return ""
    # Field 22 (starttime), counted after the command name, which may hold spaces and ')'.
    fields_ = data[data.rfind(b")") + 2 :].split()
    return f"{_boot_id()}/{int(fields_[19])}"


def _alive(info: DesktopInfo) -> bool:
    return bool(info.supervisor_start) and process_identity(info.supervisor_pid) == info.supervisor_start


def signal_supervisor(info: DesktopInfo, sig: int) -> bool:
    """Send ``sig`` to the desktop's supervisor, only if it is still that very process.

    A pidfd pins the process before its identity is checked, so a pid reused in
    between can never receive the signal. False if the supervisor is gone.
    """
    try:
        pidfd = os.pidfd_open(info.supervisor_pid)
    except OSError:
        return False
    try:
        if not _alive(info):
            return False
        signal.pidfd_send_signal(pidfd, sig)
        return True
    except ProcessLookupError:
        return False
    finally:
        os.close(pidfd)


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
    if not _alive(info):
        if info.supervisor_start:  # without one, the entry is not ours to judge: ignore it, keep it
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
    with contextlib.suppress(DesktopError):
        sock = socket_path(desktop_id, runtime_dir)
        if sock.parent != base / desktop_id:
            with contextlib.suppress(OSError):
                sock.unlink()
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

    The path from the registry file must be this desktop's own socket
    (``socket_path``), a real socket (not a link) owned by this user in a
    directory no one else can enter.
    """
    info = read(desktop_id, runtime_dir)
    if info is None:
        return None
    return _checked_socket(info, runtime_dir)


def _checked_socket(info: DesktopInfo, runtime_dir: str | os.PathLike | None) -> str | None:
    try:
        expected = socket_path(info.id, runtime_dir)
    except DesktopError:
        return None
    if os.path.normpath(info.socket) != str(expected):
        log.warning("registry entry %s points outside its directory; ignored", info.id)
        return None
    uid = os.getuid()
    try:
        sock = os.lstat(expected)
        directory = os.lstat(expected.parent)
    except OSError:
        return None
    if not stat.S_ISSOCK(sock.st_mode) or sock.st_uid != uid:
        log.warning("registry entry %s does not point to a socket of ours; ignored", info.id)
        return None
    if not stat.S_ISDIR(directory.st_mode) or directory.st_uid != uid or directory.st_mode & 0o077:
        log.warning("desktop directory of %s is not private; ignored", info.id)
        return None
    return str(expected)


_DISPLAY = re.compile(r":([0-9]{1,5})")


def _display_is_ours(info: DesktopInfo, runtime_dir: str | os.PathLike | None) -> bool:
    """The X display is served by a process of this user, and its cookie is our private file."""
    match = _DISPLAY.fullmatch(info.display)
    if match is None:
        return False
    uid = os.getuid()
    try:
        x_socket = os.lstat(f"/tmp/.X11-unix/X{match.group(1)}")
        directory = os.lstat(root(runtime_dir) / info.id)
        cookie = os.lstat(root(runtime_dir) / info.id / "Xauthority")
    except OSError:
        return False
    return (
        stat.S_ISSOCK(x_socket.st_mode)
        and x_socket.st_uid == uid
        and stat.S_ISDIR(directory.st_mode)
        and directory.st_uid == uid
        and not directory.st_mode & 0o077
        and stat.S_ISREG(cookie.st_mode)
        and cookie.st_uid == uid
        and not cookie.st_mode & 0o077
    )


def verified(id_or_name: str, runtime_dir: str | os.PathLike | None = None) -> DesktopInfo | None:
    """A live desktop (``find``) whose socket, display and cookie are checked: safe to attach to.

    An entry that is alive but fails a check is logged and treated as absent.
    """
    info = find(id_or_name, runtime_dir)
    if info is None:
        return None
    if _checked_socket(info, runtime_dir) is None or not _display_is_ours(info, runtime_dir):
        log.warning("desktop %s (%s) fails the registry's checks; not attaching to it", info.id, info.name)
        return None
    return info
