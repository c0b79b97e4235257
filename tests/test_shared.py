"""Desktops shared between processes: names, attaching, persistence, the idle timeout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from desktop_widget import Desktop, DesktopError, _registry, list_desktops
from tests._procs import tree, wait_for, wait_gone


def test_name_is_get_or_create():
    with Desktop(session="none", geometry=(320, 240), name="gis") as first:
        again = Desktop(name="gis")
        assert again.id == first.id
        assert again.name == "gis"
        assert Desktop.attach("gis").id == first.id
        del again  # an attached desktop does not stop with its object
        assert first.status == "running"
        other = Desktop(session="none", geometry=(320, 240), name="other")
        assert other.id != first.id
        other.stop()
    assert [i for i in list_desktops() if i.name == "gis"] == []


def test_bad_names():
    for bad in ["a/b", "x" * 65, "sp ace", "../x"]:
        with pytest.raises(ValueError, match="name"):
            Desktop(name=bad)
    with pytest.raises(DesktopError, match="no running desktop 'nothing-here'"):
        Desktop.attach("nothing-here")


_PERSISTENT_OWNER = """
import json, os, sys, time
from desktop_widget import Desktop, _registry
d = Desktop(session="wm", geometry=(320, 240), name="keeper", persistent=True)
print(json.dumps({"id": d.id, "supervisor": _registry.read(d.id).supervisor_pid}), flush=True)
time.sleep(600)
"""


def test_persistent_desktop_outlives_its_kernel_but_not_its_server():
    server = subprocess.Popen(["sleep", "600"])  # stands in for the Jupyter server (JPY_PARENT_PID)
    owner = subprocess.Popen(
        [sys.executable, "-c", _PERSISTENT_OWNER],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "JPY_PARENT_PID": str(server.pid)},
    )
    try:
        info = json.loads(owner.stdout.readline())
        pids = tree(info["supervisor"])
        owner.kill()  # the kernel dies
        owner.wait()
        time.sleep(1)
        again = Desktop.attach("keeper")  # a new kernel finds it
        assert again.id == info["id"]
        assert again.screenshot().size == (320, 240)
        server.terminate()  # the server goes: so does the desktop
        server.wait()
        assert wait_gone(pids, 5) == set()
        assert _registry.read(info["id"]) is None
    finally:
        for p in (owner, server):
            if p.poll() is None:
                p.kill()


def test_persistent_desktop_stops_on_request():
    d = Desktop(session="none", geometry=(320, 240), persistent=True)
    pids = tree(_registry.read(d.id).supervisor_pid)
    d.stop()
    assert wait_gone(pids, 5) == set()
    assert d.status == "stopped"


def _activity(d: Desktop) -> Path:
    """The file whose mtime says when a desktop was last used (the supervisor's idle clock).

    The supervisor makes it as its watch begins, just after it has said the desktop is ready.
    """
    path = _registry.root() / d.id / "activity"
    wait_for(path.exists, 10, str(path))
    return path


def test_scripting_counts_as_use():
    with Desktop(session="none", geometry=(320, 240), idle_timeout=3600) as d:
        long_ago = time.time() - 600
        os.utime(_activity(d), (long_ago, long_ago))
        # The kernel marks use at most once a second: script until it has.
        wait_for(lambda: (d.move(5, 5), _activity(d).stat().st_mtime > long_ago + 300)[1], 10, "a scripting touch")


def test_idle_timeout_stops_an_unused_desktop():
    """The supervisor reads the activity file: in use (a future mtime) it runs on, unused it stops.

    The test sets the file's time itself, so no touch of ours races the supervisor's clock.
    """
    d = Desktop(session="none", geometry=(320, 240), idle_timeout=2)
    pids = tree(_registry.read(d.id).supervisor_pid)
    in_use = time.time() + 3600
    os.utime(_activity(d), (in_use, in_use))
    # Several of the supervisor's checks (every idle_timeout / 4) past the timeout: still running.
    time.sleep(3)
    assert d.status == "running"
    unused = time.time() - 3600
    os.utime(_activity(d), (unused, unused))
    wait_for(lambda: d.status != "running", 10, "the idle timeout")
    assert d.status == "stopped"
    assert d.view.status == "stopped"
    assert d.view.status_detail == "idle"
    assert wait_gone(pids, 5) == set()


def test_views_of_an_attached_desktop_learn_that_it_stopped():
    # A mirror (Desktop.attach) of a desktop that its owner stops: its views must say
    # "stopped" and show the last frame, not retry a desktop that is gone forever.
    owner = Desktop(session="none", geometry=(320, 240))
    mirror = Desktop.attach(owner.id, view_only=True)
    assert mirror.view.status == "running"
    owner.stop()
    wait_for(lambda: mirror.view.status == "stopped", timeout=10, what="the attached view's status")
    assert mirror.status == "stopped"
