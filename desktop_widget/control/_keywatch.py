"""Watching, through the RECORD extension, when clients fetch the keymap after a change of ours."""

from __future__ import annotations

import logging
import math
import sys
import threading
from collections.abc import Callable

from Xlib.display import Display
from Xlib.ext import record

from . import _x

log = logging.getLogger(__name__)

_CHANGE_KEYBOARD_MAPPING = 100  # core request opcodes
_GET_MODIFIER_MAPPING = 119
_XKB_GET_MAP = 8  # XKEYBOARD minor opcode: how XKB clients (GTK, xkbcommon) fetch the keymap
_XKB_MODIFIER_MAP = 0x04  # XkbModifierMapMask in its full/partial fields


class Recorder:
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
