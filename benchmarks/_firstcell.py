"""Cold start as a person sees it: Shift+Enter on the first cell of a fresh kernel until XFCE is usable.

The cell is ``from desktop_widget import Desktop; d = Desktop(); d`` with the
default options (XFCE, the view's size), in a notebook of its own whose kernel
is restarted before every trial, so the import is on the clock. Headline: the
first non-black frame on the canvas and the top panel drawn on it; the
stages (kernel, ``Desktop()`` returns, view, WebSocket, first RFB byte, first
frame of any colour) are kept as the breakdown. Upstream's trials run in turn
with ours (same load), timed from opening its page.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import time
from pathlib import Path

from _common import (
    CLK_TCK,
    align,
    comm,
    log,
    screen,
    start_ticks,
    summary,
    tree,
)
from _targets import Browser, Notebook, Ours, Upstream, wait_js, wait_kernel_idle

PANEL_Y = 13  # the middle row of XFCE's 26-pixel top panel (the config both sides use)
PANEL_TOL = 10


# -- the panel detector --------------------------------------------------------------------
def calibrate_panel(env: dict[str, str]) -> dict | None:
    """Where XFCE's top panel shows its background colour, read from the X screen once it has settled.

    Returns the colour and up to 40 x positions (at y = PANEL_Y) that have it;
    "panel drawn" is then: at least 90 % of those canvas pixels show it.
    """
    row = list(screen(env, PANEL_Y, 1).getdata())
    colour, count = collections.Counter(row).most_common(1)[0]
    if count < len(row) // 3:
        return None
    xs = [x for x, c in enumerate(row) if c == colour]
    step = max(1, len(xs) // 40)
    points = [[x, PANEL_Y] for x in xs[::step]][:40]
    return {"rgb": list(colour), "points": points, "need": int(len(points) * 0.9), "share": round(count / len(row), 2)}


#: The processes whose start the breakdown shows (ours and upstream's).
PROFILE_COMMS = {"vncserver", "Xvnc", "Xtigervnc", "dbus-launch", "dbus-daemon", "xfce4-session", "xfwm4",
                 "xfsettingsd", "xfce4-panel", "xfdesktop", "openbox"}  # fmt: skip


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


def _times(page, before: int, panel: bool, timeout: float = 40) -> dict:
    """When the first canvas made after ``before`` had its first frame, its first non-black frame and the panel."""
    first = "([n, f]) => __bench.canvases.slice(n).find(c => c.canvas.isConnected && c[f])?.[f] ?? null"
    out = {"first_colour_s": wait_js(page, first, [before, "tFirstColour"], timeout=timeout, poll=0.05)}
    out["first_frame_s"] = page.evaluate(first, [before, "tFirstFrame"])
    found = "() => __bench.hits('panel').at(-1) ?? null"
    out["panel_s"] = wait_js(page, found, timeout=timeout, poll=0.05) if panel and out["first_colour_s"] else None
    return out


# -- cold start: upstream ------------------------------------------------------------------------
def _upstream_cold_trial(browser: Browser, workdir: Path, panel: dict | None, keep: bool = False):
    """Open upstream's ``/desktop/`` on a new server (jupyter-server-proxy starts ``vncserver`` only once)."""
    upstream = Upstream(browser, workdir)
    try:
        # The panel's watch is set before the page's own scripts run, so that no frame is missed.
        watch = (
            panel
            and f"__bench.watch('panel', {json.dumps([panel['points'], panel['rgb']])[1:-1]}, {PANEL_TOL}, {panel['need']});"
        )
        page = upstream.page = browser.new_page(extra_script=watch or None)
        page.goto(f"{upstream.server.url}desktop/?token={upstream.server.token}")
        origin = page.evaluate("() => performance.timeOrigin")
        page_ms = _times(page, 0, bool(panel))
        state = {**page.evaluate("() => __bench.state()"), "tRun": origin, "tRoot": None}  # from opening the page
        offset, err = align(page)
        result = stages(state, offset, err, page_ms, {}, started_at(upstream.desktop_pids()))
    except BaseException:
        upstream.close()
        raise
    if keep:
        return result, upstream
    upstream.close()
    return result, None


def fresh_upstream(browser: Browser, workdir: Path) -> Upstream:
    """An upstream desktop for the other metrics (its cold start is not counted)."""
    _, upstream = _upstream_cold_trial(browser, workdir, None, keep=True)
    time.sleep(4)
    upstream.find_xvnc()
    return upstream


#: The cell a person runs. The time stamps around it (``time`` is imported by
#: ipykernel anyway) only split the breakdown; they cost microseconds.
FIRST_CELL = (
    "import time; _t0 = time.time()\n"
    "from desktop_widget import Desktop; _t1 = time.time(); d = Desktop(); _t2 = time.time(); d"
)


class FirstCell(Notebook):
    """The first-cell notebook open in its own page of our JupyterLab (``ours``' server)."""

    def __init__(self, ours: Ours, browser: Browser) -> None:
        self.supervisor: int | None = None  # the desktop of the last trial
        super().__init__(browser, ours.server, ours.runtime, "first-cell.ipynb", {"first": FIRST_CELL})

    def fresh_kernel(self) -> None:
        """Restart the kernel as a person does (its desktop stops with it); wait until it is idle and the old desktop gone."""
        self.cell("first").locator(".jp-InputArea-prompt").click()
        self.page.keyboard.press("0")
        self.page.keyboard.press("0")  # the notebook's "restart the kernel" shortcut, then its dialog
        self.page.locator(".jp-Dialog .jp-mod-accept").click()
        self.page.locator(".jp-Dialog").wait_for(state="detached", timeout=30_000)
        if self.supervisor is not None:
            deadline = time.monotonic() + 20
            while os.path.exists(f"/proc/{self.supervisor}") and time.monotonic() < deadline:
                time.sleep(0.05)
            self.supervisor = None
        time.sleep(0.5)  # the status leaves "Idle" before it comes back
        wait_kernel_idle(self.page)
        self.connect_kernel()
        time.sleep(1.0)  # the new kernel's own start-up settles (it is not what we time)

    def settled_desktop(self) -> dict:
        info = self.desktop_info()
        self.supervisor = info["supervisor"]
        return info


def _first_cell_trial(fc: FirstCell, panel: dict | None, before_run=None) -> dict:
    """Restart the kernel, then Shift+Enter on the first cell: the page's, the kernel's and the processes' times."""
    fc.fresh_kernel()
    if before_run is not None:
        before_run()
    page = fc.page
    page.evaluate("() => __bench.resetRoot()")
    if panel:
        page.evaluate(PANEL_WATCH, [panel, PANEL_TOL])
    offset, err = align(page)
    before = page.evaluate("() => __bench.canvases.length")
    fc.run_cell("first")
    page_ms = _times(page, before, bool(panel))
    state = page.evaluate("() => __bench.state()")
    kernel = fc.eval_json("[_t0, _t1, _t2]")
    info = fc.settled_desktop()
    started = started_at(sorted(tree(info["supervisor"])))
    kernel_s = {"kernel_start_s": kernel[0], "imported_s": kernel[1], "desktop_ready_s": kernel[2]}
    return stages(state, offset, err, page_ms, kernel_s, started)


def _summarise(trials: list[dict]) -> dict:
    out = {k: summary(t.get(k) for t in trials) for k, v in trials[0].items() if not isinstance(v, dict)}
    names = sorted({n for t in trials for n in t.get("process_started_s", {})})
    out["process_started_s"] = {n: summary(t.get("process_started_s", {}).get(n) for t in trials) for n in names}
    return out


def first_cell_pair(
    ours: Ours, browser: Browser, workdir: Path, n: int, n_upstream: int, results_dir: Path, upstream: bool = True
) -> dict:
    """Ours (first cell, fresh kernel) and upstream (its page opened), in turn; medians of each."""
    log(f"first cell of a fresh kernel → panel: 1 warm-up + {n} (upstream: {n_upstream if upstream else 0})")
    fc = FirstCell(ours, browser)
    try:
        warm = _first_cell_trial(fc, None)
        time.sleep(4)  # settled: learn where the panel is, and look at it
        info = fc.settled_desktop()
        panel = calibrate_panel(info["env"])
        screen(info["env"]).save(results_dir / "ours-first-cell-x-screen.png")
        up_panel = None
        if upstream:
            with contextlib.suppress(Exception):
                fc.eval_json("d.stop()")
            _, up = _upstream_cold_trial(browser, workdir / "fc-warm", None, keep=True)
            try:
                time.sleep(4)
                up.find_xvnc()
                up_panel = calibrate_panel(up.env)
            finally:
                up.close()
        trials, up_trials = [], []
        for i in range(max(n, n_upstream if upstream else 0)):
            if i < n:
                trials.append(_first_cell_trial(fc, panel))
                log(f"  ours: first colour {trials[-1]['first_colour_s']} s, panel {trials[-1]['panel_s']} s")
                if i == n - 1:
                    time.sleep(1.5)
                    fc.page.screenshot(path=str(results_dir / "ours-first-cell-page.png"))
            if upstream and i < n_upstream:
                with contextlib.suppress(Exception):
                    fc.eval_json("d.stop()")
                result, _ = _upstream_cold_trial(browser, workdir / f"fc-{i}", up_panel)
                up_trials.append(result)
                log(f"  upstream: first colour {result.get('first_colour_s')} s, panel {result['panel_s']} s")
        out = {
            "ours": {"warmup": warm, "panel_calibration": panel, "trials": trials, "summary": _summarise(trials)},
        }
        if upstream:
            out["upstream"] = {"panel_calibration": up_panel, "trials": up_trials, "summary": _summarise(up_trials)}
        return out
    finally:
        fc.close()
