"""Desktops shared between processes: names, attaching, persistence, the idle timeout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from desktop_widget import Desktop, DesktopError, _registry, list_desktops
from tests._procs import tree, wait_gone


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


def test_idle_timeout_stops_an_unused_desktop():
    d = Desktop(session="none", geometry=(320, 240), idle_timeout=1.5)
    pids = tree(_registry.read(d.id).supervisor_pid)
    # Scripting keeps it alive...
    end = time.monotonic() + 3
    while time.monotonic() < end:
        d.move(5, 5)
        time.sleep(0.3)
    assert d.status == "running"
    # ...doing nothing does not.
    deadline = time.monotonic() + 6
    while d.status == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert d.status == "stopped"
    assert d.view.status == "stopped"
    assert d.view.status_detail == "idle"
    assert wait_gone(pids, 5) == set()
