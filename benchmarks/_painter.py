"""Repaint a large override-redirect X window at a fixed rate: ``python _painter.py MODE FPS SECONDS X Y W H``.

MODE ``solid`` fills the window with the next colour of a 6-colour cycle (so
every frame differs from the one before); ``noise`` copies the next of 8
random-pixel pixmaps (uploaded once, before the clock starts) onto the
window, so that painting costs the X server a copy and this process nothing:
on 2 cores a painter that uploads 2.6 MB a frame competes with what it
measures. DISPLAY and XAUTHORITY come from the environment.
Prints one JSON line: frames painted and how many missed their deadline.
"""

from __future__ import annotations

import json
import os
import sys
import time

from Xlib import X, display

COLOURS = [0xFF3366, 0x33CC66, 0x3366FF, 0xFFCC00, 0x00CCCC, 0xCC33FF]


def main() -> None:
    mode, fps, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    x, y, w, h = (int(v) for v in sys.argv[4:8])
    conn = display.Display()
    screen = conn.screen()
    window = screen.root.create_window(
        x, y, w, h, 0, screen.root_depth, X.InputOutput, X.CopyFromParent, background_pixel=0, override_redirect=True
    )
    window.map()
    gc = window.create_gc(foreground=0)
    conn.sync()
    pixmaps = []
    if mode == "noise":
        stripe = max(1, 60000 // (w * 4))  # rows per PutImage request (python-xlib has no BIG-REQUESTS)
        for _ in range(8):
            pixmap = window.create_pixmap(w, h, screen.root_depth)
            data = os.urandom(w * h * 4)
            for row in range(0, h, stripe):
                n = min(stripe, h - row)
                pixmap.put_image(gc, 0, row, w, n, X.ZPixmap, 24, 0, data[row * w * 4 : (row + n) * w * 4])
            pixmaps.append(pixmap)
        conn.sync()
    period = 1.0 / fps
    start = time.monotonic()
    painted = late = 0
    print(json.dumps({"event": "start", "t": time.time()}), flush=True)
    while True:
        deadline = start + painted * period
        now = time.monotonic()
        if now - start >= seconds:
            break
        if deadline > now:
            time.sleep(deadline - now)
        elif now - deadline > period:
            late += 1
        if mode == "solid":
            gc.change(foreground=COLOURS[painted % len(COLOURS)])
            window.fill_rectangle(gc, 0, 0, w, h)
        else:
            window.copy_area(gc, pixmaps[painted % len(pixmaps)], 0, 0, w, h, 0, 0)
        conn.sync()
        painted += 1
    elapsed = time.monotonic() - start
    for pixmap in pixmaps:
        pixmap.free()
    window.destroy()
    conn.sync()
    print(json.dumps({"event": "done", "painted": painted, "late": late, "seconds": round(elapsed, 3)}), flush=True)


if __name__ == "__main__":
    main()
