"""X clients that act on one desktop's X server: keys, pointer, windows, screen, clipboard, RFB.

Plain functions (and a few stateful helpers) over a python-xlib connection;
they know nothing of ``Desktop``, sessions or views. The kernel (``kernel``)
is their only user.
"""
