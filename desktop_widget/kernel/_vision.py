"""Looking at the screen from a script: one pixel, waiting for it to settle, finding an image on it.

Waiting is driven by the X DAMAGE extension: the server tells a private
connection when anything is drawn, and only then is the watched region read
again and compared; a redraw that leaves the same pixels (a clock that did not
change) does not count as a change. Nothing polls on a timer.

Finding an image is OpenCV's ``matchTemplate`` (normalised correlation). On
grey levels it is about ten times faster than on colour, so candidates are
found in grey and the best few are then scored in colour at their exact place:
a button of the same brightness but another colour does not match. The
confidence is that colour score (1.0: identical pixels).
"""

from __future__ import annotations

import contextlib
import os
import select
import time
from collections.abc import Callable, Iterator
from typing import Any

from PIL import Image
from Xlib import X
from Xlib.display import Display
from Xlib.ext import damage

from .. import _options

Box = tuple[int, int, int, int]
#: How many grey-level candidates are checked in colour.
CANDIDATES = 5
#: A watched region is read again at most this often while it is being drawn on.
REGRAB_S = 0.03
#: wait_for_image searches again at most this often while the screen keeps changing.
RETRY_S = 0.1


def _require_cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:  # a dependency; missing only in a broken install
        raise ImportError("d.locate needs OpenCV: `pip install opencv-python-headless`") from exc
    return cv2


def raw(conn: Display, region: Box) -> bytes:
    """The region's pixels as the server holds them (BGRX), for comparing."""
    x, y, w, h = region
    return conn.screen().root.get_image(x, y, w, h, X.ZPixmap, 0xFFFFFFFF).data


def pixel(conn: Display, x: int, y: int) -> tuple[int, int, int]:
    b, g, r = raw(conn, (x, y, 1, 1))[:3]
    return r, g, b


def check_seconds(name: str, value: object, positive: bool = True) -> float:
    return _options.check_seconds(name, value, zero=not positive)


def check_confidence(confidence: object) -> float:
    if not isinstance(confidence, (int, float)) or isinstance(confidence, bool) or not 0 < confidence <= 1:
        raise ValueError(f"confidence must be a number in (0, 1], e.g. 0.95 (1.0: exact); got {confidence!r}")
    return float(confidence)


@contextlib.contextmanager
def changes(connect: Callable[[], Display]) -> Iterator[Callable[[float], bool]]:
    """``wait(timeout) -> bool``: True as soon as anything is drawn on the screen, False on timeout."""
    conn = connect()
    try:
        if not conn.has_extension("DAMAGE"):
            raise RuntimeError("the X server has no DAMAGE extension")
        conn.damage_query_version()  # required before any other DAMAGE request
        root = conn.screen().root
        handle = root.damage_create(damage.DamageReportNonEmpty)
        conn.sync()
        code = conn.extension_event.DamageNotify

        def wait(timeout: float) -> bool:
            deadline = time.monotonic() + timeout
            while True:
                seen = False
                for _ in range(conn.pending_events()):  # reads what has arrived, without blocking
                    seen = conn.next_event().type == code or seen
                if seen:
                    # Re-arm: the next drawing reports again. A round trip, so that the caller's
                    # next read (on another connection) comes after it: drawing between the two is seen.
                    conn.damage_subtract(handle, X.NONE, X.NONE)
                    conn.sync()
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                select.select([conn.fileno()], [], [], remaining)

        yield wait
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def wait_until_stable(connect: Callable[[], Display], region: Box, duration: float, timeout: float) -> None:
    """Return once ``region`` has kept the same pixels for ``duration`` s; TimeoutError after ``timeout``."""
    if duration > timeout:
        raise ValueError(f"duration ({duration:g} s) must not be longer than timeout ({timeout:g} s)")
    start = time.monotonic()
    deadline = start + timeout
    with changes(connect) as changed:
        reader = connect()
        try:
            last = raw(reader, region)
            last_change = time.monotonic()
            while True:
                now = time.monotonic()
                if now - last_change >= duration:
                    return
                if now >= deadline:
                    raise TimeoutError(
                        f"the screen{'' if region[:2] == (0, 0) else f' region {region}'} kept changing: "
                        f"not still for {duration:g} s within {timeout:g} s"
                    )
                if changed(min(deadline, last_change + duration) - now):
                    read_at = time.monotonic()
                    current = raw(reader, region)
                    if current != last:
                        last, last_change = current, read_at
                    # A burst of drawing is read once per REGRAB_S, not once per stroke.
                    time.sleep(max(0.0, read_at + REGRAB_S - time.monotonic()))
        finally:
            reader.close()


def load_image(image: object) -> Image.Image:
    """A PIL image or a path to one, as RGB."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, (str, os.PathLike)):
        with Image.open(os.fspath(image)) as opened:
            return opened.convert("RGB")
    raise TypeError(f"image must be a PIL.Image or a path to an image file; got {type(image).__name__}")


def _bgr(conn: Display, region: Box) -> Any:
    import numpy as np

    _x, _y, w, h = region
    return np.frombuffer(raw(conn, region), np.uint8).reshape(h, w, 4)[:, :, :3]


def _colour_score(patch: Any, template: Any) -> float:
    """Normalised correlation in colour; for a flat template, how close the colours are."""
    import numpy as np

    p = patch.astype(np.float32).reshape(-1, 3)
    t = template.astype(np.float32).reshape(-1, 3)
    p -= p.mean(axis=0)
    t -= t.mean(axis=0)
    denom = float(np.sqrt((p * p).sum() * (t * t).sum()))
    if (t * t).sum() < 1e-3 * t.shape[0]:  # flat template: compare colours directly
        return 1.0 - float(np.abs(patch.astype(np.float32) - template.astype(np.float32)).mean()) / 255.0
    return float((p * t).sum() / denom) if denom > 0 else 0.0


def locate(screen: Any, template: Any, confidence: float) -> tuple[tuple[int, int], float] | None:
    """The best place of ``template`` in ``screen`` (both BGR arrays) and its score, if above ``confidence``."""
    import numpy as np

    cv2 = _require_cv2()
    th, tw = template.shape[:2]
    grey_t = cv2.cvtColor(np.ascontiguousarray(template), cv2.COLOR_BGR2GRAY)
    grey_s = cv2.cvtColor(np.ascontiguousarray(screen), cv2.COLOR_BGR2GRAY)
    if float(grey_t.std()) < 0.5:
        # Flat template (one colour): correlation is undefined; the least squared difference wins.
        scores = -cv2.matchTemplate(grey_s, grey_t, cv2.TM_SQDIFF)
    else:
        scores = np.nan_to_num(cv2.matchTemplate(grey_s, grey_t, cv2.TM_CCOEFF_NORMED), nan=-1.0)
    best: tuple[tuple[int, int], float] | None = None
    for _ in range(CANDIDATES):
        _, top, _, (x, y) = cv2.minMaxLoc(scores)
        if top == -np.inf:
            break
        score = _colour_score(screen[y : y + th, x : x + tw], template)
        if best is None or score > best[1]:
            best = ((x, y), score)
        if score >= 0.999:
            break
        # Suppress this peak's neighbourhood and look at the next one.
        scores[max(0, y - th // 2) : y + th // 2 + 1, max(0, x - tw // 2) : x + tw // 2 + 1] = -np.inf
    return best if best is not None and best[1] >= confidence else None


def find(conn: Display, image: Image.Image, region: Box, confidence: float) -> Box | None:
    """``(x, y, w, h)`` of ``image`` on the screen within ``region``, or None."""
    import numpy as np

    w, h = image.size
    if w > region[2] or h > region[3]:
        raise ValueError(f"the image ({w}x{h}) is larger than the searched area ({region[2]}x{region[3]})")
    template = np.asarray(image)[:, :, ::-1]  # RGB -> BGR, like the screen
    found = locate(_bgr(conn, region), template, confidence)
    if found is None:
        return None
    (x, y), _ = found
    return region[0] + x, region[1] + y, w, h


def wait_for_image(
    connect: Callable[[], Display], image: Image.Image, region: Box, confidence: float, timeout: float
) -> Box:
    """Look again each time the screen is drawn on, until the image shows or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    with changes(connect) as changed:
        reader = connect()
        try:
            while True:
                tried = time.monotonic()
                box = find(reader, image, region, confidence)
                if box is not None:
                    return box
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not changed(remaining):
                    raise TimeoutError(
                        f"the {image.size[0]}x{image.size[1]} image did not show within {timeout:g} s "
                        f"(confidence {confidence:g}; lower it for scaled or anti-aliased content)"
                    )
                # On a screen that never rests (a video, a spinner) search at most every RETRY_S, not flat out.
                time.sleep(max(0.0, min(tried + RETRY_S, deadline) - time.monotonic()))
        finally:
            reader.close()
