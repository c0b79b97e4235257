"""The shipped notebooks run top to bottom in a real kernel."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from PIL import Image

from tests._cells import near

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"


#: Put before the demo's last cell: a headless run is faster than XFCE and xfwm4, and the
#: test wants the terminal (white at 200,150) on the screen when the desktop stops.
TERMINAL_DRAWN = """\
import time
deadline = time.monotonic() + 60
while d.pixel(200, 150) != (255, 255, 255):
    assert time.monotonic() < deadline, "the terminal was never drawn"
    time.sleep(0.05)
"""


def run(name: str, before_last: str = "") -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    if before_last:
        nb.cells.insert(len(nb.cells) - 1, nbformat.v4.new_code_cell(before_last))
    NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        store_widget_state=True,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    ).execute()
    return nb


def outputs(nb: nbformat.NotebookNode) -> list[dict]:
    return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]


def test_automation_notebook():
    nb = run("automation.ipynb")
    images = [o for o in outputs(nb) if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # the terminal's window and the whole screen
    texts = "\n".join(o["data"].get("text/plain", "") for o in outputs(nb) if "data" in o)
    assert "(1280, 720)" in texts
    assert "'copied from the kernel'" in texts
    assert "'stopped'" in texts


@pytest.mark.parametrize("name", ["demo.ipynb"])
def test_demo_notebook_runs(name, artifacts):
    nb = run(name, before_last=TERMINAL_DRAWN)
    widgets = [o for o in outputs(nb) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widgets) == 1
    # The notebook ends with d.stop(), and what readers of a saved copy see is its last frame, not nothing:
    # the desktop with the terminal (white, at 40,40) in the widget state, and d.snapshot()'s image.
    state = nb.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]
    (view,) = [s for s in state.values() if "_desktop_id" in s["state"]]
    assert view["state"]["status"] == "stopped"
    (frame,) = [b for b in view["buffers"] if b["path"] == ["_last_frame"]]
    image = Image.open(io.BytesIO(base64.b64decode(frame["data"]))).convert("RGB")
    image.save(artifacts / "demo-last-frame.png")
    assert near(image.getpixel((200, 150)), (255, 255, 255)), image.getpixel((200, 150))
    assert len(image.getcolors(maxcolors=100_000) or range(100_001)) > 100, "the frame is (nearly) blank"
    assert "image/png" in outputs(nb)[-1]["data"]  # d.snapshot()


def test_teaching_notebook():
    demo = NOTEBOOKS / "teaching-demo.mp4"
    demo.unlink(missing_ok=True)
    try:
        nb = run("teaching.ipynb")
        assert demo.stat().st_size > 0
    finally:
        demo.unlink(missing_ok=True)
    views = [o["data"] for o in outputs(nb) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(views) == 2  # the desktop and its mirror
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    mirror = state[views[1]["application/vnd.jupyter.widget-view+json"]["model_id"]]["state"]
    assert mirror["view_only"] is True
    assert (
        mirror["_desktop_id"]
        == state[views[0]["application/vnd.jupyter.widget-view+json"]["model_id"]]["state"]["_desktop_id"]
    )
    videos = [o for o in outputs(nb) if '<video src="data:video/mp4;base64,' in o.get("data", {}).get("text/html", "")]
    assert len(videos) == 1  # the recording, inline
    texts = "\n".join(o["data"].get("text/plain", "") for o in outputs(nb) if "data" in o)
    assert "('stopped', 'stopped')" in texts
