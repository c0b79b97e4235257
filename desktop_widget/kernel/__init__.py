"""What runs in the notebook's kernel: the ``Desktop`` API and everything it owns there.

The widget and its comm pump, the last frame, recordings, screen matching, the
computer-use tool and the page of ``Desktop.serve()``. It drives a desktop
through ``control`` and starts it through the shared ``_session``. Nothing in
``server`` imports it: the Jupyter server never loads anywidget, PIL or Xlib.
"""
