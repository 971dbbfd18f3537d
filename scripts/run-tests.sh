#!/usr/bin/env bash
# One command: install what the tests need, then run the whole test suite.
# Kivy windows need an X server: the suite runs under a private Xvfb.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export KIVY_NO_ARGS=1 KIVY_NO_CONSOLELOG=1 PYTHONDONTWRITEBYTECODE=1
exec xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python -m pytest "$@"
