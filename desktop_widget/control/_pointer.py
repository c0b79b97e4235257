"""The mouse, through XTEST: no subprocess per event."""

from __future__ import annotations

from Xlib import X
from Xlib.display import Display
from Xlib.ext import xtest

BUTTONS = {"left": 1, "middle": 2, "right": 3, "back": 8, "forward": 9}
_FLUSH_EVERY = 128  # requests; python-xlib joins its whole send queue byte string by byte string


def button_number(button: object) -> int:
    if isinstance(button, str) and button.lower() in BUTTONS:
        return BUTTONS[button.lower()]
    if isinstance(button, int) and not isinstance(button, bool) and 1 <= button <= 9:
        return button
    raise ValueError(f"unknown button {button!r}: use one of {', '.join(BUTTONS)} or a number 1-9")


def check_point(x: object, y: object, screen: tuple[int, int]) -> tuple[int, int]:
    for name, value in (("x", x), ("y", y)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int; got {value!r}")
    if not (0 <= x < screen[0] and 0 <= y < screen[1]):
        raise ValueError(
            f"({x}, {y}) is outside the {screen[0]}x{screen[1]} screen: "
            f"x must be 0 to {screen[0] - 1} and y 0 to {screen[1] - 1}"
        )
    return x, y


def check_pair(name: str, point: object, screen: tuple[int, int]) -> tuple[int, int]:
    """``point`` as an ``(x, y)`` on the screen, or an error naming ``name``."""
    if not isinstance(point, (tuple, list)) or len(point) != 2:
        raise TypeError(f"{name} must be an (x, y) pair of ints; got {point!r}")
    return check_point(*point, screen)


def move(conn: Display, x: int, y: int) -> None:
    xtest.fake_input(conn, X.MotionNotify, detail=0, root=conn.screen().root, x=x, y=y)


def press(conn: Display, button: int) -> None:
    xtest.fake_input(conn, X.ButtonPress, button)


def release(conn: Display, button: int) -> None:
    xtest.fake_input(conn, X.ButtonRelease, button)


def position(conn: Display) -> tuple[int, int]:
    reply = conn.screen().root.query_pointer()
    return reply.root_x, reply.root_y


def click(conn: Display, button: int, count: int) -> None:
    """Press and release ``button`` ``count`` times, sent in short batches.

    python-xlib builds what it sends by joining every queued request to one
    growing byte string, so a long unflushed queue costs quadratic time
    (30,000 clicks took 16 s); short batches keep it linear, and an
    interrupt lands between two of them.
    """
    for i in range(count):
        press(conn, button)
        release(conn, button)
        if i % (_FLUSH_EVERY // 2) == _FLUSH_EVERY // 2 - 1:
            conn.flush()


def scroll(conn: Display, dy: int, dx: int) -> None:
    """Positive ``dy`` scrolls down (button 5), negative up (4); ``dx`` right (7) / left (6)."""
    for amount, positive, negative in ((dy, 5, 4), (dx, 7, 6)):
        click(conn, positive if amount > 0 else negative, abs(amount))


def release_buttons(conn: Display, keep: set[int] | frozenset[int] = frozenset()) -> None:
    """Release every button the server has down but those in ``keep`` (after an interrupted click or drag)."""
    mask = conn.screen().root.query_pointer().mask
    for button in range(1, 6):
        if mask & (X.Button1Mask << (button - 1)) and button not in keep:
            release(conn, button)
