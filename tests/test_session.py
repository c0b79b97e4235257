"""The desktop's processes, for real: Xvnc, sessions, sockets, and that nothing outlives its owner."""

from __future__ import annotations

import gc
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from desktop_widget import Desktop, DesktopError, DesktopStopped, _registry, list_desktops
from tests._procs import XFCE_PROCESSES, alive, inet_listeners, tree, wait_gone, wait_running, x_files, x_files_held


def rfb_banner(path: str) -> bytes:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(path)
        return s.recv(12)


def supervisor_pid(d: Desktop) -> int:
    return _registry.read(d.id).supervisor_pid


def leftovers(d: Desktop, directory: Path, x_before: dict[Path, tuple[int, int] | None]) -> list[str]:
    """Our files still there (an X file counts only if it is still the very file our X server made)."""
    return [str(p) for p in (_registry.entry_path(d.id), directory) if p.exists()] + x_files_held(x_before)


@pytest.mark.parametrize("session", ["wm", "xfce"])
def test_start_answers_rfb_no_listeners_stop_leaves_nothing(session):
    d = Desktop(session=session, geometry=(1024, 640))
    directory = Path(d.env["XAUTHORITY"]).parent
    x_before = x_files(d.display)
    assert any(x_before.values())  # the X socket at least
    assert rfb_banner(str(directory / "rfb.sock")).startswith(b"RFB 003.")
    assert oct(directory.stat().st_mode & 0o777) == "0o700"
    assert oct((directory / "rfb.sock").stat().st_mode & 0o777) == "0o600"
    assert [i.id for i in list_desktops()] == [d.id]
    # XFCE's daemons (dbus, xfconfd, the panel) must be up: they are checked too.
    pids = wait_running(supervisor_pid(d), {"Xvnc", *(XFCE_PROCESSES if session == "xfce" else {"openbox"})})
    assert inet_listeners(pids) == []
    d.stop()
    assert wait_gone(pids, 5) == set()
    assert leftovers(d, directory, x_before) == []
    assert d.status == "stopped"
    d.stop()  # idempotent


def test_context_manager_and_gc():
    with Desktop(session="none") as d:
        pids = tree(supervisor_pid(d))
    assert wait_gone(pids) == set()
    d2 = Desktop(session="none")
    pids = tree(supervisor_pid(d2))
    del d2
    gc.collect()
    assert wait_gone(pids) == set()


_OWNER = textwrap.dedent(
    """
    import json, os, signal, sys, time
    from desktop_widget import Desktop, _registry
    # Like a kernel, an interrupt does not end it; it says when it got one.
    signal.signal(signal.SIGINT, lambda *_: print("SIGINT", flush=True))
    d = Desktop(session={session!r})
    app = d.launch(["sleep", "600"])  # launched from the main thread, as a cell does
    print(json.dumps({{"id": d.id, "display": d.display, "supervisor": _registry.read(d.id).supervisor_pid,
                       "dir": os.path.dirname(d.env["XAUTHORITY"]), "app": app.pid}}), flush=True)
    if {linger}:
        time.sleep(600)
    """
)


def run_owner(session: str, linger: bool) -> tuple[subprocess.Popen, dict]:
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER.format(session=session, linger=linger)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    info = json.loads(owner.stdout.readline())
    return owner, info


@pytest.mark.parametrize("session", ["wm", "xfce"])
def test_sigkill_of_owner_stops_desktop(session):
    owner, info = run_owner(session, linger=True)
    pids = wait_running(info["supervisor"], {"Xvnc", *(XFCE_PROCESSES if session == "xfce" else {"openbox"})})
    pids |= {info["app"]}
    x_before = x_files(info["display"])
    os.kill(owner.pid, signal.SIGKILL)
    owner.wait()
    assert wait_gone(pids, 5) == set()  # launched programs too, not only the X server's tree
    assert x_files_held(x_before) == []
    assert not Path(info["dir"]).exists()
    assert _registry.read(info["id"]) is None


def test_interpreter_exit_stops_desktop():
    owner, info = run_owner("wm", linger=False)
    pids = tree(info["supervisor"])
    assert owner.wait(10) == 0
    assert wait_gone(pids, 5) == set()
    assert not Path(info["dir"]).exists()


def test_kernel_interrupt_does_not_reach_desktop():
    # Jupyter interrupts a kernel by signalling its whole process group.
    owner, info = run_owner("wm", linger=True)
    try:
        pids = tree(info["supervisor"]) | {info["app"]}
        os.killpg(owner.pid, signal.SIGINT)
        assert owner.stdout.readline() == "SIGINT\n"  # delivered to the group (a kill pends on all at once)
        assert owner.poll() is None
        in_group = {p for p in pids if _pgid(p) == owner.pid}
        assert in_group == set(), "the desktop is in the kernel's process group: an interrupt reaches it"
        assert {p for p in pids if alive(p)} == pids, "the interrupt reached the desktop"
        assert rfb_banner(str(Path(info["dir"]) / "rfb.sock")).startswith(b"RFB 003.")
    finally:
        owner.kill()
        owner.wait()
    assert wait_gone(pids, 5) == set()


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def test_interrupt_signal_spares_desktop():
    d = Desktop(session="none")
    try:
        sup = supervisor_pid(d)
        assert os.getpgid(sup) != os.getpgid(0)
        xvnc = [p for p in tree(sup) if p != sup]
        for pid in xvnc:
            assert os.getpgid(pid) != os.getpgid(0)
    finally:
        d.stop()


def test_weird_cwd_and_home(tmp_path):
    weird = tmp_path / "a dir with spaces $HOME ; & 'quotes'"
    weird.mkdir()
    home = tmp_path / "home with spaces"
    home.mkdir()
    out = tmp_path / "seen.txt"
    script = tmp_path / "xstartup $x"
    script.write_text(
        f'#!/bin/sh\npwd > "{out}"\necho "$HOME" >> "{out}"\necho "$DISPLAY" >> "{out}"\nexec sleep 600\n'
    )
    script.chmod(0o755)
    d = Desktop(session=str(script), cwd=str(weird), env={"HOME": str(home)})
    try:
        deadline = time.monotonic() + 5
        while len(out.read_text().splitlines() if out.exists() else []) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert out.read_text().splitlines() == [str(weird), str(home), d.display]
    finally:
        d.stop()


def test_missing_xvnc_leaves_nothing(monkeypatch):
    before = set(os.listdir(_registry.root()))
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(DesktopError, match="tigervnc-standalone-server"):
        Desktop(session="none")
    assert set(os.listdir(_registry.root())) == before


def test_failing_xvnc_reports_log_and_leaves_nothing(tmp_path, monkeypatch):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "Xvnc").write_text("#!/bin/sh\necho 'Fatal server error: pretend this went wrong' >&2\nexit 1\n")
    (fake / "Xvnc").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    before = set(os.listdir(_registry.root()))
    with pytest.raises(DesktopError, match="pretend this went wrong"):
        Desktop(session="none")
    assert set(os.listdir(_registry.root())) == before


def test_bad_arguments_fail_before_starting():
    before = set(os.listdir(_registry.root()))
    with pytest.raises(TypeError):
        Desktop(colour="red")
    with pytest.raises(ValueError, match="between 32 and 8192"):
        Desktop(geometry=(100000, 100000))
    with pytest.raises(ValueError, match="unknown session"):
        Desktop(session="kde")
    with pytest.raises(Exception, match="CSS length"):
        Desktop(height="tall")
    assert set(os.listdir(_registry.root())) == before


def test_session_exit_reported_and_restart():
    d = Desktop(session="wm")
    try:
        sup = supervisor_pid(d)
        wm = [p for p in tree(sup) if Path(f"/proc/{p}/comm").read_text().strip() == "openbox"]
        assert wm
        os.kill(wm[0], signal.SIGTERM)
        deadline = time.monotonic() + 5
        while d.status != "session-exited" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert d.status == "session-exited"
        assert d.view.status == "session-exited"
        d.restart()
        while d.status != "running" and time.monotonic() < deadline + 5:
            time.sleep(0.02)
        assert d.status == "running"
    finally:
        d.stop()
    with pytest.raises(DesktopStopped):
        d.restart()


def test_several_desktops_are_independent():
    ds = [Desktop(session="none", geometry=(640, 480)) for _ in range(3)]
    try:
        assert len({d.display for d in ds}) == 3
        assert len({d.env["XAUTHORITY"] for d in ds}) == 3
        assert {i.id for i in list_desktops()} >= {d.id for d in ds}
    finally:
        for d in ds:
            d.stop()


#: What xfwm4 writes into a HOME where XFCE ran without our defaults (it saves its built-in ones, compositor on).
_XFWM4_WRITTEN = """<?xml version="1.0" encoding="UTF-8"?>
<channel name="xfwm4" version="1.0">
  <property name="general" type="empty">
    <property name="use_compositing" type="bool" value="true"/>
  </property>
</channel>
"""


@pytest.mark.parametrize("home", ["fresh", "xfwm4-wrote-its-defaults"])
def test_xfce_runs_without_compositor(tmp_path, home):
    """xfwm4's compositor redraws on its own clock before Xvnc sees a change (~20 ms more per update):
    off in our XFCE, also in a HOME whose ~/.config says otherwise (which wins over our xdg defaults)."""
    if home != "fresh":
        channels = tmp_path / ".config" / "xfce4" / "xfconf" / "xfce-perchannel-xml"
        channels.mkdir(parents=True)
        (channels / "xfwm4.xml").write_text(_XFWM4_WRITTEN)
    with Desktop(session="xfce", geometry=(800, 600), env={"HOME": str(tmp_path)}) as d:
        deadline = time.monotonic() + 15
        while not any(w.wm_class == "Xfce4-panel" for w in d.windows()):
            assert time.monotonic() < deadline, "XFCE's panel never came up"
            time.sleep(0.1)
        with d._x() as conn:
            assert conn.get_selection_owner(conn.get_atom("_NET_WM_CM_S0")) == 0
            assert conn.get_selection_owner(conn.get_atom("WM_S0")) != 0  # xfwm4 does run


def test_a_light_window_manager_shows_a_background_not_black():
    """Openbox paints no root: the supervisor's colour is there from the start and after a window goes."""

    from desktop_widget import _options
    from desktop_widget.control import _x

    slate = tuple(_options.WM_BACKGROUND.to_bytes(3, "big"))
    with Desktop(session="wm", geometry=(640, 480)) as d:
        assert d.pixel(5, 5) == slate
        conn = _x.connect(d.display, d.env["XAUTHORITY"])
        try:
            screen = conn.screen()
            win = screen.root.create_window(0, 0, 200, 100, 0, screen.root_depth, override_redirect=True,
                                            background_pixel=screen.white_pixel)  # fmt: skip
            win.map()
            conn.sync()
            deadline = time.monotonic() + 5
            while d.pixel(5, 5) != (255, 255, 255):
                assert time.monotonic() < deadline, "the window never showed"
                time.sleep(0.02)
            win.unmap()
            conn.sync()
            while d.pixel(5, 5) != slate:
                assert time.monotonic() < deadline, f"the root under the window is {d.pixel(5, 5)} after it went"
                time.sleep(0.02)
        finally:
            conn.close()
