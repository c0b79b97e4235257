"""Statistics, processes read from /proc, the page's clock, and the X helpers shared by the benchmarks."""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from collections.abc import Iterable
from pathlib import Path

# Process trees are read as the tests read them (one implementation): the repository root is put on
# the path here, so ``tests`` is imported from the checkout, not through an editable install's path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests._procs import comm, ppid_table, tree  # noqa: F401

CLK_TCK = os.sysconf("SC_CLK_TCK")
#: The colours the latency patch cycles through.
PALETTE = [(255, 51, 102), (51, 204, 102), (51, 102, 255), (255, 204, 0), (0, 204, 204), (204, 51, 255)]


def summary(values: Iterable[float | None], digits: int = 3) -> dict:
    """median, min, max and n of the values that are not None (and how many were None)."""
    values = list(values)
    good = [float(v) for v in values if v is not None]
    out: dict = {"n": len(good)}
    if len(good) < len(values):
        out["missing"] = len(values) - len(good)
    if good:
        out.update(median=round(statistics.median(good), digits), min=round(min(good), digits))
        out["max"] = round(max(good), digits)
    return out


def log(*args: object) -> None:
    """Progress on stdout (the run's own output, like a test runner's)."""
    print(time.strftime("%H:%M:%S"), *args, flush=True)


# -- /proc ------------------------------------------------------------------------
def _read(pid: int, name: str) -> bytes:
    try:
        with open(f"/proc/{pid}/{name}", "rb") as f:
            return f.read()
    except OSError:
        return b""


def cmdline(pid: int) -> list[str]:
    return [a.decode(errors="replace") for a in _read(pid, "cmdline").split(b"\0") if a]


def environ(pid: int) -> dict[str, str]:
    pairs = _read(pid, "environ").decode(errors="replace").split("\0")
    return dict(v.split("=", 1) for v in pairs if "=" in v)


def _stat(pid: int, field: int) -> int | None:
    """A field of /proc/<pid>/stat, counted from the one after the command name (state = 0)."""
    stat = _read(pid, "stat")
    return int(stat[stat.rfind(b")") + 2 :].split()[field]) if stat else None


def cpu_ticks(pid: int) -> int | None:
    utime, stime = _stat(pid, 11), _stat(pid, 12)
    return None if utime is None or stime is None else utime + stime


def start_ticks(pid: int) -> int | None:
    """When the process started, in clock ticks since boot (10 ms resolution)."""
    return _stat(pid, 19)


def memory(pid: int) -> dict[str, float]:
    """RSS, PSS and USS (private) in MiB from /proc/<pid>/smaps_rollup (zeros if the process is gone)."""
    out = {"rss": 0.0, "pss": 0.0, "uss": 0.0}
    for line in _read(pid, "smaps_rollup").decode().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss"):
            out[key.lower()] = int(rest.split()[0]) / 1024
        elif key in ("Private_Clean", "Private_Dirty"):
            out["uss"] += int(rest.split()[0]) / 1024
    return out


class CpuWindow:
    """CPU % of one core used by groups of processes over a window of wall time."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups, self.start = groups, time.monotonic()
        self.ticks = {pid: cpu_ticks(pid) for pids in groups.values() for pid in pids}

    def end(self) -> dict[str, float]:
        wall = time.monotonic() - self.start
        used = {name: 0 for name in self.groups}
        for name, pids in self.groups.items():
            for pid in pids:
                now, then = cpu_ticks(pid), self.ticks.get(pid)
                if now is not None and then is not None:
                    used[name] += now - then
        return {name: round(100 * ticks / CLK_TCK / wall, 2) for name, ticks in used.items()}


def memory_of(groups: dict[str, list[int]]) -> dict[str, dict]:
    """Per group: total PSS, USS and RSS (MiB) and its processes, biggest first."""
    out = {}
    for name, pids in groups.items():
        procs = [{"pid": p, "comm": comm(p), **{k: round(v, 1) for k, v in memory(p).items()}} for p in pids]
        procs = sorted((p for p in procs if p["rss"]), key=lambda p: -p["pss"])
        out[name] = {f"{k}_mib": round(sum(p[k] for p in procs), 1) for k in ("pss", "uss", "rss")}
        out[name]["processes"] = procs
    return out


def chromium_pids() -> list[int]:
    """Chromium processes that are descendants of this benchmark process."""
    return sorted(p for p in tree(os.getpid()) if comm(p).startswith("chrom"))


# -- the page's clock ---------------------------------------------------------------
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
        if best is None or t_b - t_a < best[1]:
            best = (page_ms / 1000 - (t_a + t_b) / 2, t_b - t_a)
    return best[0], best[1] / 2


# -- X ------------------------------------------------------------------------------
def x_connect(env: dict[str, str]):
    """A python-xlib connection to ``env``'s display, with its cookie (python-xlib reads XAUTHORITY)."""
    from Xlib import display

    old = os.environ.get("XAUTHORITY")
    os.environ["XAUTHORITY"] = env.get("XAUTHORITY", old or "")
    try:
        return display.Display(env["DISPLAY"])
    finally:
        if old is None:
            del os.environ["XAUTHORITY"]
        else:
            os.environ["XAUTHORITY"] = old


def screen(env: dict[str, str], y: int = 0, height: int | None = None):
    """The X screen (or rows ``y``.. of it) as a PIL image, read directly from the X server."""
    from PIL import Image
    from Xlib import X

    conn = x_connect(env)
    try:
        root = conn.screen().root
        g = root.get_geometry()
        height = g.height - y if height is None else height
        data = root.get_image(0, y, g.width, height, X.ZPixmap, 0xFFFFFFFF).data
        return Image.frombuffer("RGB", (g.width, height), data, "raw", "BGRX", 0, 1)
    finally:
        conn.close()


class Patch:
    """A small override-redirect X window whose colour the benchmark changes."""

    def __init__(self, env: dict[str, str], x: int, y: int, w: int = 64, h: int = 64) -> None:
        from Xlib import X

        self.conn = x_connect(env)
        s = self.conn.screen()
        self.x, self.y, self.w, self.h = x, y, w, h
        self.window = s.root.create_window(
            x,
            y,
            w,
            h,
            0,
            s.root_depth,
            X.InputOutput,
            X.CopyFromParent,
            background_pixel=0x202020,
            override_redirect=True,
        )
        self.window.map()
        self.conn.sync()

    def points(self) -> list[tuple[int, int]]:
        x, y, w, h = self.x, self.y, self.w, self.h
        return [(x + w // 2, y + h // 2), (x + 4, y + 4), (x + w - 5, y + h - 5)]

    def paint(self, rgb: tuple[int, int, int]) -> float:
        """Recolour the window; returns ``time.time()`` just before the request went out."""
        t0 = time.time()
        self.window.change_attributes(background_pixel=(rgb[0] << 16) | (rgb[1] << 8) | rgb[2])
        self.window.clear_area()
        self.conn.sync()
        return t0

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.window.destroy()
            self.conn.sync()
        with contextlib.suppress(Exception):
            self.conn.close()
