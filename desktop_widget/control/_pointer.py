"""The mouse, through XTEST: no subprocess per event."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from typing import Any

from Xlib import X
from Xlib.display import Display
from Xlib.ext import xtest

from . import _screen

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


def check_positive(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int; got {value!r}")
    return value


def check_wheel(dy: object, dx: object) -> None:
    for name, value in (("dy", dy), ("dx", dx)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int (wheel clicks); got {value!r}")


def at(conn: Display, x: int | None, y: int | None) -> tuple[int, int]:
    """``(x, y)`` checked against the screen, or where the pointer is when both are None."""
    if x is None and y is None:
        return position(conn)
    return check_point(x, y, _screen.size(conn))


def click_at(
    conn: Display, x: int | None, y: int | None, button: int, count: int, holding: AbstractContextManager[Any]
) -> None:
    """Move to ``(x, y)`` (or stay) and click ``count`` times, with ``holding`` (keys held) around it."""
    point = at(conn, x, y)
    with holding:
        move(conn, *point)
        click(conn, button, count)
    conn.sync()


def press_at(conn: Display, x: int | None, y: int | None, button: int, down: bool) -> None:
    """Move to ``(x, y)`` (or stay) and press (``down``) or release ``button``."""
    point = at(conn, x, y)
    move(conn, *point)
    (press if down else release)(conn, button)
    conn.sync()


def scroll_at(
    conn: Display, x: int | None, y: int | None, dy: int, dx: int, holding: AbstractContextManager[Any]
) -> None:
    if x is not None or y is not None:
        move(conn, *at(conn, x, y))
    with holding:
        scroll(conn, dy, dx)
    conn.sync()


def drag(conn: Display, start: object, end: object, button: int, steps: int, duration: float) -> None:
    """``Desktop.drag``: the button is released however the moves end."""
    size = _screen.size(conn)
    x0, y0 = check_pair("start", start, size)
    x1, y1 = check_pair("end", end, size)
    move(conn, x0, y0)
    press(conn, button)
    try:
        for i in range(1, steps + 1):
            conn.sync()
            time.sleep(duration / steps)
            move(conn, x0 + (x1 - x0) * i // steps, y0 + (y1 - y0) * i // steps)
    finally:
        release(conn, button)
        conn.sync()


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
