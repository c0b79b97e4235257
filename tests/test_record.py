"""Screen recordings on a real desktop, read back with ffprobe."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from desktop_widget import Desktop
from desktop_widget.control import _x
from desktop_widget.kernel import _clicks, _record
from tests._cells import PINK, near
from tests._procs import alive, tree, wait_gone
from tests.test_control import Probe


def probe(path: Path) -> dict:
    """The video stream as ffprobe reads it, frames counted by decoding."""
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
         "stream=codec_name,pix_fmt,width,height,nb_read_frames,duration", "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout)["streams"][0]


def ffmpeg_pids() -> set[int]:
    """Every ffmpeg that this test process started (and its children)."""
    import os

    return {p for p in tree(os.getpid()) if Path(f"/proc/{p}/comm").read_text().strip() == "ffmpeg"}


@pytest.fixture(scope="module")
def d():
    # An odd size on purpose: H.264 in yuv420p needs even ones.
    desktop = Desktop(session="wm", geometry=(1001, 701))
    yield desktop
    desktop.stop()


def busy(d: Desktop, seconds: float) -> None:
    """Keep the screen changing: move the pointer across it."""
    end = time.monotonic() + seconds
    w, h = d.size
    i = 0
    while time.monotonic() < end:
        d.move(10 + (i * 37) % (w - 20), 10 + (i * 23) % (h - 20))
        i += 1
        time.sleep(0.05)


def test_mp4_is_h264_yuv420p_with_the_expected_length(d, tmp_path):
    out = tmp_path / "demo.mp4"
    with d.record(out) as rec:
        assert rec.running
        # The cookie reaches the encoder in its environment, never on its command line.
        cmdline = Path(f"/proc/{rec._proc.pid}/cmdline").read_bytes().split(b"\0")
        environ = Path(f"/proc/{rec._proc.pid}/environ").read_bytes().split(b"\0")
        assert f"XAUTHORITY={d.env['XAUTHORITY']}".encode() in environ
        assert not any(b"uthority" in arg for arg in cmdline)
        assert Path(d.env["XAUTHORITY"]).read_bytes()[-16:] not in b"".join(cmdline)
        started = time.monotonic()
        busy(d, 2.0)
        elapsed = time.monotonic() - started
    assert not rec.running
    stream = probe(out)
    assert (stream["codec_name"], stream["pix_fmt"]) == ("h264", "yuv420p")
    assert (stream["width"], stream["height"]) == (1000, 700)  # the odd column and row cut
    duration, frames = float(stream["duration"]), int(stream["nb_read_frames"])
    assert elapsed - 0.3 <= duration <= elapsed + 1.0, (duration, elapsed)
    assert abs(frames - duration * 15) <= 3, (frames, duration)
    assert ffmpeg_pids() == set()


def test_gif_has_several_frames_and_shows_as_an_image(d, tmp_path):
    out = tmp_path / "slide.gif"
    rec = d.record(out, fps=10)
    assert set(rec._repr_mimebundle_()) == {"text/plain"}  # nothing to show yet
    busy(d, 1.5)
    assert rec.stop() is rec
    stream = probe(out)
    assert stream["codec_name"] == "gif"
    assert int(stream["nb_read_frames"]) >= 8
    bundle = rec._repr_mimebundle_()
    assert bundle["image/gif"].startswith("R0lGOD")  # base64 of "GIF8"


def test_mp4_shows_as_an_embedded_video(d, tmp_path, monkeypatch):
    with d.record(tmp_path / "v.mp4") as rec:
        busy(d, 0.5)
    html = rec._repr_mimebundle_()["text/html"]
    assert html.startswith('<video src="data:video/mp4;base64,')
    assert "controls" in html
    # Too big to embed in the notebook: linked by its path from the kernel's folder.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_record, "EMBED_LIMIT", 1000)
    assert rec._repr_mimebundle_()["text/html"].startswith('<video src="v.mp4"')


def test_show_clicks_rings_each_click_and_lets_it_through(d, tmp_path, monkeypatch):
    monkeypatch.setattr(_clicks, "SHOW_FOR", 3.0)  # long enough to be seen on a loaded machine
    p = Probe(d, tmp_path)
    try:
        bx, by = p.ready["button"]
        with d.record(tmp_path / "clicks.mp4", show_clicks=True):
            d.click(bx, by)
            p.wait("button")
            # The ring is around the click: amber on its band, 17 px out.
            deadline = time.monotonic() + 5
            while not near(d.pixel(bx + 17, by), (0xFF, 0xB3, 0x00)):
                assert time.monotonic() < deadline, "no click ring on screen"
            # On the ring's band (still on the button): the pointer passes through the ring.
            d.click(bx + 17, by)
            p.wait("button", count=2)
            d.click(bx + 17, by)
            p.wait("button", count=3)
            d.wait_until_stable(duration=0.6, timeout=10)
            assert not near(d.pixel(bx + 17, by), (0xFF, 0xB3, 0x00)), "the ring did not go away"
    finally:
        p.close()


def test_bad_arguments_name_the_fix_and_start_nothing(d, tmp_path):
    with pytest.raises(ValueError, match=r"\.mp4.*\.gif"):
        d.record(tmp_path / "x.avi")
    with pytest.raises(ValueError, match="fps"):
        d.record(tmp_path / "x.mp4", fps=0)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        d.record(tmp_path / "nowhere" / "x.mp4")
    with pytest.raises(TypeError, match="show_clicks"):
        d.record(tmp_path / "x.mp4", show_clicks="yes")
    assert ffmpeg_pids() == set()
    assert not (tmp_path / "x.mp4").exists()


def test_stopping_the_desktop_finishes_the_recording(tmp_path):
    d = Desktop(session="none", geometry=(640, 480))
    out = tmp_path / "cut.mp4"
    rec = d.record(out)
    (encoder,) = ffmpeg_pids()
    busy(d, 1.0)
    d.stop()
    assert not alive(encoder)
    assert not rec.running
    stream = probe(out)
    assert stream["codec_name"] == "h264"
    assert int(stream["nb_read_frames"]) >= 10


def test_desktop_stopped_elsewhere_ends_the_encoder(tmp_path):
    """Another process stops the desktop: x11grab loses the X server and ffmpeg still finishes the file."""
    d = Desktop(session="none", geometry=(640, 480))
    out = tmp_path / "gone.mp4"
    rec = d.record(out)
    (encoder,) = ffmpeg_pids()
    busy(d, 1.0)
    Desktop.attach(d.id).stop()
    assert wait_gone({encoder}, timeout=10) == set()
    assert not rec.running
    rec.stop()
    d.stop()
    assert probe(out)["codec_name"] == "h264"


def test_interpreter_exit_finishes_the_recording(tmp_path):
    out = tmp_path / "exit.mp4"
    script = textwrap.dedent(f"""
        import os, time
        from desktop_widget import Desktop
        from desktop_widget.kernel import _clicks
        d = Desktop(session="none", geometry=(320, 240))
        rec = d.record({str(out)!r})
        print("ENCODER", rec._proc.pid, flush=True)
        for i in range(10):
            d.move(10 + i * 20, 100)
            time.sleep(0.1)
    """)  # never stopped: the interpreter exits with the recording running
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    encoder = int(done.stdout.split("ENCODER")[1].split()[0])
    assert wait_gone({encoder}) == set()
    assert int(probe(out)["nb_read_frames"]) >= 5


def test_pink_window_is_in_the_recording(d, tmp_path):
    """The frames are the desktop's: a PINK window mapped during the recording is in the last frame."""
    conn = _x.connect(d.display, d.env["XAUTHORITY"])
    screen = conn.screen()
    pink = screen.root.create_window(
        100, 100, 200, 150, 0, screen.root_depth, background_pixel=0xFF3366, override_redirect=True
    )
    out = tmp_path / "pink.mp4"
    with d.record(out):
        busy(d, 0.3)
        pink.map()
        conn.sync()
        busy(d, 0.7)
    conn.close()
    frame = tmp_path / "last.png"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-sseof", "-0.2", "-i", str(out), "-frames:v", "1", "-update", "1", str(frame)],
        check=True,
    )
    from PIL import Image

    image = Image.open(frame).convert("RGB")
    assert near(image.getpixel((200, 175)), PINK)
    assert not near(image.getpixel((50, 50)), PINK)


@pytest.mark.browser
def test_chromium_plays_the_inline_video(d, tmp_path, browser, artifacts):
    """The notebook output (an embedded H.264 <video>) decodes in Chromium: it has a size, a length and frames."""
    conn = _x.connect(d.display, d.env["XAUTHORITY"])
    screen = conn.screen()
    pink = screen.root.create_window(
        100, 100, 300, 200, 0, screen.root_depth, background_pixel=0xFF3366, override_redirect=True
    )
    pink.map()
    conn.sync()
    with d.record(tmp_path / "play.mp4") as rec:
        busy(d, 1.0)
    conn.close()
    page = browser.new_page()
    try:
        page.set_content(f"<body style='margin:0'>{rec._repr_mimebundle_()['text/html']}</body>")
        state = page.evaluate(
            """() => new Promise((resolve, reject) => {
                const v = document.querySelector('video');
                v.addEventListener('error', () => reject(new Error('video error ' + (v.error && v.error.code))));
                const done = () => resolve({w: v.videoWidth, h: v.videoHeight, duration: v.duration});
                v.currentTime = 0.5;
                v.addEventListener('seeked', done, {once: true});
            })"""
        )
        assert (state["w"], state["h"]) == (1000, 700)
        assert 0.8 <= state["duration"] <= 3.0
        page.screenshot(
            path=str(artifacts / "record-inline-video.png"), clip={"x": 0, "y": 0, "width": 500, "height": 350}
        )
        # The frame Chromium shows has the PINK window where the desktop had it.
        rgb = page.evaluate(
            """() => { const v = document.querySelector('video'); const c = document.createElement('canvas');
                c.width = v.videoWidth; c.height = v.videoHeight; const g = c.getContext('2d');
                g.drawImage(v, 0, 0); return Array.from(g.getImageData(250, 200, 1, 1).data.slice(0, 3)); }"""
        )
        assert near(tuple(rgb), PINK), rgb
    finally:
        page.close()
