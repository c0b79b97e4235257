"""Keyboard input to a desktop through XTEST, from the kernel's own X connection.

Keys are sent as XTEST fake key events on a python-xlib connection: no
subprocess per event, and a whole string goes to the server in a few writes.
Everything is looked up in the *live* keymap (keycode and shift level of each
keysym), so typing does not depend on the desktop's layout.

Characters the keymap lacks (``é`` on a US layout, ``✓``, ``日``) are typed by
binding them, for the moment, to spare keycodes (keycodes without keysyms),
then restoring those. The race xdotool documents is real, both ways: a client
learns of a keymap change from a MappingNotify and fetches the new keysyms
when it gets to it, and libX11 (Tk, xterm) applies a change it has merely
*read* to the next key it looks up, even a key sent before the change. So

* keys that reach a busy client together with the binding's notification
  can be looked up in the old keymap, and
* a restore that a client reads before it has handled our keys makes it look
  them up in the restored keymap: the characters are lost.

The keyboard therefore waits, after binding, until the focused client has
handled the change, and after the keys, until it has handled them, before
the keymap changes again. It knows by watching, through the RECORD extension
on a second connection, for the client's fetch of the modifier map, which
clients do only when they handle a keymap change (prompted by a key without
keysym, which types nothing); then it pauses ``settle`` seconds for the few
events that may remain. Without RECORD it can only pause, which a client
busy for longer defeats.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache

from Xlib import X
from Xlib.display import Display
from Xlib.error import CatchError
from Xlib.ext import record

from . import _x

log = logging.getLogger(__name__)

# Every keysym module python-xlib ships, so that any X keysym name resolves.
_GROUPS = (
    "miscellany",
    "latin1",
    "latin2",
    "latin3",
    "latin4",
    "greek",
    "cyrillic",
    "arabic",
    "hebrew",
    "katakana",
    "korean",
    "thai",
    "technical",
    "special",
    "publishing",
    "apl",
    "xkb",
    "xf86",
    "xk3270",
)

_ALIASES = {
    "ctrl": "Control_L",
    "control": "Control_L",
    "alt": "Alt_L",
    "altgr": "ISO_Level3_Shift",
    "shift": "Shift_L",
    "super": "Super_L",
    "win": "Super_L",
    "meta": "Super_L",
    "cmd": "Super_L",
    "enter": "Return",
    "return": "Return",
    "esc": "Escape",
    "escape": "Escape",
    "tab": "Tab",
    "space": "space",
    "backspace": "BackSpace",
    "del": "Delete",
    "delete": "Delete",
    "ins": "Insert",
    "insert": "Insert",
    "up": "Up",
    "down": "Down",
    "left": "Left",
    "right": "Right",
    "pgup": "Prior",
    "pageup": "Prior",
    "pgdn": "Next",
    "pagedown": "Next",
    "home": "Home",
    "end": "End",
    "plus": "plus",
    "minus": "minus",
    "menu": "Menu",
    "capslock": "Caps_Lock",
    "numlock": "Num_Lock",
    "print": "Print",
    "printscreen": "Print",
    **{f"f{n}": f"F{n}" for n in range(1, 25)},
}

# Control characters that have a key; any other one is refused by type().
_CONTROL_KEYS = {"\n": "Return", "\r": "Return", "\t": "Tab", "\b": "BackSpace", "\x1b": "Escape"}

_FLUSH_EVERY = 256  # requests; python-xlib concatenates its send buffer, so keep it short
_CHANGE_KEYBOARD_MAPPING = 100  # core request opcodes
_GET_MODIFIER_MAPPING = 119
_XKB_GET_MAP = 8  # XKEYBOARD minor opcode: how XKB clients (GTK, xkbcommon) fetch the keymap
_XKB_MODIFIER_MAP = 0x04  # XkbModifierMapMask in its full/partial fields


# -- names ---------------------------------------------------------------------


@cache
def _keysyms() -> dict[str, int]:
    """Every keysym name python-xlib knows, read from its modules (``Xlib.XK`` stays untouched)."""
    names: dict[str, int] = {}
    for group in _GROUPS:
        module = importlib.import_module(f"Xlib.keysymdef.{group}")
        for attr, value in vars(module).items():
            if attr.startswith("XK_"):
                names[attr[3:]] = value
                if attr.startswith("XK_XF86_"):  # X spells these XF86AudioMute, python-xlib XF86_AudioMute
                    names["XF86" + attr[8:]] = value
    return names


@cache
def _folded() -> dict[str, str]:
    """Lower-cased key name -> the name to resolve, aliases first; for case-insensitive lookup."""
    folded: dict[str, str] = {}
    # Lower-case spellings win a tie (``EACUTE`` -> eacute) so that the choice is stable.
    for name in sorted(_keysyms(), key=lambda n: (n != n.lower(), n)):
        folded.setdefault(name.lower(), name)
    folded.update(_ALIASES)
    return folded


def _char_keysym(char: str) -> int:
    """The keysym that types ``char``: Latin-1 keysyms are the code point, others the Unicode keysym."""
    if char in _CONTROL_KEYS:
        return _keysyms()[_CONTROL_KEYS[char]]
    code = ord(char)
    if code < 0x20 or 0x7F <= code < 0xA0:
        raise ValueError(f"cannot type the control character {char!r}")
    return code if code <= 0xFF else 0x01000000 | code


def _keysym_char(keysym: int) -> str | None:
    """The character a Latin-1 or Unicode keysym stands for (used to see case pairs)."""
    if 0x20 <= keysym <= 0x7E or 0xA0 <= keysym <= 0xFF:
        return chr(keysym)
    if 0x01000100 <= keysym <= 0x0110FFFF:
        return chr(keysym & 0xFFFFFF)
    return None


def _resolve(name: str) -> int:
    """The keysym of a key name: an X keysym name, an alias, or a single character.

    Exact keysym names come first so that ``A`` is the capital (typed with shift)
    and ``a`` the small letter; otherwise names are case-insensitive.
    """
    keysyms = _keysyms()
    if name in keysyms:
        return keysyms[name]
    if len(name) == 1:
        return _char_keysym(name)
    folded = _folded().get(name.lower())
    if folded is not None:
        return keysyms[folded]
    raise ValueError(_unknown(name))


def _unknown(name: str) -> str:
    folded = _folded()
    close = difflib.get_close_matches(name.lower(), folded.keys(), n=3, cutoff=0.6)
    shown: list[str] = []
    for match in close:
        target = folded[match]
        # An alias is shown as the keysym it stands for when it only differs in case.
        label = target if target.lower() == match else match
        if label not in shown:
            shown.append(label)
    message = f"unknown key {name!r}"
    if shown:
        message += "; did you mean " + " or ".join(repr(s) for s in shown) + "?"
    return message


def _split(combo: str) -> list[str]:
    """``"ctrl+alt+t"`` -> ``["ctrl", "alt", "t"]``; a trailing ``+`` is the plus key (``"ctrl++"``)."""
    if combo == "+":
        return ["+"]
    parts = [*combo[:-2].split("+"), "+"] if combo.endswith("++") else combo.split("+")
    if not combo or any(not part for part in parts):
        raise ValueError(f"malformed key combo {combo!r}; join keys with '+', e.g. 'ctrl+shift+t'")
    return [part.strip() or part for part in parts]


def _parse(combo: str) -> tuple[int, ...]:
    return tuple(_resolve(name) for name in _split(combo))


# -- the live keymap -----------------------------------------------------------


@dataclass
class _Keymap:
    """One reading of the server's keymap: where each keysym is, and which keycodes are free."""

    rows: dict[int, tuple[int, ...]]  # keycode -> keysyms
    where: dict[int, tuple[int, int]]  # keysym -> (keycode, level 0 or 1 of group 1)
    spare: list[int]  # keycodes with no keysym and no modifier: ours to bind for a moment
    shift: int  # a keycode of the Shift modifier
    caps: set[int]  # keycodes whose two levels are a case pair (Caps Lock swaps them)
    lock: bool  # Caps Lock is on now

    @classmethod
    def read(cls, conn: Display) -> _Keymap:
        first = conn.display.info.min_keycode
        count = conn.display.info.max_keycode - first + 1
        rows = {first + i: tuple(row) for i, row in enumerate(conn.get_keyboard_mapping(first, count))}
        modifiers = conn.get_modifier_mapping()
        modifier_keys = {kc for keys in modifiers for kc in keys if kc}
        shift = next((kc for kc in modifiers[X.ShiftMapIndex] if kc), 0)
        lock = bool(conn.screen().root.query_pointer().mask & X.LockMask)
        where: dict[int, tuple[int, int]] = {}
        caps: set[int] = set()
        levels = {}
        for kc, row in rows.items():
            low = row[0] if row else 0
            high = row[1] if len(row) > 1 else 0
            low_char = _keysym_char(low)
            if not high and low_char and low_char.upper() != low_char:
                high = _char_keysym(low_char.upper())  # core rule: (a, NoSymbol) means (a, A)
            levels[kc] = (low, high)
            high_char = _keysym_char(high)
            if low_char and high_char and low_char != high_char and low_char.upper() == high_char:
                caps.add(kc)
        for level in (0, 1):  # a keysym reachable without shift wins
            for kc, pair in levels.items():
                if pair[level]:
                    where.setdefault(pair[level], (kc, level))
        spare = [kc for kc, row in rows.items() if not any(row) and kc not in modifier_keys]
        if not shift:
            raise RuntimeError("the keymap has no Shift key")
        return cls(rows, where, spare, shift, caps, lock)

    @property
    def pool(self) -> list[int]:
        """The spare keycodes to bind; the last one stays empty to be :attr:`prime`."""
        return self.spare[:-1]

    @property
    def prime(self) -> int:
        """A keycode without keysyms: pressing it makes a client look at the keymap and types nothing."""
        return self.spare[-1] if self.spare else 0


@dataclass
class _Batch:
    """Strokes typed under one set of temporary bindings."""

    strokes: list[tuple[int, ...]]
    missing: list[int]  # keysyms to bind to spare keycodes for them


# -- watching keymap fetches ---------------------------------------------------


class _Recorder:
    """Sees, through RECORD on a connection of its own, when each client fetches the modifier map.

    Clients refetch the modifier map only when they *handle* a keymap change
    (Tk on its next key event after the MappingNotify, Xt on the MappingNotify,
    Qt on the XKB notification, GTK on its next key event), never when they
    merely read it; so such a fetch after our last change shows that the
    client has handled the events up to that change, or at least up to one
    of our changes shortly before it (xterm answers every MappingNotify).
    Only our ChangeKeyboardMapping and modifier map fetches (core
    GetModifierMapping, XkbGetMap) are recorded, next to nothing for the
    server; the recorded stream is in the server's order.
    """

    def __init__(self, conn: Display, connect: Callable[[], Display], timeout: float = 5.0) -> None:
        self._conn = conn
        self._base = conn.display.info.resource_id_base
        xkb = conn.query_extension("XKEYBOARD")
        self._xkb = xkb.major_opcode if xkb.present else -1
        self._changed = threading.Condition()
        self._ours = 0  # our ChangeKeyboardMapping requests seen so far
        self._position = 0  # of the next request in the recorded stream
        self._last_change = -1  # position of our last ChangeKeyboardMapping
        self._fetched_at: dict[int, int] = {}  # client id base -> position of its last modifier map fetch
        self._state = "starting"
        self._data = connect()
        _x.set_deadline(self._data, math.inf)  # it waits for recorded data on purpose
        nothing = {
            "core_requests": (0, 0),
            "core_replies": (0, 0),
            "ext_requests": (0, 0, 0, 0),
            "ext_replies": (0, 0, 0, 0),
            "delivered_events": (0, 0),
            "device_events": (0, 0),
            "errors": (0, 0),
            "client_started": False,
            "client_died": False,
        }
        ranges = [
            {**nothing, "core_requests": (_CHANGE_KEYBOARD_MAPPING, _CHANGE_KEYBOARD_MAPPING)},
            {**nothing, "core_requests": (_GET_MODIFIER_MAPPING, _GET_MODIFIER_MAPPING)},
        ]
        if self._xkb >= 0:
            ranges.append({**nothing, "ext_requests": (self._xkb, self._xkb, _XKB_GET_MAP, _XKB_GET_MAP)})
        self._context = conn.record_create_context(0, [record.AllClients], ranges)
        conn.sync()
        self._thread = threading.Thread(target=self._run, name="desktop-keyboard-record", daemon=True)
        self._thread.start()
        with self._changed:
            if not self._changed.wait_for(lambda: self._state != "starting", timeout):
                self._state = "failed"
        if self._state != "recording":
            self.close()
            raise RuntimeError("RECORD did not start")

    def _run(self) -> None:
        try:
            self._data.record_enable_context(self._context, self._on_data)
        except Exception:  # the X server went away, or RECORD refused: fall back to waiting
            log.debug("keymap recording ended", exc_info=True)
        finally:
            # Also when recording ended normally (close() disabled it): nobody else closes this connection.
            _x.drop(self._data)
            with self._changed:
                self._state = "closed"
                self._changed.notify_all()

    def _on_data(self, reply: object) -> None:
        if reply.category == record.StartOfData:
            with self._changed:
                self._state = "recording"
                self._changed.notify_all()
            return
        if reply.category != record.FromClient:
            return
        data = reply.data
        order = sys.byteorder
        if reply.client_swapped:  # the recorded client speaks the other byte order
            order = "little" if order == "big" else "big"
        with self._changed:
            offset = 0
            while offset + 4 <= len(data):  # one reply may hold several requests of the same client
                self._note(reply.id_base, data[offset:], order)
                self._position += 1
                size = int.from_bytes(data[offset + 2 : offset + 4], order) * 4
                if size == 0 and offset + 8 <= len(data):  # BIG-REQUESTS length
                    size = int.from_bytes(data[offset + 4 : offset + 8], order) * 4
                if size <= 0:
                    break
                offset += size
            self._changed.notify_all()

    def _note(self, client: int, request: bytes, order: str) -> None:
        major = request[0]
        if major == _CHANGE_KEYBOARD_MAPPING:
            if client == self._base:
                self._ours += 1
                self._last_change = self._position
        elif major == _GET_MODIFIER_MAPPING:
            self._fetched_at[client] = self._position
        elif major == self._xkb and request[1] == _XKB_GET_MAP and len(request) >= 10:
            full = int.from_bytes(request[6:8], order)
            partial = int.from_bytes(request[8:10], order)
            if (full | partial) & _XKB_MODIFIER_MAP:
                self._fetched_at[client] = self._position

    def wait_handled(self, changes: int, client: int, timeout: float) -> bool:
        """Wait until ``client`` has fetched the modifier map after our ``changes``-th keymap change."""

        def done() -> bool:
            if self._state != "recording":
                return True
            return self._ours >= changes and self._fetched_at.get(client, -1) > self._last_change

        with self._changed:
            return self._changed.wait_for(done, timeout) and self._state == "recording"

    @property
    def alive(self) -> bool:
        return self._state == "recording"

    def close(self) -> None:
        """Stop recording; never waits long, also when the X server does not answer."""
        if _x.alive(self._conn):
            try:
                self._conn.record_disable_context(self._context)
                self._conn.record_free_context(self._context)
                self._conn.sync()
            except Exception:
                log.debug("could not disable keymap recording", exc_info=True)
        self.abandon()
        self._thread.join(1.0)

    def abandon(self) -> None:
        """Drop the recording connection, which ends the thread; sends nothing on the keyboard's connection."""
        _x.drop(self._data)


# -- the keyboard --------------------------------------------------------------


class Keyboard:
    """Press keys and type text on an X display through XTEST; one call at a time (a lock).

    ``conn`` is a python-xlib connection for this keyboard alone (python-xlib
    is not thread-safe; calls into this object are serialised by a lock).
    ``connect`` opens one more connection to the same display, on which the
    keyboard watches (RECORD) for the focused client to have handled a
    keymap change before it types with, or undoes, temporary bindings (see
    the module docstring); ``timeout`` bounds that wait for a client that
    never shows it (one that reads raw keycodes, or hangs). ``settle`` is
    the pause after it, or instead of it without ``connect`` or RECORD.
    ASCII text on a usual layout needs no binding and none of this.
    """

    def __init__(
        self,
        conn: Display,
        *,
        connect: Callable[[], Display] | None = None,
        settle: float = 0.1,
        timeout: float = 2.0,
    ) -> None:
        if not conn.has_extension("XTEST"):
            raise RuntimeError("the X server has no XTEST extension")
        self._conn = conn
        self.settle = settle
        self.timeout = timeout
        self._lock = threading.RLock()
        self._bound: dict[int, int] = {}  # keycode -> keysym we bound it to for now
        self._original: dict[int, tuple[int, ...]] = {}  # keycode -> its keysyms before
        self._held: list[tuple[int, int]] = []  # (keysym, keycode) pressed by key_down, in order
        self._down: list[int] = []  # keycodes pressed by the operation under way
        self._changes = 0  # ChangeKeyboardMapping requests sent
        self._unflushed = 0
        self._connect = connect
        self._recorder: _Recorder | None = None
        self._start_recorder()

    def _start_recorder(self) -> None:
        if self._connect is None or self._recorder is not None:
            return
        try:
            self._recorder = _Recorder(self._conn, self._connect)
        except Exception:
            log.warning("cannot watch keymap changes (RECORD); pausing %.2f s instead", self.settle, exc_info=True)
            self._connect = None  # RECORD refused: do not try again on every call

    @contextlib.contextmanager
    def _operation(self, keymap: _Keymap | None = None) -> Iterator[None]:
        """Release what the block pressed and restore the keymap after it, unless the connection broke.

        An interrupt (KeyboardInterrupt and the like) can leave python-xlib
        with half a request written: nothing more is sent on that connection.
        The owner drops it and calls :meth:`reset` with a new one.
        """
        try:
            yield
        except BaseException as exc:
            if isinstance(exc, Exception) and _x.alive(self._conn):
                try:
                    self._finish(keymap)
                except Exception:
                    log.warning("could not release keys or restore the keymap", exc_info=True)
            raise
        else:
            self._finish(keymap)

    # -- public ----------------------------------------------------------------
    def key(self, *combos: str) -> None:
        """Press each combo in turn: ``key("ctrl+alt+t")``, ``key("Return")``, ``key("ctrl+c", "ctrl+v")``.

        A combo presses its keys in order and releases them in reverse. A key
        that needs shift (``key("A")``, ``key("plus")``) gets shift pressed around it.
        """
        strokes = [_parse(combo) for combo in combos]  # unknown names fail before anything is pressed
        with self._lock:
            self._run(strokes, 0.0)

    def type(self, text: str, delay: float = 0.0) -> None:
        """Type ``text`` as it is, in any layout; ``delay`` seconds between characters.

        Newline is Return, tab is Tab. Characters the keymap lacks are bound to
        spare keycodes for the moment of typing (see the module docstring).
        """
        text = text.replace("\r\n", "\n")
        strokes = [(_char_keysym(char),) for char in text]
        with self._lock:
            self._run(strokes, delay)

    def key_down(self, name: str) -> None:
        """Press and hold a key (or the keys of a combo) until :meth:`key_up`."""
        keysyms = _parse(name)
        with self._lock:
            keymap = _Keymap.read(self._conn)
            with self._operation(keymap):
                self._bind(keymap, [ks for ks in dict.fromkeys(keysyms) if ks not in keymap.where])
                added: list[tuple[int, int]] = []
                for keysym in keysyms:
                    keycode, level = self._locate(keymap, keysym)
                    if level == 1 and keymap.shift not in self._down + [kc for _, kc in self._held]:
                        self._press(keymap.shift)
                        added.append((0, keymap.shift))  # keysym 0: the shift that goes with the next key
                    self._press(keycode)
                    added.append((keysym, keycode))
                self._held.extend(added)
                self._down.clear()  # held now: _finish must not release them

    def key_up(self, name: str) -> None:
        """Release what :meth:`key_down` pressed for ``name`` (or just release the key)."""
        keysyms = _parse(name)
        with self._lock, self._operation():
            for keysym in reversed(keysyms):
                index = next((i for i in range(len(self._held) - 1, -1, -1) if self._held[i][0] == keysym), None)
                if index is None:
                    location = _Keymap.read(self._conn).where.get(keysym)
                    if location is not None:
                        self._fake(X.KeyRelease, location[0])
                    continue
                _, keycode = self._held.pop(index)
                self._fake(X.KeyRelease, keycode)
                if index > 0 and self._held[index - 1][0] == 0:  # the shift pressed for it
                    self._fake(X.KeyRelease, self._held.pop(index - 1)[1])

    def release_all(self) -> None:
        """Release every key held by :meth:`key_down` and restore the keymap."""
        with self._lock, self._operation():
            for _, keycode in reversed(self._held):
                self._fake(X.KeyRelease, keycode)
            self._held.clear()

    def close(self) -> None:
        """Release held keys, restore the keymap and stop watching keymap fetches; safe once the X server is gone."""
        with self._lock:
            try:
                if _x.alive(self._conn):
                    self.release_all()
            except Exception:  # the display is gone: nothing left to release or restore
                log.debug("could not release keys on close", exc_info=True)
            finally:
                if self._recorder is not None:
                    self._recorder.close()
                    self._recorder = None

    def detach(self) -> None:
        """The keyboard's connection was dropped: stop watching (nothing is sent); :meth:`reset` follows."""
        with self._lock:
            if self._recorder is not None:
                self._recorder.abandon()
                self._recorder = None

    def reset(self, conn: Display) -> None:
        """Carry on with ``conn`` after the last one was dropped in the middle of an operation.

        Releases every key the server has down except those :meth:`key_down`
        holds, and gives the spare keycodes bound for the moment their old
        keysyms back: the state an interrupted ``type`` leaves behind. The
        text the client had not yet translated may come out wrong; nothing
        is left pressed or rebound.
        """
        with self._lock:
            self.detach()
            self._conn = conn
            self._down.clear()
            self._unflushed = 0
            held = {kc for _, kc in self._held}
            down = conn.query_keymap()
            for keycode in range(conn.display.info.min_keycode, conn.display.info.max_keycode + 1):
                if down[keycode // 8] & (1 << (keycode % 8)) and keycode not in held:
                    self._fake(X.KeyRelease, keycode)
            for keycode in [kc for kc in self._original if kc not in held]:
                conn.change_keyboard_mapping(keycode, [self._original.pop(keycode)])
                self._bound.pop(keycode, None)
                self._changes += 1
            conn.sync()
            self._start_recorder()

    # -- sending ---------------------------------------------------------------
    def _fake(self, event: int, keycode: int) -> None:
        self._conn.xtest_fake_input(event, keycode)
        self._unflushed += 1
        if self._unflushed >= _FLUSH_EVERY:
            self._flush()

    def _flush(self) -> None:
        self._conn.flush()
        self._unflushed = 0

    def _press(self, keycode: int) -> None:
        self._fake(X.KeyPress, keycode)
        self._down.append(keycode)

    def _release(self, keycode: int) -> None:
        self._fake(X.KeyRelease, keycode)
        self._down.remove(keycode)

    def _shift(self, keymap: _Keymap, on: bool) -> None:
        if on and keymap.shift not in self._down:
            self._press(keymap.shift)
        elif not on and keymap.shift in self._down:
            self._release(keymap.shift)

    def _run(self, strokes: Sequence[tuple[int, ...]], delay: float) -> None:
        """Press each stroke (keysyms pressed in order, released in reverse), binding what is missing."""
        if not strokes:
            return
        keymap = _Keymap.read(self._conn)
        with self._operation(keymap):
            for batch in self._batches(keymap, strokes):
                self._bind(keymap, batch.missing)
                for stroke in batch.strokes:
                    self._stroke(keymap, stroke)
                    if delay > 0:
                        self._flush()
                        time.sleep(delay)

    def _stroke(self, keymap: _Keymap, stroke: tuple[int, ...]) -> None:
        if len(stroke) == 1:
            # Typing: shift stays down across a run of capitals; Caps Lock is allowed for.
            keycode, level = self._locate(keymap, stroke[0])
            if level is not None:
                self._shift(keymap, (level == 1) != (keymap.lock and keycode in keymap.caps))
            self._fake(X.KeyPress, keycode)
            self._fake(X.KeyRelease, keycode)
            return
        self._shift(keymap, False)
        pressed = []
        for keysym in stroke:
            keycode, level = self._locate(keymap, keysym)
            if level == 1 and keymap.shift not in self._down:
                self._press(keymap.shift)
                pressed.append(keymap.shift)
            if keycode not in self._down:
                self._press(keycode)
                pressed.append(keycode)
        for keycode in reversed(pressed):
            self._release(keycode)

    def _locate(self, keymap: _Keymap, keysym: int) -> tuple[int, int | None]:
        """Keycode and level of ``keysym``; level ``None`` for our bindings, which ignore shift."""
        for keycode, bound in self._bound.items():
            if bound == keysym:
                return keycode, None
        return keymap.where[keysym]

    # -- temporary bindings ----------------------------------------------------
    def _batches(self, keymap: _Keymap, strokes: Sequence[tuple[int, ...]]) -> list[_Batch]:
        """Cut the strokes where their missing keysyms outgrow the spare keycodes."""
        capacity = len(keymap.pool)
        batches: list[_Batch] = []
        current = _Batch([], [])
        for stroke in strokes:
            new = [ks for ks in dict.fromkeys(stroke) if ks not in keymap.where and ks not in current.missing]
            if new and len(current.missing) + len(new) > capacity:
                if len(new) > capacity:
                    raise RuntimeError(
                        f"a combo needs {len(new)} keysyms the keymap lacks but only {capacity} keycodes are free"
                    )
                batches.append(current)
                current = _Batch([], [])
            current.strokes.append(stroke)
            current.missing.extend(new)
        batches.append(current)
        return batches

    def _bind(self, keymap: _Keymap, keysyms: list[int]) -> None:
        """Bind ``keysyms`` to spare keycodes (reusing this operation's bindings), then wait until the client has them."""
        held = {kc for _, kc in self._held}
        todo = [ks for ks in keysyms if ks not in self._bound.values()]
        if not todo:
            return
        free = [kc for kc in keymap.pool if kc not in self._bound]
        reuse = [kc for kc, ks in self._bound.items() if ks not in keysyms and kc not in held]
        slots = (free + reuse)[: len(todo)]
        if len(slots) < len(todo):
            raise RuntimeError(
                f"{len(todo)} keysyms are missing from the keymap but only {len(slots)} keycodes are free"
            )
        if any(kc in self._bound for kc in slots):
            self._checkpoint(keymap)  # keys sent under the old bindings must be translated before they change
        catcher = CatchError()
        for keysym, keycode in zip(todo, slots, strict=True):
            self._original.setdefault(keycode, keymap.rows[keycode])
            self._conn.change_keyboard_mapping(keycode, [(keysym, keysym)], onerror=catcher)
            self._bound[keycode] = keysym
            self._changes += 1
        self._conn.sync()
        if catcher.get_error():
            raise RuntimeError(f"cannot bind a spare keycode: {catcher.get_error()}")
        log.debug("bound %d keysyms to spare keycodes %s", len(todo), slots)
        self._await_handled(keymap)

    def _await_handled(self, keymap: _Keymap) -> None:
        """Return once the focused client has handled the events up to our last keymap change.

        The client is sent a key without keysym (it types nothing): Tk and
        GTK look at a changed keymap only on their next key event. Its fetch
        of the modifier map then shows that it got there (see
        :class:`_Recorder`), however long it was busy; ``timeout`` bounds the
        wait for a client that never looks (it reads raw keycodes, or hangs).
        A client may answer an earlier change of ours, though (xterm handles
        every MappingNotify separately), so ``settle`` seconds follow for it
        to handle the few events that remain. Without RECORD only ``settle``.
        """
        if keymap.prime:
            self._fake(X.KeyPress, keymap.prime)
            self._fake(X.KeyRelease, keymap.prime)
        self._flush()
        client = self._focused_client()
        recorder = self._recorder
        if recorder is not None and recorder.alive and client is not None:
            started = time.monotonic()
            if recorder.wait_handled(self._changes, client, self.timeout):
                log.debug("client %#x handled the keymap change after %.3f s", client, time.monotonic() - started)
            else:
                log.info("client %#x did not handle the keymap change within %.1f s", client, self.timeout)
        else:
            self._conn.sync()
        time.sleep(self.settle)

    def _checkpoint(self, keymap: _Keymap) -> None:
        """Return once the focused client has handled every key sent so far, before bindings change.

        libX11 (Tk, xterm) applies a keymap change at its next lookup once it
        has merely *read* the notification, even to key events read before
        it, so our keys must be handled before a binding changes. A no-op
        change of the prime keycode after them is the mark to wait for.
        """
        if keymap.prime and self._recorder is not None and self._recorder.alive:
            self._conn.change_keyboard_mapping(keymap.prime, [keymap.rows[keymap.prime]])
            self._changes += 1
        self._await_handled(keymap)

    def _finish(self, keymap: _Keymap | None = None) -> None:
        """Release what the operation pressed, then restore bindings no held key needs."""
        try:
            for keycode in reversed(self._down):
                self._fake(X.KeyRelease, keycode)
            self._down.clear()
            self._flush()
            held = {kc for _, kc in self._held}
            restore = [kc for kc in self._bound if kc not in held]
            if restore:
                self._checkpoint(keymap or _Keymap.read(self._conn))
                catcher = CatchError()
                for keycode in restore:
                    self._conn.change_keyboard_mapping(keycode, [self._original.pop(keycode)], onerror=catcher)
                    del self._bound[keycode]
                    self._changes += 1
                self._conn.sync()
                if catcher.get_error():
                    log.warning("could not restore the keymap: %s", catcher.get_error())
        finally:
            self._conn.sync()

    def _focused_client(self) -> int | None:
        """The resource id base of the client owning the focus window (it gets the keys)."""
        focus = self._conn.get_input_focus().focus
        window = focus if isinstance(focus, int) else focus.id
        if window in (X.NONE, X.PointerRoot):
            return None
        return window & ~self._conn.display.info.resource_id_mask
