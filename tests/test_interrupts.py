"""An interrupted call or a stalled X server must not wedge a desktop (issue 9, item 2).

Each scenario runs in a process of its own (tests/_interrupts.py), since the
failure being tested is a hang: a step that never reports fails the test at
the deadline instead of hanging the test run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("_interrupts.py")


def run(scenario: str, timeout: float = 90) -> dict[str, dict]:
    try:
        done = subprocess.run([sys.executable, str(SCRIPT), scenario], capture_output=True, text=True, timeout=timeout)
        out, err = done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        steps = [json.loads(line)["step"] for line in out.splitlines()]
        pytest.fail(f"{scenario}: hung after the steps {steps}\n{err[-3000:]}")
    steps = {row["step"]: row for row in map(json.loads, out.splitlines())}
    if not all(row["ok"] for row in steps.values()):
        print(out, err[-5000:])  # shown when the test fails
    return steps


def assert_usable(steps: dict[str, dict]) -> None:
    for step in ("size", "key", "screenshot", "type", "stop"):
        assert steps.get(step, {}).get("ok"), (step, steps)
    assert steps["size"]["value"] == "(640, 480)"
    assert steps["screenshot"]["value"] == "(640, 480)"


@pytest.mark.parametrize("scenario", ["click", "click-stalled"])
def test_interrupted_click_leaves_the_desktop_usable(scenario):
    steps = run(scenario)
    if scenario == "click-stalled":
        assert steps["long-click"]["error"] == "KeyboardInterrupt"
    else:  # the case; 30,000 clicks may now be over before the interrupt
        assert steps["long-click"]["ok"] or steps["long-click"]["error"] == "KeyboardInterrupt"
    assert steps["buttons"]["value"] == "False", "a button is still down"
    assert_usable(steps)


def test_one_interrupt_ends_a_long_type_and_restores_the_keyboard():
    steps = run("type-stalled")
    assert steps["long-type"].get("error") == "KeyboardInterrupt", steps
    assert steps["keymap"]["value"] == "True", "the spare keycodes were not given their keysyms back"
    assert steps["keys"]["value"] == "False", "a key is still down"
    assert_usable(steps)


def test_a_stopped_x_server_times_out_and_recovers():
    steps = run("stalled")
    desktop = steps["id"]["value"]
    for step in ("stalled-screenshot", "stalled-key", "stalled-clipboard"):
        assert steps[step]["error"] == "TimeoutError", steps[step]
        assert desktop in steps[step]["message"]
        assert "did not answer within 2 s" in steps[step]["message"]
    assert_usable(steps)
    assert steps["clipboard-after"]["value"] == "'held'"
    assert steps["stop"]["ok"], "stop() failed on a stopped X server"
