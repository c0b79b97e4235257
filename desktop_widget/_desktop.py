"""``Desktop``: one private Linux desktop, owned by this Python process."""

from __future__ import annotations

import weakref
from typing import Any

from . import _options
from ._errors import DesktopStopped
from ._session import Session
from ._widget import DesktopView


class _ViewTrait:
    """Expose a trait of the view on the desktop (``d.view_only = True``)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, desktop: Desktop | None, owner: type) -> Any:
        return self if desktop is None else getattr(desktop.view, self.name)

    def __set__(self, desktop: Desktop, value: Any) -> None:
        setattr(desktop.view, self.name, value)


class Desktop:
    """A private Linux desktop (Xvnc + a session such as XFCE) shown live in the notebook.

    The desktop belongs to this Python process: it stops with :meth:`stop`, at
    the end of a ``with`` block, when the object is garbage collected, when
    the interpreter exits, and within moments if the process is killed.

    Display it (last expression of a cell, or ``display(d)``) for a live view;
    every view connects through the Jupyter server, never a network port.
    """

    view_only = _ViewTrait()
    scale = _ViewTrait()
    height = _ViewTrait()

    def __init__(
        self,
        geometry: tuple[int, int] = (1280, 800),
        session: str = "auto",
        *,
        view_only: bool = False,
        scale: bool = False,
        height: str = "600px",
        frame_rate: int = 60,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 20.0,
    ) -> None:
        options = _options.check_options(geometry, session, frame_rate, cwd, env, timeout)
        # Built before anything starts so that bad view arguments fail early.
        view = DesktopView(view_only=view_only, scale=scale, height=height)
        session_ = Session(options)
        session_.start()
        self._session = session_
        self.view = view
        with view.hold_trait_notifications():
            view._desktop_id = session_.id
            view._ws_path = f"desktop-widget/{session_.id}/"
            view._set_status(session_.state)
        session_.on_state(view._set_status)
        self._finalizer = weakref.finalize(self, session_.stop)

    # -- identity ----------------------------------------------------------
    @property
    def id(self) -> str:
        """The registry id, also the last part of the server route."""
        return self._session.id

    @property
    def display(self) -> str:
        """The X display, e.g. ``":1"``."""
        return self._session.display

    @property
    def env(self) -> dict[str, str]:
        """``DISPLAY`` and ``XAUTHORITY``: what an X client needs to open windows here."""
        return dict(self._session.env)

    @property
    def status(self) -> str:
        """``running``, ``session-exited``, ``stopped`` or ``failed``."""
        return self._session.state

    @property
    def log_path(self) -> str:
        """Where the X server's and the session's output goes."""
        return self._session.log_path

    def _require_running(self) -> None:
        if self._session.state in ("stopped", "failed"):
            raise DesktopStopped(f"desktop {self.id} is {self._session.state}; start a new Desktop()")

    # -- lifecycle ---------------------------------------------------------
    def stop(self) -> None:
        """Stop every process of the desktop and remove its files. Safe to call twice."""
        self._finalizer()

    def restart(self) -> None:
        """Start the session again after it ended (e.g. after logging out of XFCE)."""
        self._require_running()
        self._session.restart_session()

    def __enter__(self) -> Desktop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- display -----------------------------------------------------------
    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.view._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        width, height = self._session.options.geometry
        return f"<Desktop {self.id} display={self.display} {width}x{height} {self.status}>"
