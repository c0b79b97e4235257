"""The registry and the server under attack: planted and stale entries, races, refused upgrades, full disks.

Each test reproduces a finding of an adversarial sweep (issue 9) and fails on
the code before the fix.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from tornado.websocket import websocket_connect

from desktop_widget import Desktop, DesktopError, _registry, list_desktops
from tests import _aio
from tests._jupyter import start_jupyter, stop_jupyter
from tests._procs import alive, tree
from tests.test_server import login_cookie, ws_request

ROOT = os.getuid() == 0


def plant(runtime_dir: Path | None, name: str, supervisor_pid: int, desktop_id: str = "0badc0ffee00", **kw) -> str:
    """Write an entry the way an old crash (or an attacker) leaves one: a name, a pid, a directory."""
    base = _registry.root(runtime_dir) if runtime_dir is None else Path(runtime_dir) / "desktop-widget"
    directory = base / desktop_id
    directory.mkdir(mode=0o700, exist_ok=True)
    (directory / "Xauthority").write_bytes(b"")
    entry = {
        "id": desktop_id,
        "display": ":0",
        "socket": str(directory / "rfb.sock"),
        "pid": supervisor_pid,
        "supervisor_pid": supervisor_pid,
        "geometry": [320, 240],
        "started": time.time(),
        "session": "none",
        "has_wm": False,
        "name": name,
        # The start time of the supervisor that wrote it, long gone (the pid is now another process's).
        "supervisor_start": Path("/proc/sys/kernel/random/boot_id").read_text().strip() + "/1",
        **kw,
    }
    (base / f"{desktop_id}.json").write_text(json.dumps(entry))
    return desktop_id


# -- registry trust: stale entries whose pid was reused -------------------------------------------


@pytest.mark.parametrize("who", ["sleep", "this-process"])
def test_stale_entry_with_a_reused_pid_is_neither_attached_nor_signalled(who):
    sleeper = subprocess.Popen(["sleep", "600"])
    pid = sleeper.pid if who == "sleep" else os.getpid()
    planted = plant(None, "gis", pid)
    try:
        with pytest.raises(DesktopError, match="no running desktop"):
            Desktop.attach("gis")
        d = Desktop(name="gis", session="none", geometry=(320, 240))
        try:
            assert d.id != planted  # a new desktop, not the dead one
            assert d.screenshot().size == (320, 240)
            d.stop()
        finally:
            d.stop()
        assert sleeper.poll() is None, "the unrelated process got a signal"
        assert not _registry.entry_path(planted).exists(), "the stale entry was not cleaned up"
    finally:
        sleeper.kill()
        sleeper.wait()
        shutil.rmtree(_registry.root() / planted, ignore_errors=True)
        _registry.remove(planted)


def test_stale_launcher_entry_with_the_servers_pid_cannot_stop_the_server(tmp_path):
    server = start_jupyter(tmp_path)
    planted = plant(None, "launcher", server.proc.pid)
    try:
        request = urllib.request.Request(
            server.api("desktop/api/stop"), method="POST", headers={"Authorization": f"token {server.token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert json.loads(response.read())["status"] == "stopped"
        with urllib.request.urlopen(server.api(f"api/status?token={server.token}"), timeout=10) as response:
            assert response.status == 200
        assert server.proc.poll() is None, "the stop API killed the Jupyter server"
    finally:
        stop_jupyter(server)
        shutil.rmtree(_registry.root() / planted, ignore_errors=True)
        _registry.remove(planted)


# -- registry trust: a registry another user can write to -----------------------------------------


@pytest.fixture
def attacker_desktop(tmp_path, monkeypatch):
    """A real desktop in another runtime directory, standing in for another user's."""
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(theirs))
    d = Desktop(session="none", geometry=(320, 240))
    yield theirs, d
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(theirs))
    d.stop()


@pytest.mark.parametrize("how", ["mode-0777", "symlink", "other-owner"])
def test_planted_entry_in_a_registry_others_control_is_refused(attacker_desktop, tmp_path, monkeypatch, how):
    if how == "other-owner" and not ROOT:
        pytest.skip("needs root to give a directory to another user")
    theirs, target = attacker_desktop
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    registry = mine / "desktop-widget"
    if how == "symlink":
        registry.symlink_to(theirs / "desktop-widget")
    else:
        registry.mkdir()
        registry.chmod(0o777)
        # The attacker's entry, their cookie, their socket: everything a victim would need to attach.
        shutil.copy(_registry.entry_path(target.id, theirs), registry)
        entry = json.loads((registry / f"{target.id}.json").read_text())
        (registry / f"{target.id}.json").write_text(json.dumps({**entry, "name": "gis"}))
        (registry / target.id).mkdir()
        shutil.copy(theirs / "desktop-widget" / target.id / "Xauthority", registry / target.id)
        if how == "other-owner":
            registry.chmod(0o700)
            os.chown(registry, 65534, 65534)
    if how == "symlink":
        entry = json.loads(_registry.entry_path(target.id, theirs).read_text())
        _registry.entry_path(target.id, theirs).write_text(json.dumps({**entry, "name": "gis"}))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(mine))
    expected = {"mode-0777": "writable by others", "symlink": "symbolic link", "other-owner": "belongs to uid 65534"}
    with pytest.raises(DesktopError, match=expected[how]) as err:
        Desktop(name="gis", session="none", geometry=(320, 240))
    assert "JUPYTER_RUNTIME_DIR" in str(err.value)
    with pytest.raises(DesktopError, match=expected[how]):
        Desktop.attach("gis")
    assert target.status == "running"


def test_runtime_dir_others_can_rename_in_is_refused(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # not sticky: anyone could swap desktop-widget for their own
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(shared))
    with pytest.raises(DesktopError, match="can be changed by another user"):
        list_desktops()


def test_entry_of_a_live_supervisor_must_point_at_our_own_display(tmp_path):
    """An entry that is alive but names a display whose X socket is not ours is not attached to."""
    entry = _registry.DesktopInfo(
        id="0123456789ab",
        display=":4242",  # no such X socket
        socket=str(_registry.socket_path("0123456789ab", tmp_path)),
        pid=os.getpid(),
        supervisor_pid=os.getpid(),
        geometry=(320, 240),
        started=time.time(),
        session="none",
        name="ours",
        supervisor_start=_registry.process_identity(os.getpid()),
    )
    directory = _registry.private_dir(entry.id, tmp_path)
    (directory / "Xauthority").write_bytes(b"")
    _registry.write(entry, tmp_path)
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(entry.socket)
        assert _registry.socket_for(entry.id, tmp_path) == entry.socket  # the socket is fine...
        assert _registry.find("ours", tmp_path) == entry
        assert _registry.verified("ours", tmp_path) is None  # ...the display is not


# -- get-or-create by name -------------------------------------------------------------------------

_RACER = """
import os, sys, time
from desktop_widget import Desktop
go = sys.argv[1]
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.001)
d = Desktop(name="race", session="none", geometry=(320, 240))
print(d.id, flush=True)
sys.stdin.read()  # hold the desktop until the test is done
"""


def test_two_processes_asking_for_one_name_at_once_get_one_desktop(tmp_path):
    go = tmp_path / "go"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, str(go)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    try:
        assert [r.stdout.readline().strip() for r in racers] == ["ready", "ready"]  # both imported, both waiting
        go.touch()
        ids = [r.stdout.readline().strip() for r in racers]
        assert all(ids), ids
        assert ids[0] == ids[1], f"two desktops named 'race': {ids}"
        assert len([i for i in list_desktops() if i.name == "race"]) == 1
    finally:
        for r in racers:
            r.stdin.close()
            r.wait(30)


def test_conflicting_options_for_a_running_name_are_refused():
    with Desktop(name="conf", session="none", geometry=(320, 240)) as first:
        assert Desktop(name="conf").id == first.id  # no options: whatever runs
        assert Desktop(name="conf", session="none", geometry=(320, 240)).id == first.id  # the same ones
        with pytest.raises(DesktopError, match=r"already running with other options: session='none' \(asked: 'wm'\)"):
            Desktop(name="conf", session="wm")
        with pytest.raises(DesktopError, match=r"geometry=\[320, 240\] \(asked: \[640, 480\]\)"):
            Desktop(name="conf", geometry=(640, 480))
        with pytest.raises(DesktopError, match="env"):
            Desktop(name="conf", env={"LANG": "C.UTF-8"})
        with pytest.raises(DesktopError, match="persistent"):
            Desktop(name="conf", persistent=True)
        with pytest.raises(DesktopError, match="opengl"):
            Desktop(name="conf", opengl=False)
        assert first.status == "running"
    # "auto" and the kind it chose are the same desktop; another kind is not.
    with Desktop(name="conf", geometry=(320, 240)) as auto:
        chosen = _registry.read(auto.id).options["session_command"]
        kind = "xfce" if any("xfce4-session" in a for a in chosen) else "wm"
        assert Desktop(name="conf", session=kind).id == auto.id
        with pytest.raises(DesktopError, match=r"session='auto' \(asked: 'none'\)"):
            Desktop(name="conf", session="none")


# -- a deep runtime directory ----------------------------------------------------------------------


@pytest.fixture
def deep_runtime(tmp_path, monkeypatch):
    deep = tmp_path / ("deep" * 10) / ("er" * 20)
    deep.mkdir(parents=True, mode=0o700)
    assert len(os.fsencode(deep / "desktop-widget" / "0123456789ab" / "rfb.sock")) > 107
    xdg = tmp_path / "xdg"
    xdg.mkdir(mode=0o700)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(deep))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(xdg))
    return deep, xdg


def test_deep_runtime_dir_still_gives_a_desktop_served_by_the_server(deep_runtime, tmp_path):
    deep, xdg = deep_runtime
    d = Desktop(session="none", geometry=(320, 240))
    server = None
    try:
        sock = _registry.socket_for(d.id)
        assert sock == str(xdg / "desktop-widget" / f"{d.id}.sock")
        assert (xdg / "desktop-widget").stat().st_mode & 0o777 == 0o700
        assert _registry.entry_path(d.id).parent == deep / "desktop-widget"  # the entry stays where it was
        assert d.screenshot().size == (320, 240)
        server = start_jupyter(tmp_path)  # inherits the deep JUPYTER_RUNTIME_DIR

        async def banner() -> bytes:
            conn = await websocket_connect(ws_request(server, f"desktop-widget/{d.id}/"))
            try:
                return await asyncio.wait_for(conn.read_message(), 10)
            finally:
                conn.close()

        assert _aio.run(banner()).startswith(b"RFB 003.")
    finally:
        if server is not None:
            stop_jupyter(server)
        d.stop()
    assert not os.path.exists(sock), "the socket outlived its desktop"


@pytest.mark.parametrize("how", ["mode-0755", "symlink", "other-owner"])
def test_short_socket_dir_that_is_not_private_is_refused(deep_runtime, tmp_path, monkeypatch, how):
    if how == "other-owner" and not ROOT:
        pytest.skip("needs root to give a directory to another user")
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    tmp = tmp_path / "tmp"
    tmp.mkdir(mode=0o700)
    monkeypatch.setattr("tempfile.tempdir", str(tmp))
    planted = tmp / f"desktop-widget-{os.getuid()}"
    if how == "symlink":
        (tmp / "elsewhere").mkdir(mode=0o700)
        planted.symlink_to(tmp / "elsewhere")
    else:
        planted.mkdir(mode=0o700)
        if how == "mode-0755":
            planted.chmod(0o755)
        else:
            os.chown(planted, 65534, 65534)
    expected = {"mode-0755": "must have mode 700", "symlink": "symbolic link", "other-owner": "belongs to uid 65534"}
    with pytest.raises(DesktopError, match=expected[how]):
        Desktop(session="none", geometry=(320, 240))
    assert os.listdir(deep_runtime[0] / "desktop-widget") == []  # nothing left behind


def test_short_socket_dir_in_the_temp_dir_is_made_private(deep_runtime, tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    tmp = tmp_path / "tmp"
    tmp.mkdir(mode=0o700)
    monkeypatch.setattr("tempfile.tempdir", str(tmp))
    with Desktop(session="none", geometry=(320, 240)) as d:
        assert _registry.socket_for(d.id) == str(tmp / f"desktop-widget-{os.getuid()}" / f"{d.id}.sock")
        assert (tmp / f"desktop-widget-{os.getuid()}").stat().st_mode & 0o777 == 0o700
        assert d.size == (320, 240)


# -- a full disk -----------------------------------------------------------------------------------

_FILL_AND_WRITE = """
import os, sys, time
from desktop_widget import _registry, DesktopError
runtime = sys.argv[1]
root = _registry.root(runtime)
fd = os.open(os.path.join(runtime, "filler"), os.O_WRONLY | os.O_CREAT)
try:
    while True:
        os.write(fd, b"x" * 4096)
except OSError:
    os.close(fd)
info = _registry.DesktopInfo(id="0123456789ab", display=":1", socket="s", pid=1, supervisor_pid=1,
                             geometry=(1, 1), started=time.time(), session="none", name="x" * 3000)
try:
    _registry.write(info, runtime)
except DesktopError as exc:
    print("DesktopError:", exc)
print(sorted(os.listdir(root)))
"""


@pytest.mark.skipif(not ROOT or shutil.which("unshare") is None, reason="needs root and unshare for a small tmpfs")
def test_full_disk_gives_a_clear_error_and_leaves_no_temporary_file(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    script = (
        f"mount -t tmpfs -o size=64k tmpfs {mount} && "
        f"{sys.executable} -c '{_FILL_AND_WRITE}' {mount}/runtime; code=$?; umount {mount}; exit $code"
    )
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=60)
    if "mount" in done.stderr and done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.match(r"DesktopError: could not write the desktop's registry entry .*No space left on device", lines[0])
    assert "free some space" in lines[0]
    assert lines[1] == "[]", "a temporary file was left behind"


# -- the route: refused upgrades hold nothing ------------------------------------------------------


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _xvnc_pid(desktop: Desktop) -> int:
    supervisor = _registry.read(desktop.id).supervisor_pid
    for pid in tree(supervisor):
        with open(f"/proc/{pid}/comm") as f:
            if f.read().strip() == "Xvnc":
                return pid
    raise AssertionError("no Xvnc in the desktop's tree")


def _upgrade(jupyter, path: str, headers: dict[str, str]) -> int:
    """Send one raw WebSocket upgrade request; the HTTP status of the answer."""
    host, port = jupyter.url.split("/")[2].split(":")
    request = [
        f"GET /{jupyter.url.split('/', 3)[3]}{path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(("\r\n".join(request) + "\r\n\r\n").encode())
        answer = b""
        while b"\r\n" not in answer:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
    return int(answer.split()[1])


def _settle(measure, limit: int, timeout: float = 15.0) -> int:
    """Wait until ``measure()`` is at most ``limit`` (or the deadline passes); its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = measure()
        if value <= limit or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_refused_upgrades_leave_no_connection_behind(jupyter):
    d = Desktop(session="none", geometry=(320, 240))
    try:
        server, xvnc = jupyter.proc.pid, _xvnc_pid(d)
        cookie = login_cookie(jupyter)
        path = f"desktop-widget/{d.id}/"
        server_before, xvnc_before = _fds(server), _fds(xvnc)
        for _ in range(100):
            foreign = {"Cookie": cookie, "Origin": "http://evil.example", "Sec-WebSocket-Version": "13"}
            assert _upgrade(jupyter, path, foreign) == 403
        for _ in range(100):
            bad_version = {"Authorization": f"token {jupyter.token}", "Sec-WebSocket-Version": "99"}
            assert _upgrade(jupyter, path, bad_version) == 426
        assert _settle(lambda: _fds(server), server_before + 3) <= server_before + 3
        assert _settle(lambda: _fds(xvnc), xvnc_before) <= xvnc_before
        assert alive(xvnc)
    finally:
        d.stop()


# -- the launcher page: a GET starts nothing -------------------------------------------------------


def test_cross_site_get_of_the_page_starts_nothing_and_start_needs_the_xsrf_token(jupyter):
    assert _registry.find("launcher") is None
    cookie = login_cookie(jupyter)
    # What another site can make the browser do: navigate (GET), or POST a form without our token.
    page = urllib.request.Request(jupyter.api("desktop/"), headers={"Cookie": cookie})
    with urllib.request.urlopen(page, timeout=30) as response:
        html = response.read().decode()
    assert _registry.find("launcher") is None, "a GET of the page started a desktop"
    config = json.loads(re.search(r'id="jupyter-config-data" type="application/json">(.*?)</script>', html).group(1))
    assert config["autostart"] is True
    # jupyter_server refuses a cookie-authenticated POST without the XSRF token (403), and an API
    # request from another origin (404).
    for headers, code in (({"Cookie": cookie}, 403), ({"Cookie": cookie, "Origin": "http://evil.example"}, 404)):
        forged = urllib.request.Request(jupyter.api("desktop/api/start"), method="POST", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(forged, timeout=30)
        assert err.value.code == code
    assert _registry.find("launcher") is None
    # The page's own POST carries the token (and the _xsrf cookie it came with).
    xsrf = config["xsrf"]
    own = {"Cookie": f"{cookie}; _xsrf={xsrf}", "X-XSRFToken": xsrf}
    start = urllib.request.Request(jupyter.api("desktop/api/start"), method="POST", headers=own)
    with urllib.request.urlopen(start, timeout=60) as response:
        assert json.loads(response.read())["status"] == "running"
    try:
        assert _registry.find("launcher") is not None
    finally:
        stop = urllib.request.Request(jupyter.api("desktop/api/stop"), method="POST", headers=own)
        urllib.request.urlopen(stop, timeout=30).read()
    assert _registry.find("launcher") is None


# -- the server loads only what it needs -----------------------------------------------------------

_SERVER_IMPORTS = """
import json, sys
import desktop_widget
desktop_widget._jupyter_server_extension_points()
import desktop_widget.server._server, desktop_widget.server._launcher
from importlib.metadata import entry_points
for ep in entry_points(group="jupyter_serverproxy_servers"):
    if ep.value.startswith("desktop_widget"):
        ep.load()()
print(json.dumps(sorted(m for m in ("anywidget", "ipywidgets", "IPython", "PIL", "Xlib") if m in sys.modules)))
"""


def test_what_the_server_imports_loads_no_kernel_stack():
    done = subprocess.run([sys.executable, "-c", _SERVER_IMPORTS], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
    # The public names are still there, on first use.
    lazy = "import desktop_widget as dw; print(dw.Desktop.__name__, dw.DesktopInfo.__name__, 'Desktop' in dir(dw))"
    done = subprocess.run([sys.executable, "-c", lazy], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["Desktop", "DesktopInfo", "True"], done.stderr
