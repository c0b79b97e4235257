"""Our XFCE defaults (``desktop_widget/xdg/``) as a new user gets them: a private, empty ``HOME``."""

from __future__ import annotations

from pathlib import Path

from desktop_widget import Desktop
from tests._procs import comm, tree, wait_for

#: The plugins of our default panel (xdg/xfce4/panel/default.xml), what a user expects of XFCE's top panel.
KEPT_PLUGINS = {"applicationsmenu", "tasklist", "separator", "pager", "systray", "clock", "actions"}


def panels(d: Desktop) -> list:
    return [w for w in d.windows() if w.wm_class == "Xfce4-panel"]


def logout_dialog_shown(d: Desktop) -> bool:
    """Whether xfce4-session's logout dialog is mapped (unmanaged: not among ``d.windows()``; its only window)."""
    with d._x() as conn:
        for window in conn.screen().root.query_tree().children:
            try:
                if window.get_attributes().map_state and (window.get_wm_class() or ("",))[0] == "xfce4-session":
                    return True
            except Exception:  # gone while we looked
                continue
    return False


def session_bus(d: Desktop) -> dict[str, str]:
    """The session's D-Bus address (dbus-launch gives it to xfce4-session, not to the desktop's other programs)."""
    supervisor = d._resources.session._proc.pid
    session = next(p for p in tree(supervisor) if comm(p) == "xfce4-session")
    environ = Path(f"/proc/{session}/environ").read_bytes().split(b"\0")
    address = next(v for v in environ if v.startswith(b"DBUS_SESSION_BUS_ADDRESS="))
    return {"DBUS_SESSION_BUS_ADDRESS": address.split(b"=", 1)[1].decode()}


def panel_plugins(d: Desktop, tmp_path: Path) -> tuple[str, set[str], dict[str, str]]:
    """The panel ids, the plugin types and all values xfconf holds for the panel (``xfconf-query`` in the session)."""
    out = tmp_path / "panel.txt"
    app = d.launch(["sh", "-c", f"xfconf-query -c xfce4-panel -lv > '{out}'"], env=session_bus(d))
    assert app.wait(15) == 0, app.log()
    values = dict(line.split(None, 1) for line in out.read_text().splitlines() if " " in line.strip())
    plugins = {v.strip() for k, v in values.items() if k.count("/") == 2 and k.startswith("/plugins/plugin-")}
    return values.get("/panels", ""), plugins, values


def test_default_panel_is_one_top_panel_with_the_kept_plugins(tmp_path):
    """No bottom dock (its launchers cost the panel a third of its start-up CPU); menu, windows, clock, log out kept."""
    with Desktop(session="xfce", geometry=(1024, 640), env={"HOME": str(tmp_path)}) as d:
        supervisor = d._resources.session._proc.pid
        # Its external plugins start once the panel has made all its panels (a dock would be mapped then).
        wait_for(lambda: any(comm(p).startswith("panel-") for p in tree(supervisor)), timeout=30, what="a plugin")
        wait_for(lambda: panels(d), timeout=30, what="XFCE's panel")
        (panel,) = panels(d)
        x, y, width, height = panel.geometry
        assert (x, y, width) == (0, 0, 1024)
        assert height < 64
        ids, plugins, values = panel_plugins(d, tmp_path)
        assert plugins == KEPT_PLUGINS
        assert "2" not in ids.split()
        # The clock on one line: XFCE's two-line date and time was clipped in a panel this high.
        (clock,) = (k for k, v in values.items() if k.count("/") == 2 and v.strip() == "clock")
        assert values[f"{clock}/digital-layout"].strip() == "3"
    # xfwm4 found all its defaults in ours (xdg/.../xfwm4.xml), so it copied none into the new user's
    # files, one D-Bus round trip and settings reload each (xfconfd writes the files by the time it exits).
    assert not (tmp_path / ".config/xfce4/xfconf/xfce-perchannel-xml/xfwm4.xml").exists()


def test_logout_ends_the_session_and_restart_brings_the_panel_back(tmp_path):
    """The panel's Log Out (the session manager's logout dialog, over D-Bus, then Enter): the session exits.

    The session is not saved (a saved one would replace our start-up order at the next start on that
    display), and restart() starts it again.
    """
    with Desktop(session="xfce", geometry=(800, 600), env={"HOME": str(tmp_path)}) as d:
        wait_for(lambda: panels(d), timeout=30, what="XFCE's panel")
        d.launch(["xfce4-session-logout"], env=session_bus(d))
        wait_for(lambda: logout_dialog_shown(d), timeout=30, what="the logout dialog")
        d.key("Return")
        wait_for(lambda: d.status == "session-exited", timeout=30, what="the session to exit")
        wait_for(lambda: not panels(d), what="the panel to go")
        assert not list((tmp_path / ".cache/sessions").glob("xfce4-session-*"))
        d.restart()
        wait_for(lambda: d.status == "running", what="running")
        wait_for(lambda: panels(d), timeout=30, what="XFCE's panel again")
