"""The server route, against a real Jupyter server and a real desktop."""

from __future__ import annotations

import asyncio
import http.cookiejar
import struct
import urllib.error
import urllib.request

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from desktop_widget import Desktop
from tests import _aio


@pytest.fixture(scope="module")
def desktop():
    d = Desktop(session="none", geometry=(800, 600))
    yield d
    d.stop()


def login_cookie(jupyter) -> str:
    """The cookie a browser gets by logging in with the token."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(jupyter.api(f"lab?token={jupyter.token}"), timeout=10).read()
    return "; ".join(f"{c.name}={c.value}" for c in jar)


def ws_request(
    jupyter, path: str, token: str | None = "good", origin: str | None = None, cookie: str | None = None
) -> HTTPRequest:
    headers = {}
    if token:
        headers["Authorization"] = f"token {jupyter.token if token == 'good' else token}"
    if origin:
        headers["Origin"] = origin
    if cookie:
        headers["Cookie"] = cookie
    return HTTPRequest(jupyter.ws_url(path), headers=headers)


def ws_status(jupyter, path: str, **kw) -> int:
    """The HTTP status of a refused WebSocket upgrade (101 if accepted)."""

    async def attempt():
        try:
            conn = await websocket_connect(ws_request(jupyter, path, **kw))
        except HTTPClientError as exc:
            return exc.code
        conn.close()
        return 101

    return _aio.run(attempt())


def test_unauthenticated_gets_403_and_no_rfb(jupyter, desktop):
    assert ws_status(jupyter, f"desktop-widget/{desktop.id}/", token=None) == 403
    assert ws_status(jupyter, f"desktop-widget/{desktop.id}/", token="wrong-token") == 403


def test_wrong_origin_refused(jupyter, desktop):
    # A browser on another site carries the user's cookie but not the token.
    cookie = login_cookie(jupyter)
    path = f"desktop-widget/{desktop.id}/"
    own_origin = jupyter.url.split("/jh/")[0]
    assert ws_status(jupyter, path, token=None, cookie=cookie, origin=own_origin) == 101
    assert ws_status(jupyter, path, token=None, cookie=cookie, origin="http://evil.example") == 403


@pytest.mark.parametrize("bad", ["000000000000", "..", "%2e%2e", "..%2f..%2fetc", "ABCDEF012345", "x" * 300, "a%00b"])
def test_unknown_or_malformed_id_404_before_handshake(jupyter, desktop, bad):
    assert ws_status(jupyter, f"desktop-widget/{bad}/") == 404


def test_plain_get_is_a_probe_without_rfb(jupyter, desktop):
    req = urllib.request.Request(
        jupyter.api(f"desktop-widget/{desktop.id}/"), headers={"Authorization": f"token {jupyter.token}"}
    )
    with urllib.request.urlopen(req, timeout=5) as response:
        assert response.status == 204
        assert response.read() == b""
    missing = urllib.request.Request(
        jupyter.api("desktop-widget/000000000000/"), headers={"Authorization": f"token {jupyter.token}"}
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(missing, timeout=5)
    assert err.value.code == 404


def test_authenticated_speaks_rfb_both_ways(jupyter, desktop):
    async def handshake():
        conn = await websocket_connect(ws_request(jupyter, f"desktop-widget/{desktop.id}/"))
        buffer = b""

        async def need(n):
            nonlocal buffer
            while len(buffer) < n:
                chunk = await asyncio.wait_for(conn.read_message(), 5)
                assert chunk is not None, "connection closed"
                buffer += chunk
            data, buffer = buffer[:n], buffer[n:]
            return data

        version = await need(12)
        conn.write_message(b"RFB 003.008\n", binary=True)
        (count,) = await need(1)
        types = await need(count)
        assert 1 in types  # None: the socket's permissions and Jupyter's login guard it
        conn.write_message(b"\x01", binary=True)
        assert await need(4) == b"\0\0\0\0"  # SecurityResult OK
        conn.write_message(b"\x01", binary=True)  # ClientInit, shared
        width, height = struct.unpack(">HH", await need(4))
        conn.close()
        return version, (width, height)

    version, size = _aio.run(handshake())
    assert version.startswith(b"RFB 003.")
    assert size == (800, 600)
