"""A real Linux desktop inside a notebook cell, driven from Python.

>>> from desktop_widget import Desktop
>>> d = Desktop()      # a private desktop; show it with `d` or display(d)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._errors import DesktopError, DesktopStopped

if TYPE_CHECKING:
    from ._registry import DesktopInfo
    from .kernel._desktop import Desktop

__version__ = "0.1.0"
__all__ = ["Desktop", "DesktopError", "DesktopInfo", "DesktopStopped", "list_desktops"]

#: Public names imported on first use. The Jupyter server imports this package
#: to find its extension and the launcher; it must not load the kernel's stack
#: (anywidget, ipywidgets, IPython, PIL, Xlib) for that.
_LAZY = {"Desktop": ".kernel._desktop", "DesktopInfo": "._registry"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def _jupyter_server_extension_points() -> list[dict]:
    # The server side lives in its own module so kernels never import it.
    return [{"module": "desktop_widget.server._server"}]


def list_desktops() -> list[DesktopInfo]:
    """Every desktop of this user that is running now, from any kernel or server."""
    from ._registry import list_entries

    return list_entries()
