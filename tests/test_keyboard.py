"""Keyboard input through XTEST, read back from real applications on a real Xvnc desktop.

The main witness is a small Tk program with a focused ``Text`` widget: F12 makes
it write what it holds (and every key event it saw) to a file, F5 makes it
freeze for a while, as a busy application would.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from Xlib import X
from Xlib.error import XError

from desktop_widget import Desktop
from desktop_widget.control import _x
from desktop_widget.control._keyboard import Keyboard
from desktop_widget.control._keynames import char_keysym, resolve, split
from tests._procs import wait_for

FREEZE = 1.5  # seconds the Tk app sleeps on F5

TK_APP = textwrap.dedent(
    """
    import json, os, sys, time, tkinter as tk

    out = sys.argv[1]
    root = tk.Tk()
    root.title(sys.argv[2])
    root.geometry("700x400+40+40")
    text = tk.Text(root)
    text.pack(fill="both", expand=True)
    events = []

    def log_key(event):
        events.append({"keysym": event.keysym, "state": event.state, "char": event.char, "t": time.monotonic()})

    def dump(event):
        with open(out + ".tmp", "w", encoding="utf-8") as f:
            json.dump({"text": text.get("1.0", "end-1c"), "events": events}, f)
        os.replace(out + ".tmp", out)
        return "break"

    def select_all(event):
        text.tag_add("sel", "1.0", "end-1c")
        return "break"

    def control_alt_t(event):
        log_key(event)
        text.insert("insert", "[C-A-t]")
        return "break"

    def freeze(event):
        time.sleep(float(sys.argv[3]))
        return "break"

    text.bind("<KeyPress>", log_key, add="+")
    text.bind("<F12>", dump)
    text.bind("<F5>", freeze)
    text.bind("<Control-a>", select_all)
    text.bind("<Control-Alt-t>", control_alt_t)
    text.bind("<FocusIn>", lambda event: open(out + ".ready", "w").close())
    text.focus_set()
    root.after(100, text.focus_force)
    root.mainloop()
    """
)

# A bare python-xlib client that, like GTK, fetches the keymap only when it next
# needs it (at its next key event), not when it is told of a change.
LAZY_APP = textwrap.dedent(
    """
    import os, sys
    from Xlib import X, display

    out, title = sys.argv[1], sys.argv[2]
    d = display.Display()
    screen = d.screen()
    w = screen.root.create_window(60, 60, 400, 200, 0, screen.root_depth,
                                  event_mask=X.KeyPressMask | X.StructureNotifyMask)
    w.set_wm_name(title)
    w.map()
    first = d.display.info.min_keycode
    count = d.display.info.max_keycode - first + 1
    keymap, text = None, []
    while True:
        event = d.next_event()
        if event.type == X.MapNotify:
            w.set_input_focus(X.RevertToParent, X.CurrentTime)
        elif event.type == X.MappingNotify:
            keymap = None
        elif event.type == X.KeyPress:
            if keymap is None:  # as GTK does: the keysyms and the modifier map
                keymap = d.get_keyboard_mapping(first, count)
                d.get_modifier_mapping()
            syms = keymap[event.detail - first]
            keysym = syms[1] if event.state & X.ShiftMask and syms[1] else syms[0]
            if keysym == 0xFFC9:  # F12
                with open(out + ".tmp", "w", encoding="utf-8") as f:
                    f.write("".join(text))
                os.replace(out + ".tmp", out)
            elif 0x20 <= keysym <= 0xFF:
                text.append(chr(keysym))
            elif keysym >> 24 == 1:
                text.append(chr(keysym & 0xFFFFFF))
    """
)


# -- fixtures ------------------------------------------------------------------


def _connect(d: Desktop):
    return _x.connect(d.display, d.env["XAUTHORITY"])


@pytest.fixture(scope="module")
def desktop():
    d = Desktop(session="wm")
    # Windows opened before the window manager runs lose the focus when it starts.
    c = _connect(d)
    check = c.intern_atom("_NET_SUPPORTING_WM_CHECK")
    deadline = time.monotonic() + 10
    while c.screen().root.get_full_property(check, 0) is None:
        assert time.monotonic() < deadline, "the window manager did not start"
        time.sleep(0.05)
    c.close()
    yield d
    d.stop()


@pytest.fixture(scope="module")
def conn(desktop):
    c = _connect(desktop)
    yield c
    c.close()


@pytest.fixture(scope="module")
def kb(desktop):
    k = Keyboard(_connect(desktop), connect=lambda: _connect(desktop))
    assert k._recorder is not None, "Xvnc has RECORD; the keyboard should watch keymap fetches"
    yield k
    k.close()


def keymap(conn) -> list[tuple[int, ...]]:
    first = conn.display.info.min_keycode
    return [tuple(row) for row in conn.get_keyboard_mapping(first, conn.display.info.max_keycode - first + 1)]


def focused_title(conn) -> str | None:
    """WM_NAME of the top-level window that has the keyboard focus."""
    window = conn.get_input_focus().focus
    root = conn.screen().root
    try:
        while not isinstance(window, int) and window.id != root.id:
            name = window.get_wm_name()
            if name:
                return name
            window = window.query_tree().parent
    except XError:  # the window went away meanwhile
        pass
    return None


def wait_focus(conn, title: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while focused_title(conn) != title:
        assert time.monotonic() < deadline, f"{title!r} never got the keyboard focus (focus: {focused_title(conn)!r})"
        time.sleep(0.05)


def wait_file(path: Path, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)
    return path.read_text(encoding="utf-8")


class TkApp:
    def __init__(self, desktop: Desktop, conn, directory: Path, title: str) -> None:
        script = directory / "app.py"
        script.write_text(TK_APP)
        self.out = directory / "dump.json"
        self.proc = subprocess.Popen(
            [sys.executable, str(script), str(self.out), title, str(FREEZE)], env={**os.environ, **desktop.env}
        )
        wait_file(Path(f"{self.out}.ready"))
        wait_focus(conn, title)

    def read(self, kb: Keyboard) -> dict:
        """Everything the app holds and saw, once it has handled every key sent so far."""
        self.out.unlink(missing_ok=True)
        kb.key("F12")
        return json.loads(wait_file(self.out))

    def text(self, kb: Keyboard) -> str:
        return self.read(kb)["text"]


@pytest.fixture
def app(desktop, conn, tmp_path, request):
    a = TkApp(desktop, conn, tmp_path, f"keyboard-{request.node.name}")
    yield a
    a.proc.kill()
    a.proc.wait()
    assert not any(conn.query_keymap()), "a key is still down"


# -- names (no X) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "keysym"),
    [
        ("Return", 0xFF0D),
        ("return", 0xFF0D),
        ("enter", 0xFF0D),
        ("ctrl", 0xFFE3),
        ("control", 0xFFE3),
        ("alt", 0xFFE9),
        ("shift", 0xFFE1),
        ("win", 0xFFEB),
        ("meta", 0xFFEB),
        ("esc", 0xFF1B),
        ("BackSpace", 0xFF08),
        ("backspace", 0xFF08),
        ("del", 0xFFFF),
        ("pgdn", 0xFF56),
        ("f24", 0xFFD5),
        ("KP_Enter", 0xFF8D),
        ("kp_enter", 0xFF8D),
        ("XF86AudioMute", 0x1008FF12),
        ("eacute", 0xE9),
        ("é", 0xE9),
        ("a", 0x61),
        ("A", 0x41),
        ("plus", 0x2B),
        ("+", 0x2B),
        ("✓", 0x1002713),
    ],
)
def test_key_names(name, keysym):
    assert resolve(name) == keysym


def test_unknown_key_suggests():
    with pytest.raises(ValueError, match=r"unknown key 'retrun'; did you mean 'Return'"):
        resolve("retrun")
    with pytest.raises(ValueError, match=r"did you mean 'BackSpace'"):
        resolve("backspce")


def test_combo_syntax():
    assert split("ctrl+alt+t") == ["ctrl", "alt", "t"]
    assert split("ctrl++") == ["ctrl", "+"]
    assert split("+") == ["+"]
    for bad in ("", "ctrl+", "+a", "a++b"):
        with pytest.raises(ValueError, match="malformed"):
            split(bad)
    assert char_keysym("\n") == resolve("Return")
    with pytest.raises(ValueError, match="control character"):
        char_keysym("\x07")


# -- typing into Tk ------------------------------------------------------------


def test_type_ascii_fast_and_exact(kb, app):
    line = "".join(chr(c) for c in range(0x20, 0x7F))  # every printable ASCII character, shifted or not
    text = "\n".join(f"{i:03d}\t{line}" for i in range(12))  # ~1200 characters
    started = time.perf_counter()
    kb.type(text)
    elapsed = time.perf_counter() - started
    assert app.text(kb) == text
    print(f"\nASCII: {len(text)} characters in {elapsed:.3f} s = {len(text) / elapsed:,.0f} chars/s")


def test_type_unicode_restores_the_keymap(kb, app, conn):
    before = keymap(conn)
    text = "héllo ✓ 日本 \t x"
    started = time.perf_counter()
    kb.type(text)
    elapsed = time.perf_counter() - started
    assert keymap(conn) == before
    assert app.text(kb) == text
    print(f"\n{text!r}: {elapsed:.3f} s (two pauses of {kb.settle} s around the bound keys)")


def test_more_distinct_characters_than_spare_keycodes(kb, app, conn):
    before = keymap(conn)
    spare = sum(1 for row in before if not any(row))
    # More distinct characters than spare keycodes: two batches, each bound in turn. Not many more:
    # each binding is a MappingNotify to every client, and window managers regrab their keys on each.
    odd = "αβγδεζηθικλμνξοπρστυφχψω✓✗→←日本"
    assert len(set(odd)) > spare
    text = " ".join(f"{word}{ch}" for word, ch in zip(["ab", "Cd", "eF!"] * 10, odd, strict=True))
    text += "\nvoilà: Grüße, naïve café"
    started = time.perf_counter()
    kb.type(text)
    elapsed = time.perf_counter() - started
    assert keymap(conn) == before
    assert app.text(kb) == text
    print(f"\nUnicode: {len(text)} characters ({len(set(text))} distinct) in {elapsed:.3f} s")
    print(f"         = {len(text) / elapsed:,.0f} chars/s, {spare} spare keycodes")


def test_busy_client_still_gets_every_character(kb, app, conn):
    """The xdotool race, both ways, against an app that F5 freezes for 1.5 s.

    Bound while the app is frozen: the keys must wait until it has handled the
    change, else they reach it together with the notification and are looked
    up in the old keymap (the next test shows a fixed wait losing them).
    Frozen with our keys queued behind F5: the restore must wait until it has
    handled them, else libX11 looks them up in the restored keymap.
    """
    before = keymap(conn)
    kb.key("F5")
    started = time.perf_counter()
    kb.type("✓ é 日本")
    waited = time.perf_counter() - started
    assert keymap(conn) == before
    assert app.text(kb) == "✓ é 日本"
    print(f"\ntype() waited {waited:.2f} s for the frozen app to handle the new bindings")

    kb.key("F5", "ö", "space", "→")
    assert keymap(conn) == before
    assert app.text(kb) == "✓ é 日本ö →"


def test_without_record_a_fixed_wait_loses_characters_to_a_busy_client(desktop, app, conn):
    """Proof that the previous test exercises the race: a 0.1 s wait is not enough."""
    naive = Keyboard(_connect(desktop), settle=0.1)
    try:
        naive.key("F5")
        naive.type("✓ é 日本")
        text = app.text(naive)
    finally:
        naive.close()
    assert "✓" not in text
    assert "日" not in text


def test_fixed_wait_is_enough_for_an_idle_client(desktop, app, conn):
    before = keymap(conn)
    plain = Keyboard(_connect(desktop))
    try:
        plain.type("ça ✓")
        assert keymap(conn) == before
        assert app.text(plain) == "ça ✓"
    finally:
        plain.close()


def test_key_combos_reach_the_app(kb, app):
    kb.type("abc")
    kb.key("ctrl+a")
    kb.type("z")  # replaces the selection
    assert app.text(kb) == "z"
    kb.key("ctrl+a", "ctrl+c", "End", "ctrl+v")  # several combos, in order: copy and paste after
    assert app.text(kb) == "zz"
    kb.key("A", "shift+b", "plus", "ctrl+alt+t", "Return", "space", "eacute", "✓")
    seen = app.read(kb)
    assert seen["text"] == "zzAB+[C-A-t]\n é✓"
    combo = next(e for e in seen["events"] if e["keysym"] == "t")
    assert combo["state"] & 0x4, "Control held"
    assert combo["state"] & 0x8, "Alt (Mod1) held"
    assert not combo["state"] & 0x1, "no Shift"


def test_backspace_and_arrows(kb, app):
    kb.type("hello")
    kb.key("BackSpace", "BackSpace")
    kb.type("p!")
    kb.key("left", "left", "left")
    kb.key("Delete")
    kb.type("L")
    assert app.text(kb) == "heLp!"


def test_unknown_key_presses_nothing(kb, app):
    with pytest.raises(ValueError, match=r"unknown key 'retrun'; did you mean 'Return'"):
        kb.key("a", "retrun")
    assert app.text(kb) == ""


def test_key_down_and_up(kb, app, conn):
    before = keymap(conn)
    kb.key_down("shift")
    kb.type("abc")
    kb.key_up("shift")
    kb.type("d")
    kb.key_down("✓")  # a held key keeps its temporary binding until it is released
    assert keymap(conn) != before
    kb.key_up("✓")
    assert keymap(conn) == before
    assert app.text(kb) == "ABCd✓"


def test_failure_releases_keys_and_restores_the_keymap(kb, app, conn, monkeypatch):
    before = keymap(conn)
    strokes = []
    stroke = kb._stroke

    def failing_stroke(*args):
        strokes.append(args)
        if len(strokes) == 3:  # "A" and "B" typed, shift down for them, "✓" bound
            raise RuntimeError("boom")
        stroke(*args)

    monkeypatch.setattr(kb, "_stroke", failing_stroke)
    with pytest.raises(RuntimeError, match="boom"):
        kb.type("AB✓CD")
    monkeypatch.undo()
    assert not any(conn.query_keymap()), "shift was left down"
    assert keymap(conn) == before
    kb.type("x")
    assert app.text(kb) == "ABx"


def test_a_client_that_fetches_the_keymap_lazily_is_prompted(desktop, conn, tmp_path, caplog):
    """GTK fetches a changed keymap only at its next key event; a key without keysym prompts it.

    Unprompted, the client would handle the change only at our first bound key, so every
    wait for it would run into ``timeout`` (and say so in the log). How long it takes is
    the benchmarks' business.
    """
    script = tmp_path / "lazy.py"
    script.write_text(LAZY_APP)
    out = tmp_path / "lazy.txt"
    proc = subprocess.Popen([sys.executable, str(script), str(out), "keyboard-lazy"], env={**os.environ, **desktop.env})
    lazy = Keyboard(_connect(desktop), connect=lambda: _connect(desktop), timeout=5.0)
    try:
        wait_focus(conn, "keyboard-lazy")
        before = keymap(conn)
        with caplog.at_level(logging.DEBUG, logger="desktop_widget"):
            lazy.type("Grüße ✓ 日本")
        assert keymap(conn) == before
        lazy.key("F12")
        assert wait_file(out) == "Grüße ✓ 日本"
        waits = [
            r.getMessage() for r in caplog.records if "handle" in r.getMessage() and "keymap change" in r.getMessage()
        ]
        assert waits, "type() never waited for the client"
        assert not [w for w in waits if "did not handle" in w], f"the client was not prompted: {waits}"
    finally:
        lazy.close()
        proc.kill()
        proc.wait()


# -- typing into xterm ---------------------------------------------------------


# Many scripts at once: ~140 distinct characters, most not in a US keymap (19 spare keycodes).
MIXED = (
    "Grüße aus München! Ça va très bien. ¿Dónde está la señal? Příliš žluťoučký kůň úpěl ďábelské ódy. "
    "Zażółć gęślą jaźń. Γειά σου κόσμε — Привет, мир! Съешь же ещё этих мягких французских булок. "  # noqa: RUF001
    "日本語のテキスト、東京で会いましょう。中文也可以。 ✓ done → next ★ 3 × 4 ≠ 12 ± 0.5 € 20 £ 15 ¥ 300 “quoted” …"  # noqa: RUF001
)


def xkb_keymap(desktop) -> str:
    """The whole XKB keymap (types, actions, groups), which the core keymap only summarises."""
    env = {**os.environ, **desktop.env}
    return subprocess.run(["xkbcomp", "-xkb", desktop.display, "-"], env=env, capture_output=True, text=True).stdout


def test_long_mixed_text_into_tk_is_exact(kb, app, conn, desktop, caplog):
    text = " ".join([MIXED] * 3)
    before, before_xkb = keymap(conn), xkb_keymap(desktop)
    with caplog.at_level(logging.DEBUG, logger="desktop_widget"):
        kb.type(text)
    assert app.text(kb) == text
    assert keymap(conn) == before
    assert xkb_keymap(desktop) == before_xkb  # lent vendor keys came back exactly
    binds = [r.args[0] for r in caplog.records if r.getMessage().startswith("bound ")]
    assert max(binds) > 19, f"more characters were bound at once than there are spare keycodes: {binds}"


def test_grabbed_keys_are_not_lent(desktop, conn):
    from desktop_widget.control._keymap import Keymap

    other = _connect(desktop)
    try:
        keymap_now = Keymap.read(conn)
        keymap_now.lend(conn, set())
        assert len(keymap_now.lent) > 50, "Xvnc's keymap has ~90 vendor keys"
        grabbed = keymap_now.lent[3]
        other.screen().root.grab_key(grabbed, X.AnyModifier, False, X.GrabModeAsync, X.GrabModeAsync)
        other.sync()
        keymap_now.lend(conn, set())
        assert grabbed not in keymap_now.lent
        wanted = keymap_now.rows[keymap_now.lent[0]][0]
        keymap_now.lend(conn, {wanted})  # a key whose keysym the text needs is not lent either
        assert not any(wanted in keymap_now.rows[kc] for kc in keymap_now.lent)
    finally:
        other.close()

    def released() -> bool:  # the X server drops the grab when it has processed the client's end: not at once
        keymap_now.lend(conn, set())
        return grabbed in keymap_now.lent

    wait_for(released, what="the grab to go with its client")  # let go with the client


def test_type_into_xterm(kb, desktop, conn, tmp_path):
    out = tmp_path / "line.txt"
    env = {**os.environ, **desktop.env, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    proc = subprocess.Popen(
        [
            "xterm",
            "-u8",
            "-T",
            "keyboard-xterm",
            "-e",
            "sh",
            "-c",
            f'read -r line; printf %s "$line" > {out}.tmp; mv {out}.tmp {out}',
        ],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_focus(conn, "keyboard-xterm")
        before = keymap(conn)
        kb.type("Hello, wörld ✓ 日本 $HOME ~/x|y " + MIXED + "\n")  # many rebindings: xterm answers each
        assert keymap(conn) == before
        assert wait_file(out) == "Hello, wörld ✓ 日本 $HOME ~/x|y " + MIXED
    finally:
        proc.kill()
        proc.wait()
