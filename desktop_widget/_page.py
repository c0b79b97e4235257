"""The HTML of the full-page view: one template for the launcher page and for ``Desktop.serve()``.

Kept apart from ``_launcher`` (which imports jupyter_server) so that kernels
serving a page never import the server side.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from ._options import ViewOptions

#: The built view (js/build.mjs): the widget's module and the full page's, with their stylesheets.
STATIC = Path(__file__).with_name("static")

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="{widget_css}">
<link rel="stylesheet" href="{css}">
<script id="jupyter-config-data" type="application/json">{config}</script>
</head>
<body>
<div id="dw-page"></div>
<script type="module" src="{js}"></script>
</body>
</html>
"""


def page_html(config: dict, static: str, title: str = "Desktop") -> str:
    """The page that runs ``page.js`` with ``config``; ``static`` is the URL prefix of the built files."""
    config = {**config, "view": {"quality": ViewOptions.quality, "compression": ViewOptions.compression}}
    return _PAGE.format(
        title=html.escape(title),
        # "</" inside the JSON would end the <script> element early.
        config=json.dumps(config).replace("</", "<\\/"),
        css=html.escape(static + "page.css"),
        widget_css=html.escape(static + "widget.css"),
        js=html.escape(static + "page.js"),
    )
