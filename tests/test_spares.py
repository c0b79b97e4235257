"""Spare desktops (``--DesktopWidget.spare_desktops=N``): claimed by ``Desktop()``, owned by the claimant, never leaked.

A real Jupyter server keeps the spares; "kernels" are Python processes that
run ``Desktop()`` as a notebook's kernel would, with the server's runtime
directory (a directory of this module's own, so no other test claims a spare)
and the spare pool's token that a real kernel of that server has in its
environment (``pool_token``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from desktop_widget import _options, _registry, _spare
from desktop_widget._session import Session, _SpareSettings
from tests._jupyter import start_jupyter, stop_jupyter
from tests._procs import alive, comm, ppid_table, tree, wait_for, wait_gone

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


def pool_token(server) -> str:
    """The spare pool's token as a real kernel of ``server`` has it: started by the server, read from its environ."""
    request = urllib.request.Request(
        server.api("api/kernels"), method="POST", data=b"{}", headers={"Authorization": f"token {server.token}"}
    )
    kernel_id = json.loads(urllib.request.urlopen(request, timeout=60).read())["id"]
    try:

        def kernel_pid() -> int | None:
            table = ppid_table()
            return next((p for p in tree(server.proc.pid, table) if kernel_id in " ".join(cmdline(p))), None)

        pid = wait_for(kernel_pid, 60, "the kernel's process")
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = dict(v.split(b"=", 1) for v in f.read().split(b"\0") if b"=" in v)
        return env[_spare.ENV.encode()].decode()
    finally:
        delete = urllib.request.Request(
            server.api(f"api/kernels/{kernel_id}"), method="DELETE", headers={"Authorization": f"token {server.token}"}
        )
        urllib.request.urlopen(delete, timeout=30)


def start_kernel(runtime: str, go: Path | None = None, pool: str | None = None, **args: object) -> subprocess.Popen:
    """A "kernel"; ``pool``: the token of the server it runs under (None: a process no server started)."""
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": runtime}
    env.pop(_spare.ENV, None)
    if pool is not None:
        env[_spare.ENV] = pool
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
    srv.pool = pool_token(srv)
    yield srv
    stop_jupyter(srv)


def test_a_spare_is_claimed_and_ends_with_its_kernel(server, runtime):
    (spare,) = wait_spares(runtime, 1)
    kernel = start_kernel(runtime, pool=server.pool)
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
    kernels = [start_kernel(runtime, go, pool=server.pool) for _ in range(2)]
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
    kernel = start_kernel(runtime, pool=server.pool, **args)
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


def _server_with_a_spare(tmp_path_factory, runtime: str, name: str):
    srv = start_jupyter(
        tmp_path_factory.mktemp(name),
        extra_args=("--DesktopWidget.spare_desktops=1",),
        env={"JUPYTER_RUNTIME_DIR": runtime},
    )
    srv.pool = pool_token(srv)
    return srv


def spares_of(runtime: str, server) -> set[str]:
    """The ready spares ``server`` started (their supervisors are its children)."""
    table = ppid_table()
    return {d for d in spares(runtime) if table.get(supervisor_of(d) or 0) == server.proc.pid}


def test_a_kernel_claims_only_its_own_servers_spares(tmp_path_factory):
    """Two servers of one user share the registry; each one's kernels get that server's spares only."""
    own = tempfile.mkdtemp(prefix="dw-sp4-")
    a = _server_with_a_spare(tmp_path_factory, own, "spares-a")
    b = _server_with_a_spare(tmp_path_factory, own, "spares-b")
    kernels = []
    try:
        assert a.pool != b.pool
        (spare_a,) = wait_for(lambda: spares_of(own, a), 60, "server A's spare")
        (spare_b,) = wait_for(lambda: spares_of(own, b), 60, "server B's spare")
        # A process no server started (a script in a shell) starts its own desktop.
        kernels.append(start_kernel(own))
        assert answer(kernels[-1])["id"] not in (spare_a, spare_b)
        assert {spare_a, spare_b} <= spares(own)
        # B's kernel gets B's spare, never A's (it would run in A's root directory, with A's environment).
        kernels.append(start_kernel(own, pool=b.pool))
        assert answer(kernels[-1])["id"] == spare_b
        assert spare_a in spares(own)
        kernels.append(start_kernel(own, pool=b.pool))  # B's replacement or a fresh one, still not A's
        assert answer(kernels[-1])["id"] != spare_a
        assert spare_a in spares(own)
        kernels.append(start_kernel(own, pool=a.pool))
        assert answer(kernels[-1])["id"] == spare_a
    finally:
        for k in kernels:
            k.stdin.close()
            k.wait(30)
        stop_jupyter(a)
        stop_jupyter(b)
    assert wait_for(lambda: not list(_registry_dir(own).iterdir()), 15, "an empty registry")
    shutil.rmtree(own, ignore_errors=True)


def test_a_claimed_spare_outlives_its_server_and_ends_with_its_kernel(tmp_path_factory):
    own = tempfile.mkdtemp(prefix="dw-sp5-")
    srv = _server_with_a_spare(tmp_path_factory, own, "spares5")
    kernel = start_kernel(own, pool=srv.pool)
    try:
        wait_spares(own, 1)
        got = answer(kernel)
        members = tree(got["supervisor"]) | {got["supervisor"]}
        # The desktop's lasting processes (the session's start-up helpers, dbus-launch…, exit by themselves).
        names = {"Xvnc", "xfwm4", "xfce4-panel"}

        def lasting_processes() -> dict[int, str] | None:
            found = {p: comm(p) for p in tree(got["supervisor"]) if comm(p) in names}
            return found if set(found.values()) == names else None

        lasting = wait_for(lasting_processes, 30, "the session's Xvnc, xfwm4 and xfce4-panel")
        lasting[got["supervisor"]] = "supervisor"
        stop_jupyter(srv)  # its unclaimed replacement (if started) goes; the kernel's desktop stays
        assert {name for p, name in lasting.items() if not alive(p)} == set()
        assert (_registry_dir(own) / f"{got['id']}.json").exists()
        assert spares(own) == set()
    finally:
        kernel.kill()
        kernel.wait()
    assert wait_gone(members, 10) == set()
    assert wait_for(lambda: not list(_registry_dir(own).iterdir()), 15, "an empty registry")
    shutil.rmtree(own, ignore_errors=True)


def _raw_claim(desktop_id: str, pool: str) -> tuple[socket.socket, dict]:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(10)
    conn.connect(str(_registry.owner_socket_path(desktop_id)))
    conn.sendall(json.dumps({"cmd": "claim", "pool": pool}).encode() + b"\n")
    return conn, json.loads(conn.makefile("rb").readline() or b"{}")


def test_stopping_a_spare_just_claimed_leaves_it_to_its_claimant(monkeypatch):
    """The server stopping (``SparePool.shutdown``) as a kernel's claim is granted: the desktop is the kernel's.

    The supervisor ignores the server's pipe once claimed, so the server's stop
    must not wait for it to end and then kill it (and remove its files).
    """
    own = tempfile.mkdtemp(prefix="dw-sp6-")
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", own)
    session = Session(_options.check_options(cwd=own), spare=_SpareSettings(0, lambda s: None, "pool-a"))
    conn = None
    try:
        session.start()
        wait_for(lambda: (_registry.root() / session.id / "spare").exists(), 30, "the spare's marker")
        other, refused = _raw_claim(session.id, "pool-b")  # a kernel of another server
        other.close()
        assert refused == {"event": "taken"}
        conn, granted = _raw_claim(session.id, "pool-a")
        assert granted["event"] == "claimed"
        members = tree(granted["supervisor_pid"]) | {granted["supervisor_pid"]}
        session.stop(timeout=5)  # what the pool's shutdown does to a spare it has not seen claimed yet
        assert all(alive(p) for p in members)
        assert (_registry.root() / session.id / "Xauthority").exists()
    finally:
        if conn is not None:
            conn.close()  # the claimant is gone: the desktop stops
        else:
            session.stop()
    assert wait_gone(members, 10) == set()
    session._proc.wait(10)
    shutil.rmtree(own, ignore_errors=True)
