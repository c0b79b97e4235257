# ruff: noqa: RUF001, RUF002 - the report is typeset: en dashes, minus and multiplication signs
"""The machine and versions, and the Markdown report (also the README's table) from the raw results."""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path

from _targets import ROOT, UPSTREAM_VENV

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


def _upstream_versions() -> dict[str, str]:
    code = (
        "import json, importlib.metadata as m; print(json.dumps({p: m.version(p) for p in "
        "['jupyter-remote-desktop-proxy', 'jupyter-server-proxy', 'jupyterlab', 'jupyter_server']}))"
    )
    try:
        return json.loads(_run([str(UPSTREAM_VENV / "bin" / "python"), "-c", code]).splitlines()[-1])
    except (ValueError, IndexError):
        return {}


def environment() -> dict:
    mem_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    novnc = json.loads((ROOT / "js/node_modules/@novnc/novnc/package.json").read_text())["version"]
    ours = {}
    for package in (
        "desktop_widget",
        "jupyterlab",
        "jupyter_server",
        "anywidget",
        "ipykernel",
        "python-xlib",
        "playwright",
    ):
        try:
            ours[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            ours[package] = "?"
    commit = _run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = bool(_run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"]))
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git": commit + (" (modified)" if dirty else ""),
        "machine": {
            "cores": os.cpu_count(),
            "ram_gib": round(mem_kib / 1024 / 1024, 1),
            "cpu": cpu.group(1).strip() if cpu else "?",
            "kernel": platform.release(),
            "loadavg_at_start": os.getloadavg(),
        },
        "versions": {
            "python": platform.python_version(),
            "Xvnc": _run(["Xvnc", "-version"]).splitlines()[0] if _run(["Xvnc", "-version"]) else "?",
            "tigervnc-standalone-server (deb)": _dpkg("tigervnc-standalone-server"),
            "chromium": next(
                (line for line in _run(["/usr/bin/chromium", "--version"]).splitlines() if "Chromium" in line), "?"
            ),
            "xfce4-session (deb)": _dpkg("xfce4-session"),
            "openbox (deb)": _dpkg("openbox"),
            "noVNC (ours)": novnc,
            "noVNC (upstream)": "the copy bundled in jupyter-remote-desktop-proxy's viewer.js",
            "ours (python)": ours,
            "upstream venv (python)": _upstream_versions(),
        },
    }


# -- formatting ---------------------------------------------------------------------------
def fmt(s: dict | None, scale: float = 1.0, digits: int = 0, unit: str = "") -> str:
    """``median (min–max, n)`` of a summary, or a dash."""
    if not s or not s.get("n"):
        return "–"

    def f(v: float) -> str:
        return f"{v * scale:.{digits}f}"

    if s["n"] == 1:
        return f"{f(s['median'])}{unit}"
    return f"{f(s['median'])}{unit} ({f(s['min'])}–{f(s['max'])}, n={s['n']})"


def med(s: dict | None) -> float | None:
    return s.get("median") if s and s.get("n") else None


def verdict(value: float | None, target: float, higher_is_better: bool = False) -> str:
    if value is None:
        return "–"
    ok = value >= target if higher_is_better else value <= target
    return "met" if ok else "**missed**"


def _get(d: dict, *path: str) -> object:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def first_cell_rows(r: dict) -> list[list[str]]:
    """The headline: what a person sees after Shift+Enter on the first cell of a fresh kernel (import on the clock)."""
    fc = r.get("first_cell") or {}
    rows = []
    for key, label, target in (
        ("first_colour_s", "Shift+Enter, fresh kernel → first non-black frame (ms)", 0.6),
        ("panel_s", "Shift+Enter, fresh kernel → XFCE panel drawn (ms)", 1.0),
    ):
        s = _get(fc, "ours", "summary", key)
        up = _get(fc, "upstream", "summary", key)
        if s or up:
            rows.append([label, fmt(s, 1000), fmt(up, 1000), "", f"≤ {target * 1000:.0f}", verdict(med(s), target)])
    s = _get(fc, "spare", "summary", "panel_s")
    if s:
        rows.append(
            [
                "… with a spare desktop ready (`spare_desktops=1`): XFCE panel drawn (ms)",
                fmt(s, 1000),
                fmt(_get(fc, "upstream", "summary", "panel_s"), 1000),
                "",
                "≤ 500",
                verdict(med(s), 0.5),
            ]
        )
    return rows


def summary_rows(r: dict) -> list[list[str]]:
    """The headline table: metric, ours, upstream, bare reference, target, verdict for ours."""
    rows = first_cell_rows(r)
    cold = r.get("cold", {})
    for session, label in (("wm", "light WM"), ("xfce", "XFCE")):
        s = _get(cold, "ours", session, "summary", "first_frame_s")
        up = _get(cold, "upstream", "summary", "first_frame_s") if session == "xfce" else None
        rows.append(
            [
                f"cold start → first frame, {label} (ms)",
                fmt(s, 1000),
                fmt(up, 1000),
                "",
                "≤ 600",
                verdict(med(s), 0.6),
            ]
        )
    s = _get(cold, "ours", "xfce", "summary", "panel_s")
    up = _get(cold, "upstream", "summary", "panel_s")
    rows.append(["cold start → XFCE panel drawn (ms)", fmt(s, 1000), fmt(up, 1000), "", "≤ 1200", verdict(med(s), 1.2)])
    lat = r.get("latency", {})
    ours_l, up_l, wm_l = lat.get("ours", {}), lat.get("upstream", {}), lat.get("ours_wm", {})
    rows.append(
        [
            "update latency, X change → canvas, XFCE (ms)",
            fmt(ours_l.get("browser_ms"), digits=1),
            fmt(up_l.get("browser_ms"), digits=1),
            fmt(ours_l.get("bare_rfb_ms"), digits=1),
            "≤ 4",
            verdict(med(ours_l.get("browser_ms")), 4),
        ]
    )
    rows.append(
        [
            "update latency, light WM (ms)",
            fmt(wm_l.get("browser_ms"), digits=1),
            "",
            fmt(wm_l.get("bare_rfb_ms"), digits=1),
            "≤ 4",
            verdict(med(wm_l.get("browser_ms")), 4),
        ]
    )
    for label, x, y in (("XFCE", ours_l, up_l), ("light WM", wm_l, {})):
        rows.append(
            [
                f"… ÷ bare RFB client, {label} (ratio of medians)",
                _n(x.get("ratio_to_bare"), 2),
                _n(y.get("ratio_to_bare"), 2),
                "1",
                "≤ 1.10",
                verdict(x.get("ratio_to_bare"), 1.10),
            ]
        )
    tp = r.get("throughput", {})
    for mode, target in (("solid", 58), ("noise", 30)):
        o = _get(tp, "ours", mode, "drawn_per_s")
        u = _get(tp, "upstream", mode, "drawn_per_s")
        rows.append(
            [
                f"{mode} 1024×640 at 60 fps: frames drawn/s",
                "–" if o is None else str(o),
                "–" if u is None else str(u),
                "",
                f"≥ {target}",
                verdict(o, target, True),
            ]
        )
    res = r.get("resources", {})
    for key, label, target in (("ours_xfce", "XFCE", 200), ("ours_wm", "light WM", 80)):
        o = _get(res, key, "connected", "desktop", "pss_mib")
        u = _get(res, "upstream", "connected", "desktop", "pss_mib") if key == "ours_xfce" else None
        rows.append(
            [
                f"desktop PSS, {label} (MiB)",
                "–" if o is None else f"{o:.0f}",
                "–" if u is None else f"{u:.0f}",
                "",
                f"≤ {target}",
                verdict(o, target),
            ]
        )
    o = _get(res, "ours_xfce", "connected", "desktop", "cpu_pct")
    u = _get(res, "upstream", "connected", "desktop", "cpu_pct")
    rows.append(["idle CPU of the desktop, view open (% of a core)", _n(o, 1), _n(u, 1), "", "≈ 0", ""])
    o = _get(res, "ours_xfce", "connected", "ws_bytes_in")
    u = _get(res, "upstream", "connected", "ws_bytes_in")
    secs = _get(res, "ours_xfce", "connected", "seconds")
    rows.append(
        [f"WebSocket bytes while idle ({secs} s)", _n(o), _n(u), "", "0", verdict(o, 0) if o is not None else "–"]
    )
    api = r.get("api", {})
    rows.append(
        [
            "`d.key()` round trip (ms)",
            fmt(api.get("key_ms"), digits=2),
            "",
            "",
            "≤ 2",
            verdict(med(api.get("key_ms")), 2),
        ]
    )
    v = api.get("type_chars_per_s_arrived")
    rows.append(["`d.type()` characters/s (into xterm)", _n(v), "", "", "≥ 500", verdict(v, 500, True)])
    v = api.get("mixed_type_chars_per_s_arrived")
    rows.append(["`d.type()` mixed scripts, characters/s (into xterm)", _n(v), "", "", "≥ 500", verdict(v, 500, True)])
    rows.append(
        [
            "`d.screenshot()` 1280×800 (ms)",
            fmt(api.get("screenshot_ms"), digits=1),
            "",
            "",
            "≤ 30",
            verdict(med(api.get("screenshot_ms")), 30),
        ]
    )
    rows.append(
        [
            "`d.resize()` until the view shows it (ms)",
            fmt(api.get("resize_until_view_ms")),
            "",
            "",
            "≤ 1000",
            verdict(med(api.get("resize_until_view_ms")), 1000),
        ]
    )
    return rows


def _n(v: object, digits: int = 0) -> str:
    if v is None:
        return "–"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(r: dict) -> str:
    env = r["environment"]
    m = env["machine"]
    v = env["versions"]
    out = [
        "# desktop_widget benchmarks",
        "",
        f"{env['date']} · git {env['git']} · {'quick' if r['options']['quick'] else 'full'} run"
        f" ({r['options'].get('elapsed_s', '?')} s) · metrics: {', '.join(r['options']['metrics'])}",
        "",
        f"Machine: {m['cores']} cores, {m['ram_gib']} GiB, {m['cpu']}, Linux {m['kernel']}, "
        f"load average at start {', '.join(f'{x:.2f}' for x in m['loadavg_at_start'])}.",
        "",
        f"Versions: {v['Xvnc']} (deb {v['tigervnc-standalone-server (deb)']}); {v['chromium']}; "
        f"noVNC {v['noVNC (ours)']} (ours); xfce4-session {v['xfce4-session (deb)']}; openbox {v['openbox (deb)']}; "
        + "; ".join(f"{k} {x}" for k, x in v["ours (python)"].items())
        + "; upstream venv: "
        + "; ".join(f"{k} {x}" for k, x in v["upstream venv (python)"].items())
        + ".",
        "",
        "Cells are `median (min–max, n)`. *Upstream* is jupyter-remote-desktop-proxy's `/desktop/` page; the *bare*",
        "reference is a raw RFB client on the same unix socket. See benchmarks/README.md for what each number means.",
        "",
        "## Summary",
        "",
        table(["metric", "ours", "upstream", "bare RFB", "target (ours)", "ours"], summary_rows(r)),
        "",
    ]
    out += _first_cell_section(r.get("first_cell"))
    out += _cold_section(r.get("cold"))
    out += _latency_section(r.get("latency"))
    out += _throughput_section(r.get("throughput"))
    out += _resources_section(r.get("resources"))
    out += _api_section(r.get("api"))
    out += _scale_section(r.get("scale"))
    out += _tuning_section(r.get("tuning"))
    out += _frame_rate_section(r.get("frame_rates"))
    out += _transport_section(r.get("transports"))
    if r.get("errors"):
        out += ["## Errors", "", *[f"- {e}" for e in r["errors"]], ""]
    return "\n".join(out)


STAGES = [
    ("kernel_start_s", "kernel starts the cell"),
    ("desktop_ready_s", "`Desktop()` returns (Xvnc answers RFB)"),
    ("view_rendered_s", "view's DOM rendered"),
    ("ws_created_s", "WebSocket created"),
    ("ws_open_s", "WebSocket open"),
    ("first_rfb_byte_s", "first RFB byte"),
    ("first_frame_s", "first desktop frame on the canvas"),
    ("panel_s", "XFCE panel drawn on the canvas"),
]


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
    header = ["stage (ms after Shift+Enter / page open)"] + [c[0] for c in cols]
    rows = [
        [label] + [fmt(col.get(key), 1000) for _, col in cols]
        for key, label in FIRST_CELL_STAGES
        if any(col.get(key, {}).get("n") for _, col in cols)
    ]
    out = [
        "## First cell of a fresh kernel",
        "",
        "What a person sees: the kernel is restarted before every trial, then Shift+Enter on",
        "`from desktop_widget import Desktop; d = Desktop(); d` (default options: XFCE at the view's size; the import",
        "is on the clock). Upstream's trials run in turn with ours and count from opening its `/desktop/` page."
        + (f" This section was {fc['note']}." if fc.get("note") else ""),
        "",
        table(header, rows),
        "",
    ]
    names: list[str] = []
    for _, col in cols:
        names += [n for n in col.get("process_started_s", {}) if n not in names]
    if names:
        names.sort(key=lambda n: min(med(col.get("process_started_s", {}).get(n)) or 99 for _, col in cols))
        out += [
            "When the desktop's processes started (from /proc/<pid>/stat, ±10 ms; same origin):",
            "",
            table(
                header,
                [
                    [f"`{n}` started"] + [fmt(col.get("process_started_s", {}).get(n), 1000) for _, col in cols]
                    for n in names
                ],
            ),
            "",
        ]
    idle = _get(fc, "spare", "idle")
    if idle:
        out.append(
            f"- a ready spare desktop at idle ({idle['idle_s']:g} s, nobody using it): {idle['cpu_pct']} % of a core,"
            f" {idle['pss_mib']} MiB PSS / {idle['uss_mib']} MiB USS / {idle['rss_mib']} MiB RSS in"
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


def _cold_section(c: dict | None) -> list[str]:
    if not c:
        return []
    out = ["## Cold start", ""]
    if c.get("python_import_s"):
        out += [f"`import desktop_widget` in a fresh interpreter: {fmt(c['python_import_s'], 1000)} ms.", ""]
    header = ["stage (ms after Shift+Enter / page open)"]
    cols = []
    for session in ("wm", "xfce"):
        if _get(c, "ours", session, "summary"):
            header.append(f"ours, {session}")
            cols.append(c["ours"][session]["summary"])
    if _get(c, "upstream", "summary"):
        header.append("upstream, XFCE")
        cols.append(c["upstream"]["summary"])
    rows = []
    for key, label in STAGES:
        if any(col.get(key, {}).get("n") for col in cols):
            rows.append([label] + [fmt(col.get(key), 1000) for col in cols])
    out += [table(header, rows), ""]
    names = []
    for col in cols:
        for name in col.get("process_started_s", {}):
            if name not in names:
                names.append(name)
    if names:
        names.sort(key=lambda n: min(med(col.get("process_started_s", {}).get(n)) or 99 for col in cols))
        prow = [
            [f"`{n}` started"] + [fmt(col.get("process_started_s", {}).get(n), 1000) for col in cols] for n in names
        ]
        out += [
            "When the desktop's processes started (from /proc/<pid>/stat, ±10 ms; same origin):",
            "",
            table(header, prow),
            "",
        ]
    for session in ("wm", "xfce"):
        w = _get(c, "ours", session, "warmup")
        if w:
            out.append(
                f"- first desktop of the page (ours, {session}, not in the medians): {_n(w.get('first_frame_s'), 3)} s to the first frame."
            )
    up = _get(c, "upstream", "warmup")
    if up:
        out.append(
            f"- upstream's warm-up trial (not in the medians): {_n(up.get('first_frame_s'), 3)} s to the first frame, {_n(up.get('panel_s'), 3)} s to the panel."
        )
    for who, cal in (
        ("ours", _get(c, "ours", "xfce", "panel_calibration")),
        ("upstream", _get(c, "upstream", "panel_calibration")),
    ):
        if cal:
            out.append(
                f"- panel detector ({who}): colour {tuple(cal['rgb'])} at y={cal['points'][0][1]}, "
                f"{len(cal['points'])} points, ≥ {cal['need']} must match (±10 a channel)."
            )
    out.append("")
    return out


def _latency_section(lat: dict | None) -> list[str]:
    if not lat:
        return []
    rows = []
    for who, label in (("ours", "ours, XFCE"), ("upstream", "upstream, XFCE"), ("ours_wm", "ours, light WM")):
        x = lat.get(who)
        if x:
            rows.append(
                [
                    label,
                    fmt(x.get("browser_ms"), digits=2),
                    fmt(x.get("bare_rfb_ms"), digits=2),
                    fmt(x.get("browser_minus_bare_ms"), digits=2),
                    fmt(x.get("ws_arrival_minus_bare_ms"), digits=2),
                    fmt(x.get("draw_after_arrival_ms"), digits=2),
                    _n(x.get("ratio_to_bare"), 2),
                    _n(x.get("clock_error_ms"), 2),
                ]
            )
    return [
        "## Update latency",
        "",
        "A 64×64 override-redirect window recoloured; both clients watch the same change (paired trials). The "
        "browser's extra time splits into the way to the page (Xvnc → Jupyter server → WebSocket message event) and "
        "noVNC's decoding and drawing (message event → pixels on the canvas).",
        "",
        table(
            [
                "",
                "browser canvas (ms)",
                "bare RFB (ms)",
                "browser − bare, paired (ms)",
                "of which: WebSocket message − bare",
                "of which: canvas − message",
                "ratio of medians",
                "clock error ± (ms)",
            ],
            rows,
        ),
        "",
    ]


def _throughput_section(tp: dict | None) -> list[str]:
    if not tp:
        return []
    rows = []
    for who in ("ours", "upstream"):
        for mode in ("solid", "noise"):
            x = _get(tp, who, mode)
            if not x:
                continue
            cpu = x["cpu_pct"]
            rows.append(
                [
                    f"{who}, {mode}",
                    x["painted_per_s"],
                    x["drawn_per_s"],
                    x["flips_per_s"],
                    x["raf_per_s"],
                    x["ws_mbit_per_s"],
                    _n(cpu.get("desktop"), 0),
                    _n(cpu.get("jupyter_server"), 0),
                    _n(cpu.get("chromium"), 0),
                ]
            )
    return [
        "## Throughput",
        "",
        "A 1024×640 window repainted at 60 fps. *drawn/s*: distinct canvas contents per animation frame (what a person "
        "sees; capped by the page's frame rate, *rAF/s*); *flips/s*: frames noVNC put on the canvas. CPU in % of one core.",
        "",
        table(
            [
                "",
                "painted/s",
                "drawn/s",
                "flips/s",
                "rAF/s",
                "WebSocket Mbit/s",
                "CPU desktop",
                "CPU server",
                "CPU chromium",
            ],
            rows,
        ),
        "",
    ]


def _resources_section(res: dict | None) -> list[str]:
    if not res:
        return []
    rows = []
    for key, label in (("ours_wm", "ours, light WM"), ("ours_xfce", "ours, XFCE"), ("upstream", "upstream, XFCE")):
        for state in ("connected", "closed"):
            x = _get(res, key, state)
            if not x:
                continue
            rows.append(
                [
                    f"{label}, view {state}",
                    _n(_get(x, "desktop", "pss_mib"), 0),
                    _n(_get(x, "desktop", "uss_mib"), 0),
                    _n(_get(x, "desktop", "rss_mib"), 0),
                    _n(_get(x, "desktop", "cpu_pct"), 2),
                    _n(_get(x, "jupyter_server", "pss_mib"), 0),
                    _n(_get(x, "jupyter_server", "cpu_pct"), 2),
                    _n(_get(x, "kernel", "pss_mib"), 0),
                    _n(_get(x, "chromium", "cpu_pct"), 1),
                    _n(x.get("ws_bytes_in")),
                ]
            )
    out = [
        "## Resources at idle",
        "",
        "PSS/USS/RSS in MiB from /proc/<pid>/smaps_rollup (USS: private pages only; PSS also depends on what "
        "else runs on the machine); CPU in % of one core over the idle window.",
        "",
        table(
            [
                "",
                "desktop PSS",
                "desktop USS",
                "desktop RSS",
                "desktop CPU",
                "server PSS",
                "server CPU",
                "kernel PSS",
                "chromium CPU",
                "WS bytes in",
            ],
            rows,
        ),
        "",
    ]
    for key, label in (("ours_xfce", "ours, XFCE"), ("upstream", "upstream, XFCE"), ("ours_wm", "ours, light WM")):
        procs = _get(res, key, "connected", "_processes", "desktop")
        if procs:
            top = ", ".join(f"{p['comm']} {p['pss']:.0f}/{p.get('uss', 0):.0f}" for p in procs[:8])
            out.append(f"- {label}: {len(procs)} processes; largest, PSS/USS (MiB): {top}")
    out.append("")
    return out


def _api_section(api: dict | None) -> list[str]:
    if not api:
        return []
    rows = [
        [
            "`d.key('shift')`",
            fmt(api.get("key_ms"), digits=3, unit=" ms") if api.get("key_ms") else api.get("key_error", "–"),
        ],
        [
            "`d.type()` (2000 ASCII characters into xterm)",
            f"{_n(api.get('type_chars_per_s_sent'))} chars/s sent, {_n(api.get('type_chars_per_s_arrived'))} chars/s arrived, correct: {api.get('type_correct')}"
            if "type_chars" in api
            else api.get("type_error", "–"),
        ],
        [
            "`d.type()` (4 lines of mixed scripts, ~140 distinct characters, into xterm)",
            f"{_n(api.get('mixed_type_chars_per_s_sent'))} chars/s sent, {_n(api.get('mixed_type_chars_per_s_arrived'))} chars/s arrived, correct: {api.get('mixed_type_correct')}"
            if "mixed_type_chars" in api
            else api.get("type_error", "–"),
        ],
        [
            "`d.click(count=N)` per click, N = 1k / 10k / 30k (flat = linear)",
            " / ".join(f"{api.get(f'click_us_per_click_{n}', '–')} µs" for n in (1_000, 10_000, 30_000))
            if "click_us_per_click_1000" in api
            else api.get("click_error", "–"),
        ],
        [f"`d.screenshot()` {api.get('screenshot_size')}", fmt(api.get("screenshot_ms"), digits=1, unit=" ms")],
        *[
            [
                f"`d.locate()` of a {size} image on the {api.get('locate_screen')} screen: found / absent",
                f"{fmt(api.get(f'locate_{size}_ms'), digits=1, unit=' ms')} / "
                f"{fmt(api.get(f'locate_{size}_absent_ms'), digits=1, unit=' ms')}",
            ]
            for size in ("32x32", "120x80", "300x200")
            if api.get(f"locate_{size}_ms")
        ],
        *([["`d.pixel()`", fmt(api.get("pixel_ms"), digits=2, unit=" ms")]] if api.get("pixel_ms") else []),
        *(
            [
                [
                    "`d.wait_until_stable(0.2)` on a still screen, beyond 0.2 s",
                    fmt(api.get("stable_overhead_ms"), digits=1, unit=" ms"),
                ]
            ]
            if api.get("stable_overhead_ms")
            else []
        ),
        ["`d.resize()` call", fmt(api.get("resize_call_ms"), digits=1, unit=" ms")],
        [
            "`d.resize()` until the view's canvas has the size",
            fmt(api.get("resize_until_view_ms"), digits=0, unit=" ms"),
        ],
    ]
    return ["## API speed", "", table(["call", "time"], rows), ""]


def _scale_section(sc: dict | None) -> list[str]:
    if not sc:
        return []
    out = ["## Scale", ""]
    rows = []
    for x in sc.get("desktops", []):
        rows.append(
            [
                x["n"],
                fmt(_get(x, "latency", "browser_ms"), digits=1),
                fmt(_get(x, "latency", "bare_rfb_ms"), digits=1),
                _n(x.get("desktops_pss_mib"), 0),
                _n(x.get("desktops_uss_mib"), 0),
                _n(x.get("per_desktop_pss_mib"), 0),
                _n(x.get("server_pss_mib"), 0),
                _n(x.get("chromium_pss_mib"), 0),
            ]
        )
    if rows:
        out += [
            "Desktops (light WM), each shown in its own view; latency measured on the first.",
            "",
            table(
                [
                    "desktops",
                    "latency (ms)",
                    "bare (ms)",
                    "all desktops PSS",
                    "all desktops USS",
                    "PSS per desktop",
                    "server PSS",
                    "chromium PSS",
                ],
                rows,
            ),
            "",
        ]
    rows = []
    for x in sc.get("views", []):
        rows.append(
            [
                x["n"],
                fmt(_get(x, "latency", "browser_ms"), digits=1),
                fmt(_get(x, "latency", "browser_all_views_ms"), digits=1),
                fmt(_get(x, "latency", "bare_rfb_ms"), digits=1),
                fmt(_get(x, "latency", "ws_arrival_minus_bare_ms"), digits=1),
                fmt(_get(x, "latency", "draw_after_arrival_ms"), digits=1),
                _n(x.get("xvnc_pss_mib"), 0),
                _n(x.get("xvnc_uss_mib"), 0),
                _n(x.get("server_pss_mib"), 0),
                _n(x.get("chromium_pss_mib"), 0),
            ]
        )
    if rows:
        out += [
            "Views of one desktop in one page (the first sizes the desktop, the others scale).",
            "",
            table(
                [
                    "views",
                    "latency, first view (ms)",
                    "latency, all views (ms)",
                    "bare (ms)",
                    "first view: message − bare",
                    "first view: canvas − message",
                    "Xvnc PSS",
                    "Xvnc USS",
                    "server PSS",
                    "chromium PSS",
                ],
                rows,
            ),
            "",
        ]
    return out


def _frame_rate_section(rows_in: list[dict] | None) -> list[str]:
    """Xvnc frame rates up to 1000: latency, and what a busy screen costs at each (the default's trade-off)."""
    if not rows_in:
        return []
    rows = []
    for x in rows_in:
        row = [
            x["frame_rate"],
            fmt(_get(x, "latency", "browser_ms"), digits=2),
            fmt(_get(x, "latency", "bare_rfb_ms"), digits=2),
            _n(_get(x, "idle", "desktop", "cpu_pct"), 2),
        ]
        for mode in ("solid", "noise"):
            t = x.get(mode) or {}
            painted, flips = t.get("painted_per_s"), t.get("flips_per_s")
            dropped = None if painted is None or flips is None else max(0.0, painted - flips)
            row += [
                _n(flips, 0),
                _n(dropped, 0),
                _n(_get(t, "ws_mbit_per_s"), 1),
                _n(_get(t, "cpu_pct", "desktop"), 0),
                _n(_get(t, "cpu_pct", "jupyter_server"), 0),
                _n(_get(t, "cpu_pct", "chromium"), 0),
            ]
        rows.append(row)
    header = ["frame rate", "latency (ms)", "bare (ms)", "idle CPU desktop (%)"]
    for mode in ("solid", "noise"):
        header += [
            f"{mode}: frames/s",
            f"{mode}: dropped/s",
            f"{mode}: Mbit/s",
            f"{mode}: CPU desktop %",
            f"{mode}: CPU server %",
            f"{mode}: CPU chromium %",
        ]
    return [
        "## Frame rate above 240",
        "",
        "`Desktop(frame_rate=…)` (Xvnc `-FrameRate`), light WM; a 1024×640 window repainted at 60 fps for the load."
        " *frames/s*: frames noVNC put on the canvas; *dropped/s*: painted − frames (changes merged or never sent).",
        "",
        table(header, rows),
        "",
    ]


def _transport_section(rows_in: list[dict] | None) -> list[str]:
    """The server route and the widget's comm side by side, on the same kind of desktop in the same run."""
    if not rows_in:
        return []
    by = {x["transport"]: x for x in rows_in}
    rows = []
    for x in rows_in:
        row = [x["transport"], fmt(_get(x, "latency", "browser_ms"), digits=1)]
        for mode in ("solid", "noise"):
            t = x.get(mode) or {}
            row += [
                _n(t.get("drawn_per_s"), 0),
                _n(t.get("flips_per_s"), 0),
                _n(t.get("ws_mbit_per_s"), 1),
                _n(_get(t, "cpu_pct", "kernel"), 0),
                _n(_get(t, "cpu_pct", "jupyter_server"), 0),
            ]
        rows.append(row)
    header = ["transport", "latency (ms)"]
    for mode in ("solid", "noise"):
        header += [
            f"{mode}: drawn/s",
            f"{mode}: flips/s",
            f"{mode}: Mbit/s",
            f"{mode}: CPU kernel %",
            f"{mode}: CPU server %",
        ]
    out = [
        "## Transports: the server route and the comm",
        "",
        'Light WM; `Desktop(transport="comm")` against the default route; a 1024×640 window repainted at 60 fps for'
        " the load. The comm's bytes are what the kernel's pump sent (they travel inside the kernel's WebSocket).",
        "",
        table(header, rows),
        "",
    ]
    server, comm = by.get("server"), by.get("comm")
    if server and comm:
        lat_s, lat_c = med(_get(server, "latency", "browser_ms")), med(_get(comm, "latency", "browser_ms"))
        solid = _get(comm, "solid", "drawn_per_s")
        noise_s, noise_c = _get(server, "noise", "flips_per_s"), _get(comm, "noise", "flips_per_s")
        goals = [
            [
                "comm latency ≤ 2× the route's",
                f"{lat_c} vs {lat_s} ms",
                verdict(lat_c / lat_s if lat_c and lat_s else None, 2.0),
            ],
            ["comm, solid content ≥ 55 drawn/s", _n(solid, 0), verdict(solid, 55, higher_is_better=True)],
            [
                "comm, noise ≥ 50 % of the route's frames/s",
                f"{noise_c} vs {noise_s}",
                verdict(noise_c / noise_s if noise_c and noise_s else None, 0.5, higher_is_better=True),
            ],
        ]
        out += [table(["goal (issue 10)", "measured", ""], goals), ""]
    return out


def _tuning_section(t: dict | None) -> list[str]:
    if not t:
        return []
    out = ["## Tuning", ""]
    rows = []
    for x in t.get("frame_rate", []):
        rows.append(
            [
                x["frame_rate"],
                fmt(_get(x, "latency", "browser_ms"), digits=1),
                fmt(_get(x, "latency", "bare_rfb_ms"), digits=1),
                _n(_get(x, "idle", "desktop", "cpu_pct"), 2),
                _n(_get(x, "noise", "drawn_per_s"), 0),
                _n(_get(x, "noise", "flips_per_s"), 0),
                _n(_get(x, "noise", "ws_mbit_per_s"), 0),
                _n(_get(x, "noise", "cpu_pct", "desktop"), 0),
                _n(_get(x, "noise", "cpu_pct", "chromium"), 0),
                _n(_get(x, "solid", "drawn_per_s"), 0),
                _n(_get(x, "solid", "cpu_pct", "desktop"), 0),
                _n(_get(x, "solid", "cpu_pct", "chromium"), 0),
            ]
        )
    if rows:
        out += [
            "`Desktop(frame_rate=…)` (Xvnc `-FrameRate`), light WM.",
            "",
            table(
                [
                    "frame rate",
                    "latency (ms)",
                    "bare (ms)",
                    "idle CPU desktop (%)",
                    "noise drawn/s",
                    "noise flips/s",
                    "noise Mbit/s",
                    "noise CPU desktop (%)",
                    "noise CPU chromium (%)",
                    "solid drawn/s",
                    "solid CPU desktop (%)",
                    "solid CPU chromium (%)",
                ],
                rows,
            ),
            "",
        ]
    rows = []
    for x in t.get("xfce_compositor", []) or []:
        lat = x.get("latency", {})
        rows.append(
            [
                x["compositor"],
                fmt(lat.get("browser_ms"), digits=1),
                fmt(lat.get("bare_rfb_ms"), digits=1),
                _n(lat.get("ratio_to_bare"), 2),
                _n(x.get("idle_desktop_cpu_pct"), 2),
            ]
        )
    if rows:
        out += [
            "XFCE's window manager compositing (xfwm4's default) against `xfwm4 --replace --compositor=off`, frame rate 60.",
            "",
            table(["xfwm4 compositor", "latency (ms)", "bare (ms)", "ratio", "idle CPU desktop (%)"], rows),
            "",
        ]
    rows = [[x["xvnc"], _n(x.get("rss"), 0), _n(x.get("pss"), 0), _n(x.get("uss"), 0)] for x in t.get("xvnc_glx") or []]
    if rows:
        out += [
            "Xvnc alone (our geometry, no client), with its default GLX extension (which loads Mesa's software "
            "renderer and LLVM) and with `-extension GLX` (MiB):",
            "",
            table(["Xvnc", "RSS", "PSS", "USS"], rows),
            "",
        ]
    rows = []
    for x in t.get("quality", []):
        rows.append(
            [
                x["quality"],
                x["compression"],
                fmt(_get(x, "latency", "browser_ms"), digits=1),
                _n(_get(x, "noise", "drawn_per_s"), 0),
                _n(_get(x, "noise", "flips_per_s"), 0),
                _n(_get(x, "noise", "ws_mbit_per_s"), 0),
                _n(_get(x, "noise", "cpu_pct", "desktop"), 0),
                _n(_get(x, "noise", "cpu_pct", "chromium"), 0),
            ]
        )
    if rows:
        out += [
            "The view's `quality` / `compression` (`d.quality`, `d.compression`; defaults 6 / 2), frame rate 60.",
            "",
            table(
                [
                    "quality",
                    "compression",
                    "latency (ms)",
                    "noise drawn/s",
                    "noise flips/s",
                    "noise Mbit/s",
                    "CPU desktop (%)",
                    "CPU chromium (%)",
                ],
                rows,
            ),
            "",
        ]
    return out


def update_readme(readme: Path, r: dict, report_name: str) -> bool:
    # The full report of the run the README quotes is kept in git next to the CLI.
    (readme.parent / "benchmarks" / "RESULTS.md").write_text(markdown(r))
    text = readme.read_text()
    env = r["environment"]
    m = env["machine"]
    body = "\n".join(
        [
            README_START,
            f"Measured {env['date'][:10]} on {m['cores']} cores / {m['ram_gib']} GiB ({m['cpu']}), "
            f"{env['versions']['Xvnc'].split(' - ')[0]}, {env['versions']['chromium']}, "
            f"by `benchmarks/run.py` ({'quick' if r['options']['quick'] else 'full'} run; "
            f"report: [benchmarks/RESULTS.md](benchmarks/RESULTS.md), methods: [benchmarks/README.md](benchmarks/README.md)). "
            "Upstream is jupyter-remote-desktop-proxy "
            f"{env['versions']['upstream venv (python)'].get('jupyter-remote-desktop-proxy', '?')} on the same machine, same run.",
            "",
            table(["metric", "ours", "upstream", "bare RFB", "target (ours)", "ours"], summary_rows(r)),
            README_END,
        ]
    )
    if README_START in text and README_END in text:
        text = re.sub(re.escape(README_START) + r".*?" + re.escape(README_END), lambda _: body, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n## Benchmarks\n\n" + body + "\n"
    readme.write_text(text)
    return True
