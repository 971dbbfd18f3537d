"""The provisioning bundle: everything one device needs, in one file or one QR code.

The file is JSON (readable, ``*.cfbundle``); the QR code holds the same bundle as
``CFPB1:`` + base64url(zlib(JSON)) so it fits one code (about 1.5 KB). ``read_bundle``
accepts either form, including the ``QR-Code:`` line ``zbarimg`` prints.

A bundle holds the device's MQTT password and API token: it is written mode 0600,
and should be deleted (or the paper shredded) once the device is provisioned.
"""
from __future__ import annotations

import base64
import json
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from clinicflow.files import atomic_file
from config.registry import write_atomically
from config.schema import ConfigError, Ident, Role

QR_PREFIX = "CFPB1:"

# Where the secrets live on a device; the generated config points at these paths.
ETC = "/etc/clinicflow"
CONFIG_PATH = f"{ETC}/device.toml"
SECRETS_DIR = f"{ETC}/secrets"
TOKEN_PATH = f"{SECRETS_DIR}/api-token"
MQTT_PASSWORD_PATH = f"{SECRETS_DIR}/mqtt-password"
CA_PATH = f"{ETC}/ca.crt"
RELEASE_KEY_PATH = f"{ETC}/release-signing.pub"  # the site's A/B release key (from broker-config)


class Bundle(BaseModel):
    """One device's identity, config and secrets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    kind: Literal["clinicflow-provisioning"] = "clinicflow-provisioning"
    device_id: Ident
    role: Role
    site: Ident
    created: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    config_toml: str = Field(max_length=8000)
    api_token: str = Field(min_length=16, max_length=200)
    mqtt_password: str = Field(min_length=16, max_length=200)
    ca_cert: str | None = Field(None, max_length=4000)
    release_key: str | None = Field(None, max_length=1000)  # PEM public key devices verify updates with

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"

    def to_qr_text(self) -> str:
        packed = zlib.compress(self.model_dump_json().encode(), 9)
        return QR_PREFIX + base64.urlsafe_b64encode(packed).decode().rstrip("=")

    def write(self, path: Path) -> None:
        write_atomically(path, self.to_json(), mode=0o600)

    def write_qr_png(self, path: Path) -> None:
        """A PNG of the QR code, to print and scan at the device (``zbarimg`` decodes it)."""
        import qrcode
        from qrcode.constants import ERROR_CORRECT_L

        code = qrcode.QRCode(error_correction=ERROR_CORRECT_L, box_size=4, border=4)
        code.add_data(self.to_qr_text().encode("ascii"))
        code.make(fit=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        # It holds the same secrets as the bundle: created 0600 (a temp file renamed into place), never
        # readable by others even for a moment, and never written through a link someone planted.
        with atomic_file(path) as f:
            code.make_image().save(f, format="PNG")


def parse_bundle(text: str) -> Bundle:
    """A bundle from its JSON file or its QR text; ConfigError saying what is wrong."""
    text = text.strip()
    if text.startswith("QR-Code:"):
        text = text.removeprefix("QR-Code:")
    if text.startswith(QR_PREFIX):
        body = text.removeprefix(QR_PREFIX)
        try:
            text = zlib.decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))).decode()
        except (ValueError, zlib.error) as exc:
            raise ConfigError(f"bundle QR text is damaged ({exc}). Fix: scan it again or use the .cfbundle file") from None
    try:
        return Bundle.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "bundle"
        raise ConfigError(f"not a clinicflow provisioning bundle ({where}: {first.get('msg')}). "
                          "Fix: give the file written by `clinicflow devices add`") from None


def read_bundle(path: Path) -> Bundle:
    try:
        return parse_bundle(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such bundle file") from None
    except json.JSONDecodeError as exc:  # pragma: no cover - pydantic reports JSON errors itself
        raise ConfigError(f"{path}: not JSON ({exc})") from None
