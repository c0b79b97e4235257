"""``Desktop.computer_tool()``: the desktop behind the computer-use tool protocol that AI agents speak.

Only the adapter: no network, no model, no API client. An agent loop passes
the tool's :attr:`ComputerTool.definition` to its model, and each ``tool_use``
input it gets back to :meth:`ComputerTool.__call__`, whose content blocks go
back as the ``tool_result``.

The screen the agent sees is scaled down to fit in 1280x800 keeping its
aspect (by ``f = min(1, 1280 / width, 800 / height)``, sides rounded), since
models read screenshots of about that size best and larger ones cost more
and get scaled anyway. The definition announces that size, and coordinates
the agent sends are in it: they are mapped back to screen pixels here.
"""

from __future__ import annotations

import base64
import io
import math
import time
from collections.abc import Callable
from typing import Any

from PIL import Image

from ..control import _keynames

#: The tool versions this adapter speaks; ``computer_20251124`` adds ``zoom``.
VERSIONS = ("computer_20251124", "computer_20250124")
#: The largest screenshot sent: the agent's screen is the desktop's scaled to fit in it.
MAX_SIZE = (1280, 800)
#: Upper bound for ``wait`` and ``hold_key`` durations, in seconds.
MAX_DURATION = 100.0
_SCROLL = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}
_CLICKS = {
    "left_click": ("left", 1),
    "right_click": ("right", 1),
    "middle_click": ("middle", 1),
    "double_click": ("left", 2),
    "triple_click": ("left", 3),
}

Block = dict[str, Any]


def scaled_size(size: tuple[int, int], limit: tuple[int, int] = MAX_SIZE) -> tuple[int, int]:
    """The size the agent sees for a screen of ``size``: fitted into ``limit``, aspect kept, never enlarged."""
    width, height = size
    factor = min(1.0, limit[0] / width, limit[1] / height)
    return max(1, min(limit[0], round(width * factor))), max(1, min(limit[1], round(height * factor)))


def to_screen(point: tuple[int, int], screen: tuple[int, int], seen: tuple[int, int]) -> tuple[int, int]:
    """The screen pixel under the centre of pixel ``point`` of the scaled screenshot."""
    return tuple(min(s - 1, int((p + 0.5) * s / v)) for p, s, v in zip(point, screen, seen, strict=True))  # type: ignore[return-value]


def to_seen(point: tuple[int, int], screen: tuple[int, int], seen: tuple[int, int]) -> tuple[int, int]:
    """The pixel of the scaled screenshot under the centre of screen pixel ``point``."""
    return tuple(min(v - 1, int((p + 0.5) * v / s)) for p, s, v in zip(point, screen, seen, strict=True))  # type: ignore[return-value]


def text_block(text: str) -> Block:
    return {"type": "text", "text": text}


def image_block(image: Image.Image) -> Block:
    buffer = io.BytesIO()
    # Level 3: about as small as the default for screen content, in a third of the time.
    image.save(buffer, "PNG", compress_level=3)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}


class ComputerTool:
    """One desktop as the ``computer`` tool: ``t.definition`` for the model, ``t(input)`` for each action.

    ``t(input)`` runs one action and returns the tool result's content
    blocks: an image block (a base64 PNG) for ``screenshot``, ``zoom`` and
    ``wait``, a text block otherwise (``cursor_position``: ``"X=..,Y=.."``
    in the agent's coordinates). With ``screenshot_after=True`` every
    action that changes something also returns a screenshot taken after it.
    Bad input raises ``ValueError`` saying what is allowed; nothing is
    pressed or moved before the whole input has been checked.
    """

    # ``desktop`` is a Desktop, used only through its public methods; not imported
    # here, so that the package has no import cycle (Desktop.computer_tool makes this).
    def __init__(self, desktop: Any, version: str = VERSIONS[0], *, screenshot_after: bool = False) -> None:
        if version not in VERSIONS:
            raise ValueError(f"unknown computer tool version {version!r}; use one of {', '.join(VERSIONS)}")
        self._desktop = desktop
        self.version = version
        self.screenshot_after = screenshot_after
        self._actions: dict[str, tuple[frozenset[str], Callable[[dict], list[Block]]]] = {
            "screenshot": (frozenset(), lambda _: [self._screenshot()]),
            "cursor_position": (frozenset(), self._cursor_position),
            "mouse_move": (frozenset({"coordinate", "text"}), self._mouse_move),
            **{name: (frozenset({"coordinate", "text"}), self._click) for name in _CLICKS},
            "left_click_drag": (frozenset({"start_coordinate", "coordinate", "text"}), self._drag),
            "left_mouse_down": (frozenset({"coordinate", "text"}), self._mouse_button),
            "left_mouse_up": (frozenset({"coordinate", "text"}), self._mouse_button),
            "scroll": (frozenset({"coordinate", "scroll_direction", "scroll_amount", "text"}), self._scroll),
            "key": (frozenset({"text"}), self._key),
            "hold_key": (frozenset({"text", "duration"}), self._hold_key),
            "type": (frozenset({"text"}), self._type),
            "wait": (frozenset({"duration"}), self._wait),
        }
        if version == "computer_20251124":
            self._actions["zoom"] = (frozenset({"region"}), self._zoom)

    # -- the protocol ---------------------------------------------------------
    @property
    def actions(self) -> list[str]:
        return list(self._actions)

    @property
    def definition(self) -> dict[str, Any]:
        """The tool definition for the model's ``tools`` list, sized for the screen as it is now."""
        width, height = self._seen()
        definition: dict[str, Any] = {
            "type": self.version,
            "name": "computer",
            "display_width_px": width,
            "display_height_px": height,
        }
        display = self._desktop.display.lstrip(":").split(".")[0]
        if display.isdigit():
            definition["display_number"] = int(display)
        if "zoom" in self._actions:
            definition["enable_zoom"] = True
        return definition

    def __call__(self, tool_input: dict[str, Any]) -> list[Block]:
        """Run one action (the ``input`` of a ``tool_use`` block); returns the ``tool_result`` content."""
        if not isinstance(tool_input, dict):
            raise ValueError(f"the tool input must be a dict with an 'action'; got {type(tool_input).__name__}")
        action = tool_input.get("action")
        if action not in self._actions:
            raise ValueError(f"unknown action {action!r}; {self.version} allows: {', '.join(self._actions)}")
        allowed, run = self._actions[action]
        extra = sorted(set(tool_input) - allowed - {"action"})
        if extra:
            takes = ", ".join(sorted(allowed)) or "no parameters"
            raise ValueError(f"{action} does not take {', '.join(extra)}; it takes {takes}")
        return run(tool_input)

    # -- geometry -------------------------------------------------------------
    def _seen(self) -> tuple[int, int]:
        return scaled_size(self._desktop.size)

    def _point(self, tool_input: dict, name: str = "coordinate", required: bool = False) -> tuple[int, int] | None:
        """A coordinate of the input, checked against the agent's screen and mapped to the desktop's."""
        value = tool_input.get(name)
        if value is None:
            if required:
                raise ValueError(f"{tool_input['action']} needs {name}: [x, y] in the screenshot")
            return None
        screen = self._desktop.size
        seen = scaled_size(screen)
        if (
            not isinstance(value, (list, tuple))
            or len(value) != 2
            or not all(_is_int(v) for v in value)
            or not (0 <= value[0] < seen[0] and 0 <= value[1] < seen[1])
        ):
            raise ValueError(
                f"{name} must be [x, y] with 0 <= x < {seen[0]} and 0 <= y < {seen[1]} "
                f"(the screenshot's pixels); got {value!r}"
            )
        return to_screen((int(value[0]), int(value[1])), screen, seen)

    def _modifiers(self, tool_input: dict) -> str | None:
        """Keys held during a click or scroll (``text``: ``"shift"``, ``"ctrl+shift"``), checked now."""
        text = tool_input.get("text")
        if text is None:
            return None
        if not isinstance(text, str) or not text.strip() or " " in text.strip():
            raise ValueError(f"text of {tool_input['action']} is the keys to hold, e.g. 'shift' or 'ctrl+shift'")
        _check_keys(text.strip())
        return text.strip()

    def _with_keys(self, keys: str | None, act: Callable[[], None]) -> None:
        if keys is None:
            act()
            return
        self._desktop.key_down(keys)
        try:
            act()
        finally:
            self._desktop.key_up(keys)

    def _done(self, message: str) -> list[Block]:
        blocks = [text_block(message)]
        if self.screenshot_after:
            blocks.append(self._screenshot())
        return blocks

    # -- actions --------------------------------------------------------------
    def _screenshot(self) -> Block:
        image = self._desktop.screenshot()
        seen = scaled_size(image.size)
        if seen != image.size:
            image = image.resize(seen, Image.Resampling.LANCZOS)
        return image_block(image)

    def _cursor_position(self, _: dict) -> list[Block]:
        screen = self._desktop.size
        x, y = to_seen(self._desktop.pointer, screen, scaled_size(screen))
        return [text_block(f"X={x},Y={y}")]

    def _mouse_move(self, tool_input: dict) -> list[Block]:
        x, y = self._point(tool_input, required=True)
        self._with_keys(self._modifiers(tool_input), lambda: self._desktop.move(x, y))
        return self._done(f"moved the mouse to {tool_input['coordinate']}")

    def _click(self, tool_input: dict) -> list[Block]:
        action = tool_input["action"]
        button, count = _CLICKS[action]
        point = self._point(tool_input)
        keys = self._modifiers(tool_input)
        x, y = point if point is not None else (None, None)
        self._desktop.click(x, y, button, count=count, modifiers=keys)
        where = tool_input.get("coordinate") or "the pointer"
        return self._done(f"{action.replace('_', ' ')} at {where}")

    def _drag(self, tool_input: dict) -> list[Block]:
        start = self._point(tool_input, "start_coordinate", required=True)
        end = self._point(tool_input, required=True)
        self._with_keys(self._modifiers(tool_input), lambda: self._desktop.drag(start, end))
        return self._done(f"dragged from {tool_input['start_coordinate']} to {tool_input['coordinate']}")

    def _mouse_button(self, tool_input: dict) -> list[Block]:
        down = tool_input["action"] == "left_mouse_down"
        point = self._point(tool_input)
        keys = self._modifiers(tool_input)

        x, y = point if point is not None else (None, None)
        self._with_keys(keys, lambda: (self._desktop.mouse_down if down else self._desktop.mouse_up)(x, y))
        return self._done("pressed the left button" if down else "released the left button")

    def _scroll(self, tool_input: dict) -> list[Block]:
        direction = tool_input.get("scroll_direction")
        if direction not in _SCROLL:
            raise ValueError(f"scroll_direction must be one of {', '.join(_SCROLL)}; got {direction!r}")
        amount = tool_input.get("scroll_amount", 3)
        if not _is_int(amount) or not 0 <= amount <= 100:
            raise ValueError(f"scroll_amount must be an int from 0 to 100 (wheel clicks); got {amount!r}")
        point = self._point(tool_input)
        keys = self._modifiers(tool_input)
        dy, dx = (int(amount) * v for v in _SCROLL[direction])
        x, y = point if point is not None else (None, None)
        self._desktop.scroll(dy, dx, x, y, modifiers=keys)
        return self._done(f"scrolled {direction} by {amount}")

    def _key(self, tool_input: dict) -> list[Block]:
        combos = _text(tool_input).split()
        if not combos:
            raise ValueError("key needs text: xdotool-style keys, e.g. 'Return', 'ctrl+s' or 'ctrl+a BackSpace'")
        self._desktop.key(*combos)
        return self._done(f"pressed {' '.join(combos)}")

    def _hold_key(self, tool_input: dict) -> list[Block]:
        keys = _text(tool_input).strip()
        if not keys or " " in keys:
            raise ValueError("hold_key needs text: one key or combo to hold, e.g. 'shift' or 'ctrl+alt'")
        _check_keys(keys)
        duration = _duration(tool_input, required=True)
        self._desktop.hold_key(keys, seconds=duration)
        return self._done(f"held {keys} for {duration:g} s")

    def _type(self, tool_input: dict) -> list[Block]:
        text = _text(tool_input)
        self._desktop.type(text)
        return self._done(f"typed {len(text)} characters")

    def _wait(self, tool_input: dict) -> list[Block]:
        time.sleep(_duration(tool_input, required=False))
        return [self._screenshot()]

    def _zoom(self, tool_input: dict) -> list[Block]:
        """The region ``[x1, y1, x2, y2]`` of the agent's screen at the desktop's full resolution."""
        region = tool_input.get("region")
        screen = self._desktop.size
        seen = scaled_size(screen)
        if (
            not isinstance(region, (list, tuple))
            or len(region) != 4
            or not all(_is_int(v) for v in region)
            or not (0 <= region[0] < region[2] <= seen[0] and 0 <= region[1] < region[3] <= seen[1])
        ):
            raise ValueError(
                f"region must be [x1, y1, x2, y2] (top left, bottom right) with 0 <= x1 < x2 <= {seen[0]} "
                f"and 0 <= y1 < y2 <= {seen[1]} (the screenshot's pixels); got {region!r}"
            )
        x1, y1, x2, y2 = (int(v) for v in region)
        # The screen pixels the region covers (its far edges map to the first pixel beyond it).
        left, top = (math.floor(p * s / v) for p, s, v in zip((x1, y1), screen, seen, strict=True))
        right, bottom = (math.ceil(p * s / v) for p, s, v in zip((x2, y2), screen, seen, strict=True))
        image = self._desktop.screenshot(region=(left, top, right - left, bottom - top))
        fitted = scaled_size(image.size)
        if fitted != image.size:
            image = image.resize(fitted, Image.Resampling.LANCZOS)
        return [image_block(image)]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(tool_input: dict) -> str:
    text = tool_input.get("text")
    if not isinstance(text, str):
        raise ValueError(f"{tool_input['action']} needs text (a string); got {text!r}")
    return text


def _duration(tool_input: dict, required: bool) -> float:
    value = tool_input.get("duration")
    if value is None and not required:
        return 1.0
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= MAX_DURATION:
        raise ValueError(f"{tool_input['action']} needs duration: seconds from 0 to {MAX_DURATION:g}; got {value!r}")
    return float(value)


def _check_keys(keys: str) -> None:
    """Fail on an unknown key name before anything is pressed (the key names' own parser says which)."""
    _keynames.parse(keys)
