"""Unit tests of the registry (files only; the socket is a real unix socket)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
from Xlib.xauth import FamilyLocal, Xauthority

from desktop_widget import _registry, _xauth


def info(tmp_path, desktop_id="0123456789ab", pid=None):
    return _registry.DesktopInfo(
        id=desktop_id,
        display=":5",
        socket=str(_registry.root(tmp_path) / desktop_id / "rfb.sock"),
        pid=os.getpid(),
        supervisor_pid=pid or os.getpid(),
        geometry=(800, 600),
        started=time.time(),
        session="wm",
        supervisor_start=_registry.process_identity(pid or os.getpid()),
    )


def test_write_read_list(tmp_path):
    entry = info(tmp_path)
    path = _registry.write(entry, tmp_path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    assert _registry.read(entry.id, tmp_path) == entry
    assert _registry.list_entries(tmp_path) == [entry]


def test_stale_entry_is_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    entry = info(tmp_path, pid=dead.pid)
    dead.wait()
    _registry.private_dir(entry.id, tmp_path)
    path = _registry.write(entry, tmp_path)
    assert _registry.list_entries(tmp_path) == []
    assert not path.exists()
    assert not (tmp_path / "desktop-widget" / entry.id).exists()


@pytest.mark.parametrize(
    "bad", ["../etc", "0123456789AB", "0123456789a", "0123456789abc", "", "a/b", "x\0y", "9" * 500]
)
def test_malformed_ids_are_not_found(tmp_path, bad):
    assert _registry.read(bad, tmp_path) is None
    assert _registry.socket_for(bad, tmp_path) is None


def test_socket_must_be_ours_and_inside(tmp_path):
    entry = info(tmp_path)
    directory = _registry.private_dir(entry.id, tmp_path)
    _registry.write(entry, tmp_path)
    # No socket yet: a regular file is not accepted.
    (directory / "rfb.sock").write_text("not a socket")
    assert _registry.socket_for(entry.id, tmp_path) is None
    (directory / "rfb.sock").unlink()
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(directory / "rfb.sock"))
        assert _registry.socket_for(entry.id, tmp_path) == str(directory / "rfb.sock")
        # A directory others may enter is refused.
        directory.chmod(0o755)
        assert _registry.socket_for(entry.id, tmp_path) is None
        directory.chmod(0o700)
        # An entry that points elsewhere (even at a real socket) is ignored.
        outside = dict(json.loads(entry.to_json()), socket=str(tmp_path / "elsewhere.sock"))
        _registry.entry_path(entry.id, tmp_path).write_text(json.dumps(outside))
        assert _registry.socket_for(entry.id, tmp_path) is None
        escape = dict(outside, socket=str(directory / ".." / entry.id / "rfb.sock") + "/../../x")
        _registry.entry_path(entry.id, tmp_path).write_text(json.dumps(escape))
        assert _registry.socket_for(entry.id, tmp_path) is None


def test_xauth_file_parses_as_an_xauthority(tmp_path):
    """python-xlib (and so libXau's format) reads our file: one cookie for any display, local and wildcard."""
    path = tmp_path / "Xauthority"
    _xauth.write(str(path))
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    parsed = Xauthority(str(path))
    assert len(parsed) == 2
    (local_family, host, local_number, local_name, cookie), wild = parsed[0], parsed[1]
    assert (local_family, host, local_number, local_name) == (
        FamilyLocal,
        socket.gethostname().encode(),
        b"",
        b"MIT-MAGIC-COOKIE-1",
    )
    assert len(cookie) == 16
    assert wild == (0xFFFF, b"", b"", b"MIT-MAGIC-COOKIE-1", cookie)
    # What a local client asks for, for whatever display number the server took.
    for number in (0, 5, 1023):
        assert parsed.get_best_auth(FamilyLocal, socket.gethostname().encode(), number) == (
            b"MIT-MAGIC-COOKIE-1",
            cookie,
        )
    # A new file, a new cookie; an existing file is never overwritten.
    other = tmp_path / "other"
    _xauth.write(str(other))
    assert Xauthority(str(other))[0][4] != cookie
    with pytest.raises(FileExistsError):
        _xauth.write(str(path))


def test_entry_is_alive_only_while_its_very_supervisor_runs(tmp_path):
    sleeper = subprocess.Popen(["sleep", "600"])
    try:
        entry = info(tmp_path, pid=sleeper.pid)
        _registry.private_dir(entry.id, tmp_path)
        _registry.write(entry, tmp_path)
        assert _registry.read(entry.id, tmp_path) == entry
        # The same pid, another process (start time): stale, and removed.
        other = dict(json.loads(entry.to_json()), supervisor_start=entry.supervisor_start.split("/")[0] + "/1")
        _registry.entry_path(entry.id, tmp_path).write_text(json.dumps(other))
        assert _registry.read(entry.id, tmp_path) is None
        assert not _registry.entry_path(entry.id, tmp_path).exists()
        # No start time at all (not written by this version): ignored, but not ours to delete.
        _registry.private_dir(entry.id, tmp_path)
        bare = dict(json.loads(entry.to_json()), supervisor_start="")
        _registry.entry_path(entry.id, tmp_path).write_text(json.dumps(bare))
        assert _registry.read(entry.id, tmp_path) is None
        assert _registry.entry_path(entry.id, tmp_path).exists()
    finally:
        sleeper.kill()
        sleeper.wait()
