"""The bare reference: a minimal RFB client on a desktop's unix socket (no browser, no proxy).

Run as a process of its own (so that the benchmark's own threads cannot hold
its interpreter lock when an update arrives): ``python _rfbref.py SOCKET``.

It asks for what noVNC asks for that matters to latency (continuous updates
with fences, as TigerVNC's congestion control expects) but only the Raw
encoding, so decoding costs nothing. Commands come on stdin and results go to
stdout, one JSON object per line:

    -> {"cmd": "watch", "id": 3, "points": [[x, y], ...], "rgb": [r, g, b], "tol": 24}
    <- {"event": "hit", "id": 3, "t": <time.time() when the last pixel arrived>}
    -> {"cmd": "quit"}
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import threading
import time

RAW, COPYRECT = 0, 1
DESKTOP_SIZE, LAST_RECT, EXT_DESKTOP_SIZE = -223, -224, -308
FENCE, CONTINUOUS = -312, -313

_out_lock = threading.Lock()


def emit(**fields: object) -> None:
    with _out_lock:
        sys.stdout.write(json.dumps(fields) + "\n")
        sys.stdout.flush()


class Client:
    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = bytearray()
        self.bytes = 0
        self.updates = 0
        self.watches: dict[int, dict] = {}
        self.lock = threading.Lock()
        self.continuous = False

    def read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise EOFError("the server closed the connection")
            self.bytes += len(chunk)
            self.buf += chunk
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def handshake(self) -> None:
        assert self.read(12).startswith(b"RFB 003.")
        self.sock.sendall(b"RFB 003.008\n")
        (count,) = self.read(1)
        if 1 not in self.read(count):
            raise RuntimeError("the server wants authentication")
        self.sock.sendall(b"\x01")
        if struct.unpack(">I", self.read(4))[0] != 0:
            raise RuntimeError("security handshake failed")
        self.sock.sendall(b"\x01")  # shared
        self.width, self.height = struct.unpack(">HH", self.read(4))
        self.read(16)
        self.read(struct.unpack(">I", self.read(4))[0])
        # 32 bpp, depth 24, little endian, true colour, 8 bits a channel: B G R X in memory.
        self.sock.sendall(struct.pack(">B3xBBBBHHHBBB3x", 0, 32, 24, 0, 1, 255, 255, 255, 16, 8, 0))
        encodings = [RAW, COPYRECT, DESKTOP_SIZE, LAST_RECT, EXT_DESKTOP_SIZE, FENCE, CONTINUOUS]
        self.sock.sendall(struct.pack(">BxH", 2, len(encodings)) + struct.pack(f">{len(encodings)}i", *encodings))
        self.request(False)

    def request(self, incremental: bool) -> None:
        self.sock.sendall(struct.pack(">BBHHHH", 3, incremental, 0, 0, self.width, self.height))

    def enable_continuous(self) -> None:
        self.sock.sendall(struct.pack(">BBHHHH", 150, 1, 0, 0, self.width, self.height))

    def check(self, x: int, y: int, w: int, h: int, data: bytes, t: float) -> None:
        with self.lock:
            watches = list(self.watches.values())
        for watch in watches:
            if watch["done"]:
                continue
            r, g, b = watch["rgb"]
            tol = watch["tol"]
            for i, (px, py) in enumerate(watch["points"]):
                if x <= px < x + w and y <= py < y + h:
                    o = ((py - y) * w + (px - x)) * 4
                    pb, pg, pr = data[o], data[o + 1], data[o + 2]
                    ok = abs(pr - r) <= tol and abs(pg - g) <= tol and abs(pb - b) <= tol
                    if ok:
                        watch["seen"].add(i)
            if len(watch["seen"]) == len(watch["points"]):
                watch["done"] = True
                emit(event="hit", id=watch["id"], t=t)

    def run(self) -> None:
        self.handshake()
        emit(event="ready", w=self.width, h=self.height)
        while True:
            (kind,) = self.read(1)
            if kind == 0:
                (count,) = struct.unpack(">xH", self.read(3))
                n = 0
                while n < count:
                    x, y, w, h, enc = struct.unpack(">HHHHi", self.read(12))
                    n += 1
                    if enc == RAW:
                        data = self.read(w * h * 4)
                        self.check(x, y, w, h, data, time.time())
                    elif enc == COPYRECT:
                        self.read(4)
                    elif enc == DESKTOP_SIZE:
                        self.width, self.height = w, h
                    elif enc == EXT_DESKTOP_SIZE:
                        (screens,) = struct.unpack(">B3x", self.read(4))
                        self.read(16 * screens)
                        if w and h:
                            self.width, self.height = w, h
                    elif enc == LAST_RECT:
                        break
                    else:
                        raise RuntimeError(f"unexpected encoding {enc}")
                self.updates += 1
                if not self.continuous:
                    self.request(True)
            elif kind == 2:  # Bell
                continue
            elif kind == 3:  # ServerCutText
                self.read(3)
                length = struct.unpack(">i", self.read(4))[0]
                self.read(abs(length))
            elif kind == 150:  # EndOfContinuousUpdates: the server supports them
                if not self.continuous:
                    self.continuous = True
                    self.enable_continuous()
            elif kind == 248:  # Fence: answer requests as noVNC does
                self.read(3)
                (flags,) = struct.unpack(">I", self.read(4))
                (length,) = self.read(1)
                payload = self.read(length)
                if flags & (1 << 31):
                    self.sock.sendall(struct.pack(">B3xIB", 248, flags & 3, len(payload)) + payload)
            else:
                raise RuntimeError(f"unexpected RFB message {kind}")


def main() -> None:
    client = Client(sys.argv[1])
    reader = threading.Thread(target=_guard, args=(client,), daemon=True)
    reader.start()
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "watch":
            watch = {
                "id": cmd["id"],
                "points": [tuple(p) for p in cmd["points"]],
                "rgb": cmd["rgb"],
                "tol": cmd.get("tol", 24),
                "seen": set(),
                "done": False,
            }
            with client.lock:
                client.watches = {cmd["id"]: watch}
        elif cmd["cmd"] == "quit":
            break


def _guard(client: Client) -> None:
    try:
        client.run()
    except Exception as exc:  # reported, then the process ends
        emit(event="error", message=repr(exc))


if __name__ == "__main__":
    main()
