"""The last frame: kept with the widget, in saved notebooks, after each cell that changed the screen."""

from __future__ import annotations

import base64
import io
import json
import re
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from PIL import Image

from desktop_widget import Desktop, DesktopStopped, _registry
from desktop_widget.control import _x
from desktop_widget.kernel import _snapshot
from tests._cells import DEMO, PINK, near, pixels_cell, write_notebook

PIXELS = pixels_cell("dw-test: pixels")
WINDOW = re.compile(r"WINDOW (\d+) (\d+) (\d+) (\d+) SCREEN (\d+) (\d+)")

#: Recolours the PINK window of PIXELS (in the same kernel): a change of the screen.
RECOLOUR = """\
pink.change_attributes(background_pixel=0x3366FF)
pink.clear_area()
xd.sync()
"""

COUNT = """\
from desktop_widget.kernel import _snapshot
import time
frames = d._resources.frames
start = frames.refreshes
"""


def paint(d: Desktop, x: int, y: int, w: int, h: int) -> object:
    """Map a PINK window at (x, y, w, h); it lasts as long as the connection returned (or the desktop)."""
    from Xlib import X

    conn = _x.connect(d.display, d.env["XAUTHORITY"])
    screen = conn.screen()
    window = screen.root.create_window(
        x,
        y,
        w,
        h,
        0,
        screen.root_depth,
        X.InputOutput,
        X.CopyFromParent,
        background_pixel=0xFF3366,
        override_redirect=True,
    )
    window.map()
    conn.sync()
    return conn


def execute(path: Path) -> nbformat.NotebookNode:
    """Run the notebook headless as ``nbconvert --execute --ExecutePreprocessor.store_widget_state=True`` does; save it."""
    nb = nbformat.read(str(path), as_version=4)
    NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        store_widget_state=True,
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    nbformat.write(nb, str(path))
    return nb


def saved_frame(path: Path) -> tuple[Image.Image, dict]:
    """The last frame in the saved notebook's widget state (read back from the file), and the view's state."""
    nb = json.loads(path.read_text())
    states = nb["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    views = [s for s in states.values() if "_desktop_id" in s["state"]]
    assert len(views) == 1, [s["model_name"] for s in states.values()]
    buffers = {tuple(b["path"]): b for b in views[0].get("buffers", [])}
    assert ("_last_frame",) in buffers, f"no frame in the saved widget state; buffers: {list(buffers)}"
    frame = buffers[("_last_frame",)]
    assert frame["encoding"] == "base64"
    return Image.open(io.BytesIO(base64.b64decode(frame["data"]))).convert("RGB"), views[0]["state"]


def window_of(nb: nbformat.NotebookNode) -> tuple[int, ...]:
    text = "".join(o.get("text", "") for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs)
    return tuple(int(n) for n in WINDOW.search(text).groups())


def assert_pink_window(frame: Image.Image, window: tuple[int, ...]) -> None:
    """The frame shows the PINK window where the cell put it, and not around it."""
    x, y, w, h, screen_w, screen_h = window
    assert frame.width <= _snapshot.MAX_WIDTH
    sx, sy = frame.width / screen_w, frame.height / screen_h

    def at(px: float, py: float) -> tuple[int, int, int]:
        return frame.getpixel((round(px * sx), round(py * sy)))

    assert near(at(x + w / 2, y + h / 2), PINK), at(x + w / 2, y + h / 2)
    assert near(at(x + 8, y + 8), PINK), at(x + 8, y + 8)
    for px, py in ((x - 12, y + h / 2), (x + w + 12, y + h / 2), (x + w / 2, y - 12), (x + w / 2, y + h + 12)):
        assert not near(at(px, py), PINK), f"({px}, {py}) is pink outside the window"


def test_a_stopped_desktop_keeps_its_last_frame_in_the_saved_notebook(tmp_path):
    path = tmp_path / "stopped.ipynb"
    write_notebook(path, DEMO, PIXELS, "d.stop()\nprint('STOPPED', d.status)")
    nb = execute(path)
    frame, state = saved_frame(path)
    assert state["status"] == "stopped"
    assert state["_last_frame_mime"] == "image/jpeg"
    assert state["_last_frame_time"] > 0
    assert_pink_window(frame, window_of(nb))
    frame.save(tmp_path / "frame.png")


def test_a_desktop_left_running_keeps_the_frame_of_its_last_cell(tmp_path):
    """No stop(): the kernel exits with the desktop running; the frame came from the painting cell's end."""
    path = tmp_path / "running.ipynb"
    write_notebook(path, DEMO, PIXELS)
    nb = execute(path)
    frame, state = saved_frame(path)
    assert state["status"] == "running"
    assert_pink_window(frame, window_of(nb))


def test_a_cell_that_changes_the_screen_refreshes_the_frame_once(tmp_path, artifacts):
    path = tmp_path / "cells.ipynb"
    write_notebook(
        path,
        DEMO,
        PIXELS,
        COUNT,
        "x = 1  # changes nothing",
        "print('IDLE', frames.refreshes - start)",
        RECOLOUR,
        "print('CHANGED', frames.refreshes - start)",
        # What the hook costs when nothing changed (measured, not asserted).
        "costs = []\nfor _ in range(50):\n    t = time.perf_counter(); _snapshot._after_cell()\n"
        "    costs.append(time.perf_counter() - t)\nprint('COST-MS', sorted(costs)[25] * 1000)",
    )
    nb = execute(path)
    text = "".join(o.get("text", "") for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs)
    assert "IDLE 0" in text, text
    assert "CHANGED 1" in text, text
    cost = float(re.search(r"COST-MS ([\d.e-]+)", text).group(1))
    (artifacts / "snapshot-idle-cell-cost.txt").write_text(f"post_run_cell with nothing changed: {cost:.3f} ms\n")


def test_display_bundle_has_readable_text_and_the_screen(tmp_path):
    with Desktop(session="none", geometry=(800, 600)) as d:
        bundle = d._repr_mimebundle_()
        # Nothing drawn yet: no image of a blank screen.
        assert "image/jpeg" not in bundle
        assert "application/vnd.jupyter.widget-view+json" in bundle
        text = bundle["text/plain"]
        # Displayed as it starts: nothing read from its screen (not even its size) to keep the output quick.
        assert text.startswith(f"Desktop {d.id}: running on display {d.display}.\n")
        assert "pip install desktop_widget" in text
        assert "Jupyter server" in text
        assert "object at 0x" not in text
        _painter = paint(d, 100, 100, 200, 100)
        _snapshot._after_cell()  # what IPython runs after each cell
        bundle = d._repr_mimebundle_()
        assert bundle["text/plain"].startswith(f"Desktop {d.id}: running on display {d.display} (800x600).\n")
        shown = Image.open(io.BytesIO(base64.b64decode(bundle["image/jpeg"]))).convert("RGB")
        assert shown.size == (800, 600)
        assert near(shown.getpixel((200, 150)), PINK)
        d.stop()
        bundle = d._repr_mimebundle_()
        assert bundle["text/plain"] == f"Desktop {d.id}: stopped. Its last frame is kept with the widget."
        assert "image/jpeg" in bundle


def test_snapshot_returns_the_kept_frame_also_after_stop():
    d = Desktop(session="none", geometry=(640, 480))
    try:
        _painter = paint(d, 10, 10, 100, 50)
        image = d.snapshot()
        assert image.size == (640, 480)
        assert near(image.getpixel((60, 35)), PINK)
        assert not near(image.getpixel((300, 300)), PINK)
    finally:
        d.stop()
    kept = d.snapshot()
    assert near(kept.getpixel((60, 35)), PINK)


def test_snapshot_of_a_desktop_that_never_drew_anything_after_stop():
    d = Desktop(session="none", geometry=(640, 480))
    d.view._last_frame = b""
    d._finalizer()  # stop without the grab that stop() takes
    d._session.stop()
    with pytest.raises(DesktopStopped, match="no frame of it was kept"):
        d.snapshot()


def test_encode_caps_width_and_bytes():
    noise = Image.effect_noise((2560, 1600), 120).convert("RGB")
    data, mime = _snapshot.encode(noise)
    image = Image.open(io.BytesIO(data))
    assert mime == "image/jpeg"
    assert image.size == (1280, 800)
    assert len(data) <= _snapshot.MAX_BYTES


def test_display_reads_a_desktop_that_is_not_fresh_without_any_cell_hook():
    """display(d) in a later cell of the same script or cell: the screen is read at display time."""
    with Desktop(session="none", geometry=(640, 480)) as d:
        _painter = paint(d, 300, 200, 100, 80)
        started = _registry.read(d.id).started
        while time.time() - started <= 1.5:  # older than a desktop that is still drawing its first frame
            time.sleep(0.05)
        bundle = d._repr_mimebundle_()
        shown = Image.open(io.BytesIO(base64.b64decode(bundle["image/jpeg"]))).convert("RGB")
        assert near(shown.getpixel((350, 240)), PINK)
        assert not near(shown.getpixel((100, 100)), PINK)


def test_a_desktop_stopped_elsewhere_costs_later_cells_nothing():
    """Stopped by another process (or its idle timeout): the hook stops watching it, the frame stays."""
    d = Desktop(session="none", geometry=(640, 480))
    _painter = paint(d, 10, 100, 100, 50)  # across the blank check's first row (y = 80)
    frames = d._resources.frames
    assert frames.refresh_if_changed()
    d._session.stop()  # not d.stop(): the kernel side is not told first
    assert not frames.refresh_if_changed()
    assert frames not in _snapshot._keepers
    assert near(d.snapshot().getpixel((60, 125)), PINK)
    d.stop()


def test_changes_made_between_cells_are_kept_and_sent_again_at_the_next_cell_end(monkeypatch):
    """What a person does in a live view between cells: a background refresh (throttled), then one at the next cell end.

    The second one is for nbclient, which drops messages that do not belong to the cell it runs.
    """
    monkeypatch.setattr(_snapshot, "WATCH_EVERY", 0.05)
    monkeypatch.setattr(_snapshot, "BETWEEN_CELLS", 0.2)
    d = Desktop(session="none", geometry=(640, 480))
    try:
        frames = d._resources.frames
        _snapshot._after_cell()  # the cell that started the desktop ends: watching begins (blank: no frame)
        _snapshot._watch_between_cells()  # (started by the cell hooks in a kernel)
        _painter = paint(d, 200, 150, 200, 150)
        deadline = time.monotonic() + 10
        while frames.refreshes == 0:
            assert time.monotonic() < deadline, "no frame was taken between cells"
            time.sleep(0.02)
        assert near(d.snapshot().getpixel((300, 225)), PINK)
        count = frames.refreshes
        # Throttled: another change right away waits for BETWEEN_CELLS.
        monkeypatch.setattr(_snapshot, "BETWEEN_CELLS", 600)
        _painter.screen().root.create_window(0, 0, 10, 10, 0, 24, 1, 0, background_pixel=0xFFFFFF).map()
        _painter.sync()
        frames.refresh_between_cells()
        assert frames.refreshes == count
        # The next cell end sends a frame again, once.
        _snapshot._after_cell()
        assert frames.refreshes == count + 1
        _snapshot._after_cell()
        assert frames.refreshes == count + 1
    finally:
        d.stop()
    thread = _snapshot._watching[0] if _snapshot._watching else None
    deadline = time.monotonic() + 10
    while thread is not None and thread.is_alive() and not _snapshot._keepers:
        assert time.monotonic() < deadline, "the watching thread outlived the last desktop"
        time.sleep(0.02)


def test_a_desktop_that_never_drew_keeps_its_blank_last_frame_at_stop():
    """Blank screens are skipped while a desktop starts, but its last moment is kept as it was."""
    d = Desktop(session="none", geometry=(320, 240))
    d.stop()
    image = d.snapshot()
    assert image.size == (320, 240)
    assert len(image.getcolors(maxcolors=64) or ()) <= 3  # one colour (JPEG may shade it)
