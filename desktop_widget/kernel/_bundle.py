"""What ``display(d)`` puts in a notebook output.

A front end shows the richest type it can render: the widget view
(``application/vnd.jupyter.widget-view+json``) where the widget JavaScript
runs, else the image, else the text. So the output carries:

- the widget view, for JupyterLab, Notebook 7, VS Code, and static pages with
  saved widget state (which then show the last frame, see ``_snapshot``);
- ``image/jpeg``: the screen at display time, when it already shows something
  (a stopped desktop: its last frame), for GitHub's preview and nbconvert
  without widget state. A desktop displayed within a second of its start is
  not read (its screen is still blank, and the output must not wait for a
  new X connection);
- ``text/plain``: which desktop, its state, and what to install where when
  the widget front end is missing (the kernel cannot tell whether it is).
"""

from __future__ import annotations

import base64
import time
from typing import Any

from .. import _registry

#: What a reader who sees only text needs to know to see the live view.
_MISSING_FRONT_END = (
    "A live view of it shows here in JupyterLab, Notebook 7 and VS Code. Seeing this text there instead\n"
    "means the Jupyter server's environment lacks the widget front end: `pip install desktop_widget`\n"
    "(or at least anywidget) where the Jupyter server runs, not only in the kernel's environment,\n"
    "then restart the server and reload the page."
)


#: A desktop younger than this (seconds) has drawn nothing worth an image yet.
_FRESH = 1.0


def text(desktop: Any, frames: Any, info: Any = None) -> str:
    """A readable ``text/plain``: the desktop, its state, and what a live view needs."""
    status = desktop.status
    name = info.name if info is not None and status in ("running", "session-exited") else ""
    label = f"Desktop {desktop.id}" + (f" ({name!r})" if name else "")
    if status in ("running", "session-exited"):
        size = frames.screen_size()  # (no new X connection just for this)
        where = f" on display {desktop.display}" + (f" ({size[0]}x{size[1]})" if size else "")
        state = "running" if status == "running" else "running, its session has ended"
        return f"{label}: {state}{where}.\n{_MISSING_FRONT_END}"
    kept = " Its last frame is kept with the widget." if desktop.view._last_frame else ""
    return f"{label}: {status}.{kept}"


def mimebundle(desktop: Any, frames: Any, **kwargs: Any) -> Any:
    """The output of ``display(desktop)``: widget view, image (if any), text."""
    bundle = desktop.view._repr_mimebundle_(**kwargs)
    data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
    data = dict(data or {})
    info = _registry.read(desktop.id)
    if info is not None and frames.changed(watch=time.time() - info.started > _FRESH):
        frames.refresh(skip_blank=True)
    view = desktop.view
    if view._last_frame:
        data[view._last_frame_mime] = base64.b64encode(view._last_frame).decode("ascii")
    data["text/plain"] = text(desktop, frames, info)
    return (data, metadata) if metadata else data
