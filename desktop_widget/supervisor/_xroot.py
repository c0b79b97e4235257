"""The X root window's first colour, painted with a few bytes of the core X protocol.

Standard library only (no python-xlib): the supervisor (``_supervisor``) loads it by path.
"""

from __future__ import annotations

import socket
import struct


def xauth_cookie(path: str) -> bytes | None:
    """The MIT-MAGIC-COOKIE-1 in an Xauthority file (the first one: ours has one cookie)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    pos = 0
    while pos + 2 <= len(data):
        pos += 2  # family
        fields = []
        for _ in range(4):  # address, display number, auth name, auth data
            (n,) = struct.unpack_from(">H", data, pos)
            fields.append(data[pos + 2 : pos + 2 + n])
            pos += 2 + n
        if fields[2] == b"MIT-MAGIC-COOKIE-1":
            return fields[3]
    return None


def _recv_exactly(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the X server closed the connection")
        data += chunk
    return data


def paint_root(display: int, xauthority: str, rgb: int, timeout: float = 2.0) -> socket.socket:
    """Give the X root window a background colour, and return the connection (keep it open).

    The X server's root is black until the session draws its wallpaper, a second
    later for XFCE; the first frames a view shows are then the desktop's colour
    instead. A few bytes of the core protocol (connection setup, ChangeWindowAttributes,
    ClearArea, then a GetInputFocus round trip so that it is done before "ready"),
    so that the supervisor stays standard-library only. The connection is held
    until the end: the X server resets (and blackens the root) when its last
    client leaves.
    """
    cookie = xauth_cookie(xauthority) or b""
    name = b"MIT-MAGIC-COOKIE-1" if cookie else b""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(f"/tmp/.X11-unix/X{display}")
        setup = struct.pack("<BxHHHHxx", 0x6C, 11, 0, len(name), len(cookie))
        s.sendall(setup + name + b"\0" * (-len(name) % 4) + cookie + b"\0" * (-len(cookie) % 4))
        head = _recv_exactly(s, 8)
        body = _recv_exactly(s, struct.unpack_from("<H", head, 6)[0] * 4)
        if head[0] != 1:
            raise ConnectionError(f"the X server refused the connection: {body[: head[1]]!r}")
        vendor_len, _, _, n_formats = struct.unpack_from("<HHBB", body, 16)
        screen = 32 + vendor_len + (-vendor_len % 4) + 8 * n_formats
        (root,) = struct.unpack_from("<I", body, screen)
        change = struct.pack("<BxHIII", 2, 4, root, 0x2, rgb)  # ChangeWindowAttributes, CWBackPixel
        clear = struct.pack("<BBHIhhHH", 61, 0, 4, root, 0, 0, 0, 0)  # ClearArea, whole window
        sync = struct.pack("<BxH", 43, 1)  # GetInputFocus: its reply means the above are done
        s.sendall(change + clear + sync)
        while True:
            packet = _recv_exactly(s, 32)
            if packet[0] == 0:
                raise ConnectionError(f"X error {packet[1]} painting the root window")
            if packet[0] == 1:
                break
        s.settimeout(None)
        return s
    except BaseException:
        s.close()
        raise
