# ruff: noqa: RUF001, RUF002 - the report is typeset: en dashes, minus and multiplication signs
"""The machine and versions, and the Markdown report and the README's table from the raw results: numbers only."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import subprocess
from importlib import metadata
from pathlib import Path

from _targets import CHROMIUM, ROOT, UPSTREAM_VENV

README_START = "<!-- benchmarks:start -->"
README_END = "<!-- benchmarks:end -->"


def _run(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (out.stdout + out.stderr).strip()


def _dpkg(package: str) -> str:
    return _run(["dpkg-query", "-W", "-f=${Version}", package]) or "?"


def environment() -> dict:
    """The machine, its load, and the versions of everything measured."""
    mem_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    ours = {}
    for package in ("desktop_widget", "jupyterlab", "jupyter_server", "anywidget", "ipykernel", "playwright"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            ours[package] = metadata.version(package)
    code = "import importlib.metadata as m; print(m.version('jupyter-remote-desktop-proxy'))"
    git = _run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git": git + (" (modified)" if _run(["git", "-C", str(ROOT), "status", "--porcelain", "-uno"]) else ""),
        "machine": {
            "cores": os.cpu_count(),
            "ram_gib": round(mem_kib / 1024 / 1024, 1),
            "cpu": cpu.group(1).strip() if cpu else "?",
            "loadavg_at_start": os.getloadavg(),
        },
        "versions": {
            "Xvnc": _run(["Xvnc", "-version"]).split(" - ")[0].replace("Xvnc ", "", 1).strip(),
            "chromium": next((v for v in _run([CHROMIUM, "--version"]).splitlines() if "Chromium" in v), "?"),
            "noVNC (ours)": json.loads((ROOT / "js/node_modules/@novnc/novnc/package.json").read_text())["version"],
            "xfce4-session": _dpkg("xfce4-session"),
            "openbox": _dpkg("openbox"),
            **ours,
            "jupyter-remote-desktop-proxy (upstream)": _run([str(UPSTREAM_VENV / "bin" / "python"), "-c", code]),
        },
    }


def fmt(s: dict | None, scale: float = 1.0, digits: int = 0) -> str:
    """``median (min–max, n)`` of a summary, or a dash."""
    if not s or not s.get("n"):
        return "–"
    f = lambda v: f"{v * scale:.{digits}f}"  # noqa: E731
    return f(s["median"]) if s["n"] == 1 else f"{f(s['median'])} ({f(s['min'])}–{f(s['max'])}, n={s['n']})"


def med(s: dict | None) -> float | None:
    return s.get("median") if s and s.get("n") else None


def _get(d: object, *path: str) -> object:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def _n(v: object, digits: int = 0) -> str:
    return "–" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


#: Ours' desktops for latency and frames/s: (results key, label); upstream's XFCE sits beside ours'.
ROUTES = [("ours_xfce", "XFCE"), ("ours_wm", "light WM"), ("ours_wm_comm", "light WM, comm transport")]
HEADER = ["metric", "ours", "upstream", "bare RFB reference"]


def summary_rows(r: dict) -> list[list[str]]:
    """The README's table: one row per metric; ours, upstream and the bare reference side by side."""
    fc, lat, tp, res, api = (r.get(k) or {} for k in ("first_cell", "latency", "throughput", "resources", "api"))
    up = lambda key, d: d.get("upstream_xfce") if key == "ours_xfce" else None  # noqa: E731
    # fmt: off
    rows = [
        ["first cell (Shift+Enter, fresh kernel) → first non-black frame (ms)",
         fmt(_get(fc, "ours", "summary", "first_colour_s"), 1000), fmt(_get(fc, "upstream", "summary", "first_colour_s"), 1000), ""],
        ["first cell → XFCE panel drawn (ms)",
         fmt(_get(fc, "ours", "summary", "panel_s"), 1000), fmt(_get(fc, "upstream", "summary", "panel_s"), 1000), ""],
        ["first cell → XFCE panel drawn, a spare ready (`spare_desktops=1`) (ms)",
         fmt(_get(fc, "spare", "summary", "panel_s"), 1000), "", ""],
    ]
    for key, label in ROUTES:
        ours, theirs = lat.get(key), up(key, lat)
        rows += [[f"update latency, X change → canvas, {label} (ms)", fmt(_get(ours, "browser_ms"), digits=1),
                  fmt(_get(theirs, "browser_ms"), digits=1), fmt(_get(ours, "bare_rfb_ms"), digits=1)],
                 [f"… ÷ bare RFB client, {label} (ratio of medians)", _n(_get(ours, "ratio_to_bare"), 2),
                  _n(_get(theirs, "ratio_to_bare"), 2), "1" if ours else ""]]
    rows += [[f"{mode} animation 1024×640 at 60 fps, {label}: frames drawn/s", _n(_get(tp, key, mode, "drawn_per_s"), 1),
              _n(_get(up(key, tp), mode, "drawn_per_s"), 1), ""] for mode in ("solid", "noise") for key, label in ROUTES]
    rows += [[f"desktop PSS, {label} (MiB)", _n(_get(res, key, "desktop", "pss_mib")),
              _n(_get(up(key, res), "desktop", "pss_mib")), ""] for key, label in ROUTES[:2]]
    rows += [
        ["idle CPU of the desktop, XFCE, view open (% of a core)", _n(_get(res, "ours_xfce", "desktop", "cpu_pct"), 1),
         _n(_get(res, "upstream_xfce", "desktop", "cpu_pct"), 1), ""],
        [f"WebSocket bytes received while idle, XFCE ({_n(_get(res, 'ours_xfce', 'seconds'))} s)",
         _n(_get(res, "ours_xfce", "ws_bytes_in")), _n(_get(res, "upstream_xfce", "ws_bytes_in")), ""],
        ["a ready spare at idle: PSS (MiB) / CPU (% of a core)",
         f"{_n(_get(fc, 'spare', 'idle', 'pss_mib'))} / {_n(_get(fc, 'spare', 'idle', 'cpu_pct'), 1)}", "", ""],
        ["`d.key()` round trip (ms)", fmt(api.get("key_ms"), digits=2), "", ""],
        [f"`d.type()` characters/s (into xterm, {api.get('type_chars', '?')} characters)", _n(api.get("type_chars_per_s")), "", ""],
        [f"`d.screenshot()` {'×'.join(map(str, api.get('screen', ['?'])))} (ms)", fmt(api.get("screenshot_ms"), digits=1), "", ""],
        ["`d.resize()` until the view shows it (ms)", fmt(api.get("resize_until_view_ms")), "", ""],
        ["`d.snapshot()`: the last frame refreshed (ms)", fmt(api.get("snapshot_ms"), digits=1), "", ""],
    ]
    # fmt: on
    return rows


def markdown(r: dict) -> str:
    env, o, m = r["environment"], r["options"], r["environment"]["machine"]
    out = [
        "# desktop_widget benchmarks",
        "",
        f"{env['date']} · git {env['git']} · {'quick' if o['quick'] else 'full'} run ({o.get('elapsed_s', '?')} s)"
        f" · metrics: {', '.join(o['metrics'])} · {m['cores']} cores, {m['ram_gib']} GiB, {m['cpu']},"
        f" load average at start {', '.join(f'{x:.2f}' for x in m['loadavg_at_start'])}",
        "",
        "Versions: " + "; ".join(f"{k} {v}" for k, v in env["versions"].items()) + ".",
        "",
        "Cells are `median (min–max, n)`; benchmarks/README.md says what each number measures.",
        "",
        "## Summary",
        "",
        table(HEADER, summary_rows(r)),
        "",
        *_first_cell_section(r.get("first_cell")),
        *_detail_sections(r),
    ]
    if r.get("errors"):
        out += ["## Errors", "", *[f"- {e}" for e in r["errors"]], ""]
    return "\n".join(out)


FIRST_CELL_STAGES = [
    ("kernel_start_s", "kernel starts the cell"),
    ("imported_s", "`from desktop_widget import Desktop` done"),
    ("desktop_ready_s", "`Desktop()` returns (Xvnc answers RFB)"),
    ("view_rendered_s", "view's DOM rendered"),
    ("ws_created_s", "WebSocket created"),
    ("ws_open_s", "WebSocket open"),
    ("first_rfb_byte_s", "first RFB byte"),
    ("first_frame_s", "first frame on the canvas (any colour)"),
    ("first_colour_s", "**first non-black frame**"),
    ("panel_s", "**XFCE panel drawn on the canvas**"),
]


def _first_cell_section(fc: dict | None) -> list[str]:
    """Shift+Enter on `from desktop_widget import Desktop; d = Desktop(); d` in a fresh kernel; upstream from page open."""
    if not fc or not _get(fc, "ours", "summary"):
        return []
    cols = [("ours, `Desktop()` (XFCE)", fc["ours"]["summary"])]
    if _get(fc, "spare", "summary"):
        cols.append(("ours, a spare ready", fc["spare"]["summary"]))
    if _get(fc, "upstream", "summary"):
        cols.append(("upstream, XFCE (from page open)", fc["upstream"]["summary"]))
    # The stages, then when each process of the desktop started (/proc/<pid>/stat, ±10 ms), from the same origin.
    stages = [(lambda c, k=key: c.get(k), label) for key, label in FIRST_CELL_STAGES]
    names = sorted({n for _, c in cols for n in c.get("process_started_s", {})},
                   key=lambda n: min(med(c.get("process_started_s", {}).get(n)) or 99 for _, c in cols))  # fmt: skip
    stages += [(lambda c, n=n: c.get("process_started_s", {}).get(n), f"`{n}` started") for n in names]
    rows = [[label, *(fmt(get(c), 1000) for _, c in cols)] for get, label in stages if any(get(c) for _, c in cols)]
    out = [
        "## First cell of a fresh kernel",
        "",
        "The kernel is restarted before every trial, then Shift+Enter on `from desktop_widget import Desktop;"
        " d = Desktop(); d`; upstream's trials run in turn with ours and count from opening its `/desktop/` page.",
        "",
        table(["ms after Shift+Enter (upstream: page open)", *(c[0] for c in cols)], rows),
        "",
    ]
    idle = _get(fc, "spare", "idle")
    if idle:
        out.append(
            f"- a ready spare desktop at idle ({idle['idle_s']:g} s, nobody using it): {idle['cpu_pct']} % of a core,"
            f" {idle['pss_mib']} MiB PSS / {idle['uss_mib']} MiB USS in"
            f" {idle['processes']} processes (PSS/USS MiB: {', '.join(idle['largest'])});"
            f" the spare was claimed in {fc['spare'].get('claimed_spare')} of {len(fc['spare'].get('trials', []))} trials"
            f" and resized to its view in {fc['spare'].get('resized_to_view')}."
        )
    for who in ("ours", "upstream"):
        cal = _get(fc, who, "panel_calibration")
        if cal:
            out.append(
                f"- panel detector ({who}): colour {tuple(cal['rgb'])} at y={cal['points'][0][1]}, "
                f"{len(cal['points'])} points, ≥ {cal['need']} must match (±10 a channel)."
            )
    out.append("")
    return out


def _detail_sections(r: dict) -> list[str]:
    out = []
    lat = {k: v for k, v in (r.get("latency") or {}).items() if v}
    keys = ("browser_ms", "bare_rfb_ms", "ws_arrival_ms", "draw_after_arrival_ms")
    if lat:
        rows = [
            [k, *(fmt(x.get(key), digits=2) for key in keys), _n(x.get("clock_error_ms"), 2)] for k, x in lat.items()
        ]
        header = ["update latency (ms)", "canvas", "bare RFB (its own trials)", "WebSocket message in the page",
                  "message → canvas (decode and draw)", "clock error ±"]  # fmt: skip
        out += ["## Update latency", "", table(header, rows), ""]
    groups = ("desktop", "jupyter_server", "kernel", "chromium")
    rows = [
        [f"{k}, {mode}", *(_n(t[key], 1) for key in ("painted_per_s", "drawn_per_s", "flips_per_s", "raf_per_s",
                                                       "ws_mbit_per_s", "kernel_ws_mbit_per_s")),
         *(_n(t["cpu_pct"].get(g)) for g in groups)]
        for k, modes in (r.get("throughput") or {}).items() if modes for mode, t in modes.items()
    ]  # fmt: skip
    if rows:
        header = ["60 fps animation", "painted/s", "drawn/s", "flips/s", "rAF/s", "desktop WS Mbit/s",
                  "kernel WS Mbit/s", "CPU % desktop", "server", "kernel", "chromium"]  # fmt: skip
        out += ["## Frames/s", "", table(header, rows), ""]
    res = {k: v for k, v in (r.get("resources") or {}).items() if v}
    if res:
        rows = [[k, *(f"{_n(_get(x, g, 'pss_mib'))} / {_n(_get(x, g, 'cpu_pct'), 1)}" for g in groups),
                 _n(x.get("ws_bytes_in"))] for k, x in res.items()]  # fmt: skip
        out += [
            "## Idle",
            "",
            table(["idle, view open", *(f"{g}: PSS MiB / CPU %" for g in groups), "WS bytes in"], rows),
            "",
        ]
        for k, x in res.items():
            procs = _get(x, "_processes", "desktop") or []
            top = ", ".join(f"{p['comm']} {p['pss']:.0f}/{p['uss']:.0f}" for p in procs[:8])
            out.append(f"- {k}: {len(procs)} processes; PSS/USS (MiB): {top}")
        out.append("")
    fr = r.get("frame_rates") or []
    if fr:
        rows = [[x["frame_rate"], fmt(_get(x, "latency", "browser_ms"), digits=2),
                 fmt(_get(x, "latency", "bare_rfb_ms"), digits=2), _n(x["idle_cpu_pct"], 2),
                 *(_n(_get(x, mode, key), 1) for mode in ("solid", "noise") for key in ("flips_per_s", "ws_mbit_per_s")),
                 *(_n(_get(x, mode, "cpu_pct", g)) for mode in ("solid", "noise") for g in ("desktop", "chromium"))]
                for x in fr]  # fmt: skip
        header = ["Xvnc frame rate", "latency (ms)", "bare (ms)", "idle CPU %", "solid frames/s", "solid Mbit/s",
                  "noise frames/s", "noise Mbit/s", "solid CPU % desktop", "chromium", "noise CPU % desktop", "chromium"]  # fmt: skip
        out += ["## Xvnc frame rate (light WM)", "", table(header, rows), ""]
    return out


def update_readme(readme: Path, r: dict) -> None:
    """Rewrite the table between the markers in the project README (RESULTS.md is prose, written by hand)."""
    env, m, v = r["environment"], r["environment"]["machine"], r["environment"]["versions"]
    body = (
        f"{README_START}\nMeasured {env['date'][:10]} (git {env['git']}, {'quick' if r['options']['quick'] else 'full'}"
        f" run) on {m['cores']} cores / {m['ram_gib']} GiB ({m['cpu']}), load average {m['loadavg_at_start'][0]:.1f}"
        f" at the start, Xvnc {v['Xvnc']}, {v['chromium']}, by `benchmarks/run.py`; what the numbers say:"
        " [benchmarks/RESULTS.md](benchmarks/RESULTS.md), methods: [benchmarks/README.md](benchmarks/README.md)."
        f" Upstream is jupyter-remote-desktop-proxy {v.get('jupyter-remote-desktop-proxy (upstream)', '?')},"
        " same machine, same run; the bare reference is a raw RFB client on our desktop's socket."
        f" Cells are `median (min–max, n)`.\n\n{table(HEADER, summary_rows(r))}\n{README_END}"
    )
    pattern = re.escape(README_START) + r".*?" + re.escape(README_END)
    readme.write_text(re.sub(pattern, lambda _: body, readme.read_text(), flags=re.S))
