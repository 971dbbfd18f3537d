"""The one way a device process learns how to reach its broker: URL, user, password and CA.

Every process that connects (call screens, kiosks, button boxes, the self-test) takes its
broker settings from the device file through ``broker_settings(config)`` and builds its bus
with ``PahoMessageBus.from_settings``: a process that forgot the site CA (and so never
reached a TLS broker) cannot happen again.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

from config.schema import ConfigError

if TYPE_CHECKING:
    from config.schema import DeviceConfig


@dataclass(frozen=True)
class BrokerSettings:
    """Where and as whom to connect. ``url`` holds no credentials; ``password`` is never printed."""

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme in ("mqtts", "ssl")

    def readable_ca(self) -> str | None:
        """``ca_file`` once it is known to be readable; ConfigError with the fix when it is not."""
        if self.ca_file is not None:
            try:
                Path(self.ca_file).read_bytes()
            except OSError as exc:
                raise ConfigError(f"broker.ca_file: cannot read {self.ca_file} ({exc.strerror}). "
                                  "Fix: re-run `clinicflow provision` (it writes the site CA)") from None
        return self.ca_file

    def url_with_credentials(self) -> str:
        """``mqtts://user:password@host:port`` (quoted), for code that takes one URL."""
        parts = urlsplit(self.url)
        if self.password is None or not self.username:
            return self.url
        netloc = f"{quote(self.username, safe='')}:{quote(self.password, safe='')}@{parts.hostname}"
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def broker_settings(config: "DeviceConfig") -> BrokerSettings:
    """The broker settings of a device file; ConfigError (key and fix) for a secret or CA it cannot read."""
    from config.loader import read_secret

    section = config.broker
    password = read_secret(section.password_file, section.password_env, what="broker.password_file")
    ca_file = section.ca_file
    if ca_file is not None:
        if not urlsplit(section.url).scheme == "mqtts":
            raise ConfigError(f"broker.ca_file: given for a plain {section.url!r}. Fix: use mqtts:// or remove ca_file")
    return BrokerSettings(url=section.url, username=section.username or config.device.id, password=password,
                          ca_file=ca_file)


def broker_options(config: "DeviceConfig") -> dict[str, Any]:
    """``broker`` (URL with credentials) and ``ca_file`` for an app's option table (display, kiosk)."""
    settings = broker_settings(config)
    return {"broker": settings.url_with_credentials(), "ca_file": settings.ca_file}
