#!/usr/bin/env bash
# The field rehearsal: deploy a whole site on this machine exactly as docs/technicians.md says
# (Debian's Mosquitto started as Debian starts it, the queue server and five devices from the units
# clinicflow writes), check it, print PASS/FAIL per step, and remove everything again.
# It uses a private directory and free loopback ports: the machine's own Mosquitto, services and
# /etc are never touched. Needs root (Mosquitto must drop to user mosquitto) and, for the kiosk and
# call-screen windows, a display: on a headless server it runs them under xvfb-run.
#   sudo scripts/field-rehearsal.sh          exit code = number of failed steps
#   sudo scripts/field-rehearsal.sh --keep   keep the rehearsal's files and logs
set -euo pipefail
cd "$(dirname "$0")/.."
python=.venv/bin/python
[[ -x $python ]] || python=python3
export KIVY_NO_ARGS=1 KIVY_NO_CONSOLELOG=1
if [[ -z "${DISPLAY:-}" ]] && command -v xvfb-run >/dev/null; then
  exec xvfb-run -a -s "-screen 0 1920x1080x24" "$python" -m clinicflow.rehearsal "$@"
fi
exec "$python" -m clinicflow.rehearsal "$@"
