"""Spare desktops (``--DesktopWidget.spare_desktops=N``): claimed by ``Desktop()``, owned by the claimant, never leaked.

A real Jupyter server keeps the spares; "kernels" are Python processes that
run ``Desktop()`` as a notebook's kernel would, with the server's runtime
directory (a directory of this module's own, so no other test claims a spare).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests._jupyter import start_jupyter, stop_jupyter
from tests._procs import alive, ppid_table, tree, wait_gone

#: A kernel: makes a desktop with the given arguments, says which, waits (for SIGKILL or stdin to close).
KERNEL = """
import json, os, sys, time
from pathlib import Path
from desktop_widget import Desktop, _registry
import desktop_widget.kernel._desktop  # imported before the start signal, as in a kernel that ran cells before
go = os.environ.get("GO_FILE")
if go:
    print("ready", flush=True)
    while not Path(go).exists():
        time.sleep(0.001)
d = Desktop(**json.loads(sys.argv[1]))
info = _registry.read(d.id)
print(json.dumps({"id": d.id, "status": d.status, "owner": info.pid, "supervisor": info.supervisor_pid}), flush=True)
sys.stdin.read()
d.stop()
"""


@pytest.fixture(scope="module")
def runtime():
    path = tempfile.mkdtemp(prefix="dw-sp-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _registry_dir(runtime: str) -> Path:
    return Path(runtime) / "desktop-widget"


def spares(runtime: str) -> set[str]:
    return {p.parent.name for p in _registry_dir(runtime).glob("*/spare")}


def wait_spares(runtime: str, n: int, exclude: set[str] = frozenset(), timeout: float = 60) -> set[str]:
    """Wait until ``n`` spares other than ``exclude`` are ready; returns them all."""
    deadline = time.monotonic() + timeout
    while len(spares(runtime) - set(exclude)) < n:
        assert time.monotonic() < deadline, f"no {n} spare(s) in {timeout} s: {spares(runtime)}"
        time.sleep(0.1)
    return spares(runtime)


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode(errors="replace").split("\0")
    except OSError:
        return []


def supervisor_of(desktop_id: str) -> int | None:
    """The supervisor of a desktop, found by its Xvnc (whose command line names the desktop)."""
    table = ppid_table()
    for pid, ppid in table.items():
        if f"desktop-{desktop_id}" in cmdline(pid) and ppid in table:
            return ppid
    return None


def start_kernel(runtime: str, go: Path | None = None, **args: object) -> subprocess.Popen:
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": runtime}
    if go is not None:
        env["GO_FILE"] = str(go)
    return subprocess.Popen(
        [sys.executable, "-c", KERNEL, json.dumps(args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def answer(kernel: subprocess.Popen) -> dict:
    line = kernel.stdout.readline()
    assert line, f"the kernel exited with {kernel.wait()}"
    return json.loads(line)


@pytest.fixture(scope="module")
def server(runtime, tmp_path_factory):
    srv = start_jupyter(
        tmp_path_factory.mktemp("spares"),
        extra_args=("--DesktopWidget.spare_desktops=1",),
        env={"JUPYTER_RUNTIME_DIR": runtime},
    )
    yield srv
    stop_jupyter(srv)


def test_a_spare_is_claimed_and_ends_with_its_kernel(server, runtime):
    (spare,) = wait_spares(runtime, 1)
    kernel = start_kernel(runtime)
    try:
        got = answer(kernel)
        assert got["id"] == spare
        assert got["status"] == "running"
        assert got["owner"] == kernel.pid  # the registry names the kernel as owner
        assert spare not in spares(runtime)
        members = tree(got["supervisor"]) | {got["supervisor"]}
        assert any("Xvnc" in " ".join(cmdline(p)) for p in members)
    finally:
        kernel.kill()  # SIGKILL: no chance to clean up
        kernel.wait()
    assert wait_gone(members, 10) == set()
    assert not (_registry_dir(runtime) / spare).exists()
    assert not (_registry_dir(runtime) / f"{spare}.json").exists()
    # A replacement comes.
    assert wait_spares(runtime, 1, exclude={spare})


def test_two_kernels_claiming_at_once_get_different_desktops(server, runtime, tmp_path):
    wait_spares(runtime, 1)
    go = tmp_path / "go"
    kernels = [start_kernel(runtime, go) for _ in range(2)]
    try:
        for k in kernels:
            assert k.stdout.readline().strip() == "ready"
        go.touch()
        first, second = (answer(k) for k in kernels)
        assert first["id"] != second["id"]
        assert first["supervisor"] != second["supervisor"]
        assert first["status"] == second["status"] == "running"
        members = {first["supervisor"], second["supervisor"]}
    finally:
        for k in kernels:
            k.stdin.close()  # the kernel stops its desktop and exits
            k.wait(30)
    assert wait_gone(members, 10) == set()


@pytest.mark.parametrize(
    "args",
    [
        {"session": "wm"},
        {"env": {"DW_TEST": "1"}},
        {"geometry": [800, 600]},
        {"cwd": "/"},
        {"name": "not-a-spare"},
        {"frame_rate": 60},
        {"opengl": False},
    ],
    ids=["session", "env", "geometry", "cwd", "name", "frame_rate", "opengl"],
)
def test_non_default_options_never_come_from_the_pool(server, runtime, args):
    before = wait_spares(runtime, 1)
    kernel = start_kernel(runtime, **args)
    try:
        got = answer(kernel)
        assert got["id"] not in before
        assert spares(runtime) >= before  # the spare is still there, unclaimed
    finally:
        kernel.stdin.close()
        kernel.wait(30)


def test_stopping_the_server_leaves_nothing(runtime, tmp_path_factory):
    own = tempfile.mkdtemp(prefix="dw-sp2-")
    srv = start_jupyter(
        tmp_path_factory.mktemp("spares2"),
        extra_args=("--DesktopWidget.spare_desktops=2",),
        env={"JUPYTER_RUNTIME_DIR": own},
    )
    try:
        ids = wait_spares(own, 2)
        members = set()
        for desktop_id in ids:
            sup = supervisor_of(desktop_id)
            assert sup is not None
            assert alive(sup)
            members |= tree(sup) | {sup}
    finally:
        stop_jupyter(srv)
    assert wait_gone(members, 10) == set()
    assert [p.name for p in _registry_dir(own).iterdir()] == []
    shutil.rmtree(own, ignore_errors=True)


def test_a_killed_server_leaves_no_spare(tmp_path_factory):
    own = tempfile.mkdtemp(prefix="dw-sp3-")
    srv = start_jupyter(
        tmp_path_factory.mktemp("spares3"),
        extra_args=("--DesktopWidget.spare_desktops=1",),
        env={"JUPYTER_RUNTIME_DIR": own},
    )
    try:
        (spare,) = wait_spares(own, 1)
        sup = supervisor_of(spare)
        members = tree(sup) | {sup}
    finally:
        os.killpg(srv.proc.pid, signal.SIGKILL)
        srv.proc.wait()
    assert wait_gone(members, 10) == set()
    assert [p.name for p in _registry_dir(own).iterdir()] == []
    shutil.rmtree(own, ignore_errors=True)
