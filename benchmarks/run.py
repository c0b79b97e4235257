#!/usr/bin/env python
"""Benchmarks of desktop_widget against jupyter-remote-desktop-proxy and a bare RFB client.

    .venv/bin/python benchmarks/run.py            # everything (about 10 minutes on 2 cores)
    .venv/bin/python benchmarks/run.py --quick    # fewer trials, shorter windows (about 5 minutes)
    .venv/bin/python benchmarks/run.py --only latency,throughput --skip-upstream
    .venv/bin/python benchmarks/run.py --smoke --only api  # one trial each, ours only: does it still run?

Writes ``results/bench-<time>.json`` (raw) and ``.md`` (report) and, after a
full run of every metric, the table between the markers in the project README.
See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _firstcell  # noqa: E402
import _metrics as M  # noqa: E402
import _report  # noqa: E402
from _targets import ROOT, UPSTREAM_VENV, Browser, Ours  # noqa: E402

METRICS = [
    "firstcell",
    "cold",
    "latency",
    "throughput",
    "resources",
    "api",
    "scale",
    "tuning",
    "framerate",
    "transport",
]
#: Xvnc frame rates compared by the "framerate" metric (the default's neighbourhood and above).
HIGH_FRAME_RATES = (120, 240, 500, 1000)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer trials and shorter windows")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="one or two trials, ours only, README untouched: that every metric still yields numbers (tests)",
    )
    p.add_argument(
        "--only",
        default="",
        help=f"comma-separated metrics to run (default all): {','.join(METRICS)}",
    )
    p.add_argument("--skip-upstream", action="store_true", help="measure ours (and the bare reference) only")
    p.add_argument("--out", default=str(HERE / "results"), help="where the JSON, report and screenshots go")
    p.add_argument("--report", metavar="JSON", help="only rewrite the report (and README) from a raw results file")
    p.add_argument(
        "--readme",
        choices=("auto", "yes", "no"),
        default="auto",
        help="update the README's table (auto: only after a full run of every metric)",
    )
    args = p.parse_args(argv)
    if args.smoke:
        args.quick, args.skip_upstream, args.readme = True, True, "no"
    args.metrics = [m.strip() for m in args.only.split(",") if m.strip()] or list(METRICS)
    unknown = set(args.metrics) - set(METRICS)
    if unknown:
        p.error(f"unknown metric(s) {', '.join(sorted(unknown))}; choose from {', '.join(METRICS)}")
    return args


def plan(quick: bool) -> dict:
    if quick:
        return {
            "first_cell": 3,
            "first_cell_upstream": 2,
            "cold_wm": 3,
            "cold_xfce": 2,
            "cold_upstream": 2,
            "latency": 15,
            "burst_s": 3.0,
            "idle_s": 3.0,
            "api": 10,
            "scale_latency": 6,
            "tuning_latency": 8,
            "tuning_idle_s": 2.0,
            "tuning_burst_s": 2.0,
            "imports": 3,
        }
    return {
        "first_cell": 7,
        "first_cell_upstream": 5,
        "cold_wm": 7,
        "cold_xfce": 5,
        "cold_upstream": 5,
        "latency": 40,
        "burst_s": 10.0,
        "idle_s": 10.0,
        "api": 30,
        "scale_latency": 12,
        "tuning_latency": 20,
        "tuning_idle_s": 5.0,
        "tuning_burst_s": 4.0,
        "imports": 5,
    }


#: ``--smoke``: the least that still measures each metric once or twice (seconds per metric).
SMOKE = {
    "first_cell": 1,
    "first_cell_upstream": 0,
    "cold_wm": 1,
    "cold_xfce": 1,
    "cold_upstream": 0,
    "latency": 3,
    "burst_s": 1.0,
    "idle_s": 1.0,
    "api": 2,
    "scale_latency": 2,
    "tuning_latency": 2,
    "tuning_idle_s": 0.5,
    "tuning_burst_s": 0.5,
    "imports": 1,
}


def ensure_upstream_venv() -> None:
    """jupyter-remote-desktop-proxy 3.0.x with JupyterLab, in benchmarks/.venv-upstream (created once)."""
    if (UPSTREAM_VENV / "bin" / "jupyter-lab").exists():
        return
    M.log("creating benchmarks/.venv-upstream (jupyter-remote-desktop-proxy 3.0.x, jupyterlab, jupyter-server-proxy)")
    subprocess.run([sys.executable, "-m", "venv", str(UPSTREAM_VENV)], check=True)
    subprocess.run(
        [
            str(UPSTREAM_VENV / "bin" / "pip"),
            "install",
            "-q",
            "jupyter-remote-desktop-proxy>=3.0,<3.1",
            "jupyterlab",
            "jupyter-server-proxy",
        ],
        check=True,
    )


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.p = SMOKE if args.smoke else plan(args.quick)
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.work = Path(tempfile.mkdtemp(prefix="dw-bench-"))
        self.results: dict = {
            "options": {
                "quick": args.quick,
                "metrics": args.metrics,
                "skip_upstream": args.skip_upstream,
                "plan": self.p,
            },
            "errors": [],
        }
        self.browser: Browser | None = None
        self.ours: Ours | None = None

    def want(self, metric: str) -> bool:
        return metric in self.args.metrics

    def guarded(self, name: str, fn, *args):
        try:
            return fn(*args)
        except Exception as exc:
            M.log(f"{name} failed: {exc!r}")
            self.results["errors"].append(f"{name}: {exc!r}\n\n```\n{traceback.format_exc()[-2000:]}\n```")
            return None

    # -- ours --------------------------------------------------------------------------------
    def run_ours(self) -> None:
        M.log("starting JupyterLab (ours) and opening the notebook")
        self.ours = Ours(self.browser, self.work / "ours")
        r = self.results
        if self.want("firstcell"):
            r["first_cell"] = self.guarded("first cell", self.first_cell) or {}
            r["first_cell"]["spare"] = self.guarded("first cell, spare ready", self.first_cell_spare)
        if self.want("cold"):
            cold = r.setdefault("cold", {})
            cold["python_import_s"] = M.python_import(self.p["imports"])
            ours_cold = cold.setdefault("ours", {})
            ours_cold["wm"] = self.guarded("cold ours wm", M.cold_ours, self.ours, "wm", self.p["cold_wm"], self.out)
            if self.args.skip_upstream:
                ours_cold["xfce"] = self.guarded(
                    "cold ours xfce", M.cold_ours, self.ours, "xfce", self.p["cold_xfce"], self.out
                )
            else:
                pair = self.guarded("cold xfce ours and upstream", self.cold_pair)
                if pair:
                    ours_cold["xfce"], cold["upstream"] = pair
        # Latency, throughput and resources on an XFCE desktop, as upstream's.
        if any(self.want(m) for m in ("latency", "throughput", "resources")):
            self.guarded("ours xfce metrics", self.ours_xfce_metrics)
        if self.want("resources") or self.want("latency"):
            self.guarded("ours light-WM metrics", self.ours_wm_metrics)
        if self.want("api"):
            r["api"] = self.guarded("api", self.api)
        if self.want("scale"):
            r["scale"] = self.guarded("scale", M.scale, self.ours, self.p["scale_latency"])
        if self.want("framerate"):
            r["frame_rates"] = self.guarded("frame rates", self.frame_rates)
        if self.want("transport"):
            r["transports"] = self.guarded(
                "transports", M.transports, self.ours, self.p["latency"], self.p["burst_s"], self.out
            )
        if self.want("tuning"):
            r["tuning"] = self.guarded(
                "tuning",
                M.tuning,
                self.ours,
                self.p["tuning_latency"],
                self.p["tuning_idle_s"],
                self.p["tuning_burst_s"],
            )

    def frame_rates(self) -> list[dict]:
        """Latency and the costs under load at Xvnc frame rates up to 1000 (the trade-off behind DEFAULT_FRAME_RATE)."""
        return M.frame_rate_table(
            self.ours, HIGH_FRAME_RATES, self.p["tuning_latency"], self.p["tuning_idle_s"], self.p["burst_s"]
        )

    def first_cell_spare(self) -> dict:
        """The same first cell with one spare desktop ready, and a spare's idle cost (see _firstcell.py)."""
        return _firstcell.first_cell_spare(
            self.browser, self.work / "ours-spare", self.p["first_cell"], self.p["idle_s"], self.out
        )

    def first_cell(self) -> dict:
        """Shift+Enter on the first cell of a fresh kernel → XFCE's panel; upstream in turn (see _firstcell.py)."""
        if not self.args.skip_upstream:
            ensure_upstream_venv()
        return _firstcell.first_cell_pair(
            self.ours,
            self.browser,
            self.work / "upstream-first",
            self.p["first_cell"],
            self.p["first_cell_upstream"],
            self.out,
            upstream=not self.args.skip_upstream,
        )

    def cold_pair(self) -> tuple[dict, dict]:
        ensure_upstream_venv()
        return M.cold_xfce_pair(
            self.ours,
            self.browser,
            self.work / "upstream-cold",
            self.p["cold_xfce"],
            self.p["cold_upstream"],
            self.out,
        )

    def ours_xfce_metrics(self) -> None:
        ours, r = self.ours, self.results
        try:
            ours.desktop_info()
            fresh = ours.eval_json("d.status") != "running" or not self._is_xfce()
        except RuntimeError:  # no desktop d yet
            fresh = True
        if fresh:
            M.new_desktop(ours, "cold-xfce")
            time.sleep(3)
        if self.want("latency"):
            M.log("latency ours (XFCE)")
            r.setdefault("latency", {})["ours"] = M.latency(
                ours.page, ours.env, ours.socket, self.p["latency"], screenshot=self.out / "ours-xfce-latency.png"
            )
        if self.want("throughput"):
            tp = r.setdefault("throughput", {}).setdefault("ours", {})
            for mode in ("solid", "noise"):
                M.log(f"throughput ours {mode}")
                tp[mode] = M.throughput(
                    ours.page,
                    ours.env,
                    M.groups_ours(ours),
                    mode,
                    self.p["burst_s"],
                    screenshot=self.out / f"ours-xfce-{mode}.png",
                )
        if self.want("resources"):
            r.setdefault("resources", {})["ours_xfce"] = self.idle_pair(ours)

    def _is_xfce(self) -> bool:
        return "xfce4-session" in {M.comm(p) for p in self.ours.desktop_pids()}

    def idle_pair(self, ours: Ours) -> dict:
        M.log("resources ours: view connected, then closed")
        time.sleep(2)
        connected = M.resources(ours.page, M.groups_ours(ours), self.p["idle_s"])
        ours.close_page()
        time.sleep(1)
        closed = M.resources(None, M.groups_ours(ours), self.p["idle_s"])
        ours.open_notebook()
        return {"connected": connected, "closed": closed}

    def ours_wm_metrics(self) -> None:
        ours = self.ours
        M.new_desktop(ours, "cold-wm")
        if self.want("latency"):
            M.log("latency ours (light WM)")
            self.results.setdefault("latency", {})["ours_wm"] = M.latency(
                ours.page, ours.env, ours.socket, self.p["latency"], screenshot=self.out / "ours-wm-latency.png"
            )
        if self.want("resources"):
            self.results.setdefault("resources", {})["ours_wm"] = self.idle_pair(ours)

    def api(self) -> dict:
        M.new_desktop(self.ours, "cold-wm")
        M.log("API speed")
        return M.api_speed(self.ours, self.p["api"], self.out)

    # -- upstream --------------------------------------------------------------------------------
    def run_upstream(self) -> None:
        ensure_upstream_venv()
        r = self.results
        upstream = None
        try:
            if any(self.want(m) for m in ("latency", "throughput", "resources")):
                M.log("starting an upstream desktop for latency, throughput and resources")
                upstream = M.fresh_upstream(self.browser, self.work / "upstream")
            if upstream and self.want("latency"):
                M.log("latency upstream")
                r.setdefault("latency", {})["upstream"] = M.latency(
                    upstream.page,
                    upstream.env,
                    upstream.socket,
                    self.p["latency"],
                    screenshot=self.out / "upstream-xfce-latency.png",
                )
            if upstream and self.want("throughput"):
                tp = r.setdefault("throughput", {}).setdefault("upstream", {})
                for mode in ("solid", "noise"):
                    M.log(f"throughput upstream {mode}")
                    tp[mode] = M.throughput(
                        upstream.page,
                        upstream.env,
                        M.groups_upstream(upstream),
                        mode,
                        self.p["burst_s"],
                        screenshot=self.out / f"upstream-xfce-{mode}.png",
                    )
            if upstream and self.want("resources"):
                M.log("resources upstream: view connected, then closed")
                time.sleep(2)
                connected = M.resources(upstream.page, M.groups_upstream(upstream), self.p["idle_s"])
                upstream.close_page()
                time.sleep(1)
                closed = M.resources(None, M.groups_upstream(upstream), self.p["idle_s"])
                r.setdefault("resources", {})["upstream"] = {"connected": connected, "closed": closed}
        finally:
            if upstream is not None:
                upstream.close()

    # -- all --------------------------------------------------------------------------------------
    def run(self) -> Path:
        start = time.monotonic()
        self.results["environment"] = _report.environment()
        self.browser = Browser()
        try:
            self.guarded("ours", self.run_ours)
            if self.ours is not None:
                self.ours.close()
                self.ours = None
            if not self.args.skip_upstream:
                self.guarded("upstream", self.run_upstream)
        finally:
            if self.ours is not None:
                with contextlib.suppress(Exception):
                    self.ours.close()
            self.browser.close()
            shutil.rmtree(self.work, ignore_errors=True)
        self.results["options"]["elapsed_s"] = round(time.monotonic() - start)
        return self.write()

    def write(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        name = f"bench-{stamp}{'-quick' if self.args.quick else ''}"
        json_path = self.out / f"{name}.json"
        md_path = self.out / f"{name}.md"
        json_path.write_text(json.dumps(self.results, indent=1, default=str))
        try:
            md_path.write_text(_report.markdown(self.results))
        except Exception:  # the raw results are safe; the report can be redone with --report
            md_path.write_text(f"# report failed\n\n```\n{traceback.format_exc()}\n```\n")
            raise
        for link, target in (("latest.json", json_path), ("latest.md", md_path)):
            path = self.out / link
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            shutil.copyfile(target, path)
        full = set(self.args.metrics) == set(METRICS) and not self.args.skip_upstream
        if self.args.readme == "yes" or (self.args.readme == "auto" and full and not self.args.quick):
            _report.update_readme(ROOT / "README.md", self.results, md_path.name)
            M.log("README.md table updated")
        M.log(f"wrote {md_path} and {json_path.name}")
        return md_path


def rewrite(args: argparse.Namespace) -> Path:
    """The Markdown report (and the README's table) again from a raw JSON file."""
    source = Path(args.report)
    results = json.loads(source.read_text())
    md = source.with_suffix(".md")
    md.write_text(_report.markdown(results))
    o = results["options"]
    full = set(o["metrics"]) == set(METRICS) and not o["skip_upstream"]
    if args.readme == "yes" or (args.readme == "auto" and full and not o["quick"]):
        _report.update_readme(ROOT / "README.md", results, md.name)
    return md


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    md = rewrite(args) if args.report else Run(args).run()
    print(md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
