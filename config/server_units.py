"""``clinicflow server-units``: the queue server's systemd units, for this installation.

    clinicflow server-units --data-dir /var/lib/clinicflow --out /etc/systemd/system

writes ``clinicflow-server.service`` (the queue server; its broker URL and CA come from the
0600 ``<data dir>/broker/server.env`` that ``broker-config`` writes), and
``clinicflow-broker-renew.service`` + ``.timer`` (daily: re-issue the broker certificate when
it is due and restart Mosquitto then). Rendered from ``deploy/*.in``; safe to run again.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from string import Template

from config.provision import DEPLOY, REPO, default_exec
from config.registry import data_dir, write_atomically

UNITS = ("clinicflow-server.service", "clinicflow-broker-renew.service", "clinicflow-broker-renew.timer")


def render_units(*, data: Path, exec_path: str, user: str = "clinicflow", site: str = "demo",
                 host: str = "0.0.0.0", port: int = 8000) -> dict[str, str]:
    """Unit name -> text."""
    values = {"data_dir": str(data), "exec": exec_path, "user": user, "site": site, "host": host, "port": port,
              "docs": REPO}
    texts = {}
    for name in UNITS:
        template = DEPLOY / f"{name}.in"
        source = template if template.exists() else DEPLOY / name
        texts[name] = Template(source.read_text()).substitute(values)
    return texts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="clinicflow server-units", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="the queue server's --data-dir (default $CLINICFLOW_DATA_DIR or ./clinicflow-data)")
    parser.add_argument("--out", default="/etc/systemd/system", help="where to write (default /etc/systemd/system)")
    parser.add_argument("--user", default="clinicflow", help="the service user (default clinicflow)")
    parser.add_argument("--site", default="demo", help="site id, for the unit's description (default demo)")
    parser.add_argument("--host", default="0.0.0.0", help="address the server listens on (default all)")
    parser.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    parser.add_argument("--exec", dest="exec_path", help="path of the clinicflow command (default this installation's)")
    args = parser.parse_args(argv)
    data = data_dir(args.data_dir).resolve()
    out = Path(args.out)
    for name, text in render_units(data=data, exec_path=args.exec_path or default_exec(), user=args.user,
                                   site=args.site, host=args.host, port=args.port).items():
        path = out / name
        if path.exists() and path.read_text() == text:
            print(f"unchanged  {path}")
            continue
        write_atomically(path, text, mode=0o644)
        print(f"wrote      {path}")
    print("next: systemctl daemon-reload && systemctl enable --now clinicflow-server clinicflow-broker-renew.timer")
    return 0


if __name__ == "__main__":
    sys.exit(main())
