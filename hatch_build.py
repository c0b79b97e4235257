"""Build the JS bundle into desktop_widget/static/ when the package is built.

The bundle is not in git; every wheel, sdist and editable install builds it
here (``npm ci`` + ``node build.mjs``). Set ``DESKTOP_WIDGET_SKIP_JS=1`` to use
a bundle that is already there (e.g. one built by ``node js/build.mjs --watch``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

ROOT = Path(__file__).parent
JS = ROOT / "js"
BUNDLE = ROOT / "desktop_widget" / "static" / "widget.js"


def _newest_source() -> float:
    sources = [*JS.glob("*.js"), *JS.glob("*.css"), *JS.glob("*.mjs"), JS / "package-lock.json"]
    return max(p.stat().st_mtime for p in sources if p.exists())


class JSBuildHook(BuildHookInterface):
    PLUGIN_NAME = "desktop-widget-js"

    def initialize(self, version: str, build_data: dict) -> None:
        if not JS.is_dir():  # building a wheel from an sdist that already has the bundle
            return
        if os.environ.get("DESKTOP_WIDGET_SKIP_JS") and BUNDLE.exists():
            return
        if BUNDLE.exists() and BUNDLE.stat().st_mtime >= _newest_source():
            return
        npm = shutil.which("npm")
        node = shutil.which("node")
        if not npm or not node:
            raise RuntimeError("building desktop_widget needs Node.js and npm (`sudo apt-get install nodejs npm`)")
        if not (JS / "node_modules" / "@novnc" / "novnc").is_dir():
            subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS, check=True)
        subprocess.run([node, "build.mjs"], cwd=JS, check=True)
