"""The first cell with a spare desktop ready (``--DesktopWidget.spare_desktops=1``), and what a ready spare costs.

Spares are found from outside, as any observer could: from /proc (an Xvnc
started by this run's server, whose supervisor is not in the registry that
``list_desktops()`` reads) and from X (its screen shows XFCE's panel).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from _common import CLK_TCK, CpuWindow, comm, environ, log, memory_of, ppid_table, screen, start_ticks, tree
from _firstcell import FirstCell, _first_cell_trial, _summarise, calibrate_panel
from _targets import Browser, Ours

SPARE_SETTLED_S = 5.0  # a spare's Xvnc this old has drawn its XFCE (it takes 1-3 s)


def spares(ours: Ours) -> list[dict]:
    """The spare desktops of this server now: supervisor pid, X environment and age (s) of each."""
    old = os.environ.get("JUPYTER_RUNTIME_DIR")
    os.environ["JUPYTER_RUNTIME_DIR"] = str(ours.runtime)
    try:
        import desktop_widget

        claimed = {i.supervisor_pid for i in desktop_widget.list_desktops()}
    finally:
        if old is None:
            del os.environ["JUPYTER_RUNTIME_DIR"]
        else:
            os.environ["JUPYTER_RUNTIME_DIR"] = old
    table = ppid_table()
    out = []
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    for pid, parent in table.items():
        if comm(pid) != "Xvnc" or parent in claimed or environ(pid).get("JUPYTER_RUNTIME_DIR") != str(ours.runtime):
            continue
        session = [p for p in tree(parent, table) if "DISPLAY" in environ(p)]
        if not session:
            continue
        env = environ(session[0])
        age = uptime - (start_ticks(pid) or 0) / CLK_TCK
        out.append({"supervisor": parent, "env": {k: env[k] for k in ("DISPLAY", "XAUTHORITY")}, "age": age})
    return out


def _panel_drawn(env: dict[str, str], panel: dict) -> bool:
    try:
        row = list(screen(env, panel["points"][0][1], 1).getdata())
    except Exception:
        return False
    rgb = panel["rgb"]
    hits = sum(
        1
        for x, _ in panel["points"]
        if x < len(row) and all(abs(a - b) <= 10 for a, b in zip(row[x], rgb, strict=True))
    )
    return hits >= panel["need"]


def wait_settled_spare(ours: Ours, panel: dict | None = None, timeout: float = 90) -> dict:
    """A spare that has drawn its panel (or, before the panel's colour is known, one old enough to have)."""
    deadline = time.monotonic() + timeout
    while True:
        ready = [s for s in spares(ours) if (_panel_drawn(s["env"], panel) if panel else s["age"] >= SPARE_SETTLED_S)]
        if ready:
            return max(ready, key=lambda s: s["age"])
        if time.monotonic() > deadline:
            raise RuntimeError(f"no settled spare desktop in {timeout} s")
        time.sleep(0.2)


def spare_idle_cost(ours: Ours, idle_s: float) -> dict:
    """What one ready spare costs while nobody uses it: memory of its whole tree and CPU over ``idle_s``."""
    sup = wait_settled_spare(ours)["supervisor"]
    pids = sorted(tree(sup) | {sup})
    cpu = CpuWindow({"spare": pids})
    time.sleep(idle_s)
    used = cpu.end()["spare"]
    mem = memory_of({"spare": pids})["spare"]
    return {
        "idle_s": idle_s,
        "cpu_pct": used,
        "pss_mib": mem["pss_mib"],
        "uss_mib": mem["uss_mib"],
        "processes": len(pids),
        "largest": [f"{p['comm']} {p['pss']:.0f}/{p['uss']:.0f}" for p in mem["processes"][:6]],
    }


def first_cell_spare(browser: Browser, workdir: Path, n: int, idle_s: float, results_dir: Path) -> dict:
    """The first cell on a server that keeps one spare desktop ready; and that spare's idle cost."""
    log(f"first cell with a spare desktop ready: 1 warm-up + {n}")
    ours = Ours(browser, workdir, server_args=("--DesktopWidget.spare_desktops=1",))
    fc = FirstCell(ours, browser)
    try:
        idle = spare_idle_cost(ours, idle_s)
        log(f"  a ready spare at idle: {idle['pss_mib']} MiB PSS, {idle['cpu_pct']} % CPU")
        claimed: list[int] = []
        panel: dict | None = None

        def settled_spare() -> None:
            claimed.append(wait_settled_spare(ours, panel)["supervisor"])

        warm = _first_cell_trial(fc, None, before_run=settled_spare)
        time.sleep(4)
        panel = calibrate_panel(fc.settled_desktop()["env"])
        trials, checks = [], {"claimed_spare": 0, "resized_to_view": 0}
        for i in range(n):
            trial = _first_cell_trial(fc, panel, before_run=settled_spare)
            # Desktop() took the spare that was ready, and the view's first resize reached it (a spare
            # starts at 1280x800; the last canvas on the page has the desktop's size).
            checks["claimed_spare"] += fc.supervisor == claimed[-1]
            size = fc.eval_json("list(d.size)")
            canvas = fc.page.evaluate(
                "() => __bench.state().canvases.filter(c => c.w >= 64).map(c => [c.w, c.h]).at(-1)"
            )
            checks["resized_to_view"] += size == canvas and size != [1280, 800]
            trials.append(trial)
            log(f"  ours+spare: first colour {trial['first_colour_s']} s, panel {trial['panel_s']} s")
            if i == n - 1:
                time.sleep(1.5)
                fc.page.screenshot(path=str(results_dir / "ours-first-cell-spare-page.png"))
        return {
            "warmup": warm,
            "panel_calibration": panel,
            "trials": trials,
            "summary": _summarise(trials),
            **checks,
            "idle": idle,
        }
    finally:
        fc.close()
        ours.close()
