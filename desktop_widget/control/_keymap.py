"""One reading of the server's keymap, and what typing needs from it."""

from __future__ import annotations

from dataclasses import dataclass, field

from Xlib import X, error
from Xlib.display import Display

from ._keynames import char_keysym, keysym_char

_XF86_KEYS = range(0x1008FF00, 0x1008FFFF + 1)  # vendor keys (media, launch, ...), no Switch_VT


def _lendable(row: tuple[int, ...]) -> bool:
    """A key with one XF86 keysym on one level: rebinding it and back leaves the XKB keymap as it was."""
    symbols = {ks for ks in row if ks}
    return len(symbols) == 1 and row[0] in _XF86_KEYS and (len(row) < 2 or not row[1])


def _ungrabbed(conn: Display, keycodes: list[int]) -> list[int]:
    """The ``keycodes`` no client has a passive grab on (on the root window).

    A key bound for typing must reach the focused window, not a desktop
    shortcut daemon that grabbed the key for its old keysym. Grabbing a key
    with any modifiers fails with BadAccess if anyone holds a grab on it;
    the grabs that succeed are let go at once.
    """
    root = conn.screen().root
    catchers = [error.CatchError(error.BadAccess) for _ in keycodes]
    for keycode, catcher in zip(keycodes, catchers, strict=True):
        root.grab_key(keycode, X.AnyModifier, False, X.GrabModeAsync, X.GrabModeAsync, onerror=catcher)
    conn.sync()
    free = [kc for kc, catcher in zip(keycodes, catchers, strict=True) if not catcher.get_error()]
    for keycode in free:
        root.ungrab_key(keycode, X.AnyModifier)
    conn.sync()  # let go before anyone else asks
    return free


@dataclass
class Keymap:
    """One reading of the server's keymap: where each keysym is, and which keycodes are free."""

    rows: dict[int, tuple[int, ...]]  # keycode -> keysyms
    where: dict[int, tuple[int, int]]  # keysym -> (keycode, level 0 or 1 of group 1)
    spare: list[int]  # keycodes with no keysym and no modifier: ours to bind for a moment
    shift: int  # a keycode of the Shift modifier
    caps: set[int]  # keycodes whose two levels are a case pair (Caps Lock swaps them)
    lock: bool  # Caps Lock is on now
    modifier_keys: set[int] = field(default_factory=set)
    lent: list[int] = field(default_factory=list)  # vendor keys borrowed as well (see lend)

    @classmethod
    def read(cls, conn: Display) -> Keymap:
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
            low_char = keysym_char(low)
            if not high and low_char and low_char.upper() != low_char:
                high = char_keysym(low_char.upper())  # core rule: (a, NoSymbol) means (a, A)
            levels[kc] = (low, high)
            high_char = keysym_char(high)
            if low_char and high_char and low_char != high_char and low_char.upper() == high_char:
                caps.add(kc)
        for level in (0, 1):  # a keysym reachable without shift wins
            for kc, pair in levels.items():
                if pair[level]:
                    where.setdefault(pair[level], (kc, level))
        spare = [kc for kc, row in rows.items() if not any(row) and kc not in modifier_keys]
        if not shift:
            raise RuntimeError("the keymap has no Shift key")
        return cls(rows, where, spare, shift, caps, lock, modifier_keys)

    def lend(self, conn: Display, keep: set[int]) -> None:
        """Also bind, for a long text, the keys of vendor keysyms no one has grabbed (media, launch keys).

        A keymap has few keycodes without keysyms (19 on Xvnc's), and each
        rebinding of them costs two waits for the client; the ~100 vendor
        keys make one or two rounds enough for almost any text. Keys whose
        keysyms are in ``keep`` (wanted by the text) are not lent.
        """
        candidates = [
            kc
            for kc, row in self.rows.items()
            if kc not in self.modifier_keys and _lendable(row) and not keep & set(row)
        ]
        self.lent = _ungrabbed(conn, candidates)

    @property
    def pool(self) -> list[int]:
        """The keycodes to bind: the spare ones but the last (the :attr:`prime`), then the lent ones."""
        return self.spare[:-1] + self.lent

    @property
    def prime(self) -> int:
        """A keycode without keysyms: pressing it makes a client look at the keymap and types nothing."""
        return self.spare[-1] if self.spare else 0


@dataclass
class Batch:
    """Strokes typed under one set of temporary bindings."""

    strokes: list[tuple[int, ...]]
    missing: list[int]  # keysyms to bind to spare keycodes for them
