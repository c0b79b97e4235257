"""Checking the last frame as a page shows it (JupyterLab, a static HTML export)."""

from __future__ import annotations

import io

from PIL import Image

from tests._cells import PINK, near


def assert_frame_shows_window(image, window: tuple[int, ...]) -> None:
    """The <img> of a view's last frame (a Playwright locator) shows the PINK window where the cell put it.

    Checked in a screenshot of the element, so what is tested is what a
    reader sees: screen pixels map to frame pixels, to CSS pixels of the
    element (``object-fit: contain`` letterboxes the frame), to device pixels.
    """
    x, y, w, h, screen_w, _screen_h = window
    image.evaluate("img => img.decode()")
    shot = Image.open(io.BytesIO(image.screenshot())).convert("RGB")
    rect = image.evaluate(
        """img => {
            const s = Math.min(img.clientWidth / img.naturalWidth, img.clientHeight / img.naturalHeight);
            return {x: (img.clientWidth - img.naturalWidth * s) / 2, y: (img.clientHeight - img.naturalHeight * s) / 2,
                    scale: s, natural: img.naturalWidth, css_width: img.clientWidth};
        }"""
    )
    ratio = shot.width / rect["css_width"]
    per_screen_px = rect["natural"] / screen_w * rect["scale"] * ratio

    def at(px: float, py: float) -> tuple[int, int, int]:
        return shot.getpixel(
            (round(rect["x"] * ratio + px * per_screen_px), round(rect["y"] * ratio + py * per_screen_px))
        )

    assert near(at(x + w / 2, y + h / 2), PINK), f"the window's middle is {at(x + w / 2, y + h / 2)} on the page"
    for px, py in ((x - 15, y + h / 2), (x + w + 15, y + h / 2), (x + w / 2, y - 15), (x + w / 2, y + h + 15)):
        assert not near(at(px, py), PINK), f"({px}, {py}) is pink outside the window"
