"""A small private CA for the site's broker, made with the ``cryptography`` library.

The CA signs the broker's server certificate; devices get the CA certificate in
their provisioning bundle and verify the broker with it. Keys are EC P-256 (fast on
a Pi, supported by Mosquitto's OpenSSL and by Python's ``ssl``).
"""
from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from config.broker_files import BROKER_GROUP
from config.registry import write_atomically

CA_DAYS = 3650
SERVER_DAYS = 825  # the longest validity clients commonly accept for a server certificate
RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True)
class CertFiles:
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "clinicflow"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey, *, group: str | None = None) -> None:
    """0600 root, or 0640 with ``group`` (the broker's key: Mosquitto reads it as user mosquitto)."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    write_atomically(path, pem.decode(), mode=0o640 if group else 0o600, group=group)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    write_atomically(path, cert.public_bytes(serialization.Encoding.PEM).decode(), mode=0o644)


def ensure_ca(directory: Path, *, common_name: str = "clinicflow broker CA") -> tuple[CertFiles, bool]:
    """The CA in ``directory`` (``ca.crt``, ``ca.key``), created if missing. Never replaced: devices trust it."""
    files = CertFiles(directory / "ca.crt", directory / "ca.key")
    if files.cert.exists() and files.key.exists():
        return files, False
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name)).issuer_name(_name(common_name))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(files.key, key)
    _write_cert(files.cert, cert)
    return files, True


def _san(hostnames: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def ensure_server_cert(directory: Path, ca: CertFiles, hostnames: list[str]) -> tuple[CertFiles, bool]:
    """The broker's certificate for ``hostnames``; (re)issued when missing, for other names, or near expiry."""
    files = CertFiles(directory / "server.crt", directory / "server.key")
    wanted = sorted(set(hostnames))
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    if files.cert.exists() and files.key.exists():
        current = x509.load_pem_x509_certificate(files.cert.read_bytes())
        if _still_good(current, ca_cert, _san(wanted)):
            return files, False
    ca_key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(wanted[0])).issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName(_san(wanted)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca_cert.public_key()), critical=False)  # type: ignore[arg-type]
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    _write_key(files.key, key, group=BROKER_GROUP)
    _write_cert(files.cert, cert)
    return files, True


def _still_good(current: x509.Certificate, ca_cert: x509.Certificate, wanted: list[x509.GeneralName]) -> bool:
    """Kept only if issued by today's CA, for the same names, and not within RENEW_BEFORE of its end."""
    try:
        current.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False  # a new CA: every device would refuse a broker still showing the old one's certificate
    try:
        san = current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        have = sorted(str(n.value) for n in san)
    except x509.ExtensionNotFound:
        have = []
    fresh = current.not_valid_after_utc - dt.datetime.now(dt.timezone.utc) > RENEW_BEFORE
    return fresh and have == sorted(str(n.value) for n in wanted)


def days_left(cert_path: Path, *, now: dt.datetime | None = None) -> float:
    """Days until the certificate in ``cert_path`` expires (negative once it has)."""
    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    return (cert.not_valid_after_utc - (now or dt.datetime.now(dt.timezone.utc))).total_seconds() / 86400


WARN_BEFORE = dt.timedelta(days=30)


def expiry_warning(cert_path: Path, *, now: dt.datetime | None = None, within: dt.timedelta = WARN_BEFORE) -> str | None:
    """A sentence for the fleet when the certificate ends within ``within`` (or has ended), else None.

    The renewal timer re-issues it at 30 days; a warning means renewal did not happen (timer not
    installed, CA key missing, Mosquitto not restarted): without action every device loses the broker.
    """
    left = days_left(cert_path, now=now)
    if left > within.total_seconds() / 86400:
        return None
    when = "expired" if left < 0 else f"expires in {left:.0f} days"
    return (f"the broker certificate {cert_path} {when}: run `clinicflow broker-config --renew --restart-broker` "
            "(and check clinicflow-broker-renew.timer)")


def site_certificates() -> list[Path]:
    """The broker certificate of this server's data directory (``$CLINICFLOW_DATA_DIR``), if there is one."""
    from config.registry import data_dir

    path = data_dir() / "broker" / "server.crt"
    return [path] if path.exists() else []
