"""Statistics, processes read from /proc, clock alignment and X helpers shared by the benchmarks."""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- statistics ---------------------------------------------------------------
def summary(values: Iterable[float | None], digits: int = 3) -> dict:
    """median, min, max and n of the values that are not None (and how many were None)."""
    values = list(values)
    good = [float(v) for v in values if v is not None]
    out: dict = {"n": len(good)}
    if len(good) < len(values):
        out["missing"] = len(values) - len(good)
    if good:
        out.update(
            median=round(statistics.median(good), digits),
            min=round(min(good), digits),
            max=round(max(good), digits),
        )
    return out


def one(value: float | None, digits: int = 3) -> dict:
    return summary([value], digits)


# -- processes --------------------------------------------------------------------
def _stat_fields(pid: int) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2 :].split()


# Process-tree reading and the browser's flags are shared with the tests (one implementation), from
# the repository root put on the path here: not through an editable install's path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests._procs import comm, ppid_table, tree  # noqa: E402, F401


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def environ_has(pid: int, assignment: str) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return assignment.encode() + b"\0" in f.read() + b"\0"
    except OSError:
        return False


def cpu_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return int(fields[11]) + int(fields[12])  # utime + stime


def memory(pid: int) -> dict[str, float]:
    """RSS, PSS and USS (private) in MiB from /proc/<pid>/smaps_rollup (zeros if the process is gone).

    PSS shares each shared page among every process that maps it, on the whole
    machine: another Xvnc running elsewhere lowers ours. USS does not move so.
    """
    out = {"rss": 0.0, "pss": 0.0, "uss": 0.0}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("Rss", "Pss"):
                    out[key.lower()] = int(rest.split()[0]) / 1024
                elif key in ("Private_Clean", "Private_Dirty"):
                    out["uss"] += int(rest.split()[0]) / 1024
    except OSError:
        pass
    return out


@dataclass
class CpuWindow:
    """CPU seconds of a set of processes over a window of wall time."""

    pids: dict[str, list[int]]
    start_ticks: dict[int, int]
    start: float

    @classmethod
    def begin(cls, pids: dict[str, list[int]]) -> CpuWindow:
        ticks = {}
        for group in pids.values():
            for pid in group:
                t = cpu_ticks(pid)
                if t is not None:
                    ticks[pid] = t
        return cls(pids, ticks, time.monotonic())

    def end(self) -> dict[str, dict]:
        """Per group: CPU % of one core over the window, and the processes' comm names."""
        wall = time.monotonic() - self.start
        out = {}
        for name, group in self.pids.items():
            used = 0
            for pid in group:
                t = cpu_ticks(pid)
                if t is not None and pid in self.start_ticks:
                    used += t - self.start_ticks[pid]
            out[name] = {"cpu_pct": round(100 * used / CLK_TCK / wall, 2) if wall > 0 else None}
        return out


def memory_of(groups: dict[str, list[int]]) -> dict[str, dict]:
    """Per group: total PSS and RSS (MiB) and the processes, biggest first."""
    out = {}
    for name, pids in groups.items():
        procs = []
        for pid in pids:
            m = memory(pid)
            if m["rss"]:
                procs.append(
                    {
                        "pid": pid,
                        "comm": comm(pid),
                        "pss": round(m["pss"], 1),
                        "uss": round(m["uss"], 1),
                        "rss": round(m["rss"], 1),
                    }
                )
        procs.sort(key=lambda p: -p["pss"])
        out[name] = {
            "pss_mib": round(sum(p["pss"] for p in procs), 1),
            "rss_mib": round(sum(p["rss"] for p in procs), 1),
            "uss_mib": round(sum(p["uss"] for p in procs), 1),
            "processes": procs,
        }
    return out


def start_ticks(pid: int) -> int | None:
    """When the process started, in clock ticks since boot (10 ms resolution)."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def chromium_pids() -> list[int]:
    """Chromium processes that are descendants of this benchmark process."""
    return sorted(p for p in tree(os.getpid()) if comm(p).startswith("chrom"))


# -- clocks -----------------------------------------------------------------------
def align(page, probes: int = 15) -> tuple[float, float]:
    """The offset (s) of the page's clock from ``time.time()``, and its error bound (s).

    NTP-style: read the page's ``performance.timeOrigin + performance.now()`` in
    a round trip and assume it was read half way; the round trip with the
    least time bounds the error at half of it.
    """
    best = None
    for _ in range(probes):
        t_a = time.time()
        page_ms = page.evaluate("() => performance.timeOrigin + performance.now()")
        t_b = time.time()
        rtt = t_b - t_a
        if best is None or rtt < best[1]:
            best = (page_ms / 1000 - (t_a + t_b) / 2, rtt)
    return best[0], best[1] / 2


# -- X ------------------------------------------------------------------------------
def x_connect(env: dict[str, str]):
    from Xlib import display

    from desktop_widget.control import _x

    if "XAUTHORITY" in env:
        return _x.connect(env["DISPLAY"], env["XAUTHORITY"])
    return display.Display(env["DISPLAY"])


PALETTE = [
    (255, 51, 102),
    (51, 204, 102),
    (51, 102, 255),
    (255, 204, 0),
    (0, 204, 204),
    (204, 51, 255),
]


def pixel(rgb: tuple[int, int, int]) -> int:
    return (rgb[0] << 16) | (rgb[1] << 8) | rgb[2]


class Patch:
    """A small override-redirect X window whose colour the benchmark changes."""

    def __init__(self, env: dict[str, str], x: int, y: int, w: int = 64, h: int = 64) -> None:
        from Xlib import X

        self.conn = x_connect(env)
        screen = self.conn.screen()
        self.x, self.y, self.w, self.h = x, y, w, h
        self.window = screen.root.create_window(
            x,
            y,
            w,
            h,
            0,
            screen.root_depth,
            X.InputOutput,
            X.CopyFromParent,
            background_pixel=0x202020,
            override_redirect=True,
        )
        self.window.map()
        self.conn.sync()

    @property
    def centre(self) -> tuple[int, int]:
        return self.x + self.w // 2, self.y + self.h // 2

    def points(self) -> list[tuple[int, int]]:
        cx, cy = self.centre
        return [(cx, cy), (self.x + 4, self.y + 4), (self.x + self.w - 5, self.y + self.h - 5)]

    def paint(self, rgb: tuple[int, int, int]) -> float:
        """Recolour the window; returns ``time.time()`` just before the request went out."""
        t0 = time.time()
        self.window.change_attributes(background_pixel=pixel(rgb))
        self.window.clear_area()
        self.conn.flush()
        self.conn.sync()
        return t0

    def raise_(self) -> None:
        from Xlib import X

        self.window.configure(stack_mode=X.Above)
        self.conn.sync()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.window.destroy()
            self.conn.sync()
        with contextlib.suppress(Exception):
            self.conn.close()


def root_row(env: dict[str, str], y: int) -> list[tuple[int, int, int]]:
    """One row of the X screen as RGB tuples."""
    from Xlib import X

    conn = x_connect(env)
    try:
        root = conn.screen().root
        g = root.get_geometry()
        data = root.get_image(0, y, g.width, 1, X.ZPixmap, 0xFFFFFFFF).data
        return [(data[i + 2], data[i + 1], data[i]) for i in range(0, len(data), 4)]
    finally:
        conn.close()


def screen_size(env: dict[str, str]) -> tuple[int, int]:
    conn = x_connect(env)
    try:
        g = conn.screen().root.get_geometry()
        return g.width, g.height
    finally:
        conn.close()


def save_root_png(env: dict[str, str], path: str) -> None:
    from PIL import Image
    from Xlib import X

    conn = x_connect(env)
    try:
        root = conn.screen().root
        g = root.get_geometry()
        data = root.get_image(0, 0, g.width, g.height, X.ZPixmap, 0xFFFFFFFF).data
        Image.frombuffer("RGB", (g.width, g.height), data, "raw", "BGRX", 0, 1).save(path)
    finally:
        conn.close()
