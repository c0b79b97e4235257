"""Interrupts and a stalled X server, played against a real desktop in a process of its own.

Run as ``python _interrupts.py SCENARIO``; each step prints one JSON line
(``{"step": ..., "ok": ..., "error": ...}``). A step that hangs shows as a
missing line when the test's deadline kills the process.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent))

from desktop_widget import Desktop
from desktop_widget.control import _x
from tests._procs import comm, tree

MAIN = threading.main_thread().ident
T0 = time.monotonic()


def report(step: str, call: Callable[[], object]) -> object:
    started = time.monotonic()
    row: dict[str, object] = {"step": step}
    try:
        value = call()
    except BaseException as exc:
        row.update(ok=False, error=type(exc).__name__, message=str(exc))
        value = exc
    else:
        row.update(ok=True, value=repr(value))
    row["seconds"] = round(time.monotonic() - started, 3)
    print(json.dumps(row), flush=True)
    return value


def later(seconds: float, action: Callable[[], object]) -> None:
    threading.Thread(target=lambda: (time.sleep(seconds), action()), daemon=True).start()


def interrupt() -> None:
    signal.pthread_kill(MAIN, signal.SIGINT)  # what a kernel interrupt does to a running cell
    print(json.dumps({"step": "interrupt", "ok": True, "seconds": round(time.monotonic() - T0, 3)}), flush=True)


def xvnc_of(d: Desktop) -> int:
    return next(p for p in tree(d._session._proc.pid) if comm(p) == "Xvnc")


def state(d: Desktop) -> dict:
    """What an interrupted call may leave behind, read on a connection of its own."""
    conn = _x.connect(d.display, d.env["XAUTHORITY"])
    try:
        first = conn.display.info.min_keycode
        rows = conn.get_keyboard_mapping(first, conn.display.info.max_keycode - first + 1)
        return {
            "keymap": [list(r) for r in rows],
            "keys_down": any(conn.query_keymap()),
            "buttons_down": bool(conn.screen().root.query_pointer().mask & 0x1F00),
        }
    finally:
        conn.close()


def usable(d: Desktop) -> None:
    report("size", lambda: d.size)
    report("key", lambda: d.key("a"))
    report("screenshot", lambda: d.screenshot().size)
    report("type", lambda: d.type("é✓"))


def click() -> None:
    """The issue's case: a kernel interrupt 2 s into ``click(count=30000)``."""
    d = Desktop(session="none", geometry=(640, 480))
    later(2.0, interrupt)
    report("long-click", lambda: d.click(5, 5, count=30_000))  # may finish first now that clicks are linear
    with contextlib.suppress(KeyboardInterrupt):  # then the interrupt comes here
        time.sleep(3)
    after_interrupt(d)


def click_stalled() -> None:
    """An interrupt that surely lands while the clicks are being sent: the X server is stopped for a moment."""
    d = Desktop(session="none", geometry=(640, 480))
    d.click(5, 5)
    xvnc = xvnc_of(d)
    later(0.3, lambda: os.kill(xvnc, signal.SIGSTOP))
    later(1.5, interrupt)
    later(2.0, lambda: os.kill(xvnc, signal.SIGCONT))
    try:
        # Linear clicks are fast (30,000 can end before the stop on an idle machine): enough that the stop surely lands.
        report("long-click", lambda: d.click(5, 5, count=1_000_000))
    finally:
        os.kill(xvnc, signal.SIGCONT)
    after_interrupt(d)


def after_interrupt(d: Desktop) -> None:
    report("buttons", lambda: state(d)["buttons_down"])
    usable(d)
    report("stop", d.stop)


def type_stalled() -> None:
    """Interrupt a long type() while the X server is stopped: its flush is then under way."""
    d = Desktop(session="none", geometry=(640, 480))
    d.type("é")  # the keyboard is set up: the server stops while the text is sent
    before = state(d)
    xvnc = xvnc_of(d)
    later(0.5, lambda: os.kill(xvnc, signal.SIGSTOP))
    later(1.5, interrupt)
    later(2.0, lambda: os.kill(xvnc, signal.SIGCONT))
    try:
        report("long-type", lambda: d.type("ab CD ✓é " * 20_000))
    finally:
        with contextlib.suppress(ProcessLookupError):  # stop() ended it
            os.kill(xvnc, signal.SIGCONT)
    after = state(d)
    report("keymap", lambda: after["keymap"] == before["keymap"])
    report("keys", lambda: after["keys_down"])
    usable(d)
    report("stop", d.stop)


def stalled() -> None:
    """A stopped X server: calls time out (and say which desktop), work again after it continues; stop() returns."""
    _x.DEADLINE = 2.0
    d = Desktop(session="none", geometry=(640, 480))
    d.key("a")  # the keyboard's RECORD connection and the clipboard's thread exist from now on
    d.type("é")
    d.clipboard = "held"
    print(json.dumps({"step": "id", "ok": True, "value": d.id}), flush=True)
    xvnc = xvnc_of(d)
    os.kill(xvnc, signal.SIGSTOP)
    try:
        report("stalled-screenshot", lambda: d.screenshot())
        report("stalled-key", lambda: d.key("b"))
        report("stalled-clipboard", lambda: d.clipboard)
        os.kill(xvnc, signal.SIGCONT)
        usable(d)
        report("clipboard-after", lambda: d.clipboard)
        os.kill(xvnc, signal.SIGSTOP)
        report("stop", d.stop)
    finally:
        with contextlib.suppress(ProcessLookupError):  # stop() ended it
            os.kill(xvnc, signal.SIGCONT)


if __name__ == "__main__":
    {"click": click, "click-stalled": click_stalled, "type-stalled": type_stalled, "stalled": stalled}[sys.argv[1]]()
