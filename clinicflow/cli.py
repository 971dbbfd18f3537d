"""``clinicflow`` command line: one subcommand per app, each module its own composition root.

Subcommands are looked up in ``COMMANDS`` and imported lazily, so ``clinicflow server``
never imports Kivy and ``clinicflow display`` never imports FastAPI.
Each target is ``module:function`` taking ``argv: list[str]`` and returning an exit code.
"""
from __future__ import annotations

import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "server": ("queueserver.cli:main", "run the central queue server (HTTP API, MQTT publisher, web pages)"),
    "kiosk": ("kiosk.cli:main", "run the self-service kiosk (Kivy)"),
    "display": ("display.cli:main", "run a waiting-room call screen (Kivy)"),
    "demo": ("clinicflow.demo:main", "start broker, server, a kiosk and a call screen on the embedded defaults"),
    "selftest": ("hardware.selftest:main", "exercise every peripheral this device's config names"),
    "devices": ("config.devices_cli:main", "manage device identities on the server (add, list)"),
    "provision": ("config.provision:main", "turn this machine into a kiosk, call screen or button box from a bundle"),
    "broker-config": ("config.broker_config:main", "generate a locked-down Mosquitto configuration (TLS, passwords, ACL)"),
    "buttonbox": ("hardware.buttonbox_cli:main", "run a clinician's call-button box at a room (GPIO)"),
    "server-units": ("config.server_units:main", "write the queue server's systemd units (server, certificate renewal)"),
    "backup": ("clinicflow.backup:backup_main", "back up the queue server's store (SQLite online backup, or pg_dump)"),
    "restore": ("clinicflow.backup:restore_main", "restore the queue server's store from a backup (server stopped)"),
    "release": ("clinicflow.update:release_main", "sign and publish an application release for A/B device updates"),
}


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = ["usage: clinicflow COMMAND [options]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "clinicflow COMMAND --help shows a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"clinicflow: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    target = COMMANDS[name][0]
    module_name, func_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            print(f"clinicflow: command {name!r} is not built yet ({target})", file=sys.stderr)
            return 2
        raise
    return int(getattr(module, func_name)(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
