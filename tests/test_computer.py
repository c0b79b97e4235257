"""``Desktop.computer_tool()``: every action of the computer-use protocol, observed by a real X client."""

from __future__ import annotations

import base64
import io
import time

import pytest
from PIL import Image
from Xlib import XK, X

from desktop_widget import Desktop
from desktop_widget.control import _x
from desktop_widget.kernel._computer import scaled_size, to_screen, to_seen
from tests._cells import PINK, near

#: Not the agent's size: screenshots are scaled by 0.8 to 1280x800, so every coordinate is mapped.
SCREEN = (1600, 1000)
SEEN = (1280, 800)
#: Keysym -> name ("Shift_L", "s", "comma"), from python-xlib's tables.
KEYSYM_NAMES = {value: name[3:] for name, value in vars(XK).items() if name.startswith("XK_")}


@pytest.fixture(scope="module")
def d():
    desktop = Desktop(session="wm", geometry=SCREEN)
    yield desktop
    desktop.stop()


class Observer:
    """A bare X window over the whole screen, holding the keyboard focus, that records what reaches it."""

    MASK = (
        X.ButtonPressMask
        | X.ButtonReleaseMask
        | X.PointerMotionMask
        | X.KeyPressMask
        | X.KeyReleaseMask
        | X.ExposureMask
    )

    def __init__(self, d: Desktop) -> None:
        self.conn = _x.connect(d.display, d.env["XAUTHORITY"])
        screen = self.conn.screen()
        self.window = screen.root.create_window(
            0, 0, *SCREEN, 0, screen.root_depth, X.InputOutput, X.CopyFromParent,
            background_pixel=screen.white_pixel, override_redirect=True, event_mask=self.MASK,
        )  # fmt: skip
        # A PINK patch at a known place of the screen, for the screenshot and zoom.
        self.patch = (400, 300, 200, 100)
        pink = screen.default_colormap.alloc_color(*(c * 257 for c in PINK)).pixel
        self.window.create_window(*self.patch, 0, screen.root_depth, background_pixel=pink).map()
        self.window.map()
        self.events: list = []
        self.wait(lambda e: e.type == X.Expose)
        self.window.set_input_focus(X.RevertToParent, X.CurrentTime)
        self.conn.sync()
        self.events.clear()

    def wait(self, match, count: int = 1, timeout: float = 10) -> list:
        """The events that ``match``, once there are ``count`` of them."""
        deadline = time.monotonic() + timeout
        while True:
            while self.conn.pending_events():
                self.events.append(self.conn.next_event())
            found = [e for e in self.events if match(e)]
            if len(found) >= count:
                return found
            assert time.monotonic() < deadline, f"{count} events expected, got {len(found)}"
            time.sleep(0.01)

    def buttons(self, count: int) -> list[tuple]:
        """(press/release, button, root point, state) of the first ``count`` button events."""
        found = self.wait(lambda e: e.type in (X.ButtonPress, X.ButtonRelease), count)
        return [
            ("press" if e.type == X.ButtonPress else "release", e.detail, (e.root_x, e.root_y), e.state) for e in found
        ]

    def keys(self, count: int) -> list[tuple]:
        """(press/release, keysym name, state, server time) of the first ``count`` key events."""
        found = self.wait(lambda e: e.type in (X.KeyPress, X.KeyRelease), count)
        rows = []
        for e in found:
            index = 1 if e.state & X.ShiftMask else 0
            keysym = self.conn.keycode_to_keysym(e.detail, index) or self.conn.keycode_to_keysym(e.detail, 0)
            rows.append(("press" if e.type == X.KeyPress else "release", KEYSYM_NAMES.get(keysym), e.state, e.time))
        return rows

    def close(self) -> None:
        self.window.destroy()
        self.conn.close()


@pytest.fixture
def seen(d):
    observer = Observer(d)
    yield observer
    observer.close()


def image_of(block: dict) -> Image.Image:
    assert block["type"] == "image"
    assert block["source"]["type"] == "base64"
    assert block["source"]["media_type"] == "image/png"
    return Image.open(io.BytesIO(base64.b64decode(block["source"]["data"]))).convert("RGB")


def at(point: tuple[int, int]) -> tuple[int, int]:
    """Where an agent's point lands on the screen."""
    return to_screen(point, SCREEN, SEEN)


# -- the scaling rule (pure) ------------------------------------------------------


@pytest.mark.parametrize(
    ("screen", "expected"),
    [
        ((1280, 800), (1280, 800)),
        ((1024, 768), (1024, 768)),
        ((1920, 1080), (1280, 720)),
        ((2560, 1600), (1280, 800)),
        ((1600, 1000), (1280, 800)),
        ((1000, 2000), (400, 800)),
        ((3000, 1000), (1280, 427)),
    ],
)
def test_screenshots_fit_in_1280x800_keeping_aspect(screen, expected):
    assert scaled_size(screen) == expected


@pytest.mark.parametrize("screen", [(1600, 1000), (1920, 1080), (1280, 800), (3000, 1000), (640, 480)])
def test_points_map_back_and_forth(screen):
    agent = scaled_size(screen)
    for x in range(agent[0]):
        assert to_seen(to_screen((x, 0), screen, agent), screen, agent) == (x, 0)
        assert 0 <= to_screen((x, 0), screen, agent)[0] < screen[0]
    for y in range(agent[1]):
        assert to_seen(to_screen((0, y), screen, agent), screen, agent) == (0, y)
    assert to_screen((agent[0] - 1, agent[1] - 1), screen, agent) <= (screen[0] - 1, screen[1] - 1)


# -- the tool on a real desktop -----------------------------------------------------


def test_definition(d):
    t = d.computer_tool()
    assert t.definition == {
        "type": "computer_20251124",
        "name": "computer",
        "display_width_px": 1280,
        "display_height_px": 800,
        "display_number": int(d.display.lstrip(":")),
        "enable_zoom": True,
    }
    old = d.computer_tool("computer_20250124")
    assert old.definition["type"] == "computer_20250124"
    assert "enable_zoom" not in old.definition
    with pytest.raises(ValueError, match="zoom"):
        old({"action": "zoom", "region": [0, 0, 10, 10]})
    with pytest.raises(ValueError, match="computer_20251124, computer_20250124"):
        d.computer_tool("computer_2099")


def test_screenshot_and_zoom(d, seen):
    t = d.computer_tool()
    shot = image_of(t({"action": "screenshot"})[0])
    assert shot.size == SEEN
    _, _, w, h = seen.patch  # on the screen; the agent sees it at 0.8 of that
    sx, sy, sw, sh = (round(v * 0.8) for v in seen.patch)
    assert near(shot.getpixel((sx + sw // 2, sy + sh // 2)), PINK)
    assert near(shot.getpixel((sx + 2, sy + 2)), PINK)
    assert near(shot.getpixel((sx - 3, sy + sh // 2)), (255, 255, 255))
    assert near(shot.getpixel((sx + sw + 2, sy + sh // 2)), (255, 255, 255))

    # zoom: the agent's region, at the screen's full resolution.
    zoomed = image_of(t({"action": "zoom", "region": [sx, sy, sx + sw, sy + sh]})[0])
    assert zoomed.size == (w, h)
    assert all(near(zoomed.getpixel(p), PINK) for p in ((0, 0), (w - 1, h - 1), (w // 2, h // 2)))
    wider = image_of(t({"action": "zoom", "region": [sx - 40, sy, sx + sw, sy + sh]})[0])
    assert wider.size == (w + 50, h)
    assert near(wider.getpixel((10, h // 2)), (255, 255, 255))
    assert near(wider.getpixel((60, h // 2)), PINK)
    # The whole screen in a zoom is fitted like a screenshot.
    assert image_of(t({"action": "zoom", "region": [0, 0, *SEEN]})[0]).size == SEEN


def test_screenshot_and_zoom_of_an_app(d, artifacts):
    t = d.computer_tool()
    app = d.launch(
        [
            "xterm",
            "-geometry",
            "40x4+800+600",
            "-fa",
            "Monospace",
            "-fs",
            "11",
            "-e",
            "sh",
            "-c",
            "echo what an agent sees; sleep 60",
        ]
    )
    try:
        window = d.wait_for_window(pid=app.pid, timeout=10)
        x, y, w, h = window.geometry
        deadline = time.monotonic() + 10
        # Shown once the xterm's white background and its dark text are on the screen.
        while not (
            d.screenshot(region=(x + w - 5, y + h - 5, 1, 1)).getpixel((0, 0)) == (255, 255, 255)
            and d.screenshot(region=(x, y, w, h)).convert("L").getextrema()[0] < 64
        ):
            assert time.monotonic() < deadline, "the xterm never showed its text"
            time.sleep(0.05)
        shot = image_of(t({"action": "screenshot"})[0])
        shot.save(artifacts / "computer-screenshot.png")
        region = [int(x * 0.8), int(y * 0.8), int((x + w) * 0.8), int((y + h) * 0.8)]
        zoomed = image_of(t({"action": "zoom", "region": region})[0])
        zoomed.save(artifacts / "computer-zoom.png")
    finally:
        app.terminate()
    assert shot.size == SEEN
    assert near(shot.getpixel((int((x + w - 5) * 0.8), int((y + h - 5) * 0.8))), (255, 255, 255))
    assert abs(zoomed.width - w) <= 2
    assert abs(zoomed.height - h) <= 2
    assert zoomed.convert("L").getextrema()[0] < 64, "no dark text in the zoomed xterm"


def test_clicks(d, seen):
    t = d.computer_tool()
    blocks = t({"action": "left_click", "coordinate": [100, 200]})
    assert blocks[0]["type"] == "text"
    assert seen.buttons(2) == [("press", 1, at((100, 200)), 0), ("release", 1, at((100, 200)), X.Button1Mask)]
    assert at((100, 200)) == (125, 250)

    for action, button, count in (
        ("right_click", 3, 1),
        ("middle_click", 2, 1),
        ("double_click", 1, 2),
        ("triple_click", 1, 3),
    ):
        seen.events.clear()
        t({"action": action, "coordinate": [640, 400]})
        rows = seen.buttons(2 * count)
        assert [r[:3] for r in rows] == [("press", button, at((640, 400))), ("release", button, at((640, 400)))] * count
        assert len(seen.wait(lambda e: e.type in (X.ButtonPress, X.ButtonRelease))) == 2 * count, action

    # No coordinate: where the pointer is. Modifier keys in text: held during the click.
    seen.events.clear()
    t({"action": "left_click", "text": "ctrl+shift"})
    press = seen.buttons(1)[0]
    assert press[:3] == ("press", 1, at((640, 400)))
    assert press[3] & (X.ControlMask | X.ShiftMask) == X.ControlMask | X.ShiftMask
    releases = seen.keys(4)
    assert [(r[0], r[1]) for r in releases[2:]] == [("release", "Shift_L"), ("release", "Control_L")]


def test_move_drag_and_button_down_up(d, seen):
    t = d.computer_tool()
    t({"action": "mouse_move", "coordinate": [1279, 799]})
    motion = seen.wait(lambda e: e.type == X.MotionNotify)[-1]
    assert (motion.root_x, motion.root_y) == (1599, 999) == d.pointer
    assert t({"action": "cursor_position"}) == [{"type": "text", "text": "X=1279,Y=799"}]

    seen.events.clear()
    t({"action": "left_click_drag", "start_coordinate": [200, 200], "coordinate": [600, 500]})
    assert seen.buttons(2) == [("press", 1, at((200, 200)), 0), ("release", 1, at((600, 500)), X.Button1Mask)]
    dragged = [e for e in seen.events if e.type == X.MotionNotify and e.state & X.Button1Mask]
    assert len(dragged) >= 3

    seen.events.clear()
    t({"action": "left_mouse_down", "coordinate": [300, 300]})
    assert seen.buttons(1) == [("press", 1, at((300, 300)), 0)]
    t({"action": "mouse_move", "coordinate": [320, 340]})
    t({"action": "left_mouse_up"})
    assert seen.buttons(2)[1] == ("release", 1, at((320, 340)), X.Button1Mask)


def test_scroll(d, seen):
    t = d.computer_tool()
    for direction, amount, button in (("down", 3, 5), ("up", 2, 4), ("left", 1, 6), ("right", 2, 7)):
        seen.events.clear()
        t({"action": "scroll", "coordinate": [400, 300], "scroll_direction": direction, "scroll_amount": amount})
        rows = seen.buttons(2 * amount)
        assert [r[:3] for r in rows] == [
            ("press", button, at((400, 300))),
            ("release", button, at((400, 300))),
        ] * amount
    seen.events.clear()
    t({"action": "scroll", "scroll_direction": "down", "scroll_amount": 1, "text": "ctrl"})
    assert seen.buttons(1)[0][3] & X.ControlMask


def test_keys_and_typing(d, seen):
    t = d.computer_tool()
    t({"action": "key", "text": "ctrl+s"})
    rows = seen.keys(4)
    assert [(r[0], r[1]) for r in rows] == [
        ("press", "Control_L"),
        ("press", "s"),
        ("release", "s"),
        ("release", "Control_L"),
    ]
    assert rows[1][2] & X.ControlMask

    seen.events.clear()
    t({"action": "key", "text": "Return KP_0 alt+x"})
    # (KP_0 is the keypad's second level: the keyboard presses shift with it.)
    pressed = [r[1] for r in seen.keys(10) if r[0] == "press" and r[1] != "Shift_L"]
    assert pressed == ["Return", "KP_0", "Alt_L", "x"]

    seen.events.clear()
    t({"action": "type", "text": "Hello, World 42!"})
    rows = seen.keys(2 * len("Hello, World 42!"))
    typed = "".join(
        XK.keysym_to_string(XK.string_to_keysym(r[1])) for r in rows if r[0] == "press" and not r[1].startswith("Shift")
    )
    assert typed == "Hello, World 42!"


def test_hold_key(d, seen):
    t = d.computer_tool()
    t({"action": "hold_key", "text": "shift", "duration": 0.5})
    rows = seen.wait(lambda e: e.type == X.KeyRelease)
    presses = [e for e in seen.events if e.type == X.KeyPress]
    assert presses
    assert presses[0].detail == rows[-1].detail
    # Held as long as asked: the X server's own timestamps (ms) of the press and the release.
    assert rows[-1].time - presses[0].time >= 450


def test_wait_returns_a_screenshot(d):
    t = d.computer_tool()
    blocks = t({"action": "wait", "duration": 0.1})
    assert len(blocks) == 1
    assert image_of(blocks[0]).size == SEEN


def test_screenshot_after(d, seen):
    t = d.computer_tool(screenshot_after=True)
    blocks = t({"action": "left_click", "coordinate": [10, 10]})
    assert [b["type"] for b in blocks] == ["text", "image"]
    assert image_of(blocks[1]).size == SEEN


@pytest.mark.parametrize(
    ("tool_input", "message"),
    [
        ({"action": "explode"}, "unknown action 'explode'.*screenshot, cursor_position"),
        ("screenshot", "must be a dict"),
        ({"action": "screenshot", "coordinate": [1, 1]}, "screenshot does not take coordinate"),
        ({"action": "left_click", "coordinate": [1280, 0]}, r"0 <= x < 1280 and 0 <= y < 800"),
        ({"action": "left_click", "coordinate": [-1, 0]}, r"0 <= x < 1280"),
        ({"action": "left_click", "coordinate": [1.5, 2]}, r"\[x, y\]"),
        ({"action": "left_click", "coordinate": [1, 2], "text": "ctrl+nope"}, "unknown key 'nope'"),
        ({"action": "mouse_move"}, "mouse_move needs coordinate"),
        ({"action": "left_click_drag", "coordinate": [1, 1]}, "needs start_coordinate"),
        ({"action": "scroll", "scroll_direction": "sideways"}, "up, down, left, right"),
        ({"action": "scroll", "scroll_direction": "up", "scroll_amount": -2}, "scroll_amount must be an int"),
        ({"action": "key"}, "key needs text"),
        ({"action": "key", "text": "ctrl+s Retrun"}, "unknown key 'Retrun'; did you mean 'Return'"),
        ({"action": "hold_key", "text": "shift"}, "hold_key needs duration"),
        ({"action": "hold_key", "text": "shift", "duration": 1000}, "from 0 to 100"),
        ({"action": "type", "text": 5}, "type needs text"),
        ({"action": "zoom", "region": [10, 10, 5, 20]}, r"\[x1, y1, x2, y2\]"),
        ({"action": "zoom", "region": [0, 0, 1281, 20]}, "x2 <= 1280"),
    ],
)
def test_bad_input_says_what_is_allowed_and_does_nothing(d, seen, tool_input, message):
    t = d.computer_tool()
    with pytest.raises(ValueError, match=message):
        t(tool_input)
    # Nothing reached the desktop: a click after it is the first event the window gets.
    d.click(5, 5)
    first = seen.wait(lambda e: e.type in (X.ButtonPress, X.KeyPress))[0]
    assert (first.type, first.detail) == (X.ButtonPress, 1)
