"""Looking at a real desktop with known content: pixels, image search, waiting for the screen to settle."""

from __future__ import annotations

import threading
import time

import pytest

from desktop_widget import Desktop
from desktop_widget.control import _x
from tests._cells import PINK

GREEN = (0, 160, 60)


@pytest.fixture(scope="module")
def d():
    desktop = Desktop(session="none", geometry=(1280, 800))
    yield desktop
    desktop.stop()


class Painter:
    """Override-redirect windows drawn from a connection of the test's own (not the Desktop's)."""

    def __init__(self, d: Desktop) -> None:
        self.conn = _x.connect(d.display, d.env["XAUTHORITY"])
        self.screen = self.conn.screen()
        self.windows = []

    def window(self, x: int, y: int, w: int, h: int, rgb: tuple[int, int, int], map_: bool = True):
        r, g, b = rgb
        window = self.screen.root.create_window(
            x, y, w, h, 0, self.screen.root_depth, background_pixel=(r << 16) | (g << 8) | b, override_redirect=True
        )
        if map_:
            window.map()
        self.conn.sync()
        self.windows.append(window)
        return window

    def pattern(self, x: int, y: int, body: tuple[int, int, int] = PINK, map_: bool = True):
        """A PINK 120x80 window with a white 30x20 square inside: something with edges to find."""
        outer = self.window(x, y, 120, 80, body, map_)
        inner = outer.create_window(20, 30, 30, 20, 0, self.screen.root_depth, background_pixel=0xFFFFFF)
        inner.map()
        self.conn.sync()
        return outer

    def recolour(self, window, rgb: tuple[int, int, int]) -> None:
        r, g, b = rgb
        window.change_attributes(background_pixel=(r << 16) | (g << 8) | b)
        window.clear_area()
        self.conn.sync()

    def close(self) -> None:
        for window in self.windows:
            window.destroy()
        self.conn.sync()
        self.conn.close()


@pytest.fixture
def painter(d):
    p = Painter(d)
    yield p
    p.close()


def test_pixel_reads_the_screen(d, painter):
    painter.window(300, 200, 50, 40, PINK)
    assert d.pixel(320, 220) == PINK
    assert d.pixel(299, 220) != PINK
    with pytest.raises(ValueError, match="outside the 1280x800 screen"):
        d.pixel(1280, 0)


def test_locate_finds_the_pattern_where_it_is(d, painter, tmp_path):
    painter.pattern(700, 500)
    template = d.screenshot(region=(690, 490, 140, 100))  # the pattern with a black margin
    assert d.locate(template) == (690, 490, 140, 100)
    path = tmp_path / "pattern.png"
    template.save(path)
    assert d.locate(str(path)) == (690, 490, 140, 100)
    assert d.locate(path, region=(600, 400, 400, 300)) == (690, 490, 140, 100)
    assert d.locate(template, region=(0, 0, 600, 400)) is None  # not in that region


def test_locate_tells_colours_apart(d, painter):
    """A same-shaped pattern in another colour is not a match (grey candidates are checked in colour)."""
    painter.pattern(100, 100, GREEN)
    painter.pattern(700, 500)
    template = d.screenshot(region=(700, 500, 120, 80))
    assert d.locate(template) == (700, 500, 120, 80)
    painter.windows[-1].unmap()
    painter.conn.sync()
    assert d.locate(template) is None
    assert d.locate(template, confidence=0.3) == (100, 100, 120, 80)


def test_locate_a_flat_colour(d, painter):
    painter.window(400, 300, 60, 60, PINK)
    from PIL import Image

    box = d.locate(Image.new("RGB", (20, 20), PINK))
    assert box is not None
    x, y, w, h = box
    assert 400 <= x <= 440
    assert 300 <= y <= 340
    assert (w, h) == (20, 20)
    assert d.locate(Image.new("RGB", (20, 20), GREEN)) is None


def test_locate_bad_input(d):
    from PIL import Image

    with pytest.raises(ValueError, match="larger than the searched area"):
        d.locate(Image.new("RGB", (200, 200)), region=(0, 0, 100, 100))
    with pytest.raises(ValueError, match="confidence"):
        d.locate(Image.new("RGB", (10, 10)), confidence=1.5)
    with pytest.raises(TypeError, match=r"PIL\.Image or a path"):
        d.locate(42)
    with pytest.raises(ValueError, match="not inside"):
        d.locate(Image.new("RGB", (10, 10)), region=(1200, 700, 200, 200))


def test_wait_for_image_sees_it_appear(d, painter):
    window = painter.pattern(500, 300, map_=False)
    window.map()
    painter.conn.sync()
    template = d.screenshot(region=(500, 300, 120, 80))
    window.unmap()
    painter.conn.sync()
    with pytest.raises(TimeoutError, match=r"did not show within 0\.3 s"):
        d.wait_for_image(template, timeout=0.3)
    timer = threading.Timer(0.5, lambda: (window.map(), painter.conn.sync()))
    timer.start()
    try:
        assert d.wait_for_image(template, timeout=10) == (500, 300, 120, 80)
    finally:
        timer.join()


class Flicker(threading.Thread):
    """Recolours a window every 40 ms until stopped; remembers when it last changed it."""

    def __init__(self, painter: Painter, window, colours) -> None:
        super().__init__(daemon=True)
        self.painter, self.window, self.colours = painter, window, colours
        self.stop = threading.Event()
        self.starts: list[float] = []
        self.count = 0

    def run(self) -> None:
        i = 0
        while not self.stop.wait(0.04):
            self.starts.append(time.monotonic())  # before the change can be on screen
            self.painter.recolour(self.window, self.colours[i % len(self.colours)])
            self.count += 1
            i += 1


def test_wait_until_stable_waits_for_the_last_change(d, painter):
    flicker = Flicker(painter, painter.window(100, 600, 80, 80, PINK), [PINK, GREEN])
    flicker.start()
    threading.Timer(1.0, flicker.stop.set).start()
    waited = time.monotonic()
    d.wait_until_stable(duration=0.4, timeout=10)
    returned = time.monotonic()
    flicker.stop.set()
    flicker.join()
    assert [t for t in flicker.starts if t > waited], "nothing changed while it waited"
    # No change began in the 0.4 s before it returned (a starved flicker may pause; that is stillness too).
    assert not [t for t in flicker.starts if returned - 0.4 < t < returned], (returned, flicker.starts[-5:])


def test_wait_until_stable_times_out_and_watches_only_its_region(d, painter):
    flicker = Flicker(painter, painter.window(100, 600, 80, 80, PINK), [PINK, GREEN])
    flicker.start()
    try:
        with pytest.raises(TimeoutError, match=r"not still for 1 s within 2\.5 s"):
            d.wait_until_stable(duration=1.0, timeout=2.5)
        d.wait_until_stable(duration=0.5, timeout=10, region=(600, 0, 600, 500))  # elsewhere: still
        assert flicker.is_alive()
    finally:
        flicker.stop.set()
        flicker.join()


def test_redrawing_the_same_pixels_is_not_a_change(d, painter):
    """Damage without a change (a window repainted as it was) does not keep the screen "unstable"."""
    flicker = Flicker(painter, painter.window(100, 600, 80, 80, PINK), [PINK])
    flicker.start()
    try:
        before = flicker.count
        d.wait_until_stable(duration=0.5, timeout=10)
        assert flicker.count > before + 3  # it repainted all along
    finally:
        flicker.stop.set()
        flicker.join()
    with pytest.raises(ValueError, match="duration"):
        d.wait_until_stable(duration=0)
    with pytest.raises(ValueError, match="longer than timeout"):
        d.wait_until_stable(duration=5, timeout=1)
