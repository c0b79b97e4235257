"""Notebook cells shared by the browser tests (JupyterLab, JupyterHub)."""

from __future__ import annotations

from pathlib import Path

import nbformat

#: An unusual colour that nothing on a bare openbox desktop shows by chance.
PINK = (255, 51, 102)
#: JPEG and colour conversion may move each channel a little.
TOLERANCE = 12

DEMO = 'from desktop_widget import Desktop; d = Desktop(session="wm"); d'


def pixels_cell(marker: str) -> str:
    """A cell that maps a PINK override-redirect window in the middle of ``d`` and prints where."""
    return f"""\
# {marker}
import os
import Xlib.X
import Xlib.display
os.environ.update(d.env)
xd = Xlib.display.Display(d.display)
screen = xd.screen()
W, H = screen.width_in_pixels, screen.height_in_pixels
x, y, w, h = W // 2 - 60, H // 2 - 40, 120, 80
pink = screen.root.create_window(
    x, y, w, h, 0, screen.root_depth, Xlib.X.InputOutput, Xlib.X.CopyFromParent,
    background_pixel=0xFF3366, override_redirect=True,
)
pink.map()
xd.sync()
print("WINDOW", x, y, w, h, "SCREEN", W, H)
"""


def near(rgb: tuple[int, ...], expected: tuple[int, ...]) -> bool:
    return all(abs(a - b) <= TOLERANCE for a, b in zip(rgb, expected, strict=True))


def write_notebook(path: Path, *code: str, markdown: str = "") -> None:
    """A notebook for the python3 kernel with these code cells (and an optional markdown cell last)."""
    cells = [nbformat.v4.new_code_cell(source) for source in code]
    if markdown:
        cells.append(nbformat.v4.new_markdown_cell(markdown))
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, str(path))
