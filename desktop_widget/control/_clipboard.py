"""The desktop's CLIPBOARD selection, read and owned from the kernel.

X has no clipboard store: the text lives in whichever client owns the
selection and answers requests for it. To *set* the clipboard the kernel
becomes that client, with a thread that answers requests until another
program takes the selection over. Reading asks the owner to convert the
selection into a property of a window of ours.
"""

from __future__ import annotations

import logging
import queue
import select
import threading

from Xlib import X, Xatom
from Xlib.display import Display
from Xlib.protocol import event

from . import _x

log = logging.getLogger(__name__)


class Clipboard:
    def __init__(self, conn: Display) -> None:
        self._conn = conn
        self._window = conn.screen().root.create_window(0, 0, 1, 1, 0, X.CopyFromParent)
        self._atoms = {name: conn.get_atom(name) for name in ("CLIPBOARD", "UTF8_STRING", "TARGETS", "TEXT", "DW_SEL")}
        self._text: str | None = None
        self._lock = threading.Lock()
        self._replies: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="desktop-clipboard", daemon=True)
        self._thread.start()

    @property
    def conn(self) -> Display:
        return self._conn

    def close(self) -> None:
        """Stop serving and drop the connection; waits at most about a second, whatever the X server does."""
        self._stop.set()
        self._thread.join(1.0)  # it looks at the flag every 0.2 s; an answer under way is bounded by the deadline
        _x.drop(self._conn)  # set() flushed everything: there is nothing left to send

    # -- writing -------------------------------------------------------------
    def set(self, text: str) -> None:
        with self._lock:
            self._text = text
            self._window.set_selection_owner(self._atoms["CLIPBOARD"], X.CurrentTime)
            self._conn.flush()

    # -- reading -------------------------------------------------------------
    def get(self, timeout: float = 2.0) -> str:
        with self._lock:
            owner = self._conn.get_selection_owner(self._atoms["CLIPBOARD"])
            if self._text is not None and owner == self._window:
                return self._text
            if owner == X.NONE:
                return ""
            while not self._replies.empty():
                self._replies.get_nowait()
            for target in (self._atoms["UTF8_STRING"], Xatom.STRING):
                self._window.convert_selection(self._atoms["CLIPBOARD"], target, self._atoms["DW_SEL"], X.CurrentTime)
                self._conn.flush()
                try:
                    reply = self._replies.get(timeout=timeout)
                except queue.Empty:
                    raise TimeoutError("the clipboard's owner did not answer") from None
                if reply.property == X.NONE:
                    continue
                prop = self._window.get_full_property(self._atoms["DW_SEL"], X.AnyPropertyType, sizehint=1 << 20)
                self._window.delete_property(self._atoms["DW_SEL"])
                if prop is None:
                    continue
                value = prop.value
                encoding = "utf-8" if target == self._atoms["UTF8_STRING"] else "latin-1"
                return value.decode(encoding, "replace") if isinstance(value, bytes) else str(value)
            return ""

    # -- the owner's side ----------------------------------------------------------
    def _serve(self) -> None:
        fd = self._conn.fileno()
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([fd], [], [], 0.2)
                if not ready and not self._conn.pending_events():
                    continue
                while self._conn.pending_events():
                    self._handle(self._conn.next_event())
            except Exception:  # the X server went away: nothing left to serve
                log.debug("clipboard thread ends", exc_info=True)
                return

    def _handle(self, ev: event.AnyEvent) -> None:
        if ev.type == X.SelectionNotify:
            self._replies.put(ev)
        elif ev.type == X.SelectionClear:
            self._text = None
        elif ev.type == X.SelectionRequest:
            self._answer(ev)

    def _answer(self, request: event.SelectionRequest) -> None:
        text = self._text
        prop = request.property or request.target
        target = request.target
        if text is None:
            prop = X.NONE
        elif target == self._atoms["TARGETS"]:
            targets = [self._atoms["TARGETS"], self._atoms["UTF8_STRING"], Xatom.STRING, self._atoms["TEXT"]]
            request.requestor.change_property(prop, Xatom.ATOM, 32, targets)
        elif target in (self._atoms["UTF8_STRING"], self._atoms["TEXT"]):
            request.requestor.change_property(prop, self._atoms["UTF8_STRING"], 8, text.encode())
        elif target == Xatom.STRING:
            request.requestor.change_property(prop, Xatom.STRING, 8, text.encode("latin-1", "replace"))
        else:
            prop = X.NONE
        notify = event.SelectionNotify(
            time=request.time, requestor=request.requestor, selection=request.selection, target=target, property=prop
        )
        request.requestor.send_event(notify)
        self._conn.flush()
