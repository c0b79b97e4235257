"""Submodules that load on first use.

``from desktop_widget import Desktop`` is the first line a person runs, and the
clock is running: anywidget, ipywidgets, python-xlib and Pillow take ~100 ms
to import, about as long as Xvnc takes to start. ``Desktop()`` therefore starts
the desktop's supervisor first and loads them (``load``) while Xvnc starts.
Call sites keep writing ``_x.connect(...)``; the module runs at the first
attribute access (``importlib.util.LazyLoader``) or at ``load``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types

_lock = threading.Lock()


def module(name: str, package: str) -> types.ModuleType:
    """The submodule ``name`` (e.g. ``"._x"``) of ``package``, executed when first used."""
    full = importlib.util.resolve_name(name, package)
    with _lock:
        if full in sys.modules:
            return sys.modules[full]
        spec = importlib.util.find_spec(full)
        spec.loader = importlib.util.LazyLoader(spec.loader)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[full] = mod
        spec.loader.exec_module(mod)
        parent, _, leaf = full.rpartition(".")
        setattr(sys.modules[parent], leaf, mod)
        return mod


def load(*modules: types.ModuleType) -> None:
    """Run lazy modules now, in this thread (before other threads may touch them)."""
    with _lock:
        for mod in modules:
            mod.__dict__  # noqa: B018 - any attribute access executes a lazy module
