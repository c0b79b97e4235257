"""Key names: X keysym names, friendly aliases, and the keysym of each character."""

from __future__ import annotations

import difflib
import importlib
from functools import cache

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


@cache
def keysyms() -> dict[str, int]:
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
    for name in sorted(keysyms(), key=lambda n: (n != n.lower(), n)):
        folded.setdefault(name.lower(), name)
    folded.update(_ALIASES)
    return folded


def char_keysym(char: str) -> int:
    """The keysym that types ``char``: Latin-1 keysyms are the code point, others the Unicode keysym."""
    if char in _CONTROL_KEYS:
        return keysyms()[_CONTROL_KEYS[char]]
    code = ord(char)
    if code < 0x20 or 0x7F <= code < 0xA0:
        raise ValueError(f"cannot type the control character {char!r}")
    return code if code <= 0xFF else 0x01000000 | code


def keysym_char(keysym: int) -> str | None:
    """The character a Latin-1 or Unicode keysym stands for (used to see case pairs)."""
    if 0x20 <= keysym <= 0x7E or 0xA0 <= keysym <= 0xFF:
        return chr(keysym)
    if 0x01000100 <= keysym <= 0x0110FFFF:
        return chr(keysym & 0xFFFFFF)
    return None


def resolve(name: str) -> int:
    """The keysym of a key name: an X keysym name, an alias, or a single character.

    Exact keysym names come first so that ``A`` is the capital (typed with shift)
    and ``a`` the small letter; otherwise names are case-insensitive.
    """
    known = keysyms()
    if name in known:
        return known[name]
    if len(name) == 1:
        return char_keysym(name)
    folded = _folded().get(name.lower())
    if folded is not None:
        return known[folded]
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


def split(combo: str) -> list[str]:
    """``"ctrl+alt+t"`` -> ``["ctrl", "alt", "t"]``; a trailing ``+`` is the plus key (``"ctrl++"``)."""
    if combo == "+":
        return ["+"]
    parts = [*combo[:-2].split("+"), "+"] if combo.endswith("++") else combo.split("+")
    if not combo or any(not part for part in parts):
        raise ValueError(f"malformed key combo {combo!r}; join keys with '+', e.g. 'ctrl+shift+t'")
    return [part.strip() or part for part in parts]


def modifier_keys(modifiers: object) -> list[int]:
    """The keysyms of ``modifiers`` (``None``, ``"ctrl"``, ``"ctrl+shift"`` or ``["ctrl", "shift"]``), checked."""
    if modifiers is None:
        return []
    if isinstance(modifiers, str):
        modifiers = [modifiers]
    if not isinstance(modifiers, (list, tuple)) or not all(isinstance(m, str) for m in modifiers):
        raise TypeError(
            f"modifiers must be a key name or a list of them, e.g. ['ctrl'] or 'ctrl+shift'; got {modifiers!r}"
        )
    return list(dict.fromkeys(keysym for combo in modifiers for keysym in parse(combo)))


def parse(combo: object) -> tuple[int, ...]:
    if not isinstance(combo, str):
        raise TypeError(f"a key is named by a str such as 'Return', 'a' or 'ctrl+c'; got {combo!r}")
    return tuple(resolve(name) for name in split(combo))
