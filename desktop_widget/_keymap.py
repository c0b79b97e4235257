"""One reading of the server's keymap, and what typing needs from it."""

from __future__ import annotations

from dataclasses import dataclass

from Xlib import X
from Xlib.display import Display

from ._keynames import char_keysym, keysym_char


@dataclass
class Keymap:
    """One reading of the server's keymap: where each keysym is, and which keycodes are free."""

    rows: dict[int, tuple[int, ...]]  # keycode -> keysyms
    where: dict[int, tuple[int, int]]  # keysym -> (keycode, level 0 or 1 of group 1)
    spare: list[int]  # keycodes with no keysym and no modifier: ours to bind for a moment
    shift: int  # a keycode of the Shift modifier
    caps: set[int]  # keycodes whose two levels are a case pair (Caps Lock swaps them)
    lock: bool  # Caps Lock is on now

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
class Batch:
    """Strokes typed under one set of temporary bindings."""

    strokes: list[tuple[int, ...]]
    missing: list[int]  # keysyms to bind to spare keycodes for them
