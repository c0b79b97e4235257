"""The X authority cookie that keeps other local users off a desktop's display.

Xvnc is started with ``-auth FILE``; only clients that present the cookie in
that file may connect. The same file is the clients' ``XAUTHORITY``.
"""

from __future__ import annotations

import os
import secrets
import socket
import struct

_FAMILY_LOCAL = 256
_FAMILY_WILD = 65535
_COOKIE = b"MIT-MAGIC-COOKIE-1"


def _field(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


def entries(cookie: bytes, hostname: str) -> bytes:
    """Two entries, both for any display number (empty number field).

    The ``FamilyLocal`` + hostname entry is what libXau and python-xlib look up
    for a local connection; the wildcard entry serves clients whose idea of the
    hostname differs (a renamed container).
    """
    out = b""
    for family, address in ((_FAMILY_LOCAL, hostname.encode()), (_FAMILY_WILD, b"")):
        out += struct.pack(">H", family) + _field(address) + _field(b"") + _field(_COOKIE) + _field(cookie)
    return out


def write(path: str) -> None:
    """Write a new random cookie to ``path``, readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(entries(secrets.token_bytes(16), socket.gethostname()))
