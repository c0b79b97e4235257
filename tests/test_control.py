"""Driving a real desktop from Python: pointer, windows, screen, clipboard, apps."""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from pathlib import Path

import pytest
from Xlib import X

from desktop_widget import Desktop, DesktopError, DesktopStopped
from desktop_widget.control import _x
from tests._procs import alive

PROBE = str(Path(__file__).with_name("_tkprobe.py"))


@pytest.fixture(scope="module")
def d():
    desktop = Desktop(session="wm", geometry=(1280, 800))
    yield desktop
    desktop.stop()


class Probe:
    """A running _tkprobe.py and the events it reported."""

    def __init__(self, d: Desktop, tmp_path: Path, *args: str) -> None:
        self.out = tmp_path / f"probe-{time.monotonic_ns()}.jsonl"
        self.app = d.launch([sys.executable, PROBE, str(self.out), *args])
        self.ready = self.wait("ready")
        d.wait_for_window(pid=self.app.pid, timeout=10).activate()

    def events(self, kind: str | None = None) -> list[dict]:
        if not self.out.exists():
            return []
        rows = [json.loads(line) for line in self.out.read_text().splitlines()]
        return [r for r in rows if kind is None or r["kind"] == kind]

    def wait(self, kind: str, count: int = 1, timeout: float = 10) -> dict:
        deadline = time.monotonic() + timeout
        while len(self.events(kind)) < count:
            assert self.app.poll() is None, self.app.log()
            assert time.monotonic() < deadline, f"no {kind!r} event; got {self.events()}"
            time.sleep(0.02)
        return self.events(kind)[count - 1]

    def close(self) -> None:
        self.app.terminate()
        self.app.wait(5)


@pytest.fixture
def probe(d, tmp_path):
    probes = []

    def start(*args: str) -> Probe:
        probes.append(Probe(d, tmp_path, *args))
        return probes[-1]

    yield start
    for p in probes:
        p.close()


def test_click_presses_a_tk_button(d, probe):
    p = probe()
    bx, by = p.ready["button"]
    assert p.events("button") == []
    d.click(bx, by)
    p.wait("button")
    assert d.pointer == (bx, by)
    d.double_click(bx, by)
    p.wait("button", count=3)


def test_drag_and_scroll(d, probe):
    p = probe()
    cx, cy, cw, ch = p.ready["canvas"]
    start, end = (cx + 20, cy + 20), (cx + cw - 20, cy + ch - 20)
    d.drag(start, end, steps=5)
    press, release = p.wait("press"), p.wait("release")
    assert (press["x"], press["y"]) == start
    assert (release["x"], release["y"]) == end
    assert len(p.events("motion")) >= 3
    d.scroll(3, x=cx + 50, y=cy + 50)
    d.scroll(-2)
    p.wait("wheel", count=5)
    assert [e["num"] for e in p.events("wheel")] == [5, 5, 5, 4, 4]


SHIFT, CONTROL = 1, 4  # X modifier state bits


def test_triple_and_middle_click(d, probe):
    p = probe()
    cx, cy, _, _ = p.ready["canvas"]
    d.triple_click(cx + 30, cy + 30)
    p.wait("triple")
    assert len(p.events("double")) == 1
    assert [e["num"] for e in p.events("down")] == [1, 1, 1]
    d.middle_click(cx + 40, cy + 40)
    down = p.wait("down", count=4)
    assert (down["num"], down["x"], down["y"]) == (2, cx + 40, cy + 40)
    assert p.wait("up", count=4)["num"] == 2


def test_click_with_modifiers_held(d, probe, conn_free_keys):
    p = probe()
    cx, cy, _, _ = p.ready["canvas"]
    d.click(cx + 20, cy + 20, modifiers=["ctrl"])
    down = p.wait("down")
    assert down["state"] & CONTROL
    assert not down["state"] & SHIFT
    d.click(cx + 20, cy + 20, button="right", modifiers="ctrl+shift")
    down = p.wait("down", count=2)
    assert down["num"] == 3
    assert down["state"] & CONTROL
    assert down["state"] & SHIFT
    d.click(cx + 20, cy + 20)
    assert not p.wait("down", count=3)["state"] & (CONTROL | SHIFT)  # nothing stayed held
    assert [e["keysym"] for e in p.events("key-up")][:1] == ["Control_L"]
    conn_free_keys()


def test_mouse_down_and_up(d, probe, conn_free_keys):
    p = probe()
    cx, cy, _, _ = p.ready["canvas"]
    d.mouse_down(cx + 10, cy + 10)
    press = p.wait("press")
    assert (press["x"], press["y"]) == (cx + 10, cy + 10)
    d.move(cx + 60, cy + 50)
    d.move(cx + 120, cy + 90)
    p.wait("motion")
    assert p.events("release") == []  # still down
    d.mouse_up(cx + 150, cy + 100)
    release = p.wait("release")
    assert (release["x"], release["y"]) == (cx + 150, cy + 100)
    d.mouse_down(button="right")
    assert p.wait("down", count=2)["num"] == 3
    d.mouse_up(button="right")
    assert p.wait("up", count=2)["num"] == 3
    conn_free_keys()


def test_hold_key(d, probe, conn_free_keys):
    p = probe()
    d.hold_key("shift", seconds=1.0)
    down, up = p.wait("key-down"), p.wait("key-up")
    assert down["keysym"] == up["keysym"] == "Shift_L"
    assert up["time"] - down["time"] >= 1000  # the X server's clock, in ms
    d.hold_key("ctrl+alt", seconds=0.2)
    p.wait("key-up", count=3)
    assert [e["keysym"] for e in p.events("key-down")[1:]] == ["Control_L", "Alt_L"]
    conn_free_keys()


@pytest.fixture
def conn_free_keys(d):
    """A check that no key and no button is left down."""

    def check() -> None:
        conn = _x.connect(d.display, d.env["XAUTHORITY"])
        try:
            assert not any(conn.query_keymap()), "a key is still down"
            assert not conn.screen().root.query_pointer().mask & 0x1F00, "a button is still down"
        finally:
            conn.close()

    return check


def test_scroll_buttons_seen_by_an_x_window(d):
    # Tk 8.6 folds horizontal wheel buttons into others, so a bare X window checks them.
    conn = _x.connect(d.display, d.env["XAUTHORITY"])
    try:
        screen = conn.screen()
        win = screen.root.create_window(
            0, 0, 300, 200, 0, screen.root_depth, event_mask=X.ButtonPressMask, override_redirect=True,
            background_pixel=screen.black_pixel,
        )  # fmt: skip
        win.map()
        conn.sync()
        deadline = time.monotonic() + 5
        while d.screenshot(region=(5, 5, 1, 1)).getpixel((0, 0)) != (0, 0, 0):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        d.scroll(2, dx=-1, x=50, y=50)
        d.scroll(-1, dx=2)
        d.scroll(dx=-2)
        seen = []
        while len(seen) < 8 and time.monotonic() < deadline:
            while conn.pending_events():
                seen.append(conn.next_event().detail)
            time.sleep(0.01)
        assert seen == [5, 5, 6, 4, 7, 7, 6, 6]
    finally:
        conn.close()


def test_screenshot_shows_a_window_of_known_colour(d):
    conn = _x.connect(d.display, d.env["XAUTHORITY"])
    try:
        screen = conn.screen()
        colour = (255, 51, 102)
        pixel = screen.default_colormap.alloc_color(*(c * 257 for c in colour)).pixel
        win = screen.root.create_window(
            100, 120, 200, 100, 0, screen.root_depth, background_pixel=pixel, override_redirect=True
        )
        win.map()
        conn.sync()
        deadline = time.monotonic() + 5
        while d.screenshot(region=(150, 150, 1, 1)).getpixel((0, 0)) != colour:
            assert time.monotonic() < deadline, "the window never appeared in a screenshot"
            time.sleep(0.02)
        shot = d.screenshot()
        assert shot.size == d.size == (1280, 800)
        assert shot.getpixel((100, 120)) == colour  # the window's top-left pixel
        assert shot.getpixel((299, 219)) == colour  # its bottom-right pixel
        assert shot.getpixel((99, 120)) != colour
        assert shot.getpixel((300, 219)) != colour
        part = d.screenshot(region=(90, 110, 40, 30))
        assert part.size == (40, 30)
        assert part.getpixel((10, 10)) == colour
        assert part.getpixel((5, 5)) != colour
        win.destroy()
        conn.sync()
    finally:
        conn.close()


def test_launch_wait_close_and_stop_with_desktop(tmp_path):
    with Desktop(session="wm", geometry=(800, 600)) as d2:
        app = d2.launch("xterm -title 'my term' -geometry 40x8+10+10")
        window = d2.wait_for_window(title="my term", wm_class="xterm")
        assert window.pid == app.pid
        assert d2.wait_for_window(title=__import__("re").compile(r"^my\s+t")).id == window.id
        window.close()
        assert app.wait(5) == 0
        lingering = d2.launch(["sleep", "600"])
        with pytest.raises(TimeoutError, match=r"windows are: none|my term"):
            d2.wait_for_window(title="does not exist", timeout=0.3)
    assert lingering.poll() is not None
    assert not alive(lingering.pid)


def test_window_move_resize_activate_screenshot(d):
    app = d.launch(["xterm", "-title", "mover", "-bg", "#00ff00", "-geometry", "30x5+10+10"])
    try:
        w = d.wait_for_window(title="mover")
        w.move(300, 200)
        w.resize(240, 160)
        deadline = time.monotonic() + 5
        # xterm sizes itself in whole character cells, so "about" 240x160.
        while abs((g := d.wait_for_window(title="mover").geometry)[2] - 240) > 8 or abs(g[3] - 160) > 16 or g[0] < 290:
            assert time.monotonic() < deadline, g
            time.sleep(0.05)
        w.activate()
        assert d.wait_for_window(title="mover").focused
        image = w.screenshot()
        assert image.size == g[2:]
        assert image.getpixel((g[2] // 2, g[3] - 5)) == (0, 255, 0)  # xterm's background, below its text
    finally:
        app.kill()
        app.wait()


def test_resize_changes_the_screen(d):
    d.resize(1024, 768)
    try:
        assert d.size == (1024, 768)
        assert d.screenshot().size == (1024, 768)
        assert d.view.scale is True  # views keep the size asked for
    finally:
        d.resize(1280, 800)


def test_clipboard_round_trip(d, probe):
    d.clipboard = "héllo ✓ from the kernel"
    reader = probe("clip-read")
    assert reader.wait("clipboard")["text"] == "héllo ✓ from the kernel"
    writer = probe("clip-set", "set by an X app ✓")
    writer.wait("clipboard-set")
    assert d.clipboard == "set by an X app ✓"


def test_as_default_puts_tk_windows_on_the_desktop(d):
    before = os.environ.get("DISPLAY")
    import tkinter

    with d.as_default():
        assert os.environ["DISPLAY"] == d.display
        root = tkinter.Tk()
        root.title("made in the kernel")
        root.update()
        try:
            assert d.wait_for_window(title="made in the kernel", timeout=5)
        finally:
            root.destroy()
    assert os.environ.get("DISPLAY") == before


def test_bad_input(d):
    w, h = d.size
    with pytest.raises(ValueError, match="outside"):
        d.click(w, 10)
    with pytest.raises(ValueError, match="outside"):
        d.move(-1, 0)
    with pytest.raises(TypeError):
        d.click(1.5, 2)
    with pytest.raises(ValueError, match="unknown button"):
        d.click(1, 1, button="thumb")
    for size in [(0, 0), (100000, 100000)]:
        with pytest.raises(ValueError, match="between"):
            d.resize(*size)
    with pytest.raises(FileNotFoundError, match="no-such-program"):
        d.launch("no-such-program --flag")
    with pytest.raises(ValueError, match="not inside"):
        d.screenshot(region=(0, 0, w + 1, 10))
    with pytest.raises(TypeError):
        d.clipboard = b"bytes"
    assert d.size == (w, h)


INF, NAN = float("inf"), float("nan")
BAD_INPUT = [
    # (call, error, what the message must say)
    (lambda d: d.key(123), TypeError, r"a key is named by a str such as 'Return'"),
    (lambda d: d.key("ctrl+c", None), TypeError, "got None"),
    (lambda d: d.key_down(5), TypeError, "a key is named by a str"),
    (lambda d: d.key_up(b"a"), TypeError, "a key is named by a str"),
    (lambda d: d.drag((1,), (2, 3)), TypeError, r"start must be an \(x, y\) pair of ints; got \(1,\)"),
    (lambda d: d.drag((1, 1), "ab"), TypeError, r"end must be an \(x, y\) pair"),
    (lambda d: d.drag((1, 1), (2, 2), duration=INF), ValueError, "duration must be a finite number of seconds"),
    (lambda d: d.drag((1, 1), (2, 2), duration=NAN), ValueError, "duration must be a finite number"),
    (lambda d: d.drag((1, 1), (2, 2), duration=-1), ValueError, "duration must be a finite number of seconds >= 0"),
    (lambda d: d.drag((1, 1), (2, 2), steps=True), ValueError, "steps must be a positive int"),
    (lambda d: d.type("a", delay="x"), TypeError, "delay must be a number of seconds; got 'x'"),
    (lambda d: d.type("a", delay=NAN), ValueError, "delay must be a finite number"),
    (lambda d: d.type("a", delay=INF), ValueError, "delay must be a finite number"),
    (lambda d: d.click(1, 1, count=True), ValueError, "count must be a positive int"),
    (lambda d: d.wait_for_window(title=5), TypeError, r"title must be a str .* or a compiled re.Pattern; got 5"),
    (lambda d: d.wait_for_window(wm_class=["xterm"]), TypeError, "wm_class must be a str"),
    (lambda d: d.wait_for_window(pid="12"), TypeError, "pid must be an int"),
    (lambda d: d.wait_for_window(timeout=INF), ValueError, "timeout must be a finite number of seconds"),
    (lambda d: d.wait_for_window(timeout=NAN), ValueError, "timeout must be a finite number of seconds"),
    (lambda d: d.wait_for_window(timeout="1"), TypeError, "timeout must be a number of seconds"),
    (lambda d: Desktop(timeout=INF), ValueError, "timeout must be a finite number of seconds > 0"),
    (lambda d: Desktop(timeout=NAN), ValueError, "timeout must be a finite number of seconds > 0"),
    (lambda d: Desktop(idle_timeout=NAN), ValueError, r"idle_timeout \(0 or None: never\) must be a finite"),
    (lambda d: d.click(1, 1, modifiers=5), TypeError, r"modifiers must be a key name or a list of them"),
    (lambda d: d.click(1, 1, modifiers=["ctlr"]), ValueError, "unknown key 'ctlr'"),
    (lambda d: d.mouse_down(button="thumb"), ValueError, "unknown button 'thumb': use one of left, middle, right"),
    (lambda d: d.triple_click(button=0), ValueError, "unknown button 0"),
    (lambda d: d.middle_click(5000, 5), ValueError, r"\(5000, 5\) is outside .*: x must be 0 to \d+"),
    (lambda d: d.mouse_up(-1, 5), ValueError, "x must be 0 to"),
    (lambda d: d.hold_key("shift", seconds=-1), ValueError, "seconds must be a finite number of seconds >= 0"),
    (lambda d: d.hold_key("nokey"), ValueError, "unknown key 'nokey'"),
    (lambda d: d.scroll(dx=1.5), TypeError, r"dx must be an int \(wheel clicks\)"),
]


@pytest.mark.parametrize(("call", "error", "message"), BAD_INPUT)
def test_bad_input_is_named_clearly(d, call, error, message):
    # In a thread with a deadline: a timeout of inf or nan used to make wait_for_window wait forever.
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call(d)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(20)
    assert outcome, "the call hung instead of refusing its input"
    assert isinstance(outcome[0], error), f"expected {error.__name__}, got {outcome[0]!r}"
    assert re.search(message, str(outcome[0])), str(outcome[0])


def test_a_window_that_is_gone_raises_desktop_error(d):
    app = d.launch(["xterm", "-title", "short-lived", "-geometry", "20x4+10+10"])
    window = d.wait_for_window(title="short-lived")
    with pytest.raises(TypeError, match=r"x must be an int \(pixels\); got 'a'"):
        window.move("a", 0)
    with pytest.raises(TypeError, match="height must be an int"):
        window.resize(10, 2.5)
    app.kill()
    app.wait(5)
    deadline = time.monotonic() + 10
    while any(w.id == window.id for w in d.windows()):
        assert time.monotonic() < deadline, "the window stayed"
        time.sleep(0.05)
    for op in (
        window.activate,
        lambda: window.move(5, 5),
        lambda: window.resize(50, 50),
        window.close,
        window.screenshot,
    ):
        with pytest.raises(DesktopError, match=rf"window {window.id:#x} is gone"):
            op()
    assert d.size == (1280, 800)  # the connection is still good


def test_stopped_desktop_raises_clearly():
    d2 = Desktop(session="none", geometry=(640, 480))
    d2.stop()
    for call in (lambda: d2.click(1, 1), lambda: d2.screenshot(), lambda: d2.launch("xterm"), lambda: d2.size):
        with pytest.raises(DesktopStopped, match="stopped"):
            call()
