"""The kernel side of the comm transport against a real Xvnc: flow control, order, cleanup."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

from desktop_widget import Desktop
from desktop_widget.kernel._comm import CHUNK, WINDOW, CommTunnel, _Pump


class View:
    """Plays a view: records what the kernel sends and speaks RFB through the tunnel."""

    def __init__(self, desktop: Desktop) -> None:
        self.received: list[tuple[dict, list[bytes]]] = []
        self.lock = threading.Lock()
        self.tunnel = CommTunnel(self.send, desktop.view._socket_path)
        self.seq = 0

    def send(self, content: dict, buffers: list) -> None:
        with self.lock:
            self.received.append((content, [bytes(b) for b in buffers]))

    def data(self) -> bytes:
        with self.lock:
            return b"".join(b for c, bs in self.received if c["dw"] == "rfb-data" for b in bs)

    def wait(self, condition, timeout: float = 10, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}")
            time.sleep(0.01)

    def write(self, data: bytes, seq: int | None = None) -> None:
        seq = self.seq if seq is None else seq
        self.seq = max(self.seq, seq + 1)
        self.tunnel.handle({"dw": "rfb-data", "view": "v", "seq": seq}, [data])

    def handshake(self) -> None:
        """RFB 3.8, no security, shared; Raw encoding only (big, predictable updates)."""
        self.tunnel.handle({"dw": "rfb-open", "view": "v"}, [])
        self.wait(lambda: len(self.data()) >= 12, what="the RFB banner")
        self.write(b"RFB 003.008\n")
        self.wait(lambda: len(self.data()) >= 14, what="security types")
        self.write(b"\x01")
        self.wait(lambda: len(self.data()) >= 18, what="security result")
        self.write(b"\x01")  # ClientInit: shared
        self.wait(lambda: len(self.data()) >= 18 + 24, what="ServerInit")
        self.write(struct.pack(">BxHi", 2, 1, 0))  # SetEncodings: Raw


@pytest.fixture(scope="module")
def desktop():
    with Desktop(session="none", geometry=(1280, 800)) as d:
        yield d


def test_a_view_that_never_acknowledges_costs_at_most_one_window(desktop):
    """A full-screen Raw update is 4 MB; without acks the kernel sends at most WINDOW + CHUNK of it."""
    view = View(desktop)
    try:
        view.handshake()
        view.write(struct.pack(">BBHHHH", 3, 0, 0, 0, 1280, 800))  # FramebufferUpdateRequest, full
        (pump,) = view.tunnel.pumps()
        view.wait(lambda: pump.peak_in_flight >= WINDOW, what="a full window")
        # Stalled: the pump waits for credit, not the socket, and sends nothing more.
        view.wait(lambda: pump._in_flight >= WINDOW, what="the stall")
        sent = len(view.data())
        assert pump.peak_in_flight < WINDOW + CHUNK, pump.peak_in_flight
        assert sent < WINDOW + CHUNK, sent
        # Acknowledged, the rest of the update (1280 x 800 x 4 bytes) follows.
        frame = 1280 * 800 * 4
        while len(view.data()) < frame:
            view.tunnel.handle({"dw": "rfb-ack", "view": "v", "bytes": pump._in_flight, "messages": 10**6}, [])
            view.wait(lambda: pump._in_flight > 0 or len(view.data()) >= frame, what="more data after an ack")
        assert pump.peak_in_flight < WINDOW + CHUNK, pump.peak_in_flight
    finally:
        view.tunnel.close_all("test over")
    assert view.tunnel.pumps() == []
    assert view.received[-1][0]["dw"] == "rfb-closed"


def test_the_views_bytes_are_written_in_seq_order_once():
    """Messages handled by two threads (shell and subshell) may overtake each other."""
    ours, theirs = socket.socketpair()
    sent: list[dict] = []
    pump = _Pump("v", ours, lambda c, b: sent.append(c), lambda p: None)
    try:
        pump.deliver(1, "rfb-data", [b"b"])
        pump.deliver(3, "rfb-data", [b"d"])
        pump.deliver(0, "rfb-data", [b"a"])
        pump.deliver(0, "rfb-data", [b"a"])  # a duplicate is not written again
        pump.deliver(2, "rfb-data", [b"c"])
        theirs.settimeout(5)
        got = b""
        while len(got) < 4:
            got += theirs.recv(16)
        assert got == b"abcd"
        pump.deliver(5, "rfb-data", [b"f"])
        pump.deliver(4, "rfb-close", [])  # the close comes after everything sent before it
        assert pump._closing
        assert theirs.recv(16) == b""  # shut down; "f", sent after the close, never written
    finally:
        ours.close()
        theirs.close()


def test_reads_close_together_go_as_one_message_a_lone_read_at_once(monkeypatch):
    """Each message costs a round of Jupyter's messaging: what arrives soon after a send waits for the next.

    With a minute's gap, the first read still goes at once (nothing was sent
    before it); what follows goes as one message, at most CHUNK bytes, in order,
    and the rest when the desktop closes the connection.
    """
    monkeypatch.setattr("desktop_widget.kernel._comm.GAP", 60.0)
    ours, theirs = socket.socketpair()
    sent: list[tuple[dict, list[bytes]]] = []
    lock = threading.Lock()

    def send(content: dict, buffers: list) -> None:
        with lock:
            sent.append((content, [bytes(b) for b in buffers]))

    def data() -> list[bytes]:
        with lock:
            return [b"".join(bs) for c, bs in sent if c["dw"] == "rfb-data"]

    def wait(condition, what: str) -> None:
        deadline = time.monotonic() + 20
        while not condition():
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}; sent {[len(d) for d in data()]}")
            time.sleep(0.01)

    pump = _Pump("v", ours, send, lambda p: None)
    pump.start()
    try:
        wait(lambda: sent and sent[0][0]["dw"] == "rfb-opened", "rfb-opened")
        theirs.sendall(b"a")
        wait(lambda: data() == [b"a"], "the lone read, sent at once")
        theirs.sendall(b"b")
        theirs.sendall(b"c" * CHUNK)
        wait(lambda: len(data()) == 2, "the reads after it, as one message")
        assert data()[1] == b"b" + b"c" * (CHUNK - 1)
        theirs.close()
        pump.thread.join(20)
        assert not pump.thread.is_alive()
        assert data() == [b"a", b"b" + b"c" * (CHUNK - 1), b"c"]
        assert sent[-1][0]["dw"] == "rfb-closed"
    finally:
        pump.close()
        theirs.close()


def test_an_unknown_view_is_told_so(desktop):
    view = View(desktop)
    view.tunnel.handle({"dw": "rfb-data", "view": "nobody", "seq": 0}, [b"x"])
    assert view.received == [({"dw": "rfb-closed", "view": "nobody", "reason": "no such connection"}, [])]


def test_stopping_the_desktop_ends_its_pumps():
    with Desktop(session="none", geometry=(320, 240)) as d:
        view = View(d)
        d.view._tunnel = view.tunnel  # the widget's own tunnel, as the status observer sees it
        view.handshake()
        (pump,) = view.tunnel.pumps()
        d.stop()
        assert not pump.thread.is_alive()
        assert view.tunnel.pumps() == []
        assert view.received[-1][0]["dw"] == "rfb-closed"


def test_a_view_that_went_silent_is_dropped(desktop, monkeypatch):
    """A closed tab says nothing: with its window full and no word for STALL_TIMEOUT, the pump ends."""
    monkeypatch.setattr("desktop_widget.kernel._comm.STALL_TIMEOUT", 0.5)
    view = View(desktop)
    try:
        view.handshake()
        view.write(struct.pack(">BBHHHH", 3, 0, 0, 0, 1280, 800))
        (pump,) = view.tunnel.pumps()
        view.wait(lambda: not pump.thread.is_alive(), timeout=15, what="the silent view's pump to end")
        assert view.received[-1][0] == {"dw": "rfb-closed", "view": "v", "reason": "the view stopped acknowledging"}
        assert view.tunnel.pumps() == []
    finally:
        view.tunnel.close_all("test over")


def test_closing_the_widget_ends_its_pumps_and_refuses_new_ones():
    with Desktop(session="none", geometry=(320, 240)) as d:
        view = View(d)
        d.view._tunnel = view.tunnel
        view.handshake()
        (pump,) = view.tunnel.pumps()
        d.view.close()
        assert not pump.thread.is_alive()
        view.tunnel.handle({"dw": "rfb-open", "view": "w"}, [])
        assert view.received[-1][0] == {"dw": "rfb-closed", "view": "w", "reason": "the widget was closed"}
