"""Issue 9, the supervisor's part: no secret on a command line, teardown on any error,
launched programs end with their desktop, nothing left in /tmp, no agents outliving a desktop."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import urllib.request
from pathlib import Path

import pytest

from desktop_widget import Desktop, DesktopError, _registry
from tests._jupyter import start_jupyter, stop_jupyter
from tests._procs import alive, comm, tree, wait_for, wait_gone, x_files, x_files_held


def cmdlines_holding(value: str) -> list[tuple[int, str]]:
    """Every process on the machine whose command line holds ``value``."""
    found = []
    needle = value.encode()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmdline = f.read()
            except OSError:
                continue
            if needle in cmdline:
                found.append((int(entry), comm(int(entry))))
    return found


def rfb_answers(path: str) -> bool:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(path)
        return s.recv(12).startswith(b"RFB 003.")


def supervisor_pid(d: Desktop) -> int:
    return _registry.read(d.id).supervisor_pid


# -- item 3: secrets on a world-readable command line ---------------------------------


def test_no_process_has_the_kernels_secrets_on_its_command_line(monkeypatch, tmp_path):
    canary = "canary-" + secrets.token_hex(16)
    monkeypatch.setenv("DW_TEST_SECRET", canary)
    with Desktop(session="wm", geometry=(640, 480)) as d:
        out = tmp_path / "seen"
        app = d.launch(["sh", "-c", f'printf %s "$DW_TEST_SECRET" > {out}'])
        assert app.wait(10) == 0
        # The secret reached the desktop's programs through their environment...
        assert out.read_text() == canary
        assert tree(supervisor_pid(d))
        assert d.screenshot().size == (640, 480)
        # ...and is on no command line of the machine (Xvnc's argv holds paths only).
        assert cmdlines_holding(canary) == []
        xvnc = next(p for p in tree(supervisor_pid(d)) if comm(p) == "Xvnc")
        argv = Path(f"/proc/{xvnc}/cmdline").read_bytes().split(b"\0")
        assert argv[argv.index(b"-auth") + 1] == d.env["XAUTHORITY"].encode()


def test_an_environment_over_128_kib_starts_a_desktop(monkeypatch):
    # One argv string may not exceed 128 KiB (MAX_ARG_STRLEN): the old JSON argument did.
    for i in range(100):
        monkeypatch.setenv(f"DW_TEST_BIG_{i}", "x" * 2048)
    with Desktop(session="none", geometry=(320, 240)) as d:
        assert d.status == "running"
        assert d.screenshot().size == (320, 240)


def test_launcher_desktop_keeps_the_servers_token_off_command_lines(monkeypatch, tmp_path):
    canary = "hubtoken-" + secrets.token_hex(16)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", canary)
    server = start_jupyter(tmp_path)
    try:
        request = urllib.request.Request(
            server.api("desktop/api/start"), data=b"", method="POST", headers={"Authorization": f"token {server.token}"}
        )
        state = json.loads(urllib.request.urlopen(request, timeout=60).read())
        info = _registry.find("launcher")
        assert info is not None, state
        assert len(tree(info.supervisor_pid)) >= 2
        assert cmdlines_holding(canary) == []
        # The desktop does get the server's environment (like any program the server starts).
        assert canary.encode() in Path(f"/proc/{info.supervisor_pid}/environ").read_bytes()
    finally:
        stop_jupyter(server)


# -- item 5: errors of the supervisor, and the session's daemons -------------------------------

_DAEMONIZING_SESSION = """#!/bin/sh
# Like a session that starts a daemon: it double-forks away (to the subreaper) and records its pid.
(setsid sh -c 'echo $$ > "{pidfile}"; exec sleep 600' &)
exec sleep 600
"""


def test_failed_restart_raises_and_keeps_the_desktop(tmp_path):
    cwd = tmp_path / "work"
    cwd.mkdir()
    with Desktop(session="wm", geometry=(640, 480), cwd=str(cwd)) as d:
        sup = supervisor_pid(d)
        app = d.launch(["sleep", "600"])
        wm = next(p for p in tree(sup) if comm(p) == "openbox")
        os.kill(wm, signal.SIGTERM)  # as a logout does
        wait_for(lambda: d.status == "session-exited", what="session-exited")
        shutil.rmtree(cwd)
        with pytest.raises(DesktopError, match=r"did not restart: .*working directory .* no longer exists"):
            d.restart()
        # Nothing was lost: the X server and the program still run, the status says why.
        assert d.status == "session-exited"
        assert rfb_answers(str(Path(d.env["XAUTHORITY"]).with_name("rfb.sock")))
        assert app.poll() is None
        assert alive(app.pid)
        cwd.mkdir()  # once the cause is fixed, a restart works
        d.restart()
        wait_for(lambda: d.status == "running", what="running")
        pids = tree(sup)
    assert wait_gone(pids | {app.pid}) == set()
    assert app.wait(5) == -signal.SIGTERM


_FAULTY_SUPERVISOR = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("dw_supervisor", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
def broken(self, *args):
    raise RuntimeError("injected fault")
module.Supervisor.restart_session = broken
sys.exit(module.main())
"""


def test_an_error_in_the_supervisor_tears_everything_down_and_says_why(tmp_path, monkeypatch):
    from desktop_widget import _session

    wrapper = tmp_path / "faulty_supervisor.py"
    wrapper.write_text(_FAULTY_SUPERVISOR.format(path=_session._SUPERVISOR))
    monkeypatch.setattr(_session, "_SUPERVISOR", str(wrapper))
    pidfile = tmp_path / "daemon.pid"
    script = tmp_path / "xstartup"
    script.write_text(_DAEMONIZING_SESSION.format(pidfile=pidfile))
    script.chmod(0o755)
    d = Desktop(session=str(script), geometry=(320, 240))
    directory = Path(d.env["XAUTHORITY"]).parent
    wait_for(pidfile.exists, what="the session's daemon")
    daemon = int(pidfile.read_text())
    pids = tree(supervisor_pid(d))
    assert daemon in pids  # re-parented to the supervisor
    with pytest.raises(DesktopError, match="injected fault"):
        d.restart()
    wait_for(lambda: d.status == "failed", what="failed")
    assert "injected fault" in d._session.detail
    assert wait_gone(pids) == set()  # the daemon too: teardown ran
    assert not directory.exists()
    assert _registry.read(d.id) is None
    d.stop()


def test_xfce_leaves_no_agent_even_when_its_supervisor_is_killed(tmp_path):
    with Desktop(session="xfce", geometry=(800, 600), env={"HOME": str(tmp_path)}) as d:
        wait_for(lambda: any(w.wm_class == "Xfce4-panel" for w in d.windows()), 30, "XFCE's panel")
        sup = supervisor_pid(d)
        pids = tree(sup)
        assert not {comm(p) for p in pids} & {"ssh-agent", "gpg-agent"}
        os.kill(sup, signal.SIGKILL)
        left = wait_gone(pids, 10)
        assert left == set(), [(p, comm(p)) for p in left]
        wait_for(lambda: d.status in ("stopped", "failed"), what="the desktop to be seen stopped")


# -- item 8: launched programs end with the desktop -----------------------------------


def _daemonizing_app(pidfile: Path) -> list[str]:
    return ["sh", "-c", f"(setsid sh -c 'echo $$ > \"{pidfile}\"; exec sleep 600' &); exec sleep 600"]


@pytest.mark.parametrize("how", ["stop", "idle"])
def test_launched_programs_and_their_daemons_end_with_the_desktop(tmp_path, how):
    d = Desktop(session="none", geometry=(320, 240), idle_timeout=3 if how == "idle" else None)
    pidfile = tmp_path / "daemon.pid"
    apps: list = []
    # From a thread too (a parent-death signal would follow the thread, not the process).
    worker = threading.Thread(target=lambda: apps.append(d.launch(_daemonizing_app(pidfile))))
    worker.start()
    worker.join()
    apps.append(d.launch(["sleep", "600"]))
    wait_for(pidfile.exists, what="the program's daemon")
    daemon = int(pidfile.read_text())
    assert all(a.poll() is None for a in apps)
    if how == "stop":
        d.stop()
    else:
        wait_for(lambda: d.status == "stopped", 15, "the idle timeout")
        assert d._session.detail == "idle"
    assert wait_gone({daemon} | {a.pid for a in apps}) == set()
    assert [a.wait(5) for a in apps] == [-signal.SIGTERM, -signal.SIGTERM]


_THREAD_OWNER = textwrap.dedent(
    """
    import json, sys, threading, time
    from desktop_widget import Desktop, _registry
    d = Desktop(session="none", geometry=(320, 240))
    apps = []
    t = threading.Thread(target=lambda: apps.append(d.launch(["sleep", "600"])))
    t.start(); t.join()
    print(json.dumps({"supervisor": _registry.read(d.id).supervisor_pid, "app": apps[0].pid}), flush=True)
    time.sleep(600)
    """
)


def test_a_program_launched_from_a_thread_ends_when_the_owner_is_killed():
    owner = subprocess.Popen(
        [sys.executable, "-c", _THREAD_OWNER], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        info = json.loads(owner.stdout.readline())
        pids = tree(info["supervisor"]) | {info["app"]}
        assert alive(info["app"])
    finally:
        owner.kill()
        owner.wait()
    assert wait_gone(pids) == set()


def test_app_is_popen_like(tmp_path):
    with Desktop(session="none", geometry=(320, 240)) as d:
        quick = d.launch(["sh", "-c", "echo hello; exit 3"])
        assert quick.wait(10) == 3
        assert quick.returncode == 3
        assert quick.log() == "hello\n"
        slow = d.launch(["sleep", "600"])
        assert slow.poll() is None
        with pytest.raises(subprocess.TimeoutExpired):
            slow.wait(0.1)
        slow.terminate()
        assert slow.wait(10) == -signal.SIGTERM
        slow.kill()  # after the end: nothing happens
        with pytest.raises(FileNotFoundError, match="no-such-program"):
            d.launch("no-such-program")
        with pytest.raises(DesktopError, match="could not launch"):
            d.launch(["sleep", "1"], cwd=str(tmp_path / "missing"))


# -- low: X socket after an Xvnc crash, XAUTHORITY in env ---------------------------------------


def test_x_socket_is_removed_after_xvnc_is_killed():
    d = Desktop(session="none", geometry=(320, 240))
    sup = supervisor_pid(d)
    x_before = x_files(d.display)
    assert Path(f"/tmp/.X11-unix/X{d.display.lstrip(':')}").is_socket()
    xvnc = next(p for p in tree(sup) if comm(p) == "Xvnc")
    os.kill(xvnc, signal.SIGKILL)
    wait_for(lambda: d.status != "running", what="the crash to be seen")
    assert d.status == "failed", (d.status, d._session.detail)
    assert wait_gone({sup}) == set()
    # Gone, or another test's X server has taken the number since.
    assert x_files_held(x_before) == [], d._session._events
    d.stop()


@pytest.mark.parametrize("var", ["XAUTHORITY", "DISPLAY"])
def test_env_may_not_point_the_desktop_elsewhere(var):
    before = set(os.listdir(_registry.root()))
    with pytest.raises(ValueError, match=f"must not set {var}"):
        Desktop(session="none", env={var: "/elsewhere"})
    assert set(os.listdir(_registry.root())) == before
    with Desktop(session="none", geometry=(320, 240)) as d, pytest.raises(ValueError, match=f"must not set {var}"):
        d.launch(["true"], env={var: "/elsewhere"})


_OWNER = textwrap.dedent(
    """
    import json, time
    from desktop_widget import Desktop
    d = Desktop(session="none", geometry=(320, 240))
    print(json.dumps({"id": d.id}), flush=True)
    time.sleep(600)
    """
)

_ATTACHER = textwrap.dedent(
    """
    import json, sys, threading, time
    from desktop_widget import Desktop
    d = Desktop.attach(sys.argv[1])
    apps = []
    t = threading.Thread(target=lambda: apps.append(d.launch(["sleep", "600"])))
    t.start(); t.join()
    print(json.dumps({"app": apps[0].pid}), flush=True)
    time.sleep(600)
    """
)


def _spawn_python(code: str, *args: str) -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    return proc, json.loads(proc.stdout.readline())


def test_programs_launched_on_an_attached_desktop_end_with_the_attacher_or_the_desktop():
    owner, info = _spawn_python(_OWNER)
    attacher = None
    try:
        attacher, launched = _spawn_python(_ATTACHER, info["id"])
        mine: list = []
        d = Desktop.attach(info["id"])
        worker = threading.Thread(target=lambda: mine.append(d.launch(["sleep", "600"])))
        worker.start()
        worker.join()
        # The attaching process is killed: what it launched (from a thread) ends; the desktop stays.
        attacher.kill()
        attacher.wait()
        assert wait_gone({launched["app"]}) == set()
        assert d.status == "running"
        assert mine[0].poll() is None
        # The desktop's owner is killed: what this process launched on it ends too.
        owner.kill()
        owner.wait()
        assert wait_gone({mine[0].pid}) == set()
        assert mine[0].wait(5) == -signal.SIGTERM
    finally:
        for proc in (owner, attacher):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def test_the_owner_is_told_why_its_desktop_stopped():
    d = Desktop(session="none", geometry=(320, 240))
    Desktop.attach(d.id).stop()  # as another kernel may
    wait_for(lambda: d.status == "stopped", what="stopped")
    assert d._session.detail == "by another process"
    assert d.view.status_detail == d._session.detail
    d.stop()
