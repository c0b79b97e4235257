"""OpenGL programs and CJK/emoji text on a real desktop."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from desktop_widget import Desktop, _options


@pytest.fixture(scope="module")
def d():
    desktop = Desktop(session="wm", geometry=(1024, 700))
    yield desktop
    desktop.stop()


def glxinfo(d: Desktop) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["glxinfo", "-B"], env={**os.environ, **d.env}, capture_output=True, text=True, timeout=30, check=False
    )


def test_opengl_option_is_checked_and_drops_glx():
    base = {"geometry": (800, 600), "session": "none", "frame_rate": 60, "cwd": None, "env": None, "timeout": 20}
    with pytest.raises(TypeError, match="opengl must be True"):
        _options.check_options(**base, opengl="no")
    on = _options.check_options(**base)
    off = _options.check_options(**base, opengl=False)
    assert on.opengl
    assert "GLX" not in _options.xvnc_command("Xvnc", on, "/s", "/a", "n")
    assert _options.xvnc_command("Xvnc", off, "/s", "/a", "n")[-2:] == ["-extension", "GLX"]


def test_glxinfo_reports_mesa_opengl(d):
    done = glxinfo(d)
    assert done.returncode == 0, done.stderr
    assert "OpenGL renderer string: llvmpipe" in done.stdout
    assert "OpenGL version string: 4.5 (Compatibility Profile) Mesa" in done.stdout


def test_glxgears_draws_its_gears(d):
    """A real GL program: its window shows the red, green and blue gears (on black)."""
    app = d.launch(["glxgears", "-geometry", "300x300+40+40"])
    try:
        window = d.wait_for_window(pid=app.pid, timeout=20)

        def colours() -> set[str]:
            rgb = np.asarray(window.screenshot().convert("RGB")).reshape(-1, 3).astype(int)
            found = set()
            for name, channel in (("red", 0), ("green", 1), ("blue", 2)):
                others = np.delete(rgb, channel, axis=1)
                if ((rgb[:, channel] > 120) & (others.max(axis=1) < 60)).any():
                    found.add(name)
            return found

        deadline = time.monotonic() + 15
        while (found := colours()) != {"red", "green", "blue"}:
            assert app.poll() is None, app.log()
            assert time.monotonic() < deadline, f"glxgears showed only {found}: {app.log()}"
            time.sleep(0.1)
    finally:
        app.terminate()
        app.wait(5)


def test_without_opengl_there_is_no_glx():
    with Desktop(session="none", geometry=(320, 240), opengl=False) as plain:
        done = glxinfo(plain)
        assert "llvmpipe" not in done.stdout
        assert "GLX" in done.stderr  # "couldn't find RGB GLX visual" / "GLX extension missing"


# -- fonts ----------------------------------------------------------------------------------------
TEXT = "日本語 ✓ 😀"


def _typed(d: Desktop, home: Path, env: dict[str, str] | None = None):
    """Type TEXT into a fresh mousepad (GTK 3) and return the picture of its window.

    Its settings live in a home of its own and in memory: a mousepad stopped
    with unsaved text asks, at its next start, whether to restore it.
    """
    home.mkdir()
    private = {"HOME": str(home), "XDG_CONFIG_HOME": f"{home}/.config", "XDG_DATA_HOME": f"{home}/.local/share"}
    private.update(XDG_CACHE_HOME=f"{home}/.cache", GSETTINGS_BACKEND="memory", **(env or {}))
    app = d.launch(["mousepad", "--disable-server"], env=private)
    try:
        d.wait_for_window(pid=app.pid, title="Untitled", timeout=20)
        d.wait_until_stable(duration=0.5, timeout=20)
        window = d.wait_for_window(pid=app.pid, timeout=5)  # as the window manager placed it
        x, y, w, h = window.geometry
        window.activate()
        d.click(x + w // 2, y + h // 2)  # into the text
        # A GTK app that has just mapped its window may not take keys yet: type until it has one ("*": modified).
        deadline = time.monotonic() + 20
        while not d.wait_for_window(pid=app.pid, timeout=5).title.startswith("*"):
            assert time.monotonic() < deadline, "mousepad took no key"
            d.type("x")
            d.wait_until_stable(duration=0.3, timeout=10)
        d.key("ctrl+a", "BackSpace")
        d.type(TEXT)
        d.wait_until_stable(duration=0.5, timeout=20)
        return d.wait_for_window(pid=app.pid, timeout=5).screenshot().convert("RGB")
    finally:
        app.terminate()
        app.wait(5)


def _fontconfig_dejavu_only(tmp_path: Path) -> dict[str, str]:
    """A fontconfig that knows DejaVu only: what the desktop had before CJK and emoji fonts."""
    conf = tmp_path / "fonts.conf"
    conf.write_text(
        '<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd"><fontconfig>'
        '<include ignore_missing="yes">/etc/fonts/conf.d</include>'
        f"<dir>/usr/share/fonts/truetype/dejavu</dir><cachedir>{tmp_path}/cache</cachedir></fontconfig>"
    )
    return {"FONTCONFIG_FILE": str(conf)}


def _emoji_pixels(image) -> int:
    """Saturated yellow: the face of Noto Color Emoji (text and tofu boxes are grey)."""
    r, g, b = np.asarray(image).reshape(-1, 3).astype(int).T
    return int(((r > 200) & (g > 140) & (g < 230) & (b < 90)).sum())


def test_cjk_and_emoji_render_as_glyphs_not_boxes(d, tmp_path, artifacts):
    line = _typed(d, tmp_path / "fonts")
    line.save(artifacts / "fonts-cjk-emoji.png")
    tofu_line = _typed(d, tmp_path / "dejavu", _fontconfig_dejavu_only(tmp_path))
    tofu_line.save(artifacts / "fonts-dejavu-only.png")
    assert _emoji_pixels(line) > 20, "no colour emoji"
    assert _emoji_pixels(tofu_line) == 0  # the check fails where the fonts are missing
    # The CJK glyphs are drawn by a CJK font: the line differs from the DejaVu-only (boxes) one.
    from PIL import ImageChops

    size = (min(line.width, tofu_line.width), min(line.height, tofu_line.height))
    diff = ImageChops.difference(
        line.crop((0, 0, *size)).convert("L"), tofu_line.crop((0, 0, *size)).convert("L")
    ).point(lambda v: 255 if v > 60 else 0)
    assert diff.getbbox() is not None
    assert int((np.asarray(diff) > 0).sum()) > 200
