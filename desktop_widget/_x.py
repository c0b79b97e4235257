"""Connections to a desktop's X server from the kernel.

python-xlib and libX11 (behind mss) read the cookie file from ``XAUTHORITY``
at connect time only, and one kernel may talk to several desktops with
different cookies; so ``XAUTHORITY`` is set just for the moment of
connecting, under a lock.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

import Xlib.threaded  # noqa: F401 - real locks: the clipboard thread shares its connection
from Xlib import display as xdisplay

_environ_lock = threading.Lock()


@contextlib.contextmanager
def swap_environ(values: dict[str, str]) -> Iterator[None]:
    """Set ``values`` in ``os.environ`` for the block, then restore what was there."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def environ(values: dict[str, str]) -> Iterator[None]:
    """``swap_environ`` for a moment, one thread at a time."""
    with _environ_lock, swap_environ(values):
        yield


def connect(display: str, xauthority: str) -> xdisplay.Display:
    """A new python-xlib connection to ``display`` authenticated by ``xauthority``."""
    with environ({"XAUTHORITY": xauthority}):
        return xdisplay.Display(display)
