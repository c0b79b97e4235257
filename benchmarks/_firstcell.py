"""Cold start as a person sees it: Shift+Enter on the first cell of a fresh kernel until XFCE is usable.

The cell is ``from desktop_widget import Desktop; d = Desktop(); d`` with the
default options (XFCE, the view's size), in a notebook of its own whose kernel
is restarted before every trial, so the import is on the clock. Headline: the
first non-black frame on the canvas and the top panel drawn on it; the old
stages (kernel, ``Desktop()`` returns, view, WebSocket, first RFB byte, first
frame of any colour) are kept as the breakdown. Upstream's trials run in turn
with ours (same load), timed from opening its page.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

import nbformat
from _common import CpuWindow, align, cmdline, memory_of, ppid_table, root_row, save_root_png, summary, tree
from _metrics import (
    PANEL_TOL,
    PANEL_WATCH,
    _upstream_cold_trial,
    calibrate_panel,
    log,
    stages,
    started_at,
)
from _targets import NOTEBOOK_KERNELSPEC, Browser, Ours, api, close_page, wait_js

FIRST_NOTEBOOK = "first-cell.ipynb"
#: The cell a person runs. The time stamps around it (``time`` is imported by
#: ipykernel anyway) only split the breakdown; they cost microseconds.
FIRST_CELL = (
    "# bench: first\nimport time; _t0 = time.time()\n"
    "from desktop_widget import Desktop; _t1 = time.time(); d = Desktop(); _t2 = time.time(); d"
)


class FirstCell:
    """The first-cell notebook open in its own page of our JupyterLab, and a side client on its kernel."""

    def __init__(self, ours: Ours, browser: Browser) -> None:
        self.ours = ours
        self.server = ours.server
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(FIRST_CELL)])
        nb.metadata["kernelspec"] = NOTEBOOK_KERNELSPEC
        nbformat.write(nb, str(self.server["root"] / FIRST_NOTEBOOK))
        self.browser = browser
        self.page = None
        self.kc = None
        self.kernel_id = None
        self.supervisor: int | None = None

    def open(self) -> None:
        from playwright.sync_api import expect

        self.page = self.browser.new_page()
        # A workspace of its own, so that the benchmark notebook of the other page is not restored here.
        url = f"{self.server['url']}lab/workspaces/first-cell/tree/{FIRST_NOTEBOOK}?token={self.server['token']}"
        self.page.goto(url, timeout=90_000)
        self.cell().wait_for(timeout=90_000)
        self._wait_idle_status(expect)
        if self.page.locator("#jp-left-stack").is_visible():
            self.page.keyboard.press("Control+b")
            self.page.locator("#jp-left-stack").wait_for(state="hidden", timeout=10_000)
        deadline = time.monotonic() + 60
        while self.kernel_id is None:
            for s in api(self.server, "api/sessions"):
                if s.get("path", "").endswith(FIRST_NOTEBOOK):
                    self.kernel_id = s["kernel"]["id"]
            if time.monotonic() > deadline:
                raise RuntimeError("the first-cell notebook has no kernel")
            time.sleep(0.2)

    def _wait_idle_status(self, expect) -> None:
        import re

        expect(self.page.locator('.jp-StatusBar-TextItem[title^="Change kernel"]')).to_have_text(
            re.compile(r"ipykernel.*\| Idle"), timeout=90_000
        )

    def _client(self):
        from jupyter_client import BlockingKernelClient

        if self.kc is not None:
            with contextlib.suppress(Exception):
                self.kc.stop_channels()
        self.kc = BlockingKernelClient(connection_file=str(self.ours.runtime / f"kernel-{self.kernel_id}.json"))
        self.kc.load_connection_file()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        return self.kc

    def eval_json(self, expression: str) -> object:
        out: list[str] = []

        def hook(msg: dict) -> None:
            if msg["header"]["msg_type"] == "stream":
                out.append(msg["content"]["text"])

        code = f"import json as _json; print(_json.dumps({expression}))"
        self.kc.execute_interactive(code, timeout=60, output_hook=hook, store_history=False)
        return json.loads("".join(out).strip().splitlines()[-1])

    def fresh_kernel(self) -> None:
        """Restart the kernel as a person does (its desktop stops with it); wait until it is idle and the old desktop gone."""
        from playwright.sync_api import expect

        self.cell().locator(".jp-InputArea-prompt").click()
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
        self._wait_idle_status(expect)
        self._client()
        time.sleep(1.0)  # the new kernel's own start-up settles (it is not what we time)

    def cell(self):
        return self.page.locator(".jp-CodeCell").filter(has=self.page.locator(".cm-content", has_text="# bench: first"))

    def run(self) -> None:
        prompt = self.cell().locator(".jp-InputArea-prompt")
        prompt.click()
        self.page.keyboard.press("Shift+Enter")

    def settled_desktop(self) -> dict:
        info = self.eval_json(
            '{"env": d.env, "supervisor": next(i for i in __import__("desktop_widget").list_desktops() if i.id == d.id).supervisor_pid}'
        )
        self.supervisor = info["supervisor"]
        return info

    def close(self) -> None:
        if self.kc is not None:
            with contextlib.suppress(Exception):
                self.kc.stop_channels()
        if self.page is not None:
            close_page(self.page)
        if self.kernel_id:
            with contextlib.suppress(Exception):
                api(self.server, f"api/kernels/{self.kernel_id}", "DELETE")


def _first_cell_trial(fc: FirstCell, panel: dict | None, timeout: float = 30, before_run=None) -> dict:
    fc.fresh_kernel()
    if before_run is not None:
        before_run()
    page = fc.page
    page.evaluate("() => __bench.resetRoot()")
    if panel:
        page.evaluate(PANEL_WATCH, [panel, PANEL_TOL])
    offset, err = align(page)
    before = page.evaluate("() => __bench.canvases.length")
    fc.run()
    colour = wait_js(
        page,
        """(n) => { const c = __bench.canvases.slice(n).find(c => c.canvas.isConnected && c.tFirstColour);
                    return c ? c.tFirstColour : null; }""",
        before,
        timeout=timeout,
        poll=0.05,
    )
    panel_t = None
    if panel:
        panel_t = wait_js(
            page,
            "(n) => { const c = __bench.canvases.slice(n).find(c => c.canvas.isConnected); const h = __bench.hits('panel'); "
            "return c && h.length ? h[h.length - 1] : null; }",
            before,
            timeout=timeout,
            poll=0.05,
        )
    state = page.evaluate("() => __bench.state()")
    canvases = [c for c in state["canvases"] if c["w"] >= 64]
    frame = canvases[-1]["tFirstFrame"] if canvases else None
    kernel = fc.eval_json("[_t0, _t1, _t2]")
    info = fc.settled_desktop()
    started = started_at(sorted(tree(info["supervisor"])))
    return stages(
        state,
        offset,
        err,
        page_ms={"first_colour_s": colour, "panel_s": panel_t, "first_frame_s": frame},
        kernel_s={"kernel_start_s": kernel[0], "imported_s": kernel[1], "desktop_ready_s": kernel[2]},
        started=started,
    )


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
        fc.open()
        warm = _first_cell_trial(fc, None)
        time.sleep(4)  # settled: learn where the panel is, and look at it
        info = fc.settled_desktop()
        panel = calibrate_panel(info["env"])
        save_root_png(info["env"], str(results_dir / "ours-first-cell-x-screen.png"))
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


# -- with a spare desktop ready (--DesktopWidget.spare_desktops=1) --------------------------------------
SPARE_SETTLED_S = 5.0  # a spare's marker this old: its XFCE has drawn (it takes 1-3 s)


def _spare_ids(ours: Ours) -> dict[str, float]:
    """Spare desktops ready now: id -> age of their ``spare`` marker (s)."""
    now = time.time()
    out = {}
    for marker in (ours.runtime / "desktop-widget").glob("*/spare"):
        with contextlib.suppress(OSError):
            out[marker.parent.name] = now - marker.stat().st_mtime
    return out


def _panel_drawn(ours: Ours, desktop_id: str, panel: dict) -> bool:
    """Whether a spare's own screen shows XFCE's panel (its marker holds the display)."""
    directory = ours.runtime / "desktop-widget" / desktop_id
    try:
        display = json.loads((directory / "spare").read_text())["display"]
        row = root_row({"DISPLAY": f":{display}", "XAUTHORITY": str(directory / "Xauthority")}, panel["points"][0][1])
    except Exception:
        return False
    rgb = panel["rgb"]
    hits = sum(
        1
        for x, _ in panel["points"]
        if x < len(row) and all(abs(a - b) <= 10 for a, b in zip(row[x], rgb, strict=True))
    )
    return hits >= panel["need"]


def _wait_settled_spare(ours: Ours, timeout: float = 90, panel: dict | None = None) -> str:
    """A spare that has drawn its panel (or, before the panel's colour is known, one old enough to have)."""
    deadline = time.monotonic() + timeout
    while True:
        ready = {
            k: age
            for k, age in _spare_ids(ours).items()
            if (_panel_drawn(ours, k, panel) if panel else age >= SPARE_SETTLED_S)
        }
        if ready:
            return max(ready, key=ready.get)
        if time.monotonic() > deadline:
            raise RuntimeError(f"no settled spare desktop in {timeout} s")
        time.sleep(0.2)


def _spare_supervisor(desktop_id: str) -> int | None:
    table = ppid_table()
    return next((table[p] for p in table if f"desktop-{desktop_id}" in cmdline(p)), None)


def spare_idle_cost(ours: Ours, idle_s: float) -> dict:
    """What one ready spare costs while nobody uses it: memory of its whole tree and CPU over ``idle_s``."""
    spare = _wait_settled_spare(ours)
    sup = _spare_supervisor(spare)
    pids = sorted(tree(sup) | {sup})
    cpu = CpuWindow.begin({"spare": pids})
    time.sleep(idle_s)
    used = cpu.end()["spare"]
    mem = memory_of({"spare": pids})["spare"]
    return {
        "idle_s": idle_s,
        "cpu_pct": used["cpu_pct"],
        "pss_mib": mem["pss_mib"],
        "uss_mib": mem["uss_mib"],
        "rss_mib": mem["rss_mib"],
        "processes": len(pids),
        "largest": [f"{p['comm']} {p['pss']:.0f}/{p['uss']:.0f}" for p in mem["processes"][:6]],
    }


def first_cell_spare(browser: Browser, workdir: Path, n: int, idle_s: float, results_dir: Path) -> dict:
    """The same first cell, on a server that keeps one spare desktop ready; and that spare's idle cost."""
    log(f"first cell with a spare desktop ready: 1 warm-up + {n}")
    ours = Ours(browser, workdir, server_args=("--DesktopWidget.spare_desktops=1",))
    fc = FirstCell(ours, browser)
    try:
        fc.open()
        idle = spare_idle_cost(ours, idle_s)
        log(f"  a ready spare at idle: {idle['pss_mib']} MiB PSS, {idle['cpu_pct']} % CPU")
        claimed: list[str] = []
        panel: dict | None = None

        def settled_spare() -> None:
            claimed.append(_wait_settled_spare(ours, panel=panel))

        warm = _first_cell_trial(fc, None, before_run=settled_spare)
        time.sleep(4)
        info = fc.settled_desktop()
        panel = calibrate_panel(info["env"])
        trials = []
        for i in range(n):
            trial = _first_cell_trial(fc, panel, before_run=settled_spare)
            trial["claimed_spare"] = fc.eval_json("d.id") == claimed[-1]
            # The view's first resize reaches the claimed desktop (a spare starts at 1280x800).
            trial["resized_to_view"] = fc.eval_json("list(d.size) == list(d.view._view_size)")
            trials.append(trial)
            log(f"  ours+spare: first colour {trial['first_colour_s']} s, panel {trial['panel_s']} s")
            if i == n - 1:
                time.sleep(1.5)
                fc.page.screenshot(path=str(results_dir / "ours-first-cell-spare-page.png"))
        return {
            "warmup": warm,
            "panel_calibration": panel,
            "trials": trials,
            "summary": _summarise(
                [{k: v for k, v in t.items() if k not in ("claimed_spare", "resized_to_view")} for t in trials]
            ),
            "claimed_spare": sum(t["claimed_spare"] for t in trials),
            "resized_to_view": sum(bool(t["resized_to_view"]) for t in trials),
            "idle": idle,
        }
    finally:
        fc.close()
        ours.close()
