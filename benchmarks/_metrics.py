"""The measurements. Each function returns plain data (lists of samples are summarised by the caller)."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    CLK_TCK,
    PALETTE,
    CpuWindow,
    Patch,
    align,
    chromium_pids,
    comm,
    memory_of,
    root_row,
    save_root_png,
    screen_size,
    start_ticks,
    summary,
)
from _targets import HERE, Browser, Ours, RefClient, Upstream, close_page, wait_js

PANEL_Y = 13  # the middle row of XFCE's 26-pixel top panel (the config both sides use)
PANEL_TOL = 10
_watch_ids = iter(range(1, 10**9))


def log(*args: object) -> None:
    print(time.strftime("%H:%M:%S"), *args, flush=True)


# -- the panel detector --------------------------------------------------------------------
def calibrate_panel(env: dict[str, str]) -> dict | None:
    """Where XFCE's top panel shows its background colour, read from the X screen once it has settled.

    Returns the colour and up to 40 x positions (at y = PANEL_Y) that have it;
    "panel drawn" is then: at least 90 % of those canvas pixels show it.
    """
    row = root_row(env, PANEL_Y)
    colour, count = collections.Counter(row).most_common(1)[0]
    if count < len(row) // 3:
        return None
    xs = [x for x, c in enumerate(row) if c == colour]
    step = max(1, len(xs) // 40)
    points = [[x, PANEL_Y] for x in xs[::step]][:40]
    return {"rgb": list(colour), "points": points, "need": int(len(points) * 0.9), "share": round(count / len(row), 2)}


PROFILE_COMMS = (
    "vncserver",
    "Xvnc",
    "Xtigervnc",
    "xstartup",
    "dbus-launch",
    "dbus-daemon",
    "xfce4-session",
    "xfwm4",
    "xfsettingsd",
    "xfce4-panel",
    "xfdesktop",
    "openbox",
)


def started_at(pids: list[int]) -> dict[str, float]:
    """Wall-clock time (time.time()) at which the first process of each interesting name started (±10 ms)."""
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    now = time.time()
    out: dict[str, float] = {}
    for pid in pids:
        name = comm(pid)
        ticks = start_ticks(pid)
        if name in PROFILE_COMMS and ticks is not None:
            t = now - uptime + ticks / CLK_TCK
            out[name] = min(out.get(name, t), t)
    return out


PANEL_WATCH = "([p, tol]) => __bench.watch('panel', p.points, p.rgb, tol, p.need)"


# -- cold start: ours ------------------------------------------------------------------------
def _ours_cold_trial(ours: Ours, session: str, panel: dict | None, timeout: float = 30) -> dict:
    ours.stop_desktops()
    page = ours.page
    page.evaluate("() => __bench.resetRoot()")
    if panel:
        page.evaluate(PANEL_WATCH, [panel, PANEL_TOL])
    offset, err = align(page)
    before = page.evaluate("() => __bench.canvases.length")
    ours.run_cell(f"cold-{session}")
    frame = wait_js(
        page,
        """(n) => { const c = __bench.canvases.slice(n).find(c => c.canvas.isConnected && c.tFirstFrame);
                    return c ? c.tFirstFrame : null; }""",
        before,
        timeout=timeout,
        poll=0.05,
    )
    panel_t = None
    if panel and frame:
        panel_t = wait_js(
            page,
            "(n) => { const c = __bench.canvases.slice(n).find(c => c.canvas.isConnected); const h = __bench.hits('panel'); "
            "return c && h.length ? h[h.length - 1] : null; }",
            before,
            timeout=timeout,
            poll=0.05,
        )
    state = page.evaluate("() => __bench.state()")
    kernel = ours.eval_json("[_t0, _t1]")
    started = started_at(ours.desktop_pids(ours.desktop_info()))
    return stages(
        state,
        offset,
        err,
        page_ms={"first_frame_s": frame, "panel_s": panel_t},
        kernel_s={"kernel_start_s": kernel[0], "desktop_ready_s": kernel[1]},
        started=started,
    )


def stages(state: dict, offset: float, err: float, page_ms: dict, kernel_s: dict, started: dict) -> dict:
    """A cell's trial in seconds after the cell ran: the page's times (ms on its clock), the
    kernel's (``time.time()``, put on the page's clock by ``offset``), the view's WebSocket and
    when each process of the desktop started."""
    t_run = state["tRun"]
    ws = state["ws"][-1] if state["ws"] else {}

    def rel(t_ms):
        return None if t_ms is None or t_run is None else round((t_ms - t_run) / 1000, 4)

    def rel_k(t_s):
        return None if t_run is None else round(t_s + offset - t_run / 1000, 4)

    return {
        **{name: rel(t) for name, t in page_ms.items()},
        **{name: rel_k(t) for name, t in kernel_s.items()},
        "view_rendered_s": rel(state["tRoot"]),
        "ws_created_s": rel(ws.get("tCreate")),
        "ws_open_s": rel(ws.get("tOpen")),
        "first_rfb_byte_s": rel(ws.get("tFirstMsg")),
        "clock_error_ms": round(err * 1000, 3),
        "process_started_s": {k: rel_k(v) for k, v in sorted(started.items(), key=lambda kv: kv[1])},
    }


def cold_ours(ours: Ours, session: str, n: int, results_dir: Path) -> dict:
    log(f"cold start ours/{session}: 1 warm-up + {n}")
    warm = _ours_cold_trial(ours, session, None)
    panel = None
    if session == "xfce":
        time.sleep(4)  # settle, then learn where the panel is
        ours.desktop_info()
        panel = calibrate_panel(ours.env)
        save_root_png(ours.env, str(results_dir / "ours-xfce-x-screen.png"))
    trials = [_ours_cold_trial(ours, session, panel) for _ in range(n)]
    time.sleep(1.5)
    ours.cell(f"cold-{session}").scroll_into_view_if_needed()
    ours.page.screenshot(path=str(results_dir / f"ours-{session}-page.png"))
    return {
        "warmup": warm,
        "panel_calibration": panel,
        "trials": trials,
        "summary": _summarise_trials(trials),
    }


def _summarise_trials(trials: list[dict]) -> dict:
    out = {k: summary(t[k] for t in trials) for k, v in trials[0].items() if not isinstance(v, dict)}
    names = sorted({n for t in trials for n in t.get("process_started_s", {})})
    out["process_started_s"] = {n: summary(t.get("process_started_s", {}).get(n) for t in trials) for n in names}
    return out


def python_import(n: int) -> dict:
    """``import desktop_widget`` in a fresh interpreter (what the first cell of a new kernel pays)."""
    times = []
    for _ in range(n):
        code = "import time; t = time.perf_counter(); import desktop_widget; print(time.perf_counter() - t)"
        out = subprocess.run([str(HERE.parent / ".venv/bin/python"), "-c", code], capture_output=True, text=True)
        times.append(float(out.stdout.strip()))
    return summary(times, 4)


# -- cold start: upstream ------------------------------------------------------------------------
def _upstream_cold_trial(browser: Browser, workdir: Path, panel: dict | None, keep: bool = False, timeout=40):
    upstream = Upstream(browser, workdir)
    try:
        page = browser.new_page(
            extra_script=None
            if not panel
            else f"__bench.watch('panel', {json.dumps(panel['points'])}, "
            f"{json.dumps(panel['rgb'])}, {PANEL_TOL}, {panel['need']});"
        )
        upstream.page = page
        page.goto(f"{upstream.server['url']}desktop/?token={upstream.server['token']}")
        origin = page.evaluate("() => performance.timeOrigin")
        frame = wait_js(
            page, "() => { const c = __bench.canvases.find(c => c.tFirstFrame); return c ? c.tFirstFrame : null; }"
        )
        panel_t = None
        if panel and frame:
            panel_t = wait_js(
                page, "() => { const h = __bench.hits('panel'); return h.length ? h[0] : null; }", timeout=timeout
            )
        colour = wait_js(
            page, "() => { const c = __bench.canvases.find(c => c.tFirstColour); return c ? c.tFirstColour : null; }"
        )
        state = page.evaluate("() => __bench.state()")
        ws = state["ws"][0] if state["ws"] else {}
        offset, _ = align(page)
        started = started_at(upstream.desktop_pids())

        def rel(t_ms):
            return None if t_ms is None else round((t_ms - origin) / 1000, 4)

        result = {
            "first_frame_s": rel(frame),
            "first_colour_s": rel(colour),
            "panel_s": rel(panel_t),
            "ws_created_s": rel(ws.get("tCreate")),
            "ws_open_s": rel(ws.get("tOpen")),
            "first_rfb_byte_s": rel(ws.get("tFirstMsg")),
            "process_started_s": {
                k: rel((v + offset) * 1000) for k, v in sorted(started.items(), key=lambda kv: kv[1])
            },
        }
    except BaseException:
        upstream.close()
        raise
    if keep:
        return result, upstream
    upstream.close()
    return result, None


def cold_xfce_pair(
    ours: Ours, browser: Browser, workdir: Path, n_ours: int, n_upstream: int, results_dir: Path
) -> tuple[dict, dict]:
    """XFCE cold starts of ours and upstream in turn, so that both see the same load on a shared machine."""
    log(f"cold start XFCE, ours and upstream in turn: 1 warm-up each + {n_ours} / {n_upstream}")
    warm = _ours_cold_trial(ours, "xfce", None)
    time.sleep(4)
    ours.desktop_info()
    panel = calibrate_panel(ours.env)
    save_root_png(ours.env, str(results_dir / "ours-xfce-x-screen.png"))
    ours.stop_desktops()
    up_warm, upstream = _upstream_cold_trial(browser, workdir / "warm", None, keep=True)
    try:
        time.sleep(4)
        upstream.find_xvnc()
        up_panel = calibrate_panel(upstream.env)
        save_root_png(upstream.env, str(results_dir / "upstream-xfce-x-screen.png"))
    finally:
        upstream.close()
    trials, up_trials = [], []
    for i in range(max(n_ours, n_upstream)):
        if i < n_ours:
            trials.append(_ours_cold_trial(ours, "xfce", panel))
        if i < n_upstream:
            last = i == n_upstream - 1
            if last:  # ours' page as it is now, with the desktop settled
                time.sleep(1.5)
                ours.cell("cold-xfce").scroll_into_view_if_needed()
                ours.page.screenshot(path=str(results_dir / "ours-xfce-page.png"))
            ours.stop_desktops()
            result, upstream = _upstream_cold_trial(browser, workdir / f"t{i}", up_panel, keep=last)
            up_trials.append(result)
            if last:
                time.sleep(1.5)
                upstream.page.screenshot(path=str(results_dir / "upstream-xfce-page.png"))
                upstream.close()
    ours_out = {"warmup": warm, "panel_calibration": panel, "trials": trials, "summary": _summarise_trials(trials)}
    up_out = {
        "warmup": up_warm,
        "panel_calibration": up_panel,
        "trials": up_trials,
        "summary": _summarise_trials(up_trials),
    }
    return ours_out, up_out


def fresh_upstream(browser: Browser, workdir: Path) -> Upstream:
    """An upstream desktop for the other metrics (its cold start is not counted)."""
    _, upstream = _upstream_cold_trial(browser, workdir, None, keep=True)
    time.sleep(4)
    upstream.find_xvnc()
    return upstream


# -- update latency -------------------------------------------------------------------------------
def show_canvas(page) -> None:
    """Scroll the first desktop canvas into view, as a person watching it would have it."""
    page.evaluate(
        """() => { const c = [...document.querySelectorAll('canvas')].find(c => c.isConnected && c.width >= 64);
                   if (c) c.scrollIntoView({block: 'nearest'}); }"""
    )
    page.wait_for_timeout(100)


def latency(
    page,
    env: dict,
    socket_path: str | None,
    n: int,
    spot: tuple[int, int] = (300, 300),
    first_only: bool = False,
    screenshot: Path | None = None,
) -> dict:
    """Recolour a 64x64 X window n times; when does each canvas (and the bare RFB client) show it?

    Browser times are the page's clock (performance.timeOrigin + now()) moved
    onto time.time() by the offset that ``align`` measured just before.
    """
    show_canvas(page)
    patch = Patch(env, *spot)
    ref = RefClient(socket_path) if socket_path else None
    try:
        time.sleep(0.3)
        offset, err = align(page)
        browser_first, browser_all, bare, diff, arrival, drawing = [], [], [], [], [], []
        previous = None
        for i in range(n):
            rgb = PALETTE[i % len(PALETTE)]
            if rgb == previous:
                rgb = PALETTE[(i + 1) % len(PALETTE)]
            previous = rgb
            wid = next(_watch_ids)
            points = patch.points()
            page.evaluate("([id, p, rgb]) => __bench.watch(id, p, rgb, 24)", [wid, points, list(rgb)])
            if ref:
                ref.watch(wid, points, rgb)
            # Idle long enough for the server's frame clock to stop, at a random phase.
            time.sleep(random.uniform(0.15, 0.25))
            t0 = patch.paint(rgb)
            time.sleep(0.03)
            hits = wait_js(
                page,
                "([id, first]) => { const h = __bench.hits(id); "
                "return h.length && (first ? h[0] !== null : h.every(t => t !== null)) ? h : null; }",
                [wid, first_only],
                timeout=3,
                poll=0.01,
            )
            if hits and first_only:
                hits = hits[:1]
            deadline = time.monotonic() + 2
            while ref and ref.hit(wid) is None and time.monotonic() < deadline:
                time.sleep(0.005)
            message = page.evaluate("(id) => __bench.hitMessage(id)", wid) if hits else None
            page.evaluate("(id) => __bench.unwatch(id)", wid)
            b = [(h / 1000 - offset - t0) * 1000 for h in hits] if hits else None
            r = (ref.hit(wid) - t0) * 1000 if ref and ref.hit(wid) else None
            browser_first.append(b[0] if b else None)
            browser_all.append(max(b) if b else None)
            bare.append(r)
            diff.append(b[0] - r if b and r is not None else None)
            m = (message / 1000 - offset - t0) * 1000 if message else None
            arrival.append(m - r if m is not None and r is not None else None)
            drawing.append(b[0] - m if b and m is not None else None)
        if screenshot:  # the page with the last colour of the patch on the canvas
            page.screenshot(path=str(screenshot))
        out = {
            "browser_ms": summary(browser_first),
            "bare_rfb_ms": summary(bare) if ref else None,
            "browser_minus_bare_ms": summary(diff) if ref else None,
            # browser - bare = (WebSocket message arrives - bare) + (canvas drawn - message arrives)
            "ws_arrival_minus_bare_ms": summary(arrival) if ref else None,
            "draw_after_arrival_ms": summary(drawing),
            "clock_error_ms": round(err * 1000, 3),
            "samples": {"browser_ms": [round(v, 3) if v else v for v in browser_first], "bare_ms": bare},
        }
        views = len(hits) if hits else 0
        if views > 1:
            out["browser_all_views_ms"] = summary(browser_all)
        out["views"] = views
        if ref and out["bare_rfb_ms"].get("median") and out["browser_ms"].get("median"):
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
    width, height = screen_size(env)
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
    cpu = CpuWindow.begin(groups)
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
        "cpu_pct": {k: v["cpu_pct"] for k, v in cpu_used.items()},
    }


# -- resources ---------------------------------------------------------------------------------
def resources(page, groups: dict[str, list[int]], seconds: float) -> dict:
    """CPU over ``seconds`` of idling, memory at the end, and the WebSocket bytes meanwhile."""
    before = page.evaluate("() => __bench.state()") if page else None
    cpu = CpuWindow.begin(groups)
    time.sleep(seconds)
    cpu_used = cpu.end()
    after = page.evaluate("() => __bench.state()") if page else None
    mem = memory_of(groups)
    out = {
        name: {
            "cpu_pct": cpu_used[name]["cpu_pct"],
            "pss_mib": mem[name]["pss_mib"],
            "uss_mib": mem[name]["uss_mib"],
            "rss_mib": mem[name]["rss_mib"],
        }
        for name in groups
    }
    out["_processes"] = {name: mem[name]["processes"] for name in groups}
    if page:
        out["ws_bytes_in"] = after["bytesIn"] - before["bytesIn"]
        out["ws_bytes_out"] = after["bytesOut"] - before["bytesOut"]
    out["seconds"] = seconds
    return out


def groups_ours(ours: Ours, infos: list[dict] | None = None) -> dict[str, list[int]]:
    desktop = []
    for info in infos or [ours.info]:
        desktop += ours.desktop_pids(info)
    kernel = ours.kernel_pid()
    return {
        "desktop": desktop,
        "jupyter_server": [ours.server_pid],
        "kernel": [kernel] if kernel else [],
        "chromium": chromium_pids(),
    }


def groups_upstream(upstream: Upstream) -> dict[str, list[int]]:
    return {"desktop": upstream.desktop_pids(), "jupyter_server": [upstream.server_pid], "chromium": chromium_pids()}


# -- API speed (ours) ------------------------------------------------------------------------------
def api_speed(ours: Ours, n: int, results_dir: Path) -> dict:
    """d.key, d.type, d.screenshot and d.resize, timed in this process on the notebook's desktop (Desktop.attach)."""
    os.environ["JUPYTER_RUNTIME_DIR"] = str(ours.runtime)
    from desktop_widget import Desktop

    h = Desktop.attach(ours.info["id"])
    out: dict = {}
    try:
        # resize until the view shows it; then the screen is 1280x800 for the screenshots
        page = ours.page
        resize = []
        for i in range(max(3, n // 10)):
            size = (1280, 800) if i % 2 == 0 else (1200, 700)
            t0 = time.monotonic()
            h.resize(*size)
            call = time.monotonic() - t0
            shown = wait_js(
                page,
                "([w, h]) => { const c = [...document.querySelectorAll('.dw-screen canvas')].at(-1); "
                "return c && c.width === w && c.height === h; }",
                list(size),
                timeout=10,
                poll=0.005,
            )
            resize.append({"call_ms": call * 1000, "shown_ms": (time.monotonic() - t0) * 1000 if shown else None})
        if h.size != (1280, 800):
            h.resize(1280, 800)
            time.sleep(0.3)
        out["resize_call_ms"] = summary(r["call_ms"] for r in resize)
        out["resize_until_view_ms"] = summary(r["shown_ms"] for r in resize)

        shots = []
        for _ in range(n):
            t0 = time.perf_counter()
            image = h.screenshot()
            shots.append((time.perf_counter() - t0) * 1000)
        out["screenshot_ms"] = summary(shots)
        out["screenshot_size"] = list(image.size)

        try:
            keys = []
            h.key("shift")  # first call builds the keymap
            for _ in range(n * 5):
                t0 = time.perf_counter()
                h.key("shift")
                keys.append((time.perf_counter() - t0) * 1000)
            out["key_ms"] = summary(keys, 4)
        except Exception as exc:
            out["key_error"] = repr(exc)

        try:
            out.update(_type_speed(h))
        except Exception as exc:
            out["type_error"] = repr(exc)

        try:
            out.update(_click_speed(h))
        except Exception as exc:
            out["click_error"] = repr(exc)

        try:
            out.update(_vision_speed(h, n))
        except Exception as exc:
            out["vision_error"] = repr(exc)
    finally:
        h._resources.release()
    return out


def _vision_speed(h, n: int) -> dict:
    """d.locate on the 1280x800 screen (images cut from an xterm on it, found and not found), d.pixel, and
    what d.wait_until_stable costs beyond its duration on a still screen."""
    from PIL import Image

    app = h.launch(["xterm", "-geometry", "80x24+300+200"])
    out: dict = {}
    try:
        deadline = time.monotonic() + 15
        while (window := h.wait_for_window(pid=app.pid, timeout=15)).geometry[2] < 50:  # mapped, not yet sized
            if time.monotonic() > deadline:
                raise TimeoutError(f"xterm's window stays {window.geometry}")
            time.sleep(0.05)
        h.wait_until_stable(duration=0.5, timeout=15)
        x, y, _, _ = window.geometry
        out["locate_screen"] = list(h.size)
        for w, ht in ((32, 32), (120, 80), (300, 200)):
            template = h.screenshot(region=(x, y, w, ht))
            found, times = [], []
            for _ in range(max(5, n // 4)):
                t0 = time.perf_counter()
                found.append(h.locate(template) == (x, y, w, ht))
                times.append((time.perf_counter() - t0) * 1000)
            absent = Image.new("RGB", (w, ht), (250, 20, 200))
            absent.paste((10, 200, 30), (0, 0, w // 2, ht))
            misses = []
            for _ in range(max(5, n // 4)):
                t0 = time.perf_counter()
                assert h.locate(absent) is None
                misses.append((time.perf_counter() - t0) * 1000)
            out[f"locate_{w}x{ht}_ms"] = summary(times, 1)
            out[f"locate_{w}x{ht}_absent_ms"] = summary(misses, 1)
            out[f"locate_{w}x{ht}_correct"] = all(found)
        pixels = []
        for _ in range(n):
            t0 = time.perf_counter()
            h.pixel(5, 5)
            pixels.append((time.perf_counter() - t0) * 1000)
        out["pixel_ms"] = summary(pixels, 2)
        stable = []
        for _ in range(5):
            t0 = time.perf_counter()
            h.wait_until_stable(duration=0.2, timeout=10)
            stable.append((time.perf_counter() - t0) * 1000 - 200)
        out["stable_overhead_ms"] = summary(stable, 1)
    finally:
        with contextlib.suppress(Exception):
            app.terminate()
            app.wait(5)
    return out


# Mixed scripts (~140 distinct characters; most need a temporary binding on a US keymap).
MIXED_TEXT = (
    "Grüße aus München! Ça va très bien. ¿Dónde está la señal? Příliš žluťoučký kůň úpěl ďábelské ódy. "
    "Zażółć gęślą jaźń. Γειά σου κόσμε — Привет, мир! Съешь же ещё этих мягких французских булок. "  # noqa: RUF001
    "日本語のテキスト、東京で会いましょう。中文也可以。 ✓ done → next ★ 3 × 4 ≠ 12 ± 0.5 € 20 £ 15 ¥ 300 “quoted” …"  # noqa: RUF001
)


def _type_speed(h) -> dict:
    """``d.type()`` into xterm: ASCII, then mixed scripts; characters per second until they arrived."""
    out = _type_into_xterm(h, "", _ASCII_TEXT)
    out.update(_type_into_xterm(h, "mixed_", "".join(f"{MIXED_TEXT}\n" for _ in range(4))))
    return out


_ASCII_LINE = "The quick brown fox jumps over the lazy dog 0123456789 ,.;:!?()[]{}<>+-*/=_ @#$%^&~ abcdefghijkl"
_ASCII_TEXT = "".join(f"{_ASCII_LINE}\n" for _ in range(20))


def _type_into_xterm(h, prefix: str, text: str) -> dict:
    target = Path(tempfile.mkdtemp(prefix="dwb-type-")) / "typed.txt"
    app = h.launch(
        ["xterm", "-u8", "-geometry", "100x20+10+10", "-e", "sh", "-c", f"stty -echo; exec cat > {target}"],
        env={"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"},
    )
    try:
        deadline = time.monotonic() + 15
        while (window := h.wait_for_window(pid=app.pid, timeout=15)).geometry[2] < 50:  # mapped, not yet sized
            if time.monotonic() > deadline:
                raise TimeoutError(f"xterm's window stays {window.geometry}")
            time.sleep(0.05)
        wx, wy, ww, wh = window.geometry
        x, y = wx + ww // 2, wy + wh // 2
        h.click(x, y)
        time.sleep(0.5)
        t0 = time.perf_counter()
        h.type(text)
        sent = time.perf_counter() - t0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if target.exists() and len(target.read_text(encoding="utf-8")) >= len(text):
                break
            time.sleep(0.005)
        arrived = time.perf_counter() - t0
        got = target.read_text(encoding="utf-8") if target.exists() else ""
        return {
            f"{prefix}type_chars": len(text),
            f"{prefix}type_chars_per_s_sent": round(len(text) / sent),
            f"{prefix}type_chars_per_s_arrived": round(len(text) / arrived) if got == text else None,
            f"{prefix}type_correct": got == text,
        }
    finally:
        with contextlib.suppress(Exception):
            app.terminate()
            app.wait(5)
        with contextlib.suppress(OSError):
            target.unlink()
            target.parent.rmdir()


def _click_speed(h) -> dict:
    """``d.click(count=N)``: time per click at growing N (flat when linear; it was quadratic, issue 9)."""
    w, hgt = h.size
    out = {}
    for count in (1_000, 10_000, 30_000):
        t0 = time.perf_counter()
        h.click(w - 5, hgt - 5, button="forward", count=count)  # a button nothing on the desktop acts on
        out[f"click_us_per_click_{count}"] = round((time.perf_counter() - t0) / count * 1e6, 1)
    return out


def close_page_of(target) -> None:
    close_page(target.page)
    target.page = None


# -- helpers for the notebook's desktops -------------------------------------------------------------
def new_desktop(ours: Ours, cell: str = "cold-wm", timeout: float = 30) -> dict:
    """Run a cell that makes ``d`` (after stopping the others) and wait for its first frame."""
    ours.stop_desktops()
    before = ours.page.evaluate("() => __bench.canvases.length")
    ours.run_cell(cell)
    ok = wait_js(
        ours.page,
        "(n) => __bench.canvases.slice(n).some(c => c.canvas.isConnected && c.tFirstFrame)",
        before,
        timeout=timeout,
    )
    if not ok:
        raise RuntimeError(f"the desktop of cell {cell!r} showed no frame in {timeout} s")
    info = ours.desktop_info()
    time.sleep(0.5)
    return info


# -- transports (ours) ------------------------------------------------------------------------------
def _comm_bytes(ours: Ours) -> int:
    """What the kernel's comm pumps of ``d`` have sent so far (the comm's bytes do not cross a desktop WebSocket)."""
    return int(ours.eval_json("sum(p.sent for p in d.view._tunnel.pumps())") or 0)


def transports(ours: Ours, n_latency: int, burst_s: float, results_dir: Path) -> list[dict]:
    """The same light-WM desktop through the server route, then through the widget's comm (transport="comm")."""
    rows = []
    for transport, cell in (("server", "cold-wm"), ("comm", "comm-wm")):
        new_desktop(ours, cell)
        shown = ours.page.evaluate(
            "() => [...document.querySelectorAll('.dw-root')].filter(r => r.isConnected).map(r => r.dataset.transport)"
        )
        log(f"transport {transport}: latency (views say {shown})")
        row: dict = {"transport": transport, "views_say": shown}
        row["latency"] = latency(
            ours.page, ours.env, ours.socket, n_latency, screenshot=results_dir / f"ours-{transport}-latency.png"
        )
        for mode in ("solid", "noise"):
            log(f"transport {transport}: throughput {mode}")
            before = _comm_bytes(ours) if transport == "comm" else 0
            t = throughput(
                ours.page,
                ours.env,
                groups_ours(ours),
                mode,
                burst_s,
                screenshot=results_dir / f"ours-{transport}-{mode}.png",
            )
            if transport == "comm":
                sent = _comm_bytes(ours) - before
                t["ws_bytes_per_s"] = round(sent / t["seconds"])
                t["ws_mbit_per_s"] = round(sent * 8 / t["seconds"] / 1e6, 1)
            row[mode] = t
        rows.append(row)
    return rows


# -- scale (ours) ------------------------------------------------------------------------------------
def scale(ours: Ours, n_latency: int, desktops=(1, 2, 4), views=(1, 4, 8)) -> dict:
    out: dict = {"desktops": [], "views": []}
    for n in desktops:
        log(f"scale: {n} desktops")
        ours.stop_desktops()
        ours.exec(f"N_DESKTOPS = {n}")
        before = ours.page.evaluate("() => __bench.canvases.length")
        ours.run_cell("desktops")
        ok = wait_js(
            ours.page,
            "([b, n]) => __bench.canvases.slice(b).filter(c => c.canvas.isConnected && c.tFirstFrame).length >= n",
            [before, n],
            timeout=60,
        )
        if not ok:
            raise RuntimeError(f"{n} desktops did not all show a frame")
        infos = [ours.desktop_info(f"ds[{i}]") for i in range(n)]
        time.sleep(1.0)
        lat = latency(ours.page, infos[0]["env"], infos[0]["socket"], n_latency, first_only=True)
        groups = groups_ours(ours, infos)
        mem = memory_of(groups)
        total = mem["desktop"]["pss_mib"]
        out["desktops"].append(
            {
                "n": n,
                "latency": {k: v for k, v in lat.items() if k != "samples"},
                "desktops_pss_mib": total,
                "desktops_uss_mib": mem["desktop"]["uss_mib"],
                "per_desktop_pss_mib": round(total / n, 1),
                "server_pss_mib": mem["jupyter_server"]["pss_mib"],
                "kernel_pss_mib": mem["kernel"]["pss_mib"],
                "chromium_pss_mib": mem["chromium"]["pss_mib"],
            }
        )
    ours.stop_desktops()
    info = new_desktop(ours)
    for n in views:
        log(f"scale: {n} views")
        ours.exec(f"VIEWS = {n - 1}")
        before = ours.page.evaluate("() => __bench.canvases.length")
        ours.run_cell("views")
        if n > 1:
            ok = wait_js(
                ours.page,
                "([b, n]) => __bench.canvases.slice(b).filter(c => c.canvas.isConnected && c.tFirstFrame).length >= n",
                [before, n - 1],
                timeout=60,
            )
            if not ok:
                raise RuntimeError(f"{n} views did not all show a frame")
        time.sleep(1.0)
        lat = latency(ours.page, info["env"], info["socket"], n_latency)
        groups = groups_ours(ours)
        xvnc = [p for p in groups["desktop"] if comm(p) in ("Xvnc", "Xtigervnc")]
        mem = memory_of({**groups, "xvnc": xvnc})
        out["views"].append(
            {
                "n": n,
                "views_seen": lat.get("views"),
                "latency": {k: v for k, v in lat.items() if k != "samples"},
                "xvnc_pss_mib": mem["xvnc"]["pss_mib"],
                "xvnc_uss_mib": mem["xvnc"]["uss_mib"],
                "server_pss_mib": mem["jupyter_server"]["pss_mib"],
                "chromium_pss_mib": mem["chromium"]["pss_mib"],
            }
        )
    ours.exec("VIEWS = 0")
    ours.run_cell("views")
    return out


# -- tuning (ours) -----------------------------------------------------------------------------------
def frame_rate_table(ours: Ours, frame_rates, n_latency: int, idle_s: float, burst_s: float) -> list[dict]:
    """Per Xvnc frame rate (light WM): latency and bare latency, idle CPU, noise and solid throughput with their costs."""
    rows = []
    for fr in frame_rates:
        log(f"frame_rate={fr}")
        ours.stop_desktops()
        ours.exec(f"FRAME_RATE = {fr}")
        new_desktop(ours, "cold-fr")
        lat = latency(ours.page, ours.env, ours.socket, n_latency)
        idle = resources(ours.page, groups_ours(ours), idle_s)
        noise = throughput(ours.page, ours.env, groups_ours(ours), "noise", burst_s)
        solid = throughput(ours.page, ours.env, groups_ours(ours), "solid", burst_s)
        rows.append(
            {
                "frame_rate": fr,
                "latency": {k: v for k, v in lat.items() if k != "samples"},
                "idle": {k: v for k, v in idle.items() if not k.startswith("_")},
                "noise": noise,
                "solid": solid,
            }
        )
    return rows


def tuning(ours: Ours, n_latency: int, idle_s: float, burst_s: float, frame_rates=(30, 60, 120, 240)) -> dict:
    out: dict = {"frame_rate": frame_rate_table(ours, frame_rates, n_latency, idle_s, burst_s), "quality": []}
    geometry = screen_size(ours.env)
    out["xfce_compositor"] = xfce_compositor(ours, n_latency, idle_s)
    out["xvnc_glx"] = xvnc_glx(geometry)
    ours.stop_desktops()
    ours.exec("FRAME_RATE = 60")
    new_desktop(ours, "cold-fr")
    for quality, compression in ((6, 2), (9, 2), (3, 2), (0, 2), (6, 0), (6, 9)):
        log(f"tuning: quality={quality} compression={compression}")
        ours.exec(f"d.quality = {quality}; d.compression = {compression}")  # the view's traits
        time.sleep(0.3)
        lat = latency(ours.page, ours.env, None, max(5, n_latency // 2))
        noise = throughput(ours.page, ours.env, groups_ours(ours), "noise", burst_s)
        out["quality"].append(
            {
                "quality": quality,
                "compression": compression,
                "latency": {k: lat[k] for k in ("browser_ms",) if k in lat},
                "noise": noise,
            }
        )
    ours.exec("d.quality = 6; d.compression = 2")
    return out


def xfce_compositor(ours: Ours, n_latency: int, idle_s: float) -> list[dict]:
    """XFCE as configured (xfwm4 compositing on) against ``xfwm4 --replace --compositor=off``.

    The replacement xfwm4 runs for this measurement only: the user's xfconf
    settings are not touched.
    """
    log("tuning: XFCE with and without xfwm4's compositor")
    new_desktop(ours, "cold-xfce")
    time.sleep(3)
    rows = []
    lat = latency(ours.page, ours.env, ours.socket, n_latency)
    idle = resources(ours.page, groups_ours(ours), idle_s)
    rows.append({"compositor": "on (XFCE default)", "latency": lat, "idle_desktop_cpu_pct": idle["desktop"]["cpu_pct"]})
    wm = [p for p in ours.desktop_pids() if comm(p) == "xfwm4"]
    if not wm:
        return rows
    with open(f"/proc/{wm[0]}/environ", "rb") as f:
        env = dict(v.split("=", 1) for v in f.read().decode(errors="replace").split("\0") if "=" in v)
    proc = subprocess.Popen(
        ["xfwm4", "--replace", "--compositor=off"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        time.sleep(3)
        lat = latency(ours.page, ours.env, ours.socket, n_latency)
        groups = groups_ours(ours)
        groups["desktop"] = [*groups["desktop"], proc.pid]
        idle = resources(ours.page, groups, idle_s)
        rows.append(
            {
                "compositor": "off (xfwm4 --compositor=off)",
                "latency": lat,
                "idle_desktop_cpu_pct": idle["desktop"]["cpu_pct"],
            }
        )
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        ours.stop_desktops()
    return rows


def xvnc_glx(geometry: tuple[int, int]) -> list[dict]:
    """Xvnc's own memory with its default GLX extension (Mesa's software renderer, LLVM) and without it.

    A bare Xvnc like ours (same size, no RFB listener at all, an empty cookie
    file so that no client may connect), measured 1.5 s after it started.
    """
    log("tuning: Xvnc memory with and without GLX")
    import select

    from _common import memory

    rows = []
    with tempfile.TemporaryDirectory(prefix="dwb-glx-") as tmp:
        auth = os.path.join(tmp, "Xauthority")
        Path(auth).touch()
        for label, extra in (("GLX (Xvnc's default)", []), ("-extension GLX", ["-extension", "GLX"])):
            read_fd, write_fd = os.pipe()
            args = ["-geometry", f"{geometry[0]}x{geometry[1]}", "-depth", "24", "-rfbport", "-1"]
            args += ["-SecurityTypes", "None", "-nolisten", "tcp", "-auth", auth, "-displayfd", str(write_fd)]
            proc = subprocess.Popen(
                ["Xvnc", *args, *extra],
                pass_fds=(write_fd,),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            os.close(write_fd)
            try:
                select.select([read_fd], [], [], 10)
                os.read(read_fd, 64)
                time.sleep(1.5)
                m = memory(proc.pid)
                rows.append({"xvnc": label, **{k: round(v, 1) for k, v in m.items()}})
            finally:
                os.close(read_fd)
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    return rows
