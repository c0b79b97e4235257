"""Unit tests of the registry (files only; the socket is a real unix socket)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

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


def test_xauth_entries_parse():
    data = _xauth.entries(b"\x01" * 16, "host")
    # family, address, number, name, cookie: twice (local + wildcard)
    assert data.count(b"MIT-MAGIC-COOKIE-1") == 2
    assert data[:2] == b"\x01\x00"
    assert b"host" in data


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
