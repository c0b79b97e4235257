"""Checking what a user asked for, and turning it into argument lists.

Everything here is pure (no processes are started) so that it can be unit
tested and so that bad input fails before anything runs.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ._errors import DesktopError

#: Sizes Xvnc accepts and that make sense on a screen. Xvnc's own limit is
#: higher, but a 100000-pixel screen only exhausts memory.
MIN_SIZE = 32
MAX_SIZE = 8192

XDG_DEFAULTS = Path(__file__).with_name("xdg")
NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
#: What a view's ``height`` may be.
CSS_LENGTH = re.compile(r"\d+(\.\d+)?(px|em|rem|vh|%)")
#: How a view reaches the desktop: the server's route, the kernel's comm, or whichever works.
VIEW_TRANSPORTS = ("auto", "server", "comm")
#: Xvnc's update clock. An update waits about half a frame for it; the clock
#: stops when the screen is still, so idle CPU is 0 at any rate. benchmarks/
#: ("Frame rate above 240", same run, light WM): browser latency 5.3 ms at 240,
#: 3.5 ms at 500, 3.8 ms at 1000 (floors 4.1 / 2.7 / 2.7 ms); under a 60 fps
#: load the desktop, server and browser CPU and the bandwidth were the same at
#: all three. Above 500 nothing more was gained.
DEFAULT_FRAME_RATE = 500
#: Xvnc's frame clock is a millisecond timer: above 1000 Hz it cannot tick faster.
MAX_FRAME_RATE = 1000
SESSION_KINDS = ("auto", "xfce", "wm", "none")
#: The main colour of XFCE 4.18's default wallpaper (xfce-shapes): the X root
#: gets it before the session starts, so the first frames a view shows are the
#: desktop's colour, not black, during the second XFCE takes to draw.
XFCE_BACKGROUND = 0x1D273A
#: A light window manager paints no background: its root gets this slate grey,
#: not X's black, which looks like a view that shows nothing.
WM_BACKGROUND = 0x2F3440
#: Light window managers, best first, and the arguments that start them bare.
WINDOW_MANAGERS = (("openbox", ()), ("xfwm4", ()), ("fluxbox", ()), ("icewm", ()), ("twm", ()))
WINDOW_MANAGER_NAMES = frozenset({"xfce4-session"} | {wm for wm, _ in WINDOW_MANAGERS})
XSTARTUP_ENV = ("DESKTOP_WIDGET_XSTARTUP", "JUPYTER_REMOTE_DESKTOP_PROXY_XSTARTUP")
#: Variables of the kernel's environment that would make desktop programs talk
#: to the wrong session.
_DROP_ENV = (
    "DBUS_SESSION_BUS_ADDRESS",
    "SESSION_MANAGER",
    "WAYLAND_DISPLAY",
    "XDG_SESSION_TYPE",
    "DISPLAY",
    "XAUTHORITY",
)


@dataclass(frozen=True)
class Options:
    """A checked request for one desktop."""

    geometry: tuple[int, int] = (1280, 800)
    session: str = "auto"
    frame_rate: int = DEFAULT_FRAME_RATE
    depth: int = 24
    cwd: str = field(default_factory=os.getcwd)
    env: dict[str, str] = field(default_factory=dict)
    timeout: float = 20.0
    name: str = ""
    #: Outlive the owning process (until stop() or the Jupyter server's exit).
    persistent: bool = False
    #: Stop after this many seconds with no view connected and no scripting; 0 never.
    idle_timeout: float = 0.0
    #: OpenGL through Xvnc's GLX (Mesa's software renderer); off saves ~50 MiB per desktop.
    opengl: bool = True


def check_geometry(geometry: object) -> tuple[int, int]:
    """Return ``(width, height)`` or raise naming the accepted range."""
    if (
        not isinstance(geometry, (tuple, list))
        or len(geometry) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in geometry)
    ):
        raise TypeError(f"geometry must be a (width, height) pair of ints, e.g. (1280, 800); got {geometry!r}")
    width, height = geometry
    for name, value in (("width", width), ("height", height)):
        if not MIN_SIZE <= value <= MAX_SIZE:
            raise ValueError(f"geometry {name} must be between {MIN_SIZE} and {MAX_SIZE} pixels; got {value}")
    return int(width), int(height)


#: The longest wait a timeout, delay or duration may ask for: a day. More is
#: almost surely a slip, and ``inf`` overflows ``time.sleep`` and lock waits.
MAX_SECONDS = 86_400.0


def check_seconds(name: str, value: object, *, zero: bool = True, most: float = MAX_SECONDS) -> float:
    """``value`` as a finite number of seconds (``>= 0``, or ``> 0`` without ``zero``) up to ``most``."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number of seconds; got {value!r}")
    low = ">= 0" if zero else "> 0"
    if not (math.isfinite(value) and (value >= 0 if zero else value > 0) and value <= most):
        raise ValueError(f"{name} must be a finite number of seconds {low} and at most {most:g}; got {value!r}")
    return float(value)


def check_options(
    *,
    geometry: object = Options.geometry,
    session: object = Options.session,
    frame_rate: object = Options.frame_rate,
    cwd: object = None,
    env: object = None,
    timeout: object = Options.timeout,
    name: object = Options.name,
    persistent: object = Options.persistent,
    idle_timeout: object = None,
    opengl: object = Options.opengl,
) -> Options:
    """Validate every argument of ``Desktop()`` before anything starts; by name, defaults those of ``Options``."""
    size = check_geometry(geometry)
    if not isinstance(session, (str, os.PathLike)):
        raise TypeError(f"session must be one of {SESSION_KINDS} or a path to an xstartup script; got {session!r}")
    session = os.fspath(session)
    if session not in SESSION_KINDS and os.sep not in session:
        raise ValueError(
            f"unknown session {session!r}: use one of {', '.join(map(repr, SESSION_KINDS))} "
            "or a path to an executable xstartup script"
        )
    if not isinstance(frame_rate, int) or isinstance(frame_rate, bool) or not 1 <= frame_rate <= MAX_FRAME_RATE:
        raise ValueError(f"frame_rate must be an int between 1 and {MAX_FRAME_RATE}; got {frame_rate!r}")
    if cwd is None:
        cwd = os.getcwd()
    if not isinstance(cwd, (str, os.PathLike)):
        raise TypeError(f"cwd must be a path; got {cwd!r}")
    cwd = os.path.abspath(os.fspath(cwd))
    if not os.path.isdir(cwd):
        raise FileNotFoundError(f"cwd {cwd!r} is not a directory")
    if env is None:
        env = {}
    check_env(env, "env")
    check_seconds("timeout", timeout, zero=False)
    if name is None:
        name = ""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name or "x"):
        raise ValueError(f"name must be up to 64 letters, digits, '.', '_' or '-'; got {name!r}")
    if not isinstance(persistent, bool):
        raise TypeError(f"persistent must be True or False; got {persistent!r}")
    if idle_timeout is None:
        idle_timeout = 0
    if not isinstance(idle_timeout, (int, float)) or isinstance(idle_timeout, bool):
        raise TypeError(f"idle_timeout must be a number of seconds (0 or None: never); got {idle_timeout!r}")
    check_seconds("idle_timeout (0 or None: never)", idle_timeout)
    if not isinstance(opengl, bool):
        raise TypeError(f"opengl must be True (OpenGL programs work) or False (no GLX, less memory); got {opengl!r}")
    return Options(
        geometry=size,
        session=session,
        frame_rate=frame_rate,
        cwd=cwd,
        env=dict(env),
        timeout=float(timeout),
        name=name,
        persistent=persistent,
        idle_timeout=float(idle_timeout),
        opengl=opengl,
    )


#: Variables the desktop sets itself; a value from the user would point its programs at another X server or cookie.
_OWN_ENV = {
    "DISPLAY": "the desktop's own display (d.display)",
    "XAUTHORITY": "the desktop's own cookie file (d.env['XAUTHORITY']); its X server accepts no other",
}


@dataclass(frozen=True)
class ViewOptions:
    """A view's settings and their defaults: the one home for ``Desktop()``'s view arguments,
    ``DesktopView``'s traits and the full page (``page.js`` gets quality and compression in its config)."""

    view_only: bool = False
    scale: bool = False
    height: str = "600px"
    #: noVNC's JPEG quality (0-9): lower draws busy, photo-like content faster on less bandwidth
    #: (TigerVNC keeps text and flat areas lossless whatever it is).
    quality: int = 6
    #: noVNC's compression level (0-9): higher trades the server's CPU for bandwidth.
    compression: int = 2
    transport: str = "auto"


def check_env(env: object, what: str) -> None:
    """Refuse an ``env`` that is not str to str or that overrides what the desktop must set itself."""
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise TypeError(f"{what} must be a dict of str to str")
    for var, why in _OWN_ENV.items():
        if var in env:
            raise ValueError(f"{what} must not set {var}: the session and every launched program get {why}")


def check_view(
    view_only: object = ViewOptions.view_only,
    scale: object = ViewOptions.scale,
    height: object = ViewOptions.height,
    quality: object = ViewOptions.quality,
    compression: object = ViewOptions.compression,
    transport: object = ViewOptions.transport,
) -> dict:
    """The view's arguments, checked as its traits will check them, but without importing anywidget."""
    for name, value in (("view_only", view_only), ("scale", scale)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False; got {value!r}")
    if not isinstance(height, str) or not CSS_LENGTH.fullmatch(height):
        raise ValueError(f"height must be a CSS length such as '600px' or '70vh'; got {height!r}")
    for name, value in (("quality", quality), ("compression", compression)):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 9:
            raise ValueError(f"{name} must be an int from 0 to 9; got {value!r}")
    if transport not in VIEW_TRANSPORTS:
        raise ValueError(f"transport must be one of {', '.join(map(repr, VIEW_TRANSPORTS))}; got {transport!r}")
    return {
        "view_only": view_only,
        "scale": scale,
        "height": height,
        "quality": quality,
        "compression": compression,
        "transport": transport,
    }


def find_xvnc() -> str:
    """The ``Xvnc`` to run, or an error that says how to install it."""
    path = shutil.which("Xvnc")
    if path is None:
        raise DesktopError(
            "Xvnc (TigerVNC) was not found on PATH. On Debian or Ubuntu install it with "
            "`sudo apt-get install tigervnc-standalone-server`; on Fedora `sudo dnf install tigervnc-server`; "
            "with conda `conda install -c conda-forge tigervnc`."
        )
    return path


def xvnc_command(xvnc: str, options: Options, rfb_socket: str, xauthority: str, name: str) -> list[str]:
    """Xvnc's argument list. ``-displayfd`` is added by the supervisor.

    No TCP anywhere: RFB only on a 0600 unix socket (``-rfbport -1`` matters:
    without it TigerVNC also opens 5900+N, CVE-2025-32428), X11 not on TCP, and
    X clients need the cookie in ``xauthority``.
    """
    width, height = options.geometry
    return [
        xvnc,
        "-geometry",
        f"{width}x{height}",
        "-depth",
        str(options.depth),
        "-rfbport",
        "-1",
        "-rfbunixpath",
        rfb_socket,
        "-rfbunixmode",
        "0600",
        "-SecurityTypes",
        "None",
        "-nolisten",
        "tcp",
        "-auth",
        xauthority,
        "-desktop",
        name,
        "-FrameRate",
        str(options.frame_rate),
        "-AlwaysShared",
        "-AcceptSetDesktopSize",
        # Every client comes through the same socket, i.e. from the same
        # "host": views reconnecting together must not be black-listed.
        "-UseBlacklist=0",
        # Without GLX, Xvnc does not load Mesa's software renderer and LLVM at start.
        *([] if options.opengl else ["-extension", "GLX"]),
    ]


def root_colour(session_argv: list[str]) -> int | None:
    """The X root's colour until the session draws its own background (a light window manager never does).

    ``None`` (X's black) for no session and for an xstartup script, which may paint its own.
    """
    if session_argv and os.path.basename(session_argv[-1]) == "xfce4-session":
        return XFCE_BACKGROUND
    if session_argv and os.path.basename(session_argv[0]) in {wm for wm, _ in WINDOW_MANAGERS}:
        return WM_BACKGROUND
    return None


def session_command(session: str, environ: dict[str, str] | None = None) -> list[str]:
    """The argument list that starts the desktop session, or ``[]`` for none."""
    environ = os.environ if environ is None else environ
    if session == "auto":
        for var in XSTARTUP_ENV:
            if environ.get(var):
                return _xstartup(environ[var], var)
        if shutil.which("xfce4-session") and shutil.which("dbus-launch"):
            return session_command("xfce")
        if any(shutil.which(wm) for wm, _ in WINDOW_MANAGERS):
            return session_command("wm")
        return []
    if session == "xfce":
        if not shutil.which("xfce4-session"):
            raise DesktopError(
                "session='xfce' needs xfce4-session: `sudo apt-get install xfce4-session xfwm4 xfce4-panel`"
            )
        if not shutil.which("dbus-launch"):
            raise DesktopError("session='xfce' needs dbus-launch: `sudo apt-get install dbus-x11`")
        return ["dbus-launch", "--exit-with-session", "xfce4-session"]
    if session == "wm":
        for wm, args in WINDOW_MANAGERS:
            path = shutil.which(wm)
            if path:
                return [path, *args]
        names = ", ".join(wm for wm, _ in WINDOW_MANAGERS)
        raise DesktopError(f"session='wm' needs a window manager ({names}): `sudo apt-get install openbox`")
    if session == "none":
        return []
    return _xstartup(session, "session")


def _xstartup(path: str, origin: str) -> list[str]:
    script = Path(path).expanduser()
    if not script.is_file():
        raise FileNotFoundError(f"xstartup script {str(script)!r} (from {origin}) does not exist")
    if not os.access(script, os.X_OK):
        raise PermissionError(f"xstartup script {str(script)!r} (from {origin}) is not executable: `chmod +x` it")
    return [str(script.resolve())]


def desktop_environ(options: Options, xauthority: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for the X server and the session (``DISPLAY`` added later)."""
    env = dict(os.environ if base is None else base)
    for var in _DROP_ENV:
        env.pop(var, None)
    env["XAUTHORITY"] = xauthority
    # Our defaults for XFCE under the system's; a user's own settings still win (xfwm4's compositor
    # stays off regardless: the session starts it with --compositor=off).
    env["XDG_CONFIG_DIRS"] = os.pathsep.join([str(XDG_DEFAULTS), env.get("XDG_CONFIG_DIRS") or "/etc/xdg"])
    env.update(options.env)
    return env
