"""RFB through the widget's own comm: the transport for hosts without our server route.

Each connected view gets its own connection to the desktop's unix socket and
a pump thread that forwards what Xvnc sends as binary buffers of custom
messages (never base64). The view's bytes come back as custom messages and are
written to the socket by whichever kernel thread handles comm messages (the
shell thread, or a subshell's thread when the front end routes comms there).

Flow control: a pump never has more than ``WINDOW`` bytes (or ``MAX_MESSAGES``
messages) sent and not yet acknowledged by its view, so a slow or hidden tab
costs the kernel at most ``WINDOW + CHUNK`` bytes per view: once the window is
full the pump stops reading, and Xvnc's own congestion control holds updates
back. A pump whose window stays full with no word from its view for
``STALL_TIMEOUT`` seconds (a closed tab says nothing) gives up; the view, if
it still exists, reconnects.

Pacing: every message costs a round of Jupyter's messaging (the kernel's IOPub
thread, the server, the page's kernel connection and widget manager), far more
than its bytes. A read long after the last message goes at once (a lone
update is not delayed); what arrives within ``GAP`` of the last message goes
in the next one, so an update and the fence after it travel together. The view
likewise keeps one message in flight (js/comm_channel.js).

Protocol (the ``dw`` key of a custom message; ``view`` names the connection):
view -> kernel ``rfb-open``, ``rfb-data`` (``seq``, + buffers, and an
acknowledgement riding on it), ``rfb-ack`` (``bytes``, ``messages``),
``rfb-close`` (``seq``); kernel -> view
``rfb-opened``, ``rfb-data`` (+ one buffer), ``rfb-closed`` (``reason``).
Everything the kernel sends for one view comes from that view's pump thread,
so it arrives in order.

Order of the view's bytes: a front end may deliver a comm's messages to a
subshell (JupyterLab >= 4.4 with ipykernel 7), and ipykernel 7 re-routes them
to the main shell when the widget last sent from there; so two messages of a
view may be handled by different threads, one of them waiting for a busy
cell. ``seq`` puts them back in order: a message that overtook another waits
for it here, and nothing is written twice or lost.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

#: Largest read from the socket, and so the largest message.
CHUNK = 256 * 1024
#: Bytes a pump may have sent and not yet seen acknowledged.
WINDOW = 2 * 1024 * 1024
#: Messages likewise: many small updates must not pile up in the IOPub queue
#: (a PUB socket drops messages past its high-water mark).
MAX_MESSAGES = 256
#: A full window with no message at all from the view for this long: it is gone.
STALL_TIMEOUT = 120.0
#: Seconds between two messages to a view while the desktop keeps sending
#: (below a frame at 60 fps, so frames are not merged): see "Pacing" above.
GAP = 0.008

#: Sends one custom message: ``send(content, buffers)``.
Send = Callable[[dict, list], None]


class _Pump:
    """One view's RFB connection: socket -> view in a thread, view -> socket on call."""

    def __init__(self, view_id: str, sock: socket.socket, send: Send, on_end: Callable[[_Pump], None]) -> None:
        self.view_id = view_id
        self.sock = sock
        self._send = send
        self._on_end = on_end
        self._credit = threading.Condition()
        self._in_flight = 0
        self._messages = 0
        self._heard = time.monotonic()
        self._closing = False
        self._reason = ""
        self.peak_in_flight = 0
        #: Bytes sent to the view so far (the benchmarks' bandwidth).
        self.sent = 0
        #: The next ``seq`` to write, and messages that arrived before their turn.
        self._next_seq = 0
        self._early: dict[int, tuple[str, list]] = {}
        self._order = threading.Lock()
        #: The view's ``rfb-open`` message: what the pump's messages reply to.
        self.parent = _current_parent()
        self.thread = threading.Thread(target=self._run, name=f"desktop-widget-pump-{view_id}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    # -- from the view (comm handler threads) ----------------------------
    def deliver(self, seq: int, kind: str, buffers: list) -> None:
        """Write the view's data (or close) in ``seq`` order, whichever thread brings it."""
        self._touch()
        with self._order:
            if seq < self._next_seq or seq in self._early:
                return  # never written twice
            self._early[seq] = (kind, buffers)
            while self._next_seq in self._early:
                kind, buffers = self._early.pop(self._next_seq)
                self._next_seq += 1
                if kind == "rfb-close":
                    self.close("the view closed the connection")
                    return
                try:
                    for buffer in buffers:
                        self.sock.sendall(buffer)
                except OSError as exc:
                    self.close(f"the desktop closed the connection ({exc.strerror or exc})")
                    return

    def ack(self, nbytes: int, messages: int) -> None:
        with self._credit:
            self._in_flight = max(0, self._in_flight - nbytes)
            self._messages = max(0, self._messages - messages)
            self._heard = time.monotonic()
            self._credit.notify_all()

    def _touch(self) -> None:
        with self._credit:
            self._heard = time.monotonic()

    def close(self, reason: str = "") -> None:
        """End the connection; the pump thread says so to the view and exits."""
        with self._credit:
            if self._closing:
                return
            self._closing = True
            self._reason = reason
            self._credit.notify_all()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    # -- the pump thread -------------------------------------------------
    def _wait_for_credit(self) -> bool:
        with self._credit:
            while not self._closing and (self._in_flight >= WINDOW or self._messages >= MAX_MESSAGES):
                if time.monotonic() - self._heard > STALL_TIMEOUT:
                    self._closing = True
                    self._reason = "the view stopped acknowledging"
                    break
                self._credit.wait(1.0)
            return not self._closing

    def _read(self, until: float) -> tuple[bytes, bool]:
        """Up to CHUNK bytes for one message: a read, then what is there already or comes before ``until``.

        Returns the bytes and False once the desktop has closed the connection.
        """
        data = self.sock.recv(CHUNK)
        if not data:
            return b"", False
        parts = [data]
        size = len(data)
        poll = select.poll()  # not select(): a kernel may hold more than FD_SETSIZE fds
        poll.register(self.sock, select.POLLIN)
        while size < CHUNK:
            if not poll.poll(max(0.0, until - time.monotonic()) * 1000):
                break
            data = self.sock.recv(CHUNK - size)
            if not data:
                return b"".join(parts), False
            parts.append(data)
            size += len(data)
        return (parts[0] if len(parts) == 1 else b"".join(parts)), True

    def _run(self) -> None:
        reason = "the desktop closed the connection"
        _reply_to(self.parent)
        try:
            self._send({"dw": "rfb-opened", "view": self.view_id}, [])
            last = 0.0
            while self._wait_for_credit():
                data, more = self._read(last + GAP)
                if not data:
                    break
                last = time.monotonic()
                with self._credit:
                    self._in_flight += len(data)
                    self._messages += 1
                    self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
                    self.sent += len(data)
                self._send({"dw": "rfb-data", "view": self.view_id}, [data])
                if not more:
                    break
        except OSError as exc:
            reason = f"the desktop's connection failed ({exc.strerror or exc})"
        except Exception:  # a dead comm: nobody left to tell
            log.debug("pump %s ended", self.view_id, exc_info=True)
        finally:
            with self._credit:
                self._closing = True
                reason = self._reason or reason
            self.sock.close()
            with contextlib.suppress(Exception):
                self._send({"dw": "rfb-closed", "view": self.view_id, "reason": reason}, [])
            self._on_end(self)


class CommTunnel:
    """The pumps of one widget, keyed by the view id each view chose."""

    def __init__(self, send: Send, socket_path: Callable[[], str | None]) -> None:
        self._send = send
        self._socket_path = socket_path
        self._pumps: dict[str, _Pump] = {}
        self._lock = threading.Lock()
        self._closed = False

    def handle(self, content: Any, buffers: list) -> bool:
        """Handle one custom message from a view; False if it was not ours."""
        if not isinstance(content, dict) or not str(content.get("dw", "")).startswith("rfb-"):
            return False
        kind, view_id = content["dw"], content.get("view")
        if not isinstance(view_id, str) or not view_id:
            return True
        if kind == "rfb-open":
            self._open(view_id)
            return True
        with self._lock:
            pump = self._pumps.get(view_id)
        if pump is None:
            if kind != "rfb-close":  # a view that missed our rfb-closed
                self._send({"dw": "rfb-closed", "view": view_id, "reason": "no such connection"}, [])
            return True
        if kind in ("rfb-data", "rfb-ack"):
            pump.ack(_count(content.get("bytes")), _count(content.get("messages")))
        if kind in ("rfb-data", "rfb-close"):
            seq = content.get("seq")
            if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0:
                pump.deliver(seq, kind, buffers)
            elif kind == "rfb-close":
                pump.close("the view closed the connection")
        return True

    def _open(self, view_id: str) -> None:
        if self._closed:
            self._send({"dw": "rfb-closed", "view": view_id, "reason": "the widget was closed"}, [])
            return
        path = self._socket_path()
        if path is None:
            self._send({"dw": "rfb-closed", "view": view_id, "reason": "this desktop is not running"}, [])
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
        except OSError as exc:
            sock.close()
            self._send({"dw": "rfb-closed", "view": view_id, "reason": f"the desktop does not answer ({exc})"}, [])
            return
        pump = _Pump(view_id, sock, self._send, self._forget)
        with self._lock:
            old = self._pumps.pop(view_id, None)
            self._pumps[view_id] = pump
        if old is not None:
            old.close("replaced")
        pump.start()

    def _forget(self, pump: _Pump) -> None:
        with self._lock:
            if self._pumps.get(pump.view_id) is pump:
                del self._pumps[pump.view_id]

    def pumps(self) -> list[_Pump]:
        with self._lock:
            return list(self._pumps.values())

    def close_all(self, reason: str, wait: float = 5.0) -> None:
        """End every connection (the desktop stopped, or the widget closed) and wait for the threads."""
        pumps = self.pumps()
        for pump in pumps:
            pump.close(reason)
        deadline = time.monotonic() + wait
        for pump in pumps:
            if pump.thread is not threading.current_thread() and pump.thread.is_alive():
                pump.thread.join(max(0.0, deadline - time.monotonic()))

    def shutdown(self) -> None:
        """The widget is closing: no new connections, the current ones end."""
        self._closed = True
        self.close_all("the widget was closed")


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _kernel() -> Any:
    try:
        from ipykernel.kernelbase import Kernel
    except ImportError:
        return None
    return Kernel.instance() if Kernel.initialized() else None


def _current_parent() -> dict | None:
    """The kernel message this thread handles now (a view's comm message), if any."""
    kernel = _kernel()
    with contextlib.suppress(Exception):
        return kernel.get_parent() if kernel is not None else None
    return None


def _reply_to(parent: dict | None) -> None:
    """Make this thread's kernel messages replies to ``parent`` (the view's message).

    ipykernel 7 sends a comm's next messages from the front end to the
    subshell of the message its last send replied to. Without this, the
    pump's sends would reply to the cell that created the widget: the main
    shell, which waits for a running cell, so the view's input would too even
    where the front end asked for a subshell. A new thread starts with an
    empty context, so setting the kernel's context variable here changes
    nothing outside this thread. (ipykernel 6 has no such variable and no
    subshells: nothing to do.)
    """
    kernel = _kernel()
    var = getattr(kernel, "_shell_parent", None)
    if parent and isinstance(var, contextvars.ContextVar):
        var.set(parent)
