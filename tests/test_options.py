"""Unit tests of argument checking and command building (no processes)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from desktop_widget import _options
from desktop_widget._errors import DesktopError


def check(**kw):
    args = {"geometry": (1280, 800), "session": "auto", "frame_rate": 60, "cwd": None, "env": None, "timeout": 20}
    args.update(kw)
    return _options.check_options(**args)


@pytest.mark.parametrize("geometry", [(0, 0), (100000, 100000), (-5, 600), (31, 600), (8193, 600)])
def test_geometry_out_of_range(geometry):
    with pytest.raises(ValueError, match="between 32 and 8192"):
        check(geometry=geometry)


@pytest.mark.parametrize("geometry", ["1280x800", (1280.0, 800), (True, 800), (1280,), None])
def test_geometry_wrong_type(geometry):
    with pytest.raises(TypeError, match=r"\(width, height\)"):
        check(geometry=geometry)


def test_unknown_session_lists_choices():
    with pytest.raises(ValueError, match="'auto', 'xfce', 'wm', 'none'"):
        check(session="gnome")


def test_bad_frame_rate_and_timeout():
    with pytest.raises(ValueError, match="frame_rate"):
        check(frame_rate=0)
    with pytest.raises(ValueError, match="timeout"):
        check(timeout=-1)


def test_missing_cwd():
    with pytest.raises(FileNotFoundError, match="not a directory"):
        check(cwd="/nonexistent/dir")


def test_env_must_be_strings():
    with pytest.raises(TypeError, match="env"):
        check(env={"A": 1})


def test_xvnc_command_has_no_network_and_quotes_nothing(tmp_path):
    weird = tmp_path / "dir with spaces $HOME; & 'q'"
    weird.mkdir()
    options = check(cwd=str(weird), geometry=(1024, 640), frame_rate=30)
    sock = str(weird / "rfb.sock")
    argv = _options.xvnc_command("/usr/bin/Xvnc", options, sock, str(weird / "Xauthority"), "desk")
    # A list: paths travel as single arguments, whatever they contain.
    assert argv[argv.index("-rfbunixpath") + 1] == sock
    assert argv[argv.index("-auth") + 1] == str(weird / "Xauthority")
    assert argv[argv.index("-rfbport") + 1] == "-1"  # no TCP RFB port (CVE-2025-32428)
    assert argv[argv.index("-nolisten") + 1] == "tcp"
    assert argv[argv.index("-rfbunixmode") + 1] == "0600"
    assert argv[argv.index("-geometry") + 1] == "1024x640"
    assert argv[argv.index("-FrameRate") + 1] == "30"


@pytest.fixture
def path_with(tmp_path, monkeypatch):
    """Make PATH a directory holding only the named (fake, executable) programs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))

    def install(*names: str) -> Path:
        for name in names:
            (bin_dir / name).write_text("#!/bin/sh\n")
            (bin_dir / name).chmod(0o755)
        return bin_dir

    return install


XFCE = ["dbus-launch", "--exit-with-session", "xfce4-session"]


@pytest.mark.parametrize(
    ("installed", "expected"),
    [
        (["xfce4-session", "dbus-launch", "openbox", "twm"], XFCE),
        (["xfce4-session", "openbox"], ["openbox"]),  # no dbus-launch: XFCE cannot run, a window manager can
        (["dbus-launch", "twm"], ["twm"]),
        (["twm", "icewm", "fluxbox", "xfwm4", "openbox"], ["openbox"]),  # the first in our order wins
        (["twm", "icewm"], ["icewm"]),
        (["xterm"], []),  # nothing to run: a bare X server
    ],
)
def test_auto_picks_xfce_then_a_window_manager(path_with, installed, expected):
    bin_dir = path_with(*installed)
    command = _options.session_command("auto", {})
    if command and command != XFCE:
        command = [str(Path(command[0]).relative_to(bin_dir)), *command[1:]]
    assert command == expected


def test_explicit_sessions_name_what_to_install(path_with):
    with pytest.raises(DesktopError, match="apt-get install xfce4-session"):
        _options.session_command("xfce")
    path_with("xfce4-session")
    with pytest.raises(DesktopError, match="apt-get install dbus-x11"):
        _options.session_command("xfce")
    path_with("dbus-launch")
    assert _options.session_command("xfce") == XFCE
    with pytest.raises(DesktopError, match="apt-get install openbox"):
        _options.session_command("wm")
    bin_dir = path_with("fluxbox")
    assert _options.session_command("wm") == [str(bin_dir / "fluxbox")]
    assert _options.session_command("none") == []


def test_xstartup_scripts(tmp_path):
    script = tmp_path / "my xstartup"
    script.write_text("#!/bin/sh\nexec openbox\n")
    with pytest.raises(PermissionError, match="chmod"):
        _options.session_command(str(script))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    assert _options.session_command(str(script)) == [str(script)]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _options.session_command(str(tmp_path / "missing"))


def test_xstartup_env_overrides_auto(tmp_path, path_with):
    path_with("xfce4-session", "dbus-launch", "openbox")
    script = tmp_path / "xstartup"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o700)
    assert _options.session_command("auto", {"DESKTOP_WIDGET_XSTARTUP": str(script)}) == [str(script)]
    upstream = {"JUPYTER_REMOTE_DESKTOP_PROXY_XSTARTUP": str(script)}
    assert _options.session_command("auto", upstream) == [str(script)]
    assert _options.session_command("auto", {"DESKTOP_WIDGET_XSTARTUP": ""}) == XFCE  # empty: not set


def test_missing_xvnc_names_package(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(DesktopError, match="apt-get install tigervnc-standalone-server"):
        _options.find_xvnc()


def test_desktop_environ_drops_foreign_session():
    options = check(env={"EXTRA": "1"})
    base = {"DISPLAY": ":99", "DBUS_SESSION_BUS_ADDRESS": "unix:path=/x", "HOME": "/h"}
    env = _options.desktop_environ(options, "/auth", base)
    xdg = env.pop("XDG_CONFIG_DIRS").split(":")
    assert env == {"HOME": "/h", "XAUTHORITY": "/auth", "EXTRA": "1"}
    assert xdg == [str(_options.XDG_DEFAULTS), "/etc/xdg"]
    assert (_options.XDG_DEFAULTS / "xfce4/xfconf/xfce-perchannel-xml/xfwm4.xml").is_file()


def test_frame_rate_up_to_xvnc_millisecond_clock():
    assert check(frame_rate=1000).frame_rate == 1000
    with pytest.raises(ValueError, match="between 1 and 1000"):
        check(frame_rate=1001)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"height": "tall"}, "CSS length"),
        ({"quality": 10}, "quality must be an int from 0 to 9"),
        ({"compression": -1}, "compression must be an int from 0 to 9"),
        ({"transport": "tcp"}, "transport must be one of"),
        ({"view_only": "yes"}, "view_only must be True or False"),
    ],
)
def test_view_arguments_checked_without_the_widget(kw, match):
    args = {"view_only": False, "scale": False, "height": "600px", "quality": 6, "compression": 2, "transport": "auto"}
    assert _options.check_view(**args) == args
    with pytest.raises((TypeError, ValueError), match=match):
        _options.check_view(**{**args, **kw})


def test_root_colour_for_xfce_and_window_managers_only():
    assert _options.root_colour(["dbus-launch", "--exit-with-session", "xfce4-session"]) == _options.XFCE_BACKGROUND
    assert _options.root_colour(["/usr/bin/openbox"]) == _options.WM_BACKGROUND
    assert _options.root_colour(_options.session_command("wm")) == _options.WM_BACKGROUND
    assert _options.root_colour(["/home/me/.vnc/xstartup"]) is None  # it may paint its own
    assert _options.root_colour([]) is None


@pytest.mark.parametrize(("value", "count"), [(None, 0), (0, 0), (2, 2), ("1", 1)])
def test_spare_count_from_server_config(value, count):
    from desktop_widget import _spare

    assert _spare.spare_count({} if value is None else {"spare_desktops": value}) == count


@pytest.mark.parametrize("value", ["-1", "many", -3])
def test_bad_spare_count_names_the_setting(value):
    from desktop_widget import _spare

    with pytest.raises(ValueError, match=r"DesktopWidget\.spare_desktops"):
        _spare.spare_count({"spare_desktops": value})
