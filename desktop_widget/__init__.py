"""A real Linux desktop inside a notebook cell, driven from Python.

>>> from desktop_widget import Desktop
>>> d = Desktop()      # a private desktop; show it with `d` or display(d)
"""

from __future__ import annotations

from ._desktop import Desktop
from ._errors import DesktopError, DesktopStopped
from ._registry import DesktopInfo

__version__ = "0.1.0"
__all__ = ["Desktop", "DesktopError", "DesktopInfo", "DesktopStopped", "list_desktops"]


def _jupyter_server_extension_points() -> list[dict]:
    # The server side lives in its own module so kernels never import it.
    return [{"module": "desktop_widget._server"}]


def list_desktops() -> list[DesktopInfo]:
    """Every desktop of this user that is running now, from any kernel or server."""
    from ._registry import list_entries

    return list_entries()
