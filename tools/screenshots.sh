#!/usr/bin/env bash
# tools/screenshots.sh [OUT_DIR]: the README's screenshots, taken in a real X window.
#
# Starts an Xvfb X server (1600 x 1000), runs the app on the simulated bench through a demo
# protocol (python -m gui.screenshot) with Qt's xcb platform, and captures the X screen with
# ImageMagick's `import` mid-run (OUT_DIR/screenshot.png) and with the frame browser showing an
# acquired frame and its detections (OUT_DIR/frame_browser.png). OUT_DIR defaults to docs/.
# Needs Debian's xvfb, imagemagick and xdotool, and the xcb libraries Qt loads:
#   apt-get install xvfb imagemagick xdotool libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 \
#     libxcb-image0 libxcb-render-util0 libxkbcommon-x11-0 libxcb-xinerama0 libxcb-shape0
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs}
python=${PYTHON:-.venv/bin/python}
for tool in Xvfb import xdotool; do
    command -v "$tool" >/dev/null || { echo "tools/screenshots.sh: $tool is missing (see the" \
        "apt-get line at the top of this script)" >&2; exit 2; }
done
number=$((90 + RANDOM % 9))
while [ -e "/tmp/.X11-unix/X$number" ]; do number=$((number + 1)); done
Xvfb ":$number" -screen 0 1600x1000x24 -nolisten tcp >/dev/null 2>&1 &
xvfb=$!
trap 'kill "$xvfb" 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -e "/tmp/.X11-unix/X$number" ] && break; sleep 0.1; done
export DISPLAY=":$number" QT_QPA_PLATFORM=xcb
# xdotool confirms the window is mapped on the X server before the first capture
( for _ in $(seq 300); do
      if xdotool search --onlyvisible --name "chipctl" >/dev/null 2>&1; then
          echo "X window up: $(xdotool search --onlyvisible --name chipctl getwindowname | head -1)"
          break
      fi
      sleep 0.2
  done ) &
"$python" -m gui.screenshot --out-dir "$out"
