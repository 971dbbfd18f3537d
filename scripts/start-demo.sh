#!/usr/bin/env bash
# One command for a newcomer: install everything, then start broker, queue server,
# one kiosk and one call screen on the embedded defaults (SQLite, local Mosquitto).
# Without a display it runs headless, walks a demo patient through and saves screenshots.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/clinicflow demo "$@"
