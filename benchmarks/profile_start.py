#!/usr/bin/env python
"""Where a desktop's start-up time goes, without a browser: a profile to act on, not a benchmark.

    .venv/bin/python benchmarks/profile_start.py              # XFCE, 5 runs, medians
    .venv/bin/python benchmarks/profile_start.py -n 3 --session wm

Starts desktops the way the kernel does (``desktop_widget._session.Session``)
and, from the moment ``start()`` is called, records:

* when each process of the desktop started (``/proc/<pid>/stat``, ±10 ms);
* when each X client mapped its first window (SubstructureNotify on the root
  window, the client found by ``_NET_WM_PID`` on the window or its child);
* when the screen first showed something other than black, and when XFCE's top
  panel was drawn (its background colour across most of row 13 of the screen).

Prints one table of medians (ms). See benchmarks/README.md ("Profiling start-up").
"""

from __future__ import annotations

import argparse
import collections
import logging
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _common import CLK_TCK, comm, save_root_png, start_ticks, tree  # noqa: E402

from desktop_widget import _options, _session, _x  # noqa: E402

PANEL_RGB = (246, 245, 244)  # the default XFCE panel's background (the Adwaita-like theme of Debian 12)
PANEL_Y = 13
TOLERANCE = 10


def _close(a: tuple[int, int, int], b: tuple[int, int, int]) -> bool:
    return all(abs(x - y) <= TOLERANCE for x, y in zip(a, b, strict=True))


def _row(root, y: int, width: int) -> list[tuple[int, int, int]]:
    from Xlib import X

    data = root.get_image(0, y, width, 1, X.ZPixmap, 0xFFFFFFFF).data
    return [(data[i + 2], data[i + 1], data[i]) for i in range(0, len(data), 4)]


def _window_pid(conn, window) -> int | None:
    atom = conn.intern_atom("_NET_WM_PID")
    try:
        children = window.query_tree().children
    except Exception:  # gone already (a short-lived window)
        return None
    for w in [window, *children]:
        try:
            prop = w.get_full_property(atom, 0)
        except Exception:
            continue
        if prop is not None and len(prop.value):
            return int(prop.value[0])
    return None


def one_run(
    session: str, geometry: tuple[int, int], watch_s: float, env: dict[str, str], png: str | None = None
) -> dict[str, float]:
    """One desktop from ``Session.start()`` until the panel is drawn (or ``watch_s``): event -> ms."""
    from Xlib import X

    options = _options.check_options(geometry=geometry, session=session, env=env)
    s = _session.Session(options)
    t0 = time.time()
    s.start()
    marks: dict[str, float] = {"start() returned": time.time()}
    try:
        conn = _x.connect(s.display, s.xauthority)
        root = conn.screen().root
        width = root.get_geometry().width
        root.change_attributes(event_mask=X.SubstructureNotifyMask)
        conn.sync()
        marks["X connected"] = time.time()
        supervisor = s._proc.pid
        seen_pids: set[int] = set()
        last_top = None
        deadline = time.time() + watch_s
        while time.time() < deadline:
            while conn.pending_events():
                ev = conn.next_event()
                if ev.type == X.MapNotify:
                    pid = _window_pid(conn, ev.window)
                    if pid and pid not in seen_pids:
                        seen_pids.add(pid)
                        marks.setdefault(f"{comm(pid)} mapped", time.time())
            row = _row(root, PANEL_Y, width)
            if "screen not black" not in marks and any(c != (0, 0, 0) for c in row[:: max(1, width // 64)]):
                marks["screen not black"] = time.time()
            mid = _row(root, geometry[1] // 2, width)
            if "middle row not black" not in marks and any(c != (0, 0, 0) for c in mid[:: max(1, width // 64)]):
                marks["middle row not black"] = time.time()
            top = collections.Counter(row).most_common(1)[0][0]
            if top != last_top:
                last_top = top
                marks.setdefault(f"row {PANEL_Y}: mostly {top}", time.time())
            if sum(_close(c, PANEL_RGB) for c in row) > 0.6 * width:
                marks["panel drawn"] = time.time()
                break
            time.sleep(0.005)
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        boot = time.time() - uptime
        for pid in tree(supervisor):
            ticks = start_ticks(pid)
            if ticks is not None:
                marks.setdefault(f"{comm(pid)} started", boot + ticks / CLK_TCK)
        if png:
            time.sleep(2)
            save_root_png(s.env, png)
        conn.close()
    finally:
        s.stop()
    return {k: round((v - t0) * 1000, 1) for k, v in marks.items()}


def _variant(text: str) -> tuple[str, dict[str, str]]:
    """``label:NAME=VALUE,NAME=VALUE`` (or just ``label``) -> (label, env)."""
    label, _, assignments = text.partition(":")
    return label, dict(a.split("=", 1) for a in assignments.split(",") if a)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=5, help="runs of each variant (default 5)")
    p.add_argument("--session", default="xfce")
    p.add_argument("--geometry", default="1280x700")
    p.add_argument(
        "--variant",
        action="append",
        type=_variant,
        metavar="LABEL[:NAME=VALUE,...]",
        help="a desktop environment to compare (repeatable; runs are interleaved so that all see the same load)",
    )
    p.add_argument("--png", help="save the last run's screen here, 2 s after the end")
    p.add_argument("--watch", type=float, default=6.0, help="seconds to wait for the panel")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    geometry = tuple(int(v) for v in args.geometry.split("x"))
    variants = args.variant or [("default", {})]
    runs: dict[str, list[dict[str, float]]] = {label: [] for label, _ in variants}
    for i in range(args.n):
        for label, env in variants:
            png = args.png if i == args.n - 1 and label == variants[-1][0] else None
            runs[label].append(one_run(args.session, geometry, args.watch, env, png))
            logging.warning("%s run %d: panel %s ms", label, i + 1, runs[label][-1].get("panel drawn"))
            time.sleep(0.5)
    table: dict[str, dict[str, list[float]]] = collections.defaultdict(lambda: collections.defaultdict(list))
    for label, results in runs.items():
        for r in results:
            for k, v in r.items():
                table[k][label].append(v)
    rows = sorted(table.items(), key=lambda kv: statistics.median(next(iter(kv[1].values()))))
    print(f"{'median ms after start() (min-max, n)':40}" + "".join(f"{label:>22}" for label, _ in variants))
    for k, cells in rows:
        line = f"{k:40}"
        for label, _ in variants:
            v = cells.get(label)
            line += f"{f'{statistics.median(v):.0f} ({min(v):.0f}-{max(v):.0f}, {len(v)})' if v else '-':>22}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
