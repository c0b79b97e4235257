"""Screen recordings: Debian's ffmpeg grabbing the desktop's X display (x11grab).

The encoder is a child process of the kernel with the desktop's cookie in its
environment (``XAUTHORITY``), never on its command line. It ends, and leaves
a playable file, in every way a desktop can go away:

* ``rec.stop()`` / the ``with`` block / ``Desktop.stop()`` / interpreter exit:
  SIGINT, on which ffmpeg finishes the file (writes the MP4 index) and exits;
* the kernel dies: the parent-death signal (SIGTERM, handled the same way);
* the X server goes away (stopped by another process, idle timeout): x11grab's
  read fails, which ffmpeg takes as the end of its input.

An MP4 is H.264 in yuv420p with its index first (``+faststart``): what every
browser plays. yuv420p needs even sizes, so an odd last column or row is cut.
A GIF is recorded losslessly first and converted when the recording stops,
through a palette computed over the whole clip (two passes, so memory stays
flat however long the recording is).
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .. import _apps
from ._clicks import ClickMarker

log = logging.getLogger(__name__)

FORMATS = (".mp4", ".gif")
#: Recordings up to this size are embedded in the notebook (they survive saving
#: and sharing it); larger ones are linked by path, as files next to it.
EMBED_LIMIT = 20 * 1024 * 1024
#: How long ffmpeg may take to finish the file after it is asked to stop.
STOP_TIMEOUT = 15.0


def _ffmpeg() -> str:
    path = shutil.which("ffmpeg")
    if path is None:
        raise FileNotFoundError("recording needs ffmpeg: `sudo apt-get install ffmpeg` (Debian/Ubuntu)")
    return path


def check_path(path: object) -> Path:
    """The output file, or an error that says which kinds are supported."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file name ending in .mp4 or .gif; got {path!r}")
    out = Path(os.fspath(path)).expanduser().absolute()
    if out.suffix.lower() not in FORMATS:
        raise ValueError(f"cannot record to {out.name!r}: the file name must end in .mp4 (video) or .gif (slides)")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"the folder {str(out.parent)!r} for the recording does not exist")
    return out


def check_show_clicks(show_clicks: object) -> bool:
    if not isinstance(show_clicks, bool):
        raise TypeError(f"show_clicks must be True or False; got {show_clicks!r}")
    return show_clicks


def check_fps(fps: object) -> int:
    if not isinstance(fps, int) or isinstance(fps, bool) or not 1 <= fps <= 60:
        raise ValueError(f"fps must be an int from 1 to 60; got {fps!r}")
    return fps


def grab_args(display: str, fps: int) -> list[str]:
    """ffmpeg's input: the whole X screen, with the pointer drawn in."""
    return ["-f", "x11grab", "-framerate", str(fps), "-draw_mouse", "1", "-i", display]


def mp4_args(out: str) -> list[str]:
    # yuv420p needs even sizes; ``veryfast`` keeps up at 1280x800 on one core.
    return [
        "-vf",
        "crop=trunc(iw/2)*2:trunc(ih/2)*2",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-pix_fmt",
        "yuv420p",
        "-movflags",
        "+faststart",
        out,
    ]


def lossless_args(out: str) -> list[str]:
    """The intermediate clip of a GIF: exact RGB, cheap to encode."""
    return ["-c:v", "libx264rgb", "-preset", "ultrafast", "-qp", "0", out]


class Recording:
    """A screen recording in progress or done; shows inline in a notebook once stopped.

    ``with d.record("demo.mp4"): ...`` or ``rec = d.record("demo.mp4")`` ...
    ``rec.stop()``. ``rec.stop()`` returns the recording, so it can end a cell.
    """

    def __init__(
        self,
        path: Path,
        display: str,
        env: dict[str, str],
        cwd: str,
        log_dir: str,
        fps: int,
        marker: ClickMarker | None = None,
    ) -> None:
        self.path = path
        self.fps = fps
        self._env = env
        self._cwd = cwd
        self._log_dir = log_dir
        self._marker = marker
        self._lock = threading.Lock()
        self._stopped = False
        self._error = ""
        self._tmp: str | None = None
        #: Seconds from the start to ``stop()``; None while recording.
        self.duration: float | None = None
        if path.suffix.lower() == ".gif":
            self._tmp = tempfile.mkdtemp(prefix="desktop-widget-gif-")
            target = lossless_args(os.path.join(self._tmp, "clip.mkv"))
        else:
            target = mp4_args(str(path))
        argv = [_ffmpeg(), "-hide_banner", "-nostdin", "-nostats", "-y", *grab_args(display, fps), *target]
        try:
            self._proc = _apps.launch(argv, env, cwd, log_dir)
            self.started = time.monotonic()
            self._wait_started()
        except BaseException:
            if marker is not None:
                marker.close()
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)
            raise

    def _wait_started(self, timeout: float = 10.0) -> None:
        """Return once ffmpeg writes frames, so that the block's first actions are in the clip."""
        deadline = time.monotonic() + timeout
        while "Output #0" not in self._proc.log():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self._kill()
                tail = "\n".join(self._proc.log().splitlines()[-8:])
                raise RuntimeError(f"ffmpeg did not start recording:\n{tail}")
            time.sleep(0.01)
        if self._marker is not None:
            self._marker.start()

    @property
    def running(self) -> bool:
        """Whether the encoder still records (it ends by itself if the desktop goes away)."""
        return not self._stopped and self._proc.poll() is None

    def stop(self) -> Recording:
        """Finish the file and wait for it; safe to call twice. Returns the recording (it shows inline)."""
        with self._lock:
            if self._stopped:
                return self
            self._stopped = True
            if self._marker is not None:
                self._marker.close()
            if self._proc.poll() is not None:
                # x11grab lost the screen: the desktop stopped, or its screen shrank (d.resize, a view).
                log.warning("the recording %s had ended by itself: the screen went away or shrank", self.path.name)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._proc.pid, signal.SIGINT)
            try:
                self._proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                log.warning("ffmpeg did not finish %s in %s s; killing it", self.path, STOP_TIMEOUT)
                self._kill()
            self.duration = time.monotonic() - self.started
            if self._tmp is not None:
                try:
                    self._make_gif()
                finally:
                    shutil.rmtree(self._tmp, ignore_errors=True)
        if self._error:
            raise RuntimeError(self._error)
        return self

    def _kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc.wait()

    def _make_gif(self) -> None:
        """Palette over the whole clip, then the GIF with it: good colours, flat memory."""
        clip = os.path.join(self._tmp, "clip.mkv")
        palette = os.path.join(self._tmp, "palette.png")
        ffmpeg = [_ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
        for argv in (
            [*ffmpeg, "-i", clip, "-vf", "palettegen=stats_mode=diff", palette],
            [*ffmpeg, "-i", clip, "-i", palette, "-lavfi", "paletteuse=diff_mode=rectangle", str(self.path)],
        ):
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                self._error = f"making {self.path.name} failed: {done.stderr.strip()[-2000:]}"
                return

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- display -------------------------------------------------------------
    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """A video player (MP4) or the image (GIF), embedded when small enough to keep in the notebook."""
        plain = repr(self)
        if self.running or not self.path.is_file():
            return {"text/plain": plain}
        size = self.path.stat().st_size
        gif = self.path.suffix.lower() == ".gif"
        if size <= EMBED_LIMIT:
            data = base64.b64encode(self.path.read_bytes()).decode()
            if gif:
                return {"image/gif": data, "text/plain": plain}
            src = f"data:video/mp4;base64,{data}"
        else:
            # Too big to embed: a path relative to the kernel's folder (the notebook's, usually).
            src = os.path.relpath(self.path)
        tag = f'<img src="{src}"/>' if gif else f'<video src="{src}" controls loop muted playsinline></video>'
        return {"text/html": tag, "text/plain": plain}

    def __repr__(self) -> str:
        state = "recording" if self.running else "done" if self.path.is_file() else "stopped"
        return f"<Recording {self.path.name} {state}>"


def stop_all(recordings: list[Recording]) -> None:
    """Finish every recording (before the X server goes away)."""
    for rec in recordings:
        try:
            rec.stop()
        except Exception:
            log.exception("could not finish the recording %s", rec.path)
