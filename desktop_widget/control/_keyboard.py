"""Keyboard input to a desktop through XTEST, from the kernel's own X connection.

Keys are sent as XTEST fake key events on a python-xlib connection: no
subprocess per event, and a whole string goes to the server in a few writes.
Everything is looked up in the *live* keymap (keycode and shift level of each
keysym), so typing does not depend on the desktop's layout.

Characters the keymap lacks (``é`` on a US layout, ``✓``, ``日``) are typed by
binding them, for the moment, to spare keycodes (keycodes without keysyms),
then restoring those. A keymap has few spare keycodes (19 on Xvnc's), and
every round of rebinding costs two waits for the client (below), so a text
that needs more also borrows the vendor keys (XF86 media and launch keys)
that no client has grabbed: rebinding those and back leaves the XKB keymap
exactly as it was, and ~100 keycodes make one or two rounds enough for
almost any text (mixed scripts: ~190 -> ~2,300 characters/s into xterm). The race xdotool documents is real, both ways: a client
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

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence

from Xlib import X
from Xlib.display import Display
from Xlib.error import CatchError

from . import _x
from ._keymap import Batch, Keymap
from ._keynames import char_keysym, parse
from ._keywatch import Recorder

log = logging.getLogger(__name__)

_FLUSH_EVERY = 256  # requests; python-xlib concatenates its send buffer, so keep it short


# -- the keyboard --------------------------------------------------------------


def _runs(keycodes: list[int]) -> list[list[int]]:
    """Sorted keycodes cut into runs of consecutive ones."""
    runs: list[list[int]] = []
    for keycode in keycodes:
        if runs and runs[-1][-1] == keycode - 1:
            runs[-1].append(keycode)
        else:
            runs.append([keycode])
    return runs


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
        self._recorder: Recorder | None = None
        self._start_recorder()

    def _start_recorder(self) -> None:
        if self._connect is None or self._recorder is not None:
            return
        try:
            self._recorder = Recorder(self._conn, self._connect)
        except Exception:
            log.warning("cannot watch keymap changes (RECORD); pausing %.2f s instead", self.settle, exc_info=True)
            self._connect = None  # RECORD refused: do not try again on every call

    @contextlib.contextmanager
    def _operation(self, keymap: Keymap | None = None) -> Iterator[None]:
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
        strokes = [parse(combo) for combo in combos]  # unknown names fail before anything is pressed
        with self._lock:
            self._run(strokes, 0.0)

    def type(self, text: str, delay: float = 0.0) -> None:
        """Type ``text`` as it is, in any layout; ``delay`` seconds between characters.

        Newline is Return, tab is Tab. Characters the keymap lacks are bound to
        spare keycodes for the moment of typing (see the module docstring).
        """
        text = text.replace("\r\n", "\n")
        strokes = [(char_keysym(char),) for char in text]
        with self._lock:
            self._run(strokes, delay)

    def key_down(self, name: str) -> None:
        """Press and hold a key (or the keys of a combo) until :meth:`key_up`."""
        keysyms = parse(name)
        with self._lock:
            keymap = Keymap.read(self._conn)
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

    @contextlib.contextmanager
    def holding(self, keysyms: Sequence[int]) -> Iterator[None]:
        """Keep ``keysyms`` pressed during the block (modifiers of a click), released after it.

        Unlike :meth:`key_down` they count as pressed by the operation under
        way: an interrupted block leaves nothing held (see :meth:`reset`).
        """
        with self._lock:
            keymap = Keymap.read(self._conn)
            with self._operation(keymap):
                self._bind(keymap, [ks for ks in dict.fromkeys(keysyms) if ks not in keymap.where])
                held = {kc for _, kc in self._held}
                for keysym in keysyms:
                    keycode, level = self._locate(keymap, keysym)
                    if level == 1 and keymap.shift not in self._down and keymap.shift not in held:
                        self._press(keymap.shift)
                    if keycode not in self._down and keycode not in held:  # one held by key_down stays held
                        self._press(keycode)
                self._flush()
                yield

    def key_up(self, name: str) -> None:
        """Release what :meth:`key_down` pressed for ``name`` (or just release the key)."""
        keysyms = parse(name)
        with self._lock, self._operation():
            for keysym in reversed(keysyms):
                index = next((i for i in range(len(self._held) - 1, -1, -1) if self._held[i][0] == keysym), None)
                if index is None:
                    location = Keymap.read(self._conn).where.get(keysym)
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

    def _shift(self, keymap: Keymap, on: bool) -> None:
        if on and keymap.shift not in self._down:
            self._press(keymap.shift)
        elif not on and keymap.shift in self._down:
            self._release(keymap.shift)

    def _run(self, strokes: Sequence[tuple[int, ...]], delay: float) -> None:
        """Press each stroke (keysyms pressed in order, released in reverse), binding what is missing."""
        if not strokes:
            return
        keymap = Keymap.read(self._conn)
        with self._operation(keymap):
            batches = self._batches(keymap, strokes)
            if len(batches) > 1:  # more characters to bind than spare keycodes: borrow vendor keys too
                keymap.lend(self._conn, {ks for stroke in strokes for ks in stroke})
                batches = self._batches(keymap, strokes)
            for batch in batches:
                self._bind(keymap, batch.missing)
                for stroke in batch.strokes:
                    self._stroke(keymap, stroke)
                    if delay > 0:
                        self._flush()
                        time.sleep(delay)

    def _stroke(self, keymap: Keymap, stroke: tuple[int, ...]) -> None:
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

    def _locate(self, keymap: Keymap, keysym: int) -> tuple[int, int | None]:
        """Keycode and level of ``keysym``; level ``None`` for our bindings, which ignore shift."""
        for keycode, bound in self._bound.items():
            if bound == keysym:
                return keycode, None
        return keymap.where[keysym]

    # -- temporary bindings ----------------------------------------------------
    def _batches(self, keymap: Keymap, strokes: Sequence[tuple[int, ...]]) -> list[Batch]:
        """Cut the strokes where their missing keysyms outgrow the spare keycodes."""
        capacity = len(keymap.pool)
        batches: list[Batch] = []
        current = Batch([], [])
        for stroke in strokes:
            new = [ks for ks in dict.fromkeys(stroke) if ks not in keymap.where and ks not in current.missing]
            if new and len(current.missing) + len(new) > capacity:
                if len(new) > capacity:
                    raise RuntimeError(
                        f"a combo needs {len(new)} keysyms the keymap lacks but only {capacity} keycodes are free"
                    )
                batches.append(current)
                current = Batch([], [])
            current.strokes.append(stroke)
            current.missing.extend(new)
        batches.append(current)
        return batches

    def _bind(self, keymap: Keymap, keysyms: list[int]) -> None:
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
        assigned = dict(zip(slots, todo, strict=True))
        for run in _runs(sorted(assigned)):  # one request (one MappingNotify) per run of keycodes
            for keycode in run:
                self._original.setdefault(keycode, keymap.rows[keycode])
                self._bound[keycode] = assigned[keycode]
            self._conn.change_keyboard_mapping(run[0], [(assigned[kc],) * 2 for kc in run], onerror=catcher)
            self._changes += 1
        self._conn.sync()
        if catcher.get_error():
            raise RuntimeError(f"cannot bind a spare keycode: {catcher.get_error()}")
        log.debug("bound %d keysyms to spare keycodes %s", len(todo), slots)
        self._await_handled(keymap)

    def _await_handled(self, keymap: Keymap) -> None:
        """Return once the focused client has handled the events up to our last keymap change.

        The client is sent a key without keysym (it types nothing): Tk and
        GTK look at a changed keymap only on their next key event. Its fetch
        of the modifier map then shows that it got there (see
        :class:`Recorder`), however long it was busy; ``timeout`` bounds the
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

    def _checkpoint(self, keymap: Keymap) -> None:
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

    def _finish(self, keymap: Keymap | None = None) -> None:
        """Release what the operation pressed, then restore bindings no held key needs."""
        try:
            for keycode in reversed(self._down):
                self._fake(X.KeyRelease, keycode)
            self._down.clear()
            self._flush()
            held = {kc for _, kc in self._held}
            restore = [kc for kc in self._bound if kc not in held]
            if restore:
                self._checkpoint(keymap or Keymap.read(self._conn))
                catcher = CatchError()
                for run in _runs(sorted(restore)):
                    self._conn.change_keyboard_mapping(run[0], [self._original.pop(kc) for kc in run], onerror=catcher)
                    for keycode in run:
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
