#!/usr/bin/env bash
# Install everything clinicflow needs on Debian 12: system packages (as root) and a
# virtual environment in .venv with the pinned requirements. Safe to run again.
#   scripts/setup.sh          runtime only
#   scripts/setup.sh --test   runtime + what the test suite needs
set -euo pipefail
cd "$(dirname "$0")/.."

APT_RUNTIME=(
  python3-venv python3-dev gcc                      # the virtual environment and wheels that compile
  mosquitto mosquitto-clients                       # the MQTT broker
  xvfb xauth libgl1 libgl1-mesa-dri libegl1 libgles2 libmtdev1   # Kivy's SDL2/OpenGL, headless when no screen
  fonts-wqy-microhei                                # Simplified Chinese glyphs (Roboto draws boxes)
  espeak-ng alsa-utils sox                          # speech, playback, WAV measurement
  cups cups-client printer-driver-cups-pdf libcups2-dev   # A4 report printing through CUPS
  zbar-tools                                        # decoding printed QR codes (self-test, tests)
  libusb-1.0-0 linux-libc-dev                       # USB receipt printers (pyusb); evdev builds against input.h
  postgresql-client                                 # pg_dump/pg_restore: clinicflow backup/restore of a PostgreSQL store
)
APT_TEST=(chromium chromium-driver)                 # web pages tested in real headless Chromium
APT_TEST+=(poppler-utils)                           # pdftotext, pdftoppm: the weekly PDF report read back
APT_TEST+=(systemd)                                 # systemd-analyze verifies the generated device units

packages=("${APT_RUNTIME[@]}")
[[ "${1:-}" == "--test" ]] && packages+=("${APT_TEST[@]}")

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: missing Debian packages: ${missing[*]}; run this script as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

req=requirements.txt
[[ "${1:-}" == "--test" ]] && req=requirements-test.txt
[[ -x .venv/bin/python ]] || python3 -m venv .venv
stamp=.venv/.installed-$(cat requirements.txt requirements-test.txt setup.py | sha256sum | cut -c1-16)-$(basename "$req")
if [[ ! -f "$stamp" ]]; then
  echo "setup: installing Python requirements from $req into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -r "$req"
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -e .
  touch "$stamp"
fi
echo "setup: ready (.venv/bin/clinicflow)"
