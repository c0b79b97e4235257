"""What keeping the last frame costs: per refresh, per idle cell, and in a saved notebook.

Runs notebooks in a real kernel (nbclient with ``store_widget_state``, as
``nbconvert --execute`` does), so a refresh includes sending the frame over
the widget's comm. Prints a Markdown table; nothing here asserts.

    .venv/bin/python benchmarks/last_frame.py [--trials 30]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import summary
from _report import fmt

#: One kernel per case: start a desktop, let it draw, then measure in the kernel.
CELLS = [
    """\
import json, time
from desktop_widget import Desktop
from desktop_widget.kernel import _snapshot
d = Desktop(session={session!r}, geometry={geometry!r})
d""",
    # XFCE draws its wallpaper and panel within a few seconds.
    "time.sleep({settle})",
    """\
frames = d._resources.frames
refresh = []
for _ in range({trials}):
    t = time.perf_counter(); frames.refresh(); refresh.append((time.perf_counter() - t) * 1000)
shot = []
for _ in range({trials}):
    t = time.perf_counter(); d.screenshot(); shot.append((time.perf_counter() - t) * 1000)
idle = []
frames.changed(); _snapshot._after_cell()
for _ in range({trials}):
    t = time.perf_counter(); _snapshot._after_cell(); idle.append((time.perf_counter() - t) * 1000)
print("RESULT", json.dumps({{"refresh_ms": refresh, "screenshot_ms": shot, "idle_cell_ms": idle, "frame_bytes": len(d.view._last_frame)}}))""",
]

CASES = [
    ("light WM, xterm", "wm", (1280, 800), 1, "xterm -geometry 90x24+40+40"),
    ("XFCE, 1280x800", "xfce", (1280, 800), 5, None),
    ("XFCE, 1920x1080 (scaled to 1280)", "xfce", (1920, 1080), 5, None),
]


def run_case(session: str, geometry: tuple[int, int], settle: float, app: str | None, trials: int) -> dict:
    cells = [c.format(session=session, geometry=geometry, settle=settle, trials=trials) for c in CELLS]
    if app:
        cells.insert(1, f"app = d.launch({app!r}); d.wait_for_window(pid=app.pid)")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    with tempfile.TemporaryDirectory() as tmp:
        NotebookClient(nb, timeout=300, kernel_name="python3", store_widget_state=True).execute()
        text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
        result = json.loads(text.split("RESULT ", 1)[1].splitlines()[0])
        path = Path(tmp) / "nb.ipynb"
        nbformat.write(nb, str(path))
        saved = path.stat().st_size
        state = nb.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]
        view = next(s for s in state.values() if "_desktop_id" in s["state"])
        frame_json = sum(len(json.dumps(b)) for b in view.get("buffers", []) if b["path"] == ["_last_frame"])
        images = sum(
            len(o["data"][m])
            for c in nb.cells
            for o in c.get("outputs", [])
            for m in ("image/jpeg", "image/png")
            if m in o.get("data", {})
        )
    return {
        "refresh_ms": summary(result["refresh_ms"], 1),
        "screenshot_ms": summary(result["screenshot_ms"], 1),
        "idle_cell_ms": summary(result["idle_cell_ms"], 3),
        "frame_bytes": result["frame_bytes"],
        "frame_in_notebook_bytes": frame_json,
        "display_image_bytes": images,
        "notebook_bytes": saved,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    args = parser.parse_args(argv)
    rows = []
    for label, session, geometry, settle, app in CASES:
        r = run_case(session, geometry, settle, app, args.trials)
        rows.append(
            f"| {label} | {fmt(r['refresh_ms'], digits=1)} | {fmt(r['screenshot_ms'], digits=1)} "
            f"| {fmt(r['idle_cell_ms'], digits=3)} "
            f"| {r['frame_bytes'] // 1000} KB "
            f"| {r['frame_in_notebook_bytes'] // 1000} KB | {r['display_image_bytes'] // 1000} KB "
            f"| {r['notebook_bytes'] // 1000} KB |"
        )
    print(
        "| screen | refresh (ms) | reference: d.screenshot() (ms) | post_run_cell, nothing changed (ms) | frame "
        "| frame in the .ipynb (base64) "
        "| display-time image in the output | whole saved .ipynb |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
