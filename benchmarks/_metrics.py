"""The measurements of the running desktops: update latency, frames/s, idle cost, the API, frame rates.

Each function returns plain data; ``run.py`` decides on which desktop and page.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from _common import PALETTE, CpuWindow, Patch, align, chromium_pids, log, memory_of, screen, summary
from _targets import HERE, Ours, RefClient, Upstream, wait_js

_watch_ids = iter(range(1, 10**9))


def new_desktop(
    ours: Ours, session: str, transport: str = "server", frame_rate: int | None = None, settle_s: float = 3.0
) -> dict:
    """Stop ``d``, run the notebook's desktop cell with these options, and wait for the view's first frame."""
    ours.stop_desktops()
    ours.exec(f"SESSION = {session!r}; TRANSPORT = {transport!r}; FRAME_RATE = {frame_rate!r}")
    before = ours.page.evaluate("() => __bench.canvases.length")
    ours.run_cell("desktop")
    ok = wait_js(ours.page, "(n) => __bench.canvases.slice(n).some(c => c.canvas.isConnected && c.tFirstFrame)", before)
    if not ok:
        raise RuntimeError(f"Desktop(session={session!r}, transport={transport!r}) showed no frame in 30 s")
    # The numbers must be of the transport asked for: the view names the one it connected with.
    how = wait_js(ours.page, "() => [...document.querySelectorAll('[data-transport]')].at(-1)?.dataset.transport")
    if how != transport:
        raise RuntimeError(f"Desktop(transport={transport!r}): the view connected through {how!r}")
    info = ours.desktop_info()
    time.sleep(settle_s if session == "xfce" else min(0.5, settle_s))  # XFCE's panel and wallpaper settle
    return info


# -- update latency -------------------------------------------------------------------------------
def show_canvas(page) -> None:
    """Scroll the first desktop canvas into view, as a person watching it would have it."""
    page.evaluate(
        """() => { const c = [...document.querySelectorAll('canvas')].find(c => c.isConnected && c.width >= 64);
                   if (c) c.scrollIntoView({block: 'nearest'}); }"""
    )
    page.wait_for_timeout(100)


def latency(page, env: dict, socket_path: str, n: int, screenshot: Path | None = None) -> dict:
    """Recolour a 64x64 X window: when does the canvas show it, and when does a bare RFB client?

    The bare client runs in trials of its own, in blocks of up to 5 alternating
    with the canvas's (n each): connected at the same time, it costs the canvas
    0.1-0.3 ms (Xvnc encodes every update twice), which a paired trial would
    charge to our path. Browser times are the page's clock (performance.timeOrigin
    + now()) moved onto time.time() by the offset that ``align`` measured just before.
    """
    show_canvas(page)
    patch, ref = Patch(env, 300, 300), None
    ms = lambda t, t0: None if t is None else (t - t0) * 1000  # noqa: E731
    less = lambda a, b: None if a is None or b is None else a - b  # noqa: E731
    try:
        time.sleep(0.3)
        offset, err = align(page)
        canvas, bare, message = [], [], []
        block = max(1, min(5, n // 2))
        for i in range(2 * n):
            if (i // block) % 2 != (ref is not None):  # a new block: connect or drop the bare client
                if ref is None:
                    ref = RefClient(socket_path)
                else:
                    ref.close()
                    ref = None
                time.sleep(0.3)
            rgb, wid, points = PALETTE[i % len(PALETTE)], next(_watch_ids), patch.points()
            if ref:
                ref.watch(wid, points, rgb)
            else:
                page.evaluate("([id, p, rgb]) => __bench.watch(id, p, rgb, 24)", [wid, points, list(rgb)])
            time.sleep(random.uniform(0.15, 0.25))  # Xvnc's frame clock stops; the change lands at a random phase
            t0 = patch.paint(rgb)
            if ref:
                deadline = time.monotonic() + 2
                while ref.hit(wid) is None and time.monotonic() < deadline:
                    time.sleep(0.002)
                bare.append(ms(ref.hit(wid), t0))
                continue
            hit = wait_js(page, "(id) => __bench.hits(id)[0] ?? null", wid, timeout=3, poll=0.01)
            # The WebSocket message that brought the pixels, before noVNC decoded and drew them.
            msg = page.evaluate("(id) => __bench.hitMessage(id)", wid) if hit else None
            page.evaluate("(id) => __bench.unwatch(id)", wid)
            canvas.append(ms(hit and hit / 1000 - offset, t0))
            message.append(ms(msg and msg / 1000 - offset, t0))
        if screenshot:  # the page with the last colour of the patch on the canvas
            page.screenshot(path=str(screenshot))
        out = {
            "browser_ms": summary(canvas),
            "bare_rfb_ms": summary(bare),
            "ws_arrival_ms": summary(message),
            "draw_after_arrival_ms": summary(map(less, canvas, message)),
            "clock_error_ms": round(err * 1000, 3),
        }
        if out["bare_rfb_ms"].get("median") and out["browser_ms"].get("median"):
            out["ratio_to_bare"] = round(out["browser_ms"]["median"] / out["bare_rfb_ms"]["median"], 3)
        return out
    finally:
        patch.close()
        if ref:
            ref.close()


# -- throughput ---------------------------------------------------------------------------------
def throughput(
    page,
    env: dict,
    groups: dict[str, list[int]],
    mode: str,
    seconds: float,
    fps: int = 60,
    screenshot: Path | None = None,
) -> dict:
    """A 1024x640 window repainted at ``fps`` for ``seconds``: what the browser drew, the bytes, the CPU."""
    width, height = screen(env).size
    w, h = min(1024, width), min(640, height)
    x, y = (width - w) // 2, (height - h) // 2
    region = [x + w // 2 - 8, y + h // 2, 16, 1]
    show_canvas(page)
    painter = subprocess.Popen(
        [sys.executable, str(HERE / "_painter.py"), mode, str(fps), str(seconds), str(x), str(y), str(w), str(h)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # The window opens from the painter's "start" to its "done": its set-up
    # (interpreter start, uploading the noise pixmaps) is not measured.
    started = json.loads(painter.stdout.readline() or "{}")
    if started.get("event") != "start":
        painter.kill()
        raise RuntimeError(f"the painter did not start: {painter.stderr.read()[-500:]}")
    page.evaluate("(r) => __bench.startRaf(r)", region)
    before = page.evaluate("() => __bench.state()")
    cpu = CpuWindow(groups)
    t_start = time.monotonic()
    if screenshot:
        time.sleep(min(1.5, seconds / 2))
        page.screenshot(path=str(screenshot))
    done_line = painter.stdout.readline()
    wall = time.monotonic() - t_start
    cpu_used = cpu.end()
    after = page.evaluate("() => __bench.state()")
    raf = page.evaluate("() => __bench.stopRaf()")
    errors = painter.communicate(timeout=30)[1]
    done = json.loads(done_line) if done_line.strip() else {"error": errors[-500:]}
    return {
        "mode": mode,
        "window": [w, h],
        "seconds": round(wall, 2),
        "painted_per_s": round(done.get("painted", 0) / max(done.get("seconds", wall), 1e-9), 1),
        "drawn_per_s": round(raf["distinct"] / wall, 1),
        "raf_per_s": round(raf["samples"] / wall, 1),
        "flips_per_s": round((after["flips"] - before["flips"]) / wall, 1),
        "ws_bytes_per_s": round((after["bytesIn"] - before["bytesIn"]) / wall),
        "ws_mbit_per_s": round((after["bytesIn"] - before["bytesIn"]) * 8 / wall / 1e6, 1),
        # The comm transport's frames arrive on the kernel's WebSocket, not a desktop one.
        "kernel_ws_mbit_per_s": round((after["kernelBytesIn"] - before["kernelBytesIn"]) * 8 / wall / 1e6, 1),
        "cpu_pct": cpu_used,
    }


# -- resources ---------------------------------------------------------------------------------
def resources(page, groups: dict[str, list[int]], seconds: float) -> dict:
    """CPU over ``seconds`` of idling, memory at the end, and the desktop WebSocket's bytes meanwhile."""
    before = page.evaluate("() => __bench.state().bytesIn")
    cpu = CpuWindow(groups)
    time.sleep(seconds)
    cpu_used, mem = cpu.end(), memory_of(groups)
    out: dict = {
        k: {"cpu_pct": cpu_used[k], **{m: mem[k][m] for m in ("pss_mib", "uss_mib", "rss_mib")}} for k in groups
    }
    out["_processes"] = {k: mem[k]["processes"] for k in groups}
    return {**out, "ws_bytes_in": page.evaluate("() => __bench.state().bytesIn") - before, "seconds": seconds}


def groups_ours(ours: Ours) -> dict[str, list[int]]:
    """The processes whose CPU and memory count: the desktop (its supervisor's whole tree), server, kernel, browser."""
    kernel = ours.kernel_pid()
    return {
        "desktop": ours.desktop_pids(),
        "jupyter_server": [ours.server_pid],
        "kernel": [kernel] if kernel else [],
        "chromium": chromium_pids(),
    }


def groups_upstream(upstream: Upstream) -> dict[str, list[int]]:
    return {"desktop": upstream.desktop_pids(), "jupyter_server": [upstream.server_pid], "chromium": chromium_pids()}


# -- the API (ours), timed in the notebook's kernel where a user calls it --------------------------
_ASCII_LINE = "The quick brown fox jumps over the lazy dog 0123456789 ,.;:!?()[]{}<>+-*/=_ @#$%^&~ abcdefghijkl"
API_CODE = """
import json as _json, tempfile as _tempfile, time as _time
from pathlib import Path as _Path
def _ms(call, n):
    out = []
    for _ in range(n):
        t = _time.perf_counter(); call(); out.append((_time.perf_counter() - t) * 1000)
    return out
d.key("shift")  # the first call builds the keymap
_r = {{"key_ms": _ms(lambda: d.key("shift"), {n} * 5), "screenshot_ms": _ms(d.screenshot, {n}),
       "snapshot_ms": _ms(d.snapshot, {n}), "screen": list(d.size)}}
# d.type() into an xterm running cat: characters/s until the file has them all (and they are right).
_file = _Path(_tempfile.mkdtemp(prefix="dwb-type-")) / "typed.txt"
_app = d.launch(["xterm", "-geometry", "100x20+10+10", "-e", "sh", "-c", f"stty -echo; exec cat > {{_file}}"])
_deadline = _time.monotonic() + 15
while (_w := d.wait_for_window(pid=_app.pid, timeout=15)).geometry[2] < 50 and _time.monotonic() < _deadline:
    _time.sleep(0.05)  # mapped, not yet sized
d.click(_w.geometry[0] + _w.geometry[2] // 2, _w.geometry[1] + _w.geometry[3] // 2); _time.sleep(0.5)
_text = {text!r}
_t = _time.perf_counter(); d.type(_text)
while _time.monotonic() < _deadline + 60 and not (_file.exists() and len(_file.read_text()) >= len(_text)):
    _time.sleep(0.005)
_s = _time.perf_counter() - _t
_r["type_chars_per_s"] = round(len(_text) / _s) if _file.exists() and _file.read_text() == _text else None
_app.terminate(); _file.unlink(missing_ok=True); _file.parent.rmdir()
print(_json.dumps(_r))
"""


def api_speed(ours: Ours, n: int) -> dict:
    """``d.resize()`` until the view shows it; ``d.key()``, ``d.screenshot()``, ``d.snapshot()``, ``d.type()``."""
    page = ours.page
    offset, err = align(page)
    resize = []
    for i in range(max(3, n // 10)):
        size = (1280, 800) if i % 2 == 0 else (1200, 700)
        ours.exec(f"_t0 = time.time(); d.resize{size}")
        sized = wait_js(
            page,
            "([w, h]) => { const c = __bench.state().canvases.filter(c => c.w >= 64).at(-1); "
            "return c && c.w === w && c.h === h ? c.tSized : null; }",
            list(size),
            timeout=10,
            poll=0.005,
        )
        t0 = ours.eval_json("_t0")
        resize.append((sized / 1000 - offset - t0) * 1000 if sized else None)
    text = "".join(f"{_ASCII_LINE}\n" for _ in range(20))
    out = json.loads(ours.exec(API_CODE.format(n=n, text=text), timeout=180).strip().splitlines()[-1])
    return {
        "resize_until_view_ms": summary(resize, 1),
        "clock_error_ms": round(err * 1000, 3),
        "key_ms": summary(out["key_ms"], 3),
        "screenshot_ms": summary(out["screenshot_ms"], 1),
        "snapshot_ms": summary(out["snapshot_ms"], 1),
        "screen": out["screen"],
        "type_chars": len(text),
        "type_chars_per_s": out["type_chars_per_s"],
    }


# -- Xvnc's frame rate: latency against the costs under load ---------------------------------------
def frame_rate_table(ours: Ours, frame_rates, n_latency: int, idle_s: float, burst_s: float) -> list[dict]:
    """Per Xvnc frame rate (light WM): latency and bare latency, idle CPU, solid and noise frames/s with their CPU."""
    rows = []
    for fr in frame_rates:
        log(f"frame_rate={fr}")
        new_desktop(ours, "wm", frame_rate=fr)
        lat = latency(ours.page, ours.env, ours.socket, n_latency)
        idle = resources(ours.page, groups_ours(ours), idle_s)
        row = {"frame_rate": fr, "latency": lat, "idle_cpu_pct": idle["desktop"]["cpu_pct"]}
        for mode in ("solid", "noise"):
            row[mode] = throughput(ours.page, ours.env, groups_ours(ours), mode, burst_s)
        rows.append(row)
    return rows
