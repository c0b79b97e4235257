#!/usr/bin/env bash
# The system packages desktop_widget needs, for a Debian/Ubuntu machine or image.
# Used by ./run (demo and tests), by .ci/run through it, and by the Dockerfile.
#   scripts/install-system.sh          runtime: Xvnc, XFCE, a light WM, ffmpeg, fonts (CJK, emoji)
#   scripts/install-system.sh --dev    also what builds and tests need: Node.js, Chromium, X and GL tools, mousepad
set -euo pipefail

packages=(
  tigervnc-standalone-server   # Xvnc
  xauth x11-xserver-utils      # xauth, xrandr for users' scripts
  dbus-x11                     # dbus-launch for the XFCE session
  xfce4-session xfwm4 xfce4-panel xfdesktop4 xfce4-settings xfconf
  openbox                      # the light window manager (session="wm")
  xterm
  ffmpeg                       # d.record: x11grab + H.264 / GIF
  fonts-dejavu-core
  # CJK (Chinese, Japanese kana, Korean; 5 MB, where fonts-noto-cjk is 91 MB) and colour emoji (11 MB):
  # without them GTK draws boxes with hex codes.
  fonts-wqy-microhei fonts-noto-color-emoji
)
if [[ "${1:-}" == "--dev" ]]; then
  packages+=(chromium x11-utils)
  packages+=(mesa-utils mousepad)  # glxinfo/glxgears and a GTK editor for tests/test_opengl_fonts.py
  command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)
  python3 -c "import ensurepip, venv" 2>/dev/null || packages+=(python3-venv)
  python3 -c "import tkinter" 2>/dev/null || packages+=(python3-tk)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  echo "installing system packages: ${missing[*]}" >&2
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
  # The screensaver locks the desktop with a password nobody knows.
  $sudo apt-get remove -y -q xfce4-screensaver light-locker 2>/dev/null || true
fi
