"""What the Jupyter server loads: the authenticated route to a desktop's RFB socket,
the launcher page and its API, and the one permission check.

It imports only the shared modules at the top of the package (registry,
session, options, spares, page), never ``kernel`` or ``control``: a server
must not load the kernel's stack (anywidget, PIL, Xlib).
"""
