"""Read a device's TOML file, validate it, and resolve the secrets it points to.

``load_config(path)`` is what every app's ``cli.py`` calls first; it raises
``ConfigError`` whose message names each bad key and its fix, so the app can print
it and exit non-zero (systemd then shows it in ``journalctl -u clinicflow-...``).

``python -m config.loader FILE`` checks a file by hand and prints the same errors.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any
import tomllib
from pathlib import Path

from config.schema import ConfigError, DeviceConfig, validate_device_config

DEFAULT_PATH = Path("/etc/clinicflow/device.toml")
ENV_PATH = "CLINICFLOW_CONFIG"


def config_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The file to read: the argument, else ``$CLINICFLOW_CONFIG``, else ``/etc/clinicflow/device.toml``."""
    return Path(path or os.environ.get(ENV_PATH) or DEFAULT_PATH)


def parse_config(text: str, *, source: str = "config") -> DeviceConfig:
    """Validate TOML text; ConfigError for a syntax error (with its line) or any schema problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}. Fix: check quotes and brackets on that line") from None
    try:
        return validate_device_config(data)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}", [f"{source}: {p}" for p in exc.problems]) from None


def load_config(path: str | os.PathLike[str] | None = None) -> DeviceConfig:
    """Read and validate a device file (see ``config_path`` for which one)."""
    file = config_path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file. Fix: run `clinicflow provision BUNDLE`, or set {ENV_PATH}") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read it ({exc.strerror}). Fix: check its owner and mode") from None
    return parse_config(text, source=str(file))


def read_secret(file: str | None, env: str | None, *, what: str) -> str | None:
    """The secret from ``env`` (if set) or ``file``; None if neither is configured. ConfigError if unreadable."""
    if env:
        value = os.environ.get(env)
        if value:
            return value
        if not file:
            raise ConfigError(f"{what}: environment variable {env} is not set. Fix: set it in the unit's EnvironmentFile")
    if not file:
        return None
    try:
        return Path(file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {file} ({exc.strerror}). Fix: re-run `clinicflow provision`") from None


def api_token(config: DeviceConfig) -> str | None:
    """The device's bearer token for the queue server's API."""
    return read_secret(config.server.token_file, config.server.token_env, what="server.token_file")


def broker_url(config: DeviceConfig) -> str:
    """The broker URL with the device's username and password in it (see ``config.broker_settings``)."""
    from config.broker_settings import broker_settings

    return broker_settings(config).url_with_credentials()


def main(argv: list[str] | None = None) -> int:
    """``python -m config.loader [FILE]``: check a device file; exit 1 with every problem listed."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        config = load_config(args[0] if args else None)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    print(f"ok: {config.device.id} is a {config.device.role} at site {config.device.site}"
          f" showing rooms {', '.join(config.settings.rooms) or 'all'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


def add_config_option(parser: argparse.ArgumentParser, what: str = "the options below") -> None:
    """``--config FILE``, defaulting to ``$CLINICFLOW_CONFIG`` as the provisioned systemd unit sets it."""
    parser.add_argument("--config", default=os.environ.get("CLINICFLOW_CONFIG") or None, metavar="FILE",
                        help=f"device file (TOML) giving {what} (default $CLINICFLOW_CONFIG); flags win")


def parse_args_with_device_file(parser: argparse.ArgumentParser, argv: list[str] | None,
                                options_from_config: Callable[[Any], dict[str, Any]]) -> argparse.Namespace:
    """Parse ``argv`` with flags over the device file (``--config``) over the parser's own defaults.

    A bad device file exits 2 with the loader's messages, each naming the key and the fix.
    """
    args = parser.parse_args(argv)
    if args.config:
        try:
            parser.set_defaults(**options_from_config(load_config(args.config)))
        except ConfigError as exc:
            for problem in exc.problems:
                print(f"{parser.prog}: error: {problem}", file=sys.stderr)
            raise SystemExit(2) from None
        args = parser.parse_args(argv)  # again: explicit flags win over the file's values
    return args
