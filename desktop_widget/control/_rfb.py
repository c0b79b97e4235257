"""Just enough of an RFB client to ask Xvnc for a new screen size.

Xvnc resizes itself properly (new RandR mode, CRTC and all) when an RFB
client sends SetDesktopSize, which is exactly what the browser views do;
the kernel uses the same path, over the desktop's unix socket, so the
views learn the new size from the server as they would from any client.
"""

from __future__ import annotations

import socket
import struct
import time

_EXTENDED_DESKTOP_SIZE = -308
_DESKTOP_SIZE = -223
_RAW = 0
_STATUS = {
    1: "the server does not allow resizing",
    2: "the server is out of resources",
    3: "the server rejected the screen layout",
}


class RFBError(OSError):
    pass


class _Client:
    def __init__(self, path: str, timeout: float) -> None:
        self.deadline = time.monotonic() + timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            if time.monotonic() > self.deadline:
                raise TimeoutError("the VNC server did not answer in time")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RFBError("the VNC server closed the connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def handshake(self) -> tuple[int, int, int]:
        """Returns (width, height, bits per pixel)."""
        if not self.read(12).startswith(b"RFB 003."):
            raise RFBError("not an RFB server")
        self.sock.sendall(b"RFB 003.008\n")
        (count,) = self.read(1)
        if count == 0:
            raise RFBError(self.read(struct.unpack(">I", self.read(4))[0]).decode(errors="replace"))
        if 1 not in self.read(count):
            raise RFBError("the VNC server wants authentication")
        self.sock.sendall(b"\x01")
        if struct.unpack(">I", self.read(4))[0] != 0:
            raise RFBError("the VNC server refused the connection")
        self.sock.sendall(b"\x01")  # shared: the views stay connected
        width, height = struct.unpack(">HH", self.read(4))
        bpp = self.read(16)[0]
        self.read(struct.unpack(">I", self.read(4))[0])  # desktop name
        encodings = (_RAW, _EXTENDED_DESKTOP_SIZE, _DESKTOP_SIZE)
        self.sock.sendall(struct.pack(">BxH", 2, len(encodings)) + struct.pack(f">{len(encodings)}i", *encodings))
        return width, height, bpp

    def request_update(self, incremental: bool) -> None:
        self.sock.sendall(struct.pack(">BBHHHH", 3, incremental, 0, 0, 1, 1))

    def next_layout_rect(self, bpp: int) -> tuple[int, int, int, int, list[tuple]]:
        """Skip messages until an ExtendedDesktopSize rectangle: (reason, status, w, h, screens)."""
        while True:
            (kind,) = self.read(1)
            if kind == 0:  # FramebufferUpdate
                (count,) = struct.unpack(">xH", self.read(3))
                found = None
                for _ in range(count):
                    x, y, w, h, encoding = struct.unpack(">HHHHi", self.read(12))
                    if encoding == _EXTENDED_DESKTOP_SIZE:
                        (screens,) = struct.unpack(">B3x", self.read(4))
                        layout = [struct.unpack(">IHHHHI", self.read(16)) for _ in range(screens)]
                        found = (x, y, w, h, layout)
                    elif encoding == _RAW:
                        self.read(w * h * bpp // 8)
                    elif encoding != _DESKTOP_SIZE:
                        raise RFBError(f"unexpected encoding {encoding}")
                if found:
                    return found
                self.request_update(True)
            elif kind == 2:  # Bell
                continue
            elif kind == 3:  # ServerCutText
                self.read(3)
                self.read(abs(struct.unpack(">i", self.read(4))[0]))
            elif kind == 150:  # EndOfContinuousUpdates
                continue
            elif kind == 248:  # ServerFence
                self.read(3)
                self.read(4)
                self.read(self.read(1)[0])
            else:
                raise RFBError(f"unexpected RFB message {kind}")


def set_desktop_size(path: str, width: int, height: int, timeout: float = 5.0) -> None:
    """Resize the desktop behind the RFB socket ``path``; raises if the server refuses."""
    client = _Client(path, timeout)
    try:
        _, _, bpp = client.handshake()
        client.request_update(False)
        _, _, _, _, layout = client.next_layout_rect(bpp)
        screen_id, _, _, _, _, flags = layout[0] if layout else (0, 0, 0, 0, 0, 0)
        client.sock.sendall(
            struct.pack(">BxHHBx", 251, width, height, 1)
            + struct.pack(">IHHHHI", screen_id, 0, 0, width, height, flags)
        )
        client.request_update(True)
        while True:
            reason, status, _w, _h, _ = client.next_layout_rect(bpp)
            if reason == 1:  # the answer to our own request
                if status:
                    raise RFBError(_STATUS.get(status, f"resize refused (status {status})"))
                return
            client.request_update(True)
    finally:
        client.close()
