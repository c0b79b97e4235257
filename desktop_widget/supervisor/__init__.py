"""The process that owns one desktop's process tree, between its owner (a kernel, or the
Jupyter server) and Xvnc with the session: it starts them, reaps and tears them down.

A process of its own, started as a script by path (``python -I .../_supervisor.py``)
and standard library only, so that it starts in milliseconds: nothing here imports the
rest of the package, and this ``__init__`` is never run by the supervisor itself. The
owner's side of its protocol is ``desktop_widget._session``.
"""
