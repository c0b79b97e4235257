#!/usr/bin/env python
"""Benchmarks of desktop_widget against jupyter-remote-desktop-proxy and a bare RFB client.

    .venv/bin/python benchmarks/run.py            # everything (about 10 minutes on 2 cores)
    .venv/bin/python benchmarks/run.py --quick    # fewer trials, shorter windows
    .venv/bin/python benchmarks/run.py --only latency,throughput --skip-upstream
    .venv/bin/python benchmarks/run.py --smoke    # a trial or two each, ours only: does it still run?

Writes ``results/bench-<time>.json`` (raw) and ``.md`` (the numbers) and, after a
full run of every metric with upstream, the table between the markers in the
project README. See benchmarks/README.md.
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
import _spare  # noqa: E402
from _common import log  # noqa: E402
from _targets import ROOT, UPSTREAM_VENV, Browser, Ours  # noqa: E402

METRICS = ["firstcell", "latency", "throughput", "resources", "api", "framerate"]
#: Metrics of earlier versions: what replaced them.
REPLACED = {
    "transport": "latency,throughput (the comm transport is a row of each)",
    "cold": "firstcell",
    "scale": "nothing (dropped; see RESULTS.md for its last numbers)",
    "tuning": "framerate (the rest was dropped; see RESULTS.md for its last numbers)",
}
#: Xvnc frame rates compared by "framerate" (the default, 500, and its neighbours).
FRAME_RATES = (120, 240, 500, 1000)
PLANS = {
    "full": {"first_cell": 7, "first_cell_upstream": 5, "latency": 40, "burst_s": 10.0, "idle_s": 10.0, "api": 30,
             "framerate_latency": 20, "settle_s": 3.0, "framerate_idle_s": 5.0, "framerate_burst_s": 4.0, "frame_rates": FRAME_RATES},
    "quick": {"first_cell": 3, "first_cell_upstream": 2, "latency": 15, "burst_s": 3.0, "idle_s": 3.0, "api": 10,
              "framerate_latency": 8, "settle_s": 3.0, "framerate_idle_s": 2.0, "framerate_burst_s": 2.0, "frame_rates": FRAME_RATES},
    # For the tests: the least that still measures each metric once or twice.
    "smoke": {"first_cell": 1, "first_cell_upstream": 0, "latency": 3, "burst_s": 1.0, "idle_s": 1.0, "api": 2,
              "framerate_latency": 2, "settle_s": 1.0, "framerate_idle_s": 0.5, "framerate_burst_s": 0.5, "frame_rates": (500,)},
}  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer trials and shorter windows")
    p.add_argument("--smoke", action="store_true", help="a trial or two, ours only, README untouched (the tests)")
    p.add_argument("--only", default="", help=f"comma-separated metrics (default all): {','.join(METRICS)}")
    p.add_argument("--skip-upstream", action="store_true", help="measure ours (and the bare reference) only")
    p.add_argument("--out", default=str(HERE / "results"), help="where the JSON, report and screenshots go")
    p.add_argument("--report", metavar="JSON", help="only rewrite the report (and README) from a raw results file")
    p.add_argument(
        "--readme", choices=("auto", "yes", "no"), default="auto", help="rewrite the README's table (auto: full runs)"
    )
    args = p.parse_args(argv)
    if args.smoke:
        args.quick, args.skip_upstream, args.readme = True, True, "no"
    args.metrics = [m.strip() for m in args.only.split(",") if m.strip()] or list(METRICS)
    for name in args.metrics:
        if name in REPLACED:
            p.error(f"metric {name!r} is gone: use {REPLACED[name]}")
        if name not in METRICS:
            p.error(f"unknown metric {name!r}; choose from {', '.join(METRICS)}")
    args.plan = PLANS["smoke" if args.smoke else "quick" if args.quick else "full"]
    return args


def ensure_upstream_venv() -> None:
    """jupyter-remote-desktop-proxy 3.0.x with JupyterLab, in benchmarks/.venv-upstream (created once)."""
    if (UPSTREAM_VENV / "bin" / "jupyter-lab").exists():
        return
    log("creating benchmarks/.venv-upstream (jupyter-remote-desktop-proxy 3.0.x, jupyterlab, jupyter-server-proxy)")
    subprocess.run([sys.executable, "-m", "venv", str(UPSTREAM_VENV)], check=True)
    packages = ["jupyter-remote-desktop-proxy>=3.0,<3.1", "jupyterlab", "jupyter-server-proxy"]
    subprocess.run([str(UPSTREAM_VENV / "bin" / "pip"), "install", "-q", *packages], check=True)


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.p = args, args.plan
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.work = Path(tempfile.mkdtemp(prefix="dw-bench-"))
        o = {"quick": args.quick, "smoke": args.smoke, "metrics": args.metrics, "skip_upstream": args.skip_upstream}
        self.results: dict = {"options": {**o, "plan": self.p}, "errors": []}
        for key in ("latency", "throughput", "resources"):
            self.results[key] = {}
        self.browser: Browser | None = None

    def want(self, *metrics: str) -> bool:
        return any(m in self.args.metrics for m in metrics)

    def guarded(self, name: str, fn, *args):
        """One metric's failure is recorded and the run goes on (the others' numbers are kept)."""
        try:
            return fn(*args)
        except Exception as exc:
            log(f"{name} failed: {exc!r}")
            self.results["errors"].append(f"{name}: {exc!r}\n\n```\n{traceback.format_exc()[-2000:]}\n```")
            return None

    def run_ours(self) -> None:
        log("starting JupyterLab (ours) and opening the notebook")
        ours = Ours(self.browser, self.work / "ours")
        r, p = self.results, self.p
        try:
            if self.want("firstcell"):
                if not self.args.skip_upstream:
                    ensure_upstream_venv()
                r["first_cell"] = self.guarded(
                    "first cell", _firstcell.first_cell_pair, ours, self.browser, self.work / "upstream-first",
                    p["first_cell"], p["first_cell_upstream"], self.out, not self.args.skip_upstream,
                ) or {}  # fmt: skip
                r["first_cell"]["spare"] = self.guarded(
                    "first cell, spare ready", _spare.first_cell_spare, self.browser, self.work / "ours-spare",
                    p["first_cell"], p["idle_s"], self.out,
                )  # fmt: skip
            # The route on XFCE (as upstream's) and on the light WM; the comm transport on the light WM.
            for key, session, transport in (("ours_xfce", "xfce", "server"), ("ours_wm", "wm", "server"),
                                            ("ours_wm_comm", "wm", "comm")):  # fmt: skip
                started = False
                if self.want("latency", "throughput") or (self.want("resources") and transport == "server"):
                    started = self.guarded(key, self.on_desktop, ours, key, session, transport)
                if key == "ours_wm" and self.want("api"):  # on the light WM's route desktop (started if not yet)
                    self.guarded("api", self.api, ours, not started)
            if self.want("framerate"):
                r["frame_rates"] = self.guarded(
                    "frame rates", M.frame_rate_table, ours, p["frame_rates"], p["framerate_latency"],
                    p["framerate_idle_s"], p["framerate_burst_s"],
                )  # fmt: skip
        finally:
            ours.close()

    def api(self, ours: Ours, new_desktop: bool) -> None:
        if new_desktop:
            M.new_desktop(ours, "wm")
        log("API speed")
        self.results["api"] = M.api_speed(ours, self.p["api"])

    def on_desktop(self, target, key: str, session: str = "", transport: str = "server") -> bool:
        """Latency, frames/s and the idle cost on one desktop (ours: started here; upstream: its page's)."""
        r, p = self.results, self.p
        if isinstance(target, Ours):
            M.new_desktop(target, session, transport, settle_s=p["settle_s"])
            groups = M.groups_ours(target)
        else:
            groups = M.groups_upstream(target)
        if self.want("latency"):
            log(f"latency {key}")
            shot = self.out / f"{key}-latency.png"
            r["latency"][key] = M.latency(target.page, target.env, target.socket, p["latency"], screenshot=shot)
        if self.want("throughput"):
            r["throughput"][key] = {}
            for mode in ("solid", "noise"):
                log(f"frames/s {key} {mode}")
                r["throughput"][key][mode] = M.throughput(
                    target.page, target.env, groups, mode, p["burst_s"], screenshot=self.out / f"{key}-{mode}.png"
                )
        if self.want("resources") and transport == "server":
            log(f"idle {key}")
            time.sleep(min(2.0, p["idle_s"]))
            r["resources"][key] = M.resources(target.page, groups, p["idle_s"])
        return True

    def run_upstream(self) -> None:
        ensure_upstream_venv()
        log("starting an upstream desktop for latency, frames/s and the idle cost")
        upstream = _firstcell.fresh_upstream(self.browser, self.work / "upstream")
        try:
            self.on_desktop(upstream, "upstream_xfce")
            upstream.page.screenshot(path=str(self.out / "upstream-xfce-page.png"))
        finally:
            upstream.close()

    def run(self) -> Path:
        start = time.monotonic()
        self.results["environment"] = _report.environment()
        self.browser = Browser()
        try:
            self.guarded("ours", self.run_ours)
            if not self.args.skip_upstream and self.want("latency", "throughput", "resources"):
                self.guarded("upstream", self.run_upstream)
        finally:
            self.browser.close()
            shutil.rmtree(self.work, ignore_errors=True)
        self.results["options"]["elapsed_s"] = round(time.monotonic() - start)
        return write(self.results, self.out, self.args)


def write(results: dict, out: Path, args: argparse.Namespace) -> Path:
    name = f"bench-{time.strftime('%Y%m%d-%H%M%S')}{'-quick' if args.quick else ''}"
    json_path, md_path = out / f"{name}.json", out / f"{name}.md"
    json_path.write_text(json.dumps(results, indent=1, default=str))
    md_path.write_text(_report.markdown(results))
    for link, target in (("latest.json", json_path), ("latest.md", md_path)):
        with contextlib.suppress(FileNotFoundError):
            (out / link).unlink()
        shutil.copyfile(target, out / link)
    readme(results, args.readme)
    log(f"wrote {md_path} and {json_path.name}")
    return md_path


def readme(results: dict, when: str) -> None:
    """The README's table from these results: ``yes``, ``no``, or ``auto`` (a full run of every metric with upstream)."""
    o = results["options"]
    full = set(o["metrics"]) == set(METRICS) and not o["skip_upstream"] and not o["quick"]
    if when == "yes" or (when == "auto" and full):
        _report.update_readme(ROOT / "README.md", results)
        log("README.md table updated")


def build_view() -> None:
    """Bundle js/ into the package before measuring: the editable install builds it only when pip runs,
    so after a change to js/ the numbers would otherwise be of the view as it was (one full run was)."""
    log("bundling the view (node js/build.mjs)")
    subprocess.run(["node", str(ROOT / "js" / "build.mjs")], check=True, capture_output=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        source = Path(args.report)
        results = json.loads(source.read_text())
        md = source.with_suffix(".md")
        md.write_text(_report.markdown(results))
        readme(results, args.readme)
    else:
        build_view()
        md = Run(args).run()
    print(md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
