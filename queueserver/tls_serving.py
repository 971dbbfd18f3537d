"""HTTPS for the queue server: a certificate from the site's own CA, or one the hospital gives.

Browsers give some APIs only to secure contexts (HTTPS, or localhost), and a clinician's token
should not cross a ward's network in clear text. ``clinicflow broker-config`` already made a
private CA for the site (``DATA_DIR/broker/ca.crt``, ``ca.key``) whose certificate every device
trusts; ``server_certificate`` issues the web server's certificate from it for the names staff
type (reissued when the names change or 30 days before expiry). Staff machines trust the CA once
(docs/api.md, "HTTPS for the staff pages").
"""
from __future__ import annotations

import socket
from pathlib import Path

from config.tls import CertFiles, ensure_ca, ensure_server_cert


class HttpsSetupError(Exception):
    """The HTTPS certificate cannot be made or found; the message says what to do."""


def default_names(host: str) -> list[str]:
    """The names a certificate covers by default: this machine's name, ``localhost`` and the listen address."""
    names = [socket.getfqdn(), socket.gethostname(), "localhost", "127.0.0.1"]
    if host not in ("0.0.0.0", "::", ""):
        names.append(host)
    return list(dict.fromkeys(n for n in names if n))


def server_certificate(data_dir: Path, *, ca_dir: Path | None = None, names: list[str]) -> CertFiles:
    """The HTTPS certificate in ``DATA_DIR/https`` for ``names``, issued by the site CA.

    The CA must exist (``clinicflow broker-config`` makes it): making a second CA here would give
    staff machines two roots to trust and devices one they do not know.
    """
    ca_dir = ca_dir or data_dir / "broker"
    if not (ca_dir / "ca.crt").exists() or not (ca_dir / "ca.key").exists():
        raise HttpsSetupError(f"no site CA in {ca_dir}: run `clinicflow broker-config --data-dir {data_dir}` first "
                              "(or give --tls-cert and --tls-key)")
    ca, _ = ensure_ca(ca_dir)
    files, _ = ensure_server_cert(data_dir / "https", ca, names)
    return files
