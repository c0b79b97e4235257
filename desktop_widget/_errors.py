"""Errors raised by desktop_widget."""


class DesktopError(RuntimeError):
    """A desktop could not be started, reached or used; the message says how to fix it."""


class DesktopStopped(DesktopError):
    """The desktop was stopped (or its X server exited) and cannot be used any more."""
