"""Security and reliability, proved with real processes: nobody else gets in, nothing is left behind."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from jupyter_client import KernelManager
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from desktop_widget import Desktop, _registry
from tests import _aio
from tests._procs import XFCE_PROCESSES, inet_listeners, tree, wait_for, wait_gone, wait_running, x_files, x_files_held

NOBODY = 65534
needs_root = pytest.mark.skipif(os.getuid() != 0, reason="switching to another user needs root (CI runs as root)")


def as_nobody(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a command as the unprivileged user ``nobody``: another local user."""
    cmd = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=env or {"PATH": "/usr/bin:/bin"})


_CONNECT = "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); print(s.recv(12))"


@pytest.fixture
def open_runtime_dir(monkeypatch):
    """A runtime directory whose parents another user may enter, so only our own permissions guard it.

    It is made outside pytest's base temp directory on purpose: every pytest session that
    starts on the machine resets ``/tmp/pytest-of-<user>`` to 0700, which would shut
    ``nobody`` out of the whole tree mid-test (the refusals then pass for the wrong reason,
    and the control with a copy of the cookie fails: libXau cannot read it and sends none).
    """
    top = Path(tempfile.mkdtemp(prefix="dw-open-runtime-", dir="/tmp"))
    try:
        top.chmod(0o755)
        runtime = top / "rt"
        runtime.mkdir(mode=0o755)
        runtime.chmod(0o755)
        monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
        yield runtime
    finally:
        shutil.rmtree(top, ignore_errors=True)


# -- 1. no network exposure -----------------------------------------------------


def test_no_listener_in_a_full_xfce_desktop_with_apps():
    with Desktop(session="xfce") as d:
        d.launch("xterm")
        # XFCE's daemons, the panel's plugins, the app: all of them up before we look.
        pids = wait_running(_registry.read(d.id).supervisor_pid, XFCE_PROCESSES | {"xterm"})
        assert inet_listeners(pids) == []
        assert inet_listeners({a.pid for a in d._resources.apps}) == []


def test_x_display_needs_the_cookie():
    with Desktop(session="none", geometry=(320, 240)) as d:
        refused = subprocess.run(
            ["xdpyinfo", "-display", d.display], env={"PATH": os.environ["PATH"]}, capture_output=True, text=True
        )
        assert refused.returncode != 0
        assert "unable to open display" in refused.stderr
        allowed = subprocess.run(["xdpyinfo"], env={"PATH": os.environ["PATH"], **d.env}, capture_output=True)
        assert allowed.returncode == 0


def test_private_files_have_private_modes():
    with Desktop(session="none", geometry=(320, 240)) as d:
        directory = Path(d.env["XAUTHORITY"]).parent
        assert directory.parent.stat().st_mode & 0o777 == 0o700
        assert directory.stat().st_mode & 0o777 == 0o700
        assert (directory / "rfb.sock").stat().st_mode & 0o777 == 0o600
        assert (directory / "Xauthority").stat().st_mode & 0o777 == 0o600
        assert _registry.entry_path(d.id).stat().st_mode & 0o777 == 0o600


@needs_root
def test_another_local_user_is_refused(open_runtime_dir):
    with Desktop(session="none", geometry=(320, 240)) as d:
        directory = Path(d.env["XAUTHORITY"]).parent
        sock = str(directory / "rfb.sock")
        # As it is: the private directory stops another user at once.
        r = as_nobody("/usr/bin/python3", "-c", _CONNECT, sock)
        assert r.returncode != 0
        assert "PermissionError" in r.stderr
        # Even with both directories opened up, the socket's own 0600 mode refuses.
        directory.parent.chmod(0o755)
        directory.chmod(0o755)
        try:
            # The way in is open now (so the refusals below are the socket's and the cookie's).
            r = as_nobody("/usr/bin/ls", str(directory))
            assert r.returncode == 0, r.stderr
            r = as_nobody("/usr/bin/python3", "-c", _CONNECT, sock)
            assert r.returncode != 0
            assert "PermissionError" in r.stderr
            r = as_nobody("/usr/bin/cat", d.env["XAUTHORITY"])
            assert r.returncode != 0  # the cookie is not readable
            # The X display socket itself is world-connectable: the cookie is what refuses.
            r = as_nobody("/usr/bin/xdpyinfo", "-display", d.display)
            assert r.returncode != 0
            assert "unable to open display" in r.stderr
            # Control: the same user *with* a copy of the cookie gets in, so the refusal above is the cookie's.
            cookie = open_runtime_dir / "cookie-copy"
            shutil.copy(d.env["XAUTHORITY"], cookie)
            os.chown(cookie, NOBODY, NOBODY)
            r = as_nobody("/usr/bin/test", "-r", str(cookie))
            assert r.returncode == 0, r.stderr  # nobody can read its copy: the control below is fair
            r = as_nobody(
                "/usr/bin/xdpyinfo", "-display", d.display, env={"PATH": "/usr/bin:/bin", "XAUTHORITY": str(cookie)}
            )
            assert r.returncode == 0, r.stderr
        finally:
            directory.chmod(0o700)
            directory.parent.chmod(0o700)


# -- 2. the route ------------------------------------------------------------------


def test_registry_entry_pointing_elsewhere_is_not_served(jupyter, tmp_path):
    """A tampered registry file (socket outside its directory, or not a socket) gets 404, not a connection."""
    with Desktop(session="none", geometry=(320, 240)) as d:
        outside = tmp_path / "elsewhere.sock"
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(outside))
        listener.listen()
        fake = _registry.DesktopInfo(
            id="abcdefabcdef",
            display=d.display,
            socket=str(outside),
            pid=os.getpid(),
            supervisor_pid=os.getpid(),
            geometry=(320, 240),
            started=time.time(),
            session="none",
            # Alive (this process), so that the socket check is what refuses it.
            supervisor_start=_registry.process_identity(os.getpid()),
        )
        _registry.write(fake)
        assert _registry.read(fake.id) == fake
        try:

            async def status(desktop_id: str) -> int:
                request = HTTPRequest(
                    jupyter.ws_url(f"desktop-widget/{desktop_id}/"), headers={"Authorization": f"token {jupyter.token}"}
                )
                try:
                    conn = await websocket_connect(request)
                except Exception as exc:  # tornado raises HTTPClientError with the code
                    return getattr(exc, "code", 0)
                conn.close()
                return 101

            assert _aio.run(status("abcdefabcdef")) == 404
            assert _aio.run(status(d.id)) == 101  # control: the real one is served
        finally:
            _registry.remove("abcdefabcdef")
            listener.close()


def test_eight_rfb_clients_through_the_server_all_get_updates(jupyter):
    with Desktop(session="none", geometry=(320, 240)) as d:

        async def client(ready: asyncio.Event, changed: asyncio.Event) -> int:
            request = HTTPRequest(
                jupyter.ws_url(f"desktop-widget/{d.id}/"), headers={"Authorization": f"token {jupyter.token}"}
            )
            conn = await websocket_connect(request)
            buffer = b""

            async def need(n: int) -> bytes:
                nonlocal buffer
                while len(buffer) < n:
                    chunk = await asyncio.wait_for(conn.read_message(), 10)
                    assert chunk is not None
                    buffer += chunk
                data, buffer = buffer[:n], buffer[n:]
                return data

            await need(12)
            conn.write_message(b"RFB 003.008\n", binary=True)
            await need((await need(1))[0])
            conn.write_message(b"\x01", binary=True)
            await need(4)
            conn.write_message(b"\x01", binary=True)
            await need(20)
            await need(int.from_bytes(await need(4), "big"))
            conn.write_message(bytes([2, 0, 0, 1, 0, 0, 0, 0]), binary=True)  # SetEncodings: Raw only

            async def update() -> int:
                """Read one FramebufferUpdate of Raw rectangles: the area it paints, in pixels."""
                kind = (await need(2))[0]
                assert kind == 0, f"server message {kind} instead of a FramebufferUpdate"
                area = 0
                for _ in range(int.from_bytes(await need(2), "big")):
                    _x, _y, w, h, encoding = struct.unpack(">HHHHi", await need(12))
                    assert encoding == 0, f"encoding {encoding}, not Raw"
                    await need(w * h * 4)
                    area += w * h
                return area

            conn.write_message(bytes([3, 0, 0, 0, 0, 0, 1, 64, 0, 240]), binary=True)  # full update request
            assert await update() == 320 * 240  # the whole screen, once
            ready.set()
            await changed.wait()
            repainted = 0
            deadline = time.monotonic() + 10
            while repainted < 320 * 240 // 2:  # at least half the screen repainted
                conn.write_message(bytes([3, 1, 0, 0, 0, 0, 1, 64, 0, 240]), binary=True)  # incremental
                repainted += await update()
                assert time.monotonic() < deadline
            conn.close()
            return repainted

        async def main() -> list[int]:
            changed = asyncio.Event()
            ready = [asyncio.Event() for _ in range(8)]
            tasks = [asyncio.create_task(client(r, changed)) for r in ready]
            # Every client through its handshake and first update before the screen changes.
            all_ready = asyncio.ensure_future(asyncio.gather(*(r.wait() for r in ready)))
            done, _ = await asyncio.wait([all_ready, *tasks], timeout=30, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # a client can only end early by failing: say why
            assert all_ready.done(), "not every client got its first update"
            # Repaint the whole screen from X: every client must be sent it.
            d.launch(["xterm", "-geometry", "200x100+0+0", "-bg", "#ff00ff"])
            changed.set()
            return await asyncio.gather(*tasks)

        assert all(n > 0 for n in _aio.run(main()))


# -- 3. nothing left behind -----------------------------------------------------------


def _execute(kc, code: str) -> str:
    out = []
    reply = kc.execute_interactive(
        code,
        timeout=60,
        output_hook=lambda m: out.append(m["content"].get("text", "")) if m["msg_type"] == "stream" else None,
    )
    assert reply["content"]["status"] == "ok", reply["content"]
    return "".join(out)


_START_IN_KERNEL = """
from desktop_widget import Desktop, _registry
import json
d = Desktop(session="xfce")
print(json.dumps({"id": d.id, "supervisor": _registry.read(d.id).supervisor_pid, "display": d.display,
                  "dir": str(_registry.root() / d.id)}))
"""


def _assert_gone(info: dict, pids: set[int], x_before: dict) -> None:
    assert wait_gone(pids, 5) == set()
    # (Xvnc with -displayfd takes no lock file; when it does, it must go too.)
    assert x_files_held(x_before) == [], "left behind"
    for pid in pids:
        assert not Path(f"/tmp/.ICE-unix/{pid}").exists()
    leftover = [
        p
        for p in Path("/tmp").glob(".xfsm-ICE-*")
        if any(f"/ICE-unix/{pid} " in p.read_text(errors="replace") for pid in pids)
    ]
    assert leftover == []
    assert not Path(info["dir"]).exists()
    assert _registry.read(info["id"]) is None


@pytest.mark.parametrize("now", [False, True], ids=["graceful-restart", "killed-restart"])
def test_kernel_restart_stops_the_desktop(now):
    km = KernelManager(kernel_name="python3")
    km.start_kernel(env={**os.environ})
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        info = json.loads(_execute(kc, _START_IN_KERNEL))
        pids = wait_running(info["supervisor"], XFCE_PROCESSES)
        x_before = x_files(info["display"])
        assert any(x_before.values()), "no X socket"
        km.restart_kernel(now=now)
        _assert_gone(info, pids, x_before)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_sigterm_of_the_jupyter_server_stops_its_kernels_desktops(tmp_path):
    from tests._jupyter import start_jupyter

    server = start_jupyter(tmp_path, base_url="/", app="server")
    try:
        import urllib.request

        request = urllib.request.Request(
            f"{server.url}api/kernels", method="POST", data=b"{}", headers={"Authorization": f"token {server.token}"}
        )
        kernel_id = json.loads(urllib.request.urlopen(request, timeout=30).read())["id"]
        connection = Path(os.environ["JUPYTER_RUNTIME_DIR"]) / f"kernel-{kernel_id}.json"
        from jupyter_client import BlockingKernelClient

        kc = BlockingKernelClient(connection_file=str(connection))
        kc.load_connection_file()
        # No heartbeat: without a kernel manager, wait_for_ready() takes a heartbeat missed for 1 s (a kernel
        # still starting on a loaded machine) as "Kernel died"; the kernel_info reply is the readiness wanted.
        kc.start_channels(hb=False)
        kc.wait_for_ready(timeout=60)
        info = json.loads(_execute(kc, _START_IN_KERNEL))
        kc.stop_channels()
        pids = wait_running(info["supervisor"], XFCE_PROCESSES)
        x_before = x_files(info["display"])
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(30)
        _assert_gone(info, pids, x_before)
    finally:
        if server.proc.poll() is None:
            server.proc.kill()


def _resources() -> dict[str, int]:
    me = os.getpid()
    return {
        "fds": len(os.listdir("/proc/self/fd")),
        "threads": len(os.listdir("/proc/self/task")),
        "python_threads": threading.active_count(),
        "children": len(tree(me) - {me}),
    }


def _open_files() -> set[str]:
    """What this process's descriptors point at, unix sockets by path (to name a leak)."""
    with open("/proc/net/unix") as f:
        unix = {cols[6]: cols[7] if len(cols) > 7 else "" for cols in (row.split() for row in f.readlines()[1:])}
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:["):
                target += f" unix {unix[target[8:-1]]!r}" if target[8:-1] in unix else " (not unix)"
            found.add(f"{fd} -> {target}")
    return found


def test_fifty_start_stop_cycles_leak_nothing():
    """Each desktop leaves nothing: no process, no registry entry, its display number free again.

    Other processes on the machine may start X servers meanwhile, so the display numbers
    themselves are not compared; what is checked is that each of ours was released.
    """

    def cycle() -> None:
        with Desktop(session="none", geometry=(320, 240)) as d:
            pids = tree(_registry.read(d.id).supervisor_pid)
            x_before = x_files(d.display)
            assert any(x_before.values()), "no X socket"
            d.click(10, 10)
            d.screenshot()
            d.clipboard = "x"
            d.type("aé")  # the keyboard, its keymap watcher and its second connection
        assert wait_gone(pids, 5) == set()
        assert _registry.read(d.id) is None
        assert x_files_held(x_before) == [], f"{d.display} not released"  # gone, or another X server's by now

    cycle()  # warm up imports and caches
    before = _resources()
    files_before = _open_files()
    for _ in range(50):
        cycle()

    def grown() -> dict[str, tuple[int, int]]:
        after = _resources()
        return {k: (before[k], after[k]) for k in before if after[k] > before[k]}

    # Threads and children of the last cycle may take a moment to be reaped.
    with contextlib.suppress(AssertionError):
        wait_for(lambda: not grown(), 10, "the resources to shrink back")
    assert grown() == {}, (grown(), _open_files() - files_before)


# -- 4. several at once ----------------------------------------------------------------


def test_four_desktops_at_once_are_independent():
    desktops = [Desktop(session="none", geometry=(320 + 16 * i, 240)) for i in range(4)]
    try:
        assert len({d.display for d in desktops}) == 4
        for i, d in enumerate(desktops):
            assert d.size == (320 + 16 * i, 240)
            d.clipboard = f"desktop {i}"
        assert [d.clipboard for d in desktops] == [f"desktop {i}" for i in range(4)]
        desktops[1].stop()
        assert [d.status for d in desktops] == ["running", "stopped", "running", "running"]
        assert desktops[2].screenshot().size == (352, 240)
    finally:
        for d in desktops:
            d.stop()


# -- 5. bad input ------------------------------------------------------------------------


def test_bad_input_leaves_nothing(tmp_path):
    before = set(os.listdir(_registry.root()))
    children = tree(os.getpid()) - {os.getpid()}
    script = tmp_path / "xstartup"
    script.write_text("#!/bin/sh\n")
    cases = [
        (TypeError, {"geometry": "big"}),
        (ValueError, {"geometry": (-1, 600)}),
        (ValueError, {"geometry": (10**6, 600)}),
        (ValueError, {"session": "gnome"}),
        (PermissionError, {"session": str(script)}),  # not executable
        (FileNotFoundError, {"session": str(tmp_path / "missing")}),
        (FileNotFoundError, {"cwd": str(tmp_path / "missing")}),
        (TypeError, {"env": {"A": 1}}),
        (TypeError, {"wat": 1}),
        (ValueError, {"frame_rate": 0}),
    ]
    for error, kwargs in cases:
        with pytest.raises(error):
            Desktop(**kwargs)
    assert set(os.listdir(_registry.root())) == before
    assert tree(os.getpid()) - {os.getpid()} == children


def test_a_taken_display_is_skipped():
    """An X server already on the display we would pick: -displayfd moves on to a free one."""
    first = Desktop(session="none", geometry=(320, 240))
    n = int(first.display.lstrip(":"))
    first.stop()
    squatter = subprocess.Popen(
        ["Xvnc", f":{n}", "-rfbport", "-1", "-nolisten", "tcp", "-SecurityTypes", "None", "-geometry", "64x64"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not Path(f"/tmp/.X11-unix/X{n}").exists():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with Desktop(session="none", geometry=(320, 240)) as d:
            assert d.display != f":{n}"
            assert d.size == (320, 240)
    finally:
        squatter.terminate()
        squatter.wait(10)


def test_sys_executable_is_what_runs_the_supervisor():
    # The supervisor must run with the kernel's own interpreter (no PATH lookup of "python").
    with Desktop(session="none", geometry=(320, 240)) as d:
        pid = _registry.read(d.id).supervisor_pid
        assert os.readlink(f"/proc/{pid}/exe") == os.path.realpath(sys.executable)
